# Two commands on a fresh machine (Python 3.11+ and make): `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint typecheck events-doc bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/cordon run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/cordon events-doc --check
	$(BIN)/cordon ledger-doc --check
	$(BIN)/pytest -q -n 2 --dist loadfile

events-doc: $(STAMP)
	$(BIN)/cordon events-doc
	$(BIN)/cordon ledger-doc

bench: $(STAMP)
	$(BIN)/python -m bench.testing_coverage
	$(BIN)/python -m bench.testing_results
	$(BIN)/python -m bench.import_residents
	$(BIN)/python -m bench.bus
	$(BIN)/python -m bench.logistics_requests
	$(BIN)/python -m bench.scoped_statements

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
