# Everything a fresh machine with python3, pip and make needs: `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-quick lint docs clean

# The install compiles the core (mcstore/_bytes.py, model.py, codec.py) with mypyc, falling back to
# pure Python with a warning (see setup.py). The stamp depends on the core's sources, so that
# `make test`, `make demo`, ... rebuild the compiled core after an edit; until it is rebuilt,
# `import mcstore` warns that it is stale and uses pure Python.
CORE_SOURCES := mcstore/_bytes.py mcstore/model.py mcstore/codec.py setup.py

$(STAMP): pyproject.toml $(CORE_SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli,test,bench,dev,docs]'
	$(BIN)/mcstore --version
	touch $(STAMP)

## The main job: simulate a node's payments into an embedded SQLite file (./mcstore-demo.sqlite).
demo: $(STAMP)
	$(BIN)/mcstore demo

## The whole test suite, on the compiled core and then on pure Python (MCSTORE_PURE=1)
## (hypothesis profile "ci"; HYPOTHESIS_PROFILE=thorough for long runs).
test: $(STAMP)
	$(BIN)/mcstore --version
	$(BIN)/python -m pytest
	MCSTORE_PURE=1 $(BIN)/python -m pytest

## The full benchmark run (table, JSON and PNG in benchmarks/results/).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## The benchmark smoke run (< 60 s), as CI runs it.
bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

## The documentation site, from docs/ into docs/_build/html (offline, < 30 s). Strict: any
## warning, such as a reference that resolves to nothing, fails it (-W), as in CI.
docs: $(STAMP)
	$(BIN)/python -m sphinx -b html -E -W --keep-going -q docs docs/_build/html
	@echo "docs/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check mcstore tests benchmarks docs
	$(BIN)/mypy mcstore

clean:
	rm -rf $(VENV) build docs/_build *.egg-info .pytest_cache .hypothesis mcstore/_native__mypyc.*.so mcstore/_native/*.so
