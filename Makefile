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
# One API process per core: a request holds the GIL while it builds its answer.
API_WORKERS ?= 2

.PHONY: setup setup-browser demo test lint ui bench bench-render bench-batch clean api bench-api

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

demo: setup
	$(VENV)/bin/factory run $(BATCH) --channel $(CHANNEL)

# The batch report's browser test opens the page in Debian's Chromium; installed once if missing.
setup-browser:
	@command -v chromium >/dev/null || { echo "installing Debian's chromium for the browser test"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null; }

test: setup setup-browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

ui: setup
	$(VENV)/bin/factory ui

# The REST API on http://127.0.0.1:8000 (OpenAPI docs at /docs) beside the Dagster webserver and
# daemon on http://127.0.0.1:3000, through which it launches runs; both use the same instance
# ($DAGSTER_HOME, default $FACTORY_HOME/dagster). `set -m` gives `factory ui` a process group
# of its own (a background job would otherwise ignore Ctrl-C), and the trap ends that group
# (dagster dev, its webserver, daemon and code server) when uvicorn stops on Ctrl-C, killing
# it if SIGTERM is ignored.
api: setup
	@set -m; $(VENV)/bin/factory ui --port 3000 & ui=$$!; set +m; \
	stop() { kill -TERM -- -$$ui 2>/dev/null || return 0; \
	  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- -$$ui 2>/dev/null || return 0; sleep 1; done; \
	  kill -KILL -- -$$ui 2>/dev/null; }; \
	trap stop EXIT; trap 'exit 130' INT TERM; \
	FACTORY_DAGSTER_URL=http://127.0.0.1:3000 $(VENV)/bin/uvicorn factory_api.app:app \
	  --host 127.0.0.1 --port 8000 --workers $(API_WORKERS)

bench: setup
	$(VENV)/bin/python -m bench.topic_bench

bench-render: setup
	$(VENV)/bin/python -m bench.render_bench

# 50 generated topics through the inbox sensor on the production profile (PostgreSQL, S3 server,
# dagster-daemon); BENCH_TOPICS=N for another size.
bench-batch: setup
	$(VENV)/bin/python -m bench.batch_bench

# ~2,000 requests from 8 clients over the API's list and status endpoints, PostgreSQL behind.
bench-api: setup
	$(VENV)/bin/python -m bench.api_bench

clean:
	rm -rf $(VENV) $(TOOLS)
