PYTHON ?= python

.PHONY: install test lint typecheck docs bench check

install:
	$(PYTHON) -m pip install -e ".[dev]"

# The examples are exercised by the test suite.
test:
	$(PYTHON) -m pytest
	$(MAKE) docs PYTHON=$(PYTHON)

lint:
	$(PYTHON) -m ruff check flowforge tests examples
	$(PYTHON) -m ruff format --check flowforge tests examples

typecheck:
	$(PYTHON) -m mypy

docs:
	$(PYTHON) -m sphinx -W --keep-going -b html docs docs/_build/html
	$(PYTHON) -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

bench:
	$(PYTHON) benchmarks/run.py

check: lint typecheck test
