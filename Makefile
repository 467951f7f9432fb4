# Every target installs what it needs first: `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: install run test test-sqlite test-postgres lint format bench bench-live soak roll clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python scripts/dev_run.py

# The suite on SQLite, then again on PostgreSQL when TEST_DATABASE_URL is set (the first run
# clears it: inherited, it made both runs PostgreSQL and SQLite was never tested in CI).
test: install
	bash scripts/ensure_chromium.sh
	TEST_DATABASE_URL= $(BIN)/pytest
	@if [ -n "$$TEST_DATABASE_URL" ]; then echo "== again on $$TEST_DATABASE_URL"; $(BIN)/pytest; fi

test-postgres: install
	TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.run

# The live pages (#15): 50 simulated monitor pages, idle and at 50 events/s, against the code
# before them in the same run; writes the live section of docs/benchmarks.md.
bench-live: install
	$(BIN)/python -m bench.live

soak: install
	$(BIN)/python -m bench.soak

roll: install
	$(BIN)/python -m bench.rolling_restart

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
