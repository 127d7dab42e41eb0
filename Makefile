# Everything a fresh machine with python3, pip and make needs: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-quick lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,bench,dev]'
	touch $(STAMP)

## The main job: simulate a node's payments into an embedded SQLite file (./mcstore-demo.sqlite).
demo: $(STAMP)
	$(BIN)/mcstore demo

## The whole test suite (hypothesis profile "ci"; HYPOTHESIS_PROFILE=thorough for long runs).
test: $(STAMP)
	$(BIN)/python -m pytest

## The full benchmark run (table, JSON and PNG in benchmarks/results/).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## The benchmark smoke run (< 60 s), as CI runs it.
bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

lint: $(STAMP)
	$(BIN)/ruff check mcstore tests benchmarks
	$(BIN)/mypy mcstore

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
