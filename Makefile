# `make run`: set up and run everything on the embedded defaults.
# `make test`: set up (Python packages, redis-server, chromium) and run the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run admin test lint system-deps clean

$(VENV)/.installed: pyproject.toml setup.py media_server/rtpforward.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/televisit serve

# `make admin ARGS='create-org --name "Kallio Vet"'`: the admin commands (or .venv/bin/televisit).
admin: $(VENV)/.installed
	$(VENV)/bin/televisit admin $(ARGS)

# Debian packages the tests drive for real: redis-server, chromium (headless browser tests),
# podman + runc + debootstrap (the Docker image is built from a Debian base and run), nftables
# (the impairment harness's loss and policing, in its own network namespace).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	[ -x /usr/sbin/runc ] || missing="$$missing runc"; \
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing="$$missing nftables"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(VENV)/.installed system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
