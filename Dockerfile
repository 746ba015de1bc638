# incident-bridge container image.
#   docker build -t ghcr.io/acme/incident-bridge:0.1.0 .
#   docker run --rm -p 9095:9095 -v "$PWD/bridge.yaml:/etc/incident-bridge/config.yml:ro" \
#     ghcr.io/acme/incident-bridge:0.1.0
# The config must listen on an address reachable from outside the container (listen: 0.0.0.0:9095).
# Kubernetes manifests: deploy/kubernetes (docs/deployment.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the project and its dependencies into a virtual environment -------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY rules ./rules
# The same install as CI (`pip install .`): a wheel with the bundled rules as package data. Every
# dependency ships manylinux wheels, so no compiler is needed (pip compiles the bytecode); pip and
# setuptools are then removed from the environment that ships.
RUN pip install . \
    && pip uninstall --yes pip setuptools

# --- runtime: the virtual environment on a clean slim image, as a non-root user --------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="incident-bridge" \
      org.opencontainers.image.description="Alertmanager webhooks in, prioritised GitHub incident issues out." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/acme/incident-bridge" \
      org.opencontainers.image.documentation="https://github.com/acme/incident-bridge/blob/main/docs/deployment.md"

# A fixed uid/gid (10001), matching runAsUser/runAsGroup/fsGroup in deploy/kubernetes; the state
# directory is the default place for a SQLite store (a volume in production).
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin bridge \
    && mkdir -p /etc/incident-bridge /var/lib/incident-bridge \
    && chown bridge:bridge /var/lib/incident-bridge

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /var/lib/incident-bridge
EXPOSE 9095

# slim has no curl: Python's urllib asks /healthz (200 while the process is alive).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9095/healthz', timeout=3)"]

# SIGTERM: /readyz turns 503, in-flight work drains, exit 0 within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["incident-bridge"]
CMD ["serve", "--config", "/etc/incident-bridge/config.yml"]
