# ThoxDash. `make run` and `make test` do all their own setup on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Hashed, universal (Python 3.10 and up) locks from PyPI, refreshed by `make lock`: requirements.lock
# (`.[server,postgres]`: what install.sh and the Dockerfiles install) and requirements-dev.lock (the
# same pins plus `.[dev]`: what `make setup` installs).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock

.PHONY: setup run test test-py310 lint lock demo browser tools llama-server clean

setup: $(STAMP)
	@$(PY) scripts/ensure_plotly.py

$(STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install -q --no-deps -e '.[server,dev]'
	@touch $(STAMP)

# Re-resolve the locks from pyproject.toml (newest releases within its ranges), with hashes; the dev
# lock is constrained by the production one, so both pin the same versions of what they share.
UV_COMPILE := $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.10 --generate-hashes \
  --index-url https://pypi.org/simple -q
lock: setup
	$(UV_COMPILE) --extra server --extra postgres -o $(LOCK)
	$(UV_COMPILE) --extra server --extra dev --extra postgres -c $(LOCK) -o $(DEV_LOCK)
	@echo "$(LOCK) and $(DEV_LOCK) refreshed: review the diff, then make setup"

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
	  $(PY) -m pytest -q && \
	  $(PY) scripts/test_py310.py

# The agent's suite on Python 3.10 (JetPack 6) from a plain `pip install .` in .run/py310.
test-py310: setup
	@REDIS_URL="$$($(PY) scripts/ensure_redis.py)" && export REDIS_URL && $(PY) scripts/test_py310.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

demo: setup
	$(PY) scripts/build_demo.py

clean:
	rm -rf .run test-artifacts .pytest_cache
