from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig
from cc_executor._command import PINNED_CLI_VERSION
from cc_executor.testing import ScriptedModel

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `real_cli` every test that runs the real CLI: `make test-latest` runs just
    those, against the newest CLI."""
    for item in items:
        if "claude_cli" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_cli)


@pytest.fixture
def records_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test's $CC_EXECUTOR_HOME: the per-user records (default transcripts, state.db)."""
    return tmp_path_factory.mktemp("cc_executor_home")


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, records_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory with its own records home: nothing lands in
    the developer's tree or in their real per-user state directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(records_home))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on loopback for the session; yields its base URL.

    Missing is a failure, never a skip: CI must run the Redis tests.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(
            "redis-server is not installed: `make redis` "
            "(apt-get install -y redis-server) installs it"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {port} (exit {proc.poll()})")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


_redis_db = itertools.cycle(range(16))


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """A Redis database of its own for this test (flushed), on the session's server."""
    import redis

    url = f"{redis_server}/{next(_redis_db)}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def claude_cli() -> str:
    """The pinned real CLI. Missing is a failure, never a skip: CI must run these tests."""
    path = os.environ.get("CC_EXECUTOR_CLI")
    if not path or not Path(path).exists():
        pytest.fail(
            "The pinned Claude Code CLI is not installed: run `make install` "
            f"(npm install --prefix .claude-cli @anthropic-ai/claude-code@{PINNED_CLI_VERSION})"
        )
    return path


@pytest.fixture(scope="session")
def cli_version() -> str:
    """The version of the CLI under test (`claude --version` of $CC_EXECUTOR_CLI), e.g.
    "2.1.328": tests compare against it, never against a fixed number."""
    path = os.environ.get("CC_EXECUTOR_CLI")
    if not path or not Path(path).exists():
        pytest.fail("no CLI under test: $CC_EXECUTOR_CLI is unset or missing (make install)")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    match = re.match(r"\s*(\d+(?:\.\d+)+)", out.stdout)
    assert match, f"`{path} --version` printed {out.stdout!r} {out.stderr!r}"
    return match.group(1)


@pytest.fixture
def model(claude_cli: str) -> Iterator[ScriptedModel]:
    with ScriptedModel() as m:
        yield m


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
def config(model: ScriptedModel, workdir: Path, transcripts: Path) -> CCExecutorConfig:
    return model.config(cwd=workdir, transcript_dir=transcripts)


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


def sigint_as_ctrl_c() -> None:
    """preexec_fn: give the child Python's usual Ctrl-C handling even when this test run
    was started in the background, where the shell sets SIGINT to ignored (inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def read_pids(pidfile: Path) -> list[int]:
    return [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []
