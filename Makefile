# Kino — the two commands: `make run` (whole system on embedded defaults) and
# `make test` (set-up plus the whole suite against real servers).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup chromium run test lint bench clean

# Creates the virtualenv and installs the pinned tree (requirements.lock) plus Kino itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Front-end packages (web/package-lock.json, pinned) from the npm registry, copied into
# the gateway's static assets: the gateway serves them at /static/, no CDN at run time.
VENDOR := services/gateway/static/vendor
VENDOR_FILES := hls.js/dist/hls.min.js swagger-ui-dist/swagger-ui-bundle.js \
	swagger-ui-dist/swagger-ui.css
$(VENDOR)/.installed: web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(VENDOR)
	cd web/node_modules && cp $(VENDOR_FILES) ../../$(VENDOR)/
	touch $@

setup: $(STAMP) $(VENDOR)/.installed

# Debian's chromium for the browser playback tests (tests/browser/): apt-get installs it
# when /usr/bin/chromium is missing (Debian, root); otherwise nothing happens.
chromium: setup
	$(PY) -m devstack.chromium

run: setup
	$(PY) -m devstack

# The front end's own files (not vendor/) are Prettier-formatted (.prettierrc.json).
FRONT_END := services/gateway/static/app services/gateway/static/docs.js \
	services/gateway/static/docs.html

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared services ops devstack cli
	web/node_modules/.bin/prettier --check $(FRONT_END)

test: setup lint chromium
	$(PY) -m pytest

# Media benchmarks: ratios measured side by side in one run (needs Debian's ffmpeg
# for the command-line comparison: apt-get install -y ffmpeg).
bench: setup
	$(PY) -m bench

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache

# Docker Compose deployment (needs Docker with the compose plugin): the four services,
# MongoDB, RabbitMQ and MinIO from docker-compose.yml, settings and secrets from .env.
COMPOSE_NEEDS_ENV = test -f .env || { echo "no .env: cp .env.example .env (development values; replace them for real use)" >&2; exit 1; }

.PHONY: compose-up compose-down
compose-up:
	@$(COMPOSE_NEEDS_ENV)
	docker compose --env-file .env up -d --build

compose-down:
	@$(COMPOSE_NEEDS_ENV)
	docker compose --env-file .env down
