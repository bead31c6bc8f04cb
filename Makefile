# ThoxDash. `make run` and `make test` do all their own setup on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint demo browser tools llama-server clean

setup: $(STAMP)
	@$(PY) scripts/ensure_plotly.py

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

browser:
	@$(PY) scripts/ensure_browser.py

tools:
	@$(PY) scripts/ensure_tools.py

# a real llama.cpp llama-server for tests/test_real_llamacpp*.py, built once per pin into .run/
llama-server:
	@$(PY) scripts/ensure_llama_server.py >/dev/null

run: setup
	@./scripts/run.sh

test: setup browser tools llama-server
	@REDIS_URL="$$($(PY) scripts/ensure_redis.py)" && export REDIS_URL && \
	  $(PY) -m ruff check . && \
	  $(PY) -m mypy && \
	  $(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

demo: setup
	$(PY) scripts/build_demo.py

clean:
	rm -rf .run test-artifacts .pytest_cache
