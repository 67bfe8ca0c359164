# Two commands set everything up on a fresh machine:
#   make run    the daemon against the built-in simulator (config.toml)
#   make test   ruff, mypy --strict engine, the package boundaries (lint-imports, contracts in
#               pyproject.toml), and the whole test suite
# Each installs what it needs: uv from PyPI with pip if missing (into $(TOOLS), outside the tree:
# Debian's python3 refuses system-wide installs, PEP 668), then the locked environment.
# python3 >= 3.11 with pip must be there; uv never downloads a Python build
# (UV_PYTHON_DOWNLOADS=never) and never re-locks (UV_FROZEN).

SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
export UV_FROZEN := 1
TOOLS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kiwoom-engine/tools
# Recursive (=): expanded when a recipe runs, i.e. after `uv-bootstrap` may have installed it.
UV = $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/bin/uv)
CONFIG ?= config.toml

.PHONY: run test sim bench soak soak-test lint setup catalog uv-bootstrap mosquitto browser prometheus chaos

uv-bootstrap:
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "kiwoom-engine needs python3 >= 3.11 on PATH" >&2; exit 1; }
	@command -v uv >/dev/null 2>&1 || test -x "$(TOOLS)/bin/uv" || { \
		echo "installing uv from PyPI into $(TOOLS)"; \
		mkdir -p "$(TOOLS)" && \
		python3 -m pip --version >/dev/null 2>&1 \
			|| { echo "python3 has no pip: install python3-pip (Debian) or uv, then retry" >&2; exit 1; }; \
		python3 -m pip install --quiet --disable-pip-version-check --target "$(TOOLS)" uv \
			&& test -x "$(TOOLS)/bin/uv"; }

setup: uv-bootstrap
	@$(UV) sync --frozen --quiet

# The MQTT mirror's tests and benchmark start their own Mosquitto (Debian package `mosquitto`;
# the binary lives in /usr/sbin, which a non-root PATH may lack).
mosquitto:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing mosquitto (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 mosquitto >/dev/null \
				|| { apt-get update -q >/dev/null && \
					DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 mosquitto >/dev/null; }; \
		else \
			echo "the tests need mosquitto: install the Debian package 'mosquitto' (as root: apt-get install mosquitto)" >&2; \
			exit 1; \
		fi; }

# The status page's browser test drives a headless Chromium through chromedriver (Debian packages
# `chromium` and `chromium-driver`; a browser download at test time cannot work here) and checks
# that Korean names render with a CJK font (`fonts-nanum`, the smallest Debian CJK font).
BROWSER_PACKAGES := chromium chromium-driver fonts-nanum
browser:
	@{ test -x /usr/bin/chromium && test -x /usr/bin/chromedriver \
		&& fc-list 2>/dev/null | grep -qi -e nanum -e 'cjk'; } || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing $(BROWSER_PACKAGES) (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 $(BROWSER_PACKAGES) >/dev/null \
				|| { apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null && \
					DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 $(BROWSER_PACKAGES) >/dev/null; }; \
		else \
			echo "the status page's browser test needs Chromium and a CJK font: install the Debian packages '$(BROWSER_PACKAGES)' (as root: apt-get install $(BROWSER_PACKAGES))" >&2; \
			exit 1; \
		fi; }

# The dashboard and alert rules' test (tests/ops/test_prometheus.py) starts a real Prometheus
# and runs promtool (Debian package `prometheus`, which brings both).
prometheus:
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing prometheus (apt-get)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 prometheus >/dev/null \
				|| { apt-get update -q >/dev/null && \
					DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 prometheus >/dev/null; }; \
		else \
			echo "the tests need prometheus and promtool: install the Debian package 'prometheus' (as root: apt-get install prometheus)" >&2; \
			exit 1; \
		fi; }

run: setup
	$(UV) run kiwoom-engine -c $(CONFIG) run

sim: setup
	$(UV) run kiwoom-engine -c $(CONFIG) sim

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy --strict engine
	$(UV) run lint-imports

# One pytest worker per CPU (pytest-xdist): most tests wait on sockets and subprocesses, so two
# workers on two cores halve the wall time. Every test binds free ports and its own tmp dir, so
# workers never share a server. `.venv/bin/pytest tests/...` alone runs in one process.
test: lint mosquitto browser prometheus
	$(UV) run pytest -q -p no:cacheprovider -n auto

# Benchmarks need the bench-only group (the peer client kiwoom-client); the soak plots with the
# plot group (matplotlib). MINUTES=2 gives the short soak.
bench: setup mosquitto
	$(UV) run --group bench python -m bench

# The suite's 2-minute soak test (left out of `make test`, which runs its 20 s version).
soak-test: setup mosquitto
	$(UV) run pytest -q -p no:cacheprovider -m soak tests/soak

MINUTES ?= 10
soak: setup mosquitto
	$(UV) run --group plot python -m bench.soak --minutes $(MINUTES)

catalog: setup
	$(UV) run python tools/gen_catalog.py

# Fault injection against the real daemon, simulator and Mosquitto processes (chaos/): every
# scenario, then the invariant table; fails when one breaks. CHAOS_ARGS="ws_drops --duration 10"
chaos: setup mosquitto
	$(UV) run python -m chaos $(CHAOS_ARGS)
