# syntax=docker/dockerfile:1
# tfstack-model-server, and the `tfstack` CLI for training and compression Jobs (same image).
#
#   docker build -t tfstack:0.1.0 .
#   docker run -p 8500:8500 -p 8501:8501 -v $PWD/models:/models:ro tfstack:0.1.0
#
# BASE_IMAGE: any Debian-based image with python3.11 and its venv module on PATH as `python3`
# (scripts/podman/build-base.sh makes one with debootstrap where no registry is reachable).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- requirements: setup.cfg's pinned install_requires, alone in a file ------------------
# The build stage copies just this file, so only a change of the pins (not of test or tool
# settings in setup.cfg, nor of code) reinstalls TensorFlow.
FROM ${BASE_IMAGE} AS requirements
COPY setup.cfg /src/
RUN python3 -c "import configparser; c = configparser.ConfigParser(); c.read('/src/setup.cfg'); \
print(c['options']['install_requires'])" > /src/requirements.txt

# ---- build: a virtualenv with the pinned dependencies, then tfstack itself ----------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/tfstack
WORKDIR /src
COPY --from=requirements /src/requirements.txt ./
# A build behind a TLS-intercepting proxy passes its CA bundle as the secret `pip_ca`
# (`--secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt`); it never reaches a layer.
# TensorFlow's C++ headers (430 MB, for building custom ops) are of no use at run time.
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/tfstack/bin/pip install -r requirements.txt \
 && find /opt/tfstack -path '*/site-packages/tensorflow/include' -prune -exec rm -rf {} +
COPY setup.cfg pyproject.toml README.md ./
COPY tfstack tfstack
COPY models models
COPY export export
COPY serving serving
COPY compression compression
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
 && /opt/tfstack/bin/pip install --no-deps . \
 && /opt/tfstack/bin/pip uninstall --yes pip

# ---- runtime: the base image, the virtualenv, a non-root user; no compilers, no pip ------
FROM ${BASE_IMAGE}
ARG UID=10001
LABEL org.opencontainers.image.title="tfstack" \
      org.opencontainers.image.description="tfstack-model-server (TensorFlow Serving drop-in) and the tfstack CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid ${UID} tfstack \
 && useradd --uid ${UID} --gid ${UID} --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin tfstack \
 && mkdir -p /models /work \
 && chown ${UID}:${UID} /models /work
COPY --from=build /opt/tfstack /opt/tfstack
# HOME=/tmp: with a read-only root filesystem /tmp is the one writable place (an emptyDir).
ENV PATH=/opt/tfstack/bin:${PATH} \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TFSTACK_WORKDIR=/work
USER ${UID}:${UID}
WORKDIR /work
EXPOSE 8500 8501
# The model-independent liveness endpoint; the server handles SIGTERM (drain, exit 0).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/v1/health/live', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tfstack-model-server"]
CMD ["--port=8500", "--rest_api_port=8501", "--model_config_file=/models/models.config"]
