# One entry point for a newcomer: `make demo` and `make test` do all the set-up they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo down status test test-unit lint format typecheck bench chaos lock clean

$(STAMP): pyproject.toml setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else "Python 3.11+ is required: install it and run make again")'
	@command -v java >/dev/null || { echo "error: java not found: install a Java 17 JDK (Debian: apt-get install openjdk-17-jdk-headless)"; exit 2; }
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Maven 3.8+ (Debian: apt-get install maven)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==26.3"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[local,dev]"
	touch $(STAMP)

setup: $(STAMP)  ## Python venv + pinned packages + JVM jars + the MLflow server's and Superset's venvs (idempotent)
	$(BIN)/lakehouse setup $(SETUP_FLAGS)

demo: setup  ## The whole path on the local stack; leaves the stack up
	$(BIN)/lakehouse demo

down:  ## Stop the local stack
	@test -x $(BIN)/lakehouse && $(BIN)/lakehouse stack down || true

status:
	$(BIN)/lakehouse stack status

# the golden-data suite also runs the cluster environment: its jars and class archive are prepared during set-up
test: SETUP_FLAGS := --environment cluster
test: setup lint  ## Lint, types, then the whole suite (two workers, each starting its own stack on separate ports)
	$(BIN)/pytest -n 2

test-unit: setup
	$(BIN)/pytest tests/unit tests/dags

lint: setup typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layers (top-level folders with an __init__.py, as setup.py finds them) install as lakehouse.<folder>.
LAYERS := $(filter-out tests,$(patsubst %/__init__.py,%,$(wildcard */__init__.py)))
typecheck: setup
	$(BIN)/python -m lakehouse.scripts.typecheck $(LAYERS)

format: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# BENCH_ARGS runs a part or a quick check, e.g. make bench BENCH_ARGS="stream --steps 2000,5000 --step-seconds 40 --lead-in-seconds 0"
bench: setup  ## Benchmarks; results go to docs/benchmarks.md (and docs/benchmarks.json, docs/bench/)
	$(BIN)/python -m lakehouse.scripts.bench $(BENCH_ARGS)

# CHAOS_ARGS runs a smaller or harsher run, e.g. make chaos CHAOS_ARGS="--events 200000 --driver-kills 3"
chaos: setup  ## The chaos run: a million events while the stream's driver and the broker are killed; docs/reliability.md
	$(BIN)/python -m lakehouse.scripts.chaos $(CHAOS_ARGS)

lock:  ## Re-resolve the pins in a clean venv and rewrite constraints.txt
	rm -rf /tmp/lakehouse-lock && $(PYTHON) -m venv /tmp/lakehouse-lock
	/tmp/lakehouse-lock/bin/pip install --quiet ".[local,dev]"
	/tmp/lakehouse-lock/bin/pip freeze --exclude lakehouse > constraints.txt

clean: down
	rm -rf .lakehouse $(VENV)
