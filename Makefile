# The Quickstart commands:
#   make demo   set everything up, start the local QStash emulator, run the example DAGs against it
#   make test   set everything up, lint, type-check, run the whole test suite on the newest Airflow and the
#               version matrix (what CI runs)
#   make unit   the fast tests only (no server, no Airflow process, no browser): the edit-test loop
#   make docs   the Sphinx docs in docs/_build/html (warnings are errors; part of make test)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME ?= $(CURDIR)/.airflow_home

.PHONY: setup demo test lint typecheck docs unit matrix live-airflow live-services chromium sdk-js bench clean

$(STAMP): setup.cfg pyproject.toml emulator/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./emulator
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,docs]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/python scripts/demo.py

# vermin: the shipped code (both distributions) and the example DAGs run on Python 3.10, the declared minimum;
# CI has only 3.11, so this checker is the proof (tests/project/test_python_versions.py runs the same command)
VERMIN_ARGS := --no-tips --violations --eval-annotations -t=3.10- airflow_qstash emulator/qstash_emulator dags_examples

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/vermin $(VERMIN_ARGS)
	PYTHONPATH=$(CURDIR):$(CURDIR)/emulator $(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy airflow_qstash emulator/qstash_emulator

# The docs (docs/): warnings are errors. Offline; the benchmark plots are drawn from docs/_data/*.json.
docs: setup
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

# A real Airflow 3 (UI, scheduler, DAG processor, triggerer) against the local QStash emulator; Ctrl-C stops it.
live-airflow: setup
	$(BIN)/python scripts/live_airflow.py

# Browser tests need Debian's chromium (never a downloaded browser), without its recommended packages.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# The CeleryExecutor test and the fan-out benchmark start their own Redis and PostgreSQL (Debian's packages).
live-services:
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server postgresql; }

# The tests that need no network server, no real Airflow process and no browser (`pytest -m "not slow"`).
unit: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The unit tests and the example-DAG runs on the oldest patch release of every other supported Airflow
# minor, each in its own .venv-af<version> built from constraints/airflow-<version>.txt.
matrix: setup
	$(BIN)/python scripts/matrix.py test

# The official JavaScript SDK (@upstash/qstash, locked in tests/integration/sdk/js/package-lock.json) for the SDK
# conformance test, installed with the machine's node and npm.
sdk-js:
	@command -v npm >/dev/null || { echo "node and npm are needed for tests/integration/sdk (e.g. apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix tests/integration/sdk/js --no-audit --no-fund

test: setup chromium live-services sdk-js lint typecheck docs
	$(BIN)/python -m pytest -q
	$(BIN)/python scripts/matrix.py test

bench: setup
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .venv-af* .airflow_home build dist docs/_build docs/_static/*.png *.egg-info .pytest_cache .mypy_cache .ruff_cache tests/integration/sdk/js/node_modules
