# The two commands of the README:  make demo  ·  make test
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI_VERSION := 2.1.328
CLI := $(CURDIR)/.claude-cli/node_modules/.bin/claude
export CC_EXECUTOR_CLI ?= $(CLI)

.PHONY: install demo test lint bench redis

install: $(VENV)/.installed $(CLI) redis

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The pinned Claude Code CLI, in a project-local prefix (no global install).
$(CLI):
	npm install --prefix .claude-cli --no-audit --no-fund --loglevel=error \
		@anthropic-ai/claude-code@$(CLI_VERSION)
	$(CLI) --version

# redis-server for the Redis history tests (Debian package). They are never skipped.
redis:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server) \
		|| { echo "redis-server is needed by the tests: install it (apt-get install -y redis-server, as root)" >&2; exit 1; }

demo: install
	$(VENV)/bin/cc-execute demo

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

bench: install
	$(PY) bench/bench_overhead.py
	$(PY) bench/bench_contain.py
	$(PY) bench/bench_stream.py 200
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_memory.py 500
	$(PY) bench/bench_import.py
	$(PY) bench/bench_pipeline.py 1000
	$(PY) bench/bench_predict.py
	$(PY) bench/bench_mcp.py
	$(PY) bench/bench_snapshot.py 100000 7
	$(PY) bench/bench_temporal.py 100
