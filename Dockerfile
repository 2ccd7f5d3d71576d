# One image for all four services; the command picks one: `python -m services.<name>`.
# First version; the deployment issue hardens it (see README).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements-prod.lock ./
RUN python -m venv /opt/kino && /opt/kino/bin/pip install -r requirements-prod.lock
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
RUN /opt/kino/bin/pip install --no-deps .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/kino/bin:$PATH \
    KINO_ENV=production KINO_HTTP_HOST=0.0.0.0
RUN useradd --system --uid 10001 --no-create-home kino
COPY --from=build /opt/kino /opt/kino
USER 10001
WORKDIR /tmp
CMD ["python", "-m", "services.gateway"]
