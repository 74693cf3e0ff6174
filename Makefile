# The project's virtual environment when there is one, else python3;
# override with `make test PYTHON=/path/to/python`.
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)

.PHONY: install dev-install test test-postgres coverage lint typecheck docs bench check

install:
	$(PYTHON) -m pip install -e ".[dev]"

# The founding documents' name for the same step.
dev-install: install

# The examples are exercised by the test suite.
test:
	$(PYTHON) -m pytest
	$(MAKE) docs PYTHON=$(PYTHON)

# The tests that need PostgreSQL; they start a throwaway server of their own
# (tests/pg_server.py), so only the server programs must be installed.
test-postgres:
	$(PYTHON) -m pytest -m postgres

coverage:
	$(PYTHON) -m pytest --cov=flowforge --cov-report=term-missing

lint:
	$(PYTHON) -m ruff check flowforge tests examples .ci
	$(PYTHON) -m ruff format --check flowforge tests examples .ci

typecheck:
	$(PYTHON) -m mypy

# docs/Makefile runs from docs/, so a relative interpreter path is made absolute.
docs:
	$(MAKE) -C docs html doctest PYTHON="$(if $(findstring /,$(PYTHON)),$(abspath $(PYTHON)),$(PYTHON))"

bench:
	$(PYTHON) benchmarks/run.py

check: lint typecheck test
