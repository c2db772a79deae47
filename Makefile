# `make run`: set up and run everything on the embedded defaults.
# `make test`: set up (Python packages, redis-server, chromium) and run the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run admin test lint system-deps clean

# What a fresh Debian lacks for this (the venv module, a compiler and Python's headers for
# media_server/rtpforward.c) is named before the venv or the build fails on it less clearly.
$(VENV)/.installed: pyproject.toml setup.py media_server/rtpforward.c
	@command -v gcc >/dev/null && $(PYTHON) -c 'import ensurepip, os, sysconfig; \
		assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
		2>/dev/null || { echo "make: $(PYTHON) needs gcc, its venv module and its headers:" \
		"sudo apt-get install gcc python3-venv python3-dev" >&2; exit 1; }
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
# (the impairment harness's loss and policing, in its own network namespace), janus + iproute2
# (the bench smoke runs Janus in a network namespace of its own, tests/bench).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	[ -x /usr/sbin/runc ] || missing="$$missing runc"; \
	command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$$missing debootstrap"; \
	command -v nft >/dev/null || [ -x /usr/sbin/nft ] || missing="$$missing nftables"; \
	command -v janus >/dev/null || missing="$$missing janus"; \
	command -v ip >/dev/null || [ -x /usr/sbin/ip ] || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: $(VENV)/.installed system-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The media fuzz harness under atheris, FUZZ_RUNS inputs, with media_server.rtpforward compiled
# with AddressSanitizer into build/fuzz (the working tree's build is untouched) and run from
# there, so that build is the one imported; README "Fuzzing". The extension is compiled with
# ASan but linked without it: the runtime is atheris's (it carries libFuzzer; gcc's libasan
# would take over libFuzzer's coverage hooks and leave the run blind), preloaded.
FUZZ_RUNS ?= 1000000
FUZZ_DIR = build/fuzz
fuzz: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[fuzz]'
	rm -rf $(FUZZ_DIR)/media_server && mkdir -p $(FUZZ_DIR)/corpus && cp -r media_server $(FUZZ_DIR)/
	rm -f $(FUZZ_DIR)/media_server/*.so
	gcc -c -fPIC -fsanitize=address -fno-omit-frame-pointer -g -O1 -Wall -Wno-unused-parameter \
		-I"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
		media_server/rtpforward.c -o $(FUZZ_DIR)/rtpforward.o
	gcc -shared $(FUZZ_DIR)/rtpforward.o -o $(FUZZ_DIR)/media_server/rtpforward$$($(PY) -c \
		'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
	cd $(FUZZ_DIR) && PYTHONPATH=$(CURDIR) PYTHONMALLOC=malloc \
		LD_PRELOAD="$$($(CURDIR)/$(PY) -c 'import atheris; print(atheris.path())')/asan_with_fuzzer.so" \
		ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
		$(CURDIR)/$(PY) -m tests.fuzz.fuzz_media -runs=$(FUZZ_RUNS) -max_len=1024 \
		-print_final_stats=1 corpus

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
