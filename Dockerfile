# The Televisit image: `televisit serve` (control plane + one SFU worker per core) as a non-root
# user on Debian's own Python. Build it from any Debian bookworm base:
#   docker build -t televisit .                                    # debian:bookworm-slim
#   podman build --build-arg BASE=localhost/debian:bookworm-min .  # a debootstrap'd base
# Behind a TLS-intercepting proxy, give pip the proxy's CA bundle: mount it into the build and
# name it, e.g. podman build -v /etc/ssl/certs/ca-certificates.crt:/run/ca.crt:ro \
#   --build-arg CA_BUNDLE=/run/ca.crt .
ARG BASE=debian:bookworm-slim

# --- build: a compiler for media_server/rtpforward.c, the dependencies into a venv ----------
FROM ${BASE} AS build
ARG CA_BUNDLE
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv python3-dev gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/televisit
WORKDIR /src
# Dependencies first, in their own layer: a source change rebuilds only the layers below it.
COPY pyproject.toml ./
RUN /opt/televisit/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/televisit/bin/pip install --no-cache-dir -q ${CA_BUNDLE:+--cert "$CA_BUNDLE"} \
      -r requirements.txt "setuptools>=68"
COPY setup.py README.md ./
COPY config ./config
COPY control ./control
COPY media_server ./media_server
COPY benchmarks ./benchmarks
RUN /opt/televisit/bin/pip install --no-cache-dir -q --no-deps --no-build-isolation . \
  && cd / && /opt/televisit/bin/python -c "import media_server.rtpforward"

# --- runtime: Python and the venv, no compiler ---------------------------------------------
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin televisit \
 && mkdir -p /data && chown televisit:televisit /data
COPY --from=build /opt/televisit /opt/televisit
ENV PATH=/opt/televisit/bin:$PATH \
    TELEVISIT__SERVER__HOST=0.0.0.0 \
    TELEVISIT__SERVER__DATA_DIR=/data \
    TELEVISIT__MEDIA__LISTEN_ADDRESSES=[]
USER televisit
WORKDIR /data
VOLUME /data
# HTTP API and pages; the SFU workers' signaling sockets; media (UDP).
EXPOSE 8080 8081-8088 40000-40999/udp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TELEVISIT__SERVER__PORT', '8080'), timeout=4)"]
CMD ["televisit", "serve"]
