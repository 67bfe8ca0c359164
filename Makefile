# Two commands set everything up on a fresh machine:
#   make run    the daemon against the built-in simulator (config.toml)
#   make test   ruff, mypy --strict engine, and the whole test suite
# Each installs what it needs (uv from PyPI if missing, then the locked environment).

SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
CONFIG ?= config.toml

.PHONY: run test sim bench lint setup catalog

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet

run: setup
	$(UV) run kiwoom-engine -c $(CONFIG) run

sim: setup
	$(UV) run kiwoom-engine -c $(CONFIG) sim

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy --strict engine

test: lint
	$(UV) run pytest -q -p no:cacheprovider

bench: setup
	$(UV) run python -m bench

catalog: setup
	$(UV) run python tools/gen_catalog.py
