# One image for every service of docker-compose.yml (init, train, score, models, scheduler).
#
#   docker compose build                      # or: docker build -t house-price-batch .
#
# Build stages make a virtualenv with the locked dependencies (deps) and a wheel of the project
# (wheel); the runtime stage copies only the venv onto a fresh slim base and installs the wheel into
# it, so pip's caches, the source tree and any build leftovers stay out of the image.
# The venv is world-readable and nothing in it needs to be writable: the container runs as any
# uid (compose sets `user: BATCH_UID:BATCH_GID` so files on the mounts belong to the host user).

ARG PYTHON_IMAGE=python:3.11-slim

# ---- deps: a virtualenv with the locked dependencies only (cached until requirements.lock changes) -
FROM ${PYTHON_IMAGE} AS deps

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python3 -m venv /opt/venv

WORKDIR /src

# Exactly the versions CI tested: requirements.lock (made by tools/lock from pyproject.toml: the
# dependencies plus the dask extra, for Linux x86_64 and Python 3.11) pins every package with its
# sha256 hashes. --require-hashes refuses any file whose hash differs and any package not pinned
# there; --no-deps stops pip from resolving anything on its own; --only-binary: nothing is compiled.
# `pip check` fails the build if the lock is not a complete, consistent set.
# Only the lock here: the dependency layer (TensorFlow, ~1.3 GB installed) is rebuilt when the lock
# changes, not on every code edit.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
        -r requirements.lock \
    && /opt/venv/bin/pip check

# ---- wheel: the project itself, built with the locked setuptools (no download, no resolving) ------
FROM deps AS wheel
COPY pyproject.toml README.md ./
COPY batch ./batch
COPY jobs ./jobs
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# ---- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="house-price-batch" \
      org.opencontainers.image.description="Batch scoring of suburb median house prices with a versioned single-neuron Keras model"

# A fixed non-root user for plain `docker run`; compose overrides the uid/gid with BATCH_UID/BATCH_GID.
# /data/* are the mount points; 1777 (like /tmp) so they also work unmounted, or as a fresh named
# volume (Docker copies the mode into it), for whatever uid the container runs as.
RUN groupadd --gid 1000 app \
    && useradd --uid 1000 --gid app --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app \
    && mkdir -p /data/models /data/output /data/input /data/keras /app \
    && chmod 1777 /data/models /data/output /data/keras

# The big dependency layer first, then the project's small one: a code change ships ~100 KB.
COPY --from=deps /opt/venv /opt/venv
COPY --from=wheel /wheels/ /tmp/wheels/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --root-user-action=ignore \
        --disable-pip-version-check /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && /opt/venv/bin/python -P -m jobs.score --help >/dev/null

# HOME=/tmp: an arbitrary uid has no home directory; matplotlib and Keras want a writable one.
# Paths point at the mounts, so the BATCH_* defaults of the image are the container's layout.
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MPLBACKEND=Agg \
    TF_CPP_MIN_LOG_LEVEL=3 \
    TF_ENABLE_ONEDNN_OPTS=0 \
    KERAS_BACKEND=tensorflow \
    KERAS_HOME=/data/keras \
    BATCH_MODELS_DIR=/data/models \
    BATCH_OUTPUT_DIR=/data/output \
    BATCH_INPUT=/data/input

WORKDIR /app
USER 1000:1000

# Compose gives each service its own entrypoint (python -m jobs.train / jobs.score / jobs.schedule);
# plain `docker run IMAGE` scores /data/input with the production model.
CMD ["python", "-m", "jobs.score"]
