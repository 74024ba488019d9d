# Front door. `make demo` renders the sample batch; `make test` runs every test.
# Both set up the environment on a fresh machine: a pinned uv in .tools/, then `uv sync --frozen`.
SHELL := /bin/bash
PYTHON ?= python3.11
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export FACTORY_HOME ?= $(CURDIR)/.factory
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
CHANNEL ?= demo
BATCH ?= samples/topics_en.csv

.PHONY: setup demo test lint ui bench bench-render clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/factory run $(BATCH) --channel $(CHANNEL)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ui: setup
	$(VENV)/bin/factory ui

bench: setup
	$(VENV)/bin/python -m bench.topic_bench

bench-render: setup
	$(VENV)/bin/python -m bench.render_bench

clean:
	rm -rf $(VENV) $(TOOLS)
