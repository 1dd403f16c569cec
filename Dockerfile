# syntax=docker/dockerfile:1
#
# tuneforge: one image for every role of a deployment (the API, the trial scheduler, a Ray head,
# Ray workers, optuna-dashboard, the database migrations); docker-compose.yml picks the role
# with each service's `command`.
#
#   docker build -t tuneforge:cpu .                          # CPU torch (the default)
#   docker build -t tuneforge:cuda --build-arg DEVICE=cuda .  # CUDA torch on an NVIDIA CUDA base
#
# DEVICE picks the base stage below (`base-cpu` or `base-cuda`); with BuildKit the other base
# is never built. Both bases run the same CPython 3.11 build (the official python image's), at
# the same path; the builder and the runtime stage both start from the chosen base, so the
# virtual environment made in the builder runs unchanged in the runtime.

ARG DEVICE=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# torch 2.13.0's default wheel is built for CUDA 13.0 and brings its own CUDA libraries; the
# CUDA base adds the NVIDIA container settings and needs a driver that supports CUDA 13 (>= 580).
# Ubuntu 24.04 because its glibc (2.39) runs the Debian bookworm CPython copied in below.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-runtime-ubuntu24.04

FROM ${PYTHON_IMAGE} AS python

# ---- CPU base: the official slim Python image; torch from PyTorch's CPU index ----------------
FROM ${PYTHON_IMAGE} AS base-cpu
ENV TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# ---- CUDA base: NVIDIA's CUDA runtime image with the same CPython copied in -------------------
# (Ubuntu's own python3.11 package for 22.04 is a release candidate that torch cannot import,
# and 24.04 has none.) The libraries are the ones CPython's extension modules link against.
FROM ${CUDA_IMAGE} AS base-cuda
ENV TORCH_INDEX_URL=
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates netbase tzdata tini \
      libbz2-1.0 libexpat1 libffi8 libgdbm6t64 liblzma5 libncursesw6 libreadline8t64 \
      libsqlite3-0 libssl3t64 libuuid1 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=python /usr/local/bin/ /usr/local/bin/
COPY --from=python /usr/local/lib/ /usr/local/lib/
COPY --from=python /usr/local/include/ /usr/local/include/
ENV LANG=C.UTF-8
RUN ldconfig \
 && python3 -c "import bz2, ctypes, lzma, sqlite3, ssl, uuid, zlib; print('python ok')"

# ---- the base DEVICE selected ----------------------------------------------------------------
FROM base-${DEVICE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ---- builder: a virtual environment with torch, then the project ------------------------------
FROM base AS builder
ARG TORCH_VERSION=2.13.0
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the index the device needs (CPU: PyTorch's CPU index; CUDA: the default
# index, whose torch wheel is the CUDA build); the project's range accepts it, so the install
# below keeps it.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==${TORCH_VERSION}"
WORKDIR /src
# Dependencies in a layer of their own (with empty packages), so a code change does not
# reinstall them; then the project itself.
COPY pyproject.toml constraints.txt README.md ./
RUN --mount=type=cache,target=/root/.cache/pip \
    mkdir -p service search models \
 && touch service/__init__.py search/__init__.py models/__init__.py \
 && pip install -c constraints.txt .
COPY service ./service
COPY search ./search
COPY models ./models
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps --force-reinstall -c constraints.txt . \
 && tuneforge --help > /dev/null

# ---- runtime: the base, the virtual environment, a non-root user -----------------------------
FROM base AS runtime
# uid 1000 is `ubuntu` in NVIDIA's Ubuntu 24.04 images: free it for tuneforge.
RUN if getent passwd 1000 > /dev/null; then userdel --remove "$(getent passwd 1000 | cut -d: -f1)"; fi \
 && if getent group 1000 > /dev/null; then groupdel "$(getent group 1000 | cut -d: -f1)"; fi \
 && groupadd --gid 1000 tuneforge \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/sh tuneforge \
 && mkdir -p /data/pbt /ray-secret \
 && chown -R tuneforge:tuneforge /data /ray-secret \
 && chmod 0700 /data /data/pbt /ray-secret
COPY --from=builder /opt/venv /opt/venv
# TUNEFORGE_HOST: inside a container the API listens on every interface; docker-compose.yml
# decides what the host publishes (loopback by default). Named volumes mounted at /data,
# /data/pbt (Ray Tune's experiments, shared with the Ray workers) and /ray-secret (the Ray
# token) start out owned by tuneforge and private to it, as those folders are here.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    TUNEFORGE_DATA_DIR=/data \
    TUNEFORGE_HOST=0.0.0.0 \
    RAY_USAGE_STATS_ENABLED=0
WORKDIR /home/tuneforge
USER 1000:1000
# 8000: the API; 8080: optuna-dashboard; 8265: the Ray dashboard (Ray head).
EXPOSE 8000 8080 8265
# The API's health (the default role). docker-compose.yml gives every other role its own check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TUNEFORGE_PORT', '8000'), timeout=4)"]
# tini reaps the processes Ray leaves behind and passes signals on (docker stop: SIGTERM).
ENTRYPOINT ["tini", "--"]
CMD ["tuneforge", "serve"]
