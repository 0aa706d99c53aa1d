# The two commands of the Quick start: `make demo` and `make test`.
# Each creates .venv on first use; nothing else needs to be installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Calliope needs Python 3.11 or newer; set PYTHON=python3.x"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.runtime

# `make demo DSN=postgresql://user@host/db` runs it on PostgreSQL instead.
demo: $(VENV)/.runtime
	$(if $(DSN),$(BIN)/python -m pip install --quiet -e '.[postgres]')
	CALLIOPE_DEMO_DSN='$(DSN)' $(BIN)/python -m examples.demo

lint: $(VENV)/.dev
	$(BIN)/ruff check calliope tests benchmarks examples
	$(BIN)/ruff format --check calliope tests benchmarks examples

typecheck: $(VENV)/.dev
	$(BIN)/mypy --strict calliope tests benchmarks

unit: $(VENV)/.dev
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks.core
	$(BIN)/python -m benchmarks.journal
	$(BIN)/python -m benchmarks.replication
	$(BIN)/python -m benchmarks.replicator
	$(BIN)/python -m benchmarks.crdt
	$(BIN)/python -m benchmarks.responsiveness
	$(BIN)/python -m benchmarks.snapshots
	$(BIN)/python -m benchmarks.feed
	$(BIN)/python -m benchmarks.postgres
	$(BIN)/python -m benchmarks.versus

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
