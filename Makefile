# Two commands for a fresh machine (each creates the virtual environment when missing):
#   make demo   - the whole pipeline (prune, recover, export, report) on the embedded default
#   make test   - the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/compress demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

clean:
	rm -rf .demo build *.egg-info .pytest_cache
