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

# `make demo` is `calliope demo`; `make demo DSN=postgresql://user@host/db`
# runs it on PostgreSQL instead (in a fresh schema, dropped at the end).
demo: $(VENV)/.runtime
	$(if $(DSN),$(BIN)/python -m pip install --quiet -e '.[postgres]')
	$(BIN)/calliope demo $(DSN)

lint: $(VENV)/.dev
	$(BIN)/ruff check calliope tests benchmarks examples
	$(BIN)/ruff format --check calliope tests benchmarks examples

typecheck: $(VENV)/.dev
	$(BIN)/mypy --strict calliope tests benchmarks

unit: $(VENV)/.dev
	$(BIN)/python -m pytest

test: lint typecheck unit

# `calliope bench`: every module of benchmarks/, one table; `make bench DSN=...`
# measures PostgreSQL too (default: $$CALLIOPE_POSTGRES_DSN).
bench: $(VENV)/.dev
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/calliope bench $(if $(DSN),--dsn '$(DSN)')

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
