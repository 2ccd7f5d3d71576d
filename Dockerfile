# syntax=docker/dockerfile:1
# One image for all four services; the command picks one: `python -m services.<name>`
# (default: the gateway). Also runs `python -m ops.init_stores` and the container
# probe `python -m shared.healthcheck`.
#
# - Dependencies: the pinned production tree, every file checked against its sha256
#   (`requirements-prod.hashes.lock`, generated from `requirements-prod.lock` by
#   `deploy/compose/lock_hashes.py`), wheels only: nothing is compiled, so neither
#   stage needs build tools, and the final stage gets only the finished venv.
# - No system packages: PyAV's wheel bundles FFmpeg and its codecs (`av.libs/`); what
#   the wheels still link (glibc, libgcc_s, libstdc++, libz) is in every slim image
#   (`lock_hashes.py --audit` checks it).
# - Kino's own code is copied, not pip-installed: building it as a package would fetch
#   an unpinned build backend.
# - Runs as uid 10001 and works on a read-only root filesystem (no bytecode written;
#   temporary files in /tmp, the transcoder's jobs in KINO_WORK_DIR).
# Pin the base by digest for reproducible builds: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:…
ARG PYTHON_IMAGE=python:3.11-slim

# Front-end packages the gateway serves at /static/ (pinned by web/package-lock.json).
FROM node:20-slim AS assets
COPY web/package.json web/package-lock.json /web/
RUN npm ci --prefix /web --omit=dev --no-audit --no-fund --ignore-scripts

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY requirements-prod.hashes.lock /tmp/
# The venv gets no pip of its own: the base image's pip installs into it.
RUN python -m venv --without-pip /opt/kino \
 && python -m pip --python /opt/kino/bin/python install \
      --require-hashes --only-binary=:all: --requirement /tmp/requirements-prod.hashes.lock \
 && python -m pip --python /opt/kino/bin/python check
COPY shared /app/shared
COPY services /app/services
COPY --from=assets /web/node_modules/hls.js/dist/hls.min.js \
     /web/node_modules/swagger-ui-dist/swagger-ui-bundle.js \
     /web/node_modules/swagger-ui-dist/swagger-ui.css /app/services/gateway/static/vendor/
COPY ops /app/ops
# Bytecode checked against the sources' hashes, so it stays valid whatever the copies
# do to modification times.
RUN python -m compileall -q --invalidation-mode checked-hash /app

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PATH=/opt/kino/bin:$PATH \
    KINO_ENV=production \
    KINO_HTTP_HOST=0.0.0.0
# /var/lib/kino/work: the transcoder's job directory; a named volume mounted there
# starts out owned by kino.
RUN groupadd --system --gid 10001 kino \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kino \
 && install -d -o 10001 -g 10001 /var/lib/kino/work
COPY --from=build /opt/kino /opt/kino
COPY --from=build /app /app
USER 10001:10001
WORKDIR /app
EXPOSE 8080 8081 8082 8083
# Asks /ready on this container's own KINO_HTTP_PORT (slim images have no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "shared.healthcheck"]
CMD ["python", "-m", "services.gateway"]
