# Kino — the two commands: `make run` (whole system on embedded defaults) and
# `make test` (set-up plus the whole suite against real servers).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean

# Creates the virtualenv and installs the pinned tree (requirements.lock) plus Kino itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(STAMP)

run: setup
	$(PY) -m devstack

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy shared services ops

test: setup lint
	$(PY) -m pytest

# Media benchmarks: ratios measured side by side in one run (needs Debian's ffmpeg
# for the command-line comparison: apt-get install -y ffmpeg).
bench: setup
	$(PY) -m bench

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
