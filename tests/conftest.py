from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
PINNED_CLI = ROOT / ".claude-cli" / "node_modules" / ".bin" / "claude"

# The real-CLI tests find `claude` through the library's own lookup
# ($CC_EXECUTOR_CLI), pointed at the pinned install made by `make install`.
if "CC_EXECUTOR_CLI" not in os.environ and PINNED_CLI.exists():
    os.environ["CC_EXECUTOR_CLI"] = str(PINNED_CLI)
# A test run must never write into the developer's ./transcripts.
os.environ.pop("CC_EXECUTOR_TRANSCRIPT_DIR", None)
os.environ.pop("CLAUDECODE", None)


@pytest.fixture
def claude_cli() -> str:
    """The pinned real CLI. Missing is a failure, never a skip: CI must run these tests."""
    path = os.environ.get("CC_EXECUTOR_CLI")
    if not path or not Path(path).exists():
        pytest.fail(
            "The pinned Claude Code CLI is not installed: run `make install` "
            "(npm install --prefix .claude-cli @anthropic-ai/claude-code@2.1.328)"
        )
    return path


@pytest.fixture
def transcripts(tmp_path: Path) -> Path:
    d = tmp_path / "transcripts"
    return d


@pytest.fixture
def pidfile(tmp_path: Path) -> Path:
    return tmp_path / "pids.txt"


@pytest.fixture
def fake_cli(tmp_path: Path, transcripts: Path, pidfile: Path) -> Callable[..., CCExecutorConfig]:
    """Config factory for runs against tests/fake_cli.py in a given mode."""
    wrapper = tmp_path / "claude"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).parent / "fake_cli.py"}" "$@"\n'
    )
    wrapper.chmod(0o755)

    def make(mode: str, env: dict[str, str] | None = None, **overrides: Any) -> CCExecutorConfig:
        # The fault tests look at one attempt; tests of retries ask for them.
        overrides.setdefault("num_retries", 0)
        return CCExecutorConfig(
            cli_path=wrapper,
            transcript_dir=transcripts,
            cwd=tmp_path,
            env={"FAKE_CLI_MODE": mode, "FAKE_CLI_PIDFILE": str(pidfile), **(env or {})},
            **overrides,
        )

    return make


def read_pids(pidfile: Path) -> list[int]:
    return [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
