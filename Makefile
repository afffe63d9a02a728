# The two commands of the README:  make demo  ·  make test
# `make demo` needs Python >= 3.10 and npm, nothing else; `make test` adds the
# test extras, redis-server and chromium (installed with apt-get when missing, as root).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The pinned CLI version is written once, in the package (cc_executor/_command.py).
CLI_VERSION := $(shell sed -n 's/^PINNED_CLI_VERSION = "\(.*\)"$$/\1/p' cc_executor/_command.py)
CLI := $(CURDIR)/.claude-cli/node_modules/.bin/claude
LATEST_CLI := $(CURDIR)/.claude-cli-latest/node_modules/.bin/claude

.PHONY: install install-test demo test test-latest lint docs bench redis chromium

# The package and the pinned CLI, linked into the venv: `.venv/bin/cc-execute`,
# `.venv/bin/python examples/…` and the library find it there without any variable.
install: $(VENV)/.installed $(VENV)/bin/claude

install-test: install $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "cc_executor needs Python >= 3.10: make PYTHON=python3.1x")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The pinned Claude Code CLI, in a project-local prefix (no global install).
$(CLI):
	npm install --prefix .claude-cli --no-audit --no-fund --loglevel=error \
		@anthropic-ai/claude-code@$(CLI_VERSION)
	$(CLI) --version

$(VENV)/bin/claude: | $(CLI) $(VENV)/.installed
	ln -sfn ../../.claude-cli/node_modules/.bin/claude $@

demo: install
	$(VENV)/bin/cc-execute demo

# The Redis history tests need redis-server (they are never skipped; each test
# session starts its own on loopback).
redis:
	@if command -v redis-server >/dev/null; then \
		echo "redis-server (test dependency): $$(command -v redis-server)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "redis-server (test dependency) is missing: installing it with apt-get"; \
		apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	else \
		echo "redis-server is needed by the tests: install it (Debian: apt-get install -y redis-server, as root)" >&2; \
		exit 1; \
	fi

# The dashboard's browser tests (tests/test_ui_browser.py) drive the system's Chromium
# through Playwright (never `playwright install`: it downloads a browser of its own).
chromium:
	@if command -v chromium >/dev/null; then \
		echo "chromium (test dependency): $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "chromium (test dependency) is missing: installing it with apt-get"; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is needed by the tests: install it (Debian: apt-get install -y chromium, as root)" >&2; \
		exit 1; \
	fi

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The documentation site (mkdocs.yml, docs/): offline, warnings are errors. Into site/.
docs: install-test
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

test: lint docs redis chromium
	$(PY) -m pytest

# The real-CLI tests against the newest CLI on npm, in a prefix of its own. Not part of
# `make test` or CI: an upstream release must not block a change. When it passes, add the
# version to TESTED_CLI_VERSIONS (cc_executor/_command.py).
test-latest: install-test
	npm install --prefix .claude-cli-latest --no-audit --no-fund --loglevel=error \
		@anthropic-ai/claude-code@latest
	@echo "CLI under test: $$($(LATEST_CLI) --version)"
	CC_EXECUTOR_CLI=$(LATEST_CLI) $(PY) -m pytest -m real_cli

bench: install-test
	$(PY) bench/bench_overhead.py
	$(PY) bench/bench_contain.py
	$(PY) bench/bench_stream.py 200
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_memory.py 500
	$(PY) bench/bench_memory.py --line 100
	$(PY) bench/bench_import.py
	$(PY) bench/bench_pipeline.py 1000
	$(PY) bench/bench_predict.py
	$(PY) bench/bench_mcp.py
	$(PY) bench/bench_snapshot.py 100000 7
	$(PY) bench/bench_temporal.py 100
	$(PY) bench/bench_ui.py 1000
