"""cc_executor.testing for users' own suites: the pytest plugin, the Node-free replay
stand-in CLI, and set_testing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, RetryEvent, cc_run, cc_stream
from cc_executor.testing import (
    ScriptedModel,
    http_error,
    is_testing,
    replay_cli,
    set_testing,
    text,
)

# -- the pytest plugin -------------------------------------------------------------------


def test_scripted_model_fixture_from_the_installed_plugin(claude_cli: str, tmp_path: Path) -> None:
    """A user's test file, run by pytest in a subprocess: the fixture comes from the
    pytest11 entry point (no conftest), drives the real CLI, and is stopped after."""
    url_file = tmp_path / "url.txt"
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from cc_executor import cc_run
            from cc_executor.testing import ScriptedModel, text

            async def test_a_pipeline(scripted_model, tmp_path):
                assert isinstance(scripted_model, ScriptedModel)
                Path({str(url_file)!r}).write_text(scripted_model.url)
                scripted_model.add(text("hello from the plugin"))
                result = await cc_run("hi", scripted_model.config(cwd=tmp_path))
                assert result.success, result.error
                assert result.output == "hello from the plugin"
                assert len([r for r in scripted_model.requests if r.is_main]) >= 1
            """
        )
    )
    env = {**os.environ, "CC_EXECUTOR_CLI": claude_cli}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "test_user.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    # Stopped after the test: its port refuses connections.
    host, port = url_file.read_text().removeprefix("http://").rstrip("/").split(":")
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=5):
        pass


# -- replaying a recorded run without Node ------------------------------------------------

_REPLAY = """
import asyncio, json, shutil, sys
from cc_executor import CCExecutorConfig, cc_stream

async def run():
    config = CCExecutorConfig.model_validate_json(sys.argv[1])
    assert shutil.which("node") is None and shutil.which("claude") is None
    names = []
    async with cc_stream("hi", config) as stream:
        async for event in stream:
            names.append(type(event).__name__)
    r = stream.result
    print(json.dumps({"events": names, **{k: getattr(r, k) for k in %s}}, default=str))

asyncio.run(run())
"""

_COMPARED = [
    "output",
    "success",
    "session_id",
    "total_cost_usd",
    "exit_code",
    "error_type",
    "num_turns",
    "usage",
    "subtype",
]


async def _record(config: CCExecutorConfig) -> dict[str, Any]:
    names: list[str] = []
    async with cc_stream("hi", config) as stream:
        async for event in stream:
            names.append(type(event).__name__)
    result = stream.result
    return {
        "events": names,
        "transcript": result.transcript_path,
        **json.loads(json.dumps({k: getattr(result, k) for k in _COMPARED}, default=str)),
    }


@pytest.mark.parametrize(
    "turns",
    [
        pytest.param([text("the recorded answer", chunks=3)], id="success"),
        pytest.param([http_error(400, "prompt is too long", times=None)], id="bad_request"),
    ],
)
async def test_transcript_recorded_on_the_real_cli_replays_without_node(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path, turns: list[Any]
) -> None:
    model.add(*turns)
    recorded = await _record(config.with_overrides(num_retries=0))
    assert recorded["exit_code"] is not None
    stand_in = replay_cli(recorded.pop("transcript"), tmp_path / "bin")
    replay_config = CCExecutorConfig(
        cli_path=stand_in, cwd=tmp_path, transcript_dir=tmp_path / "replayed", num_retries=0
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _REPLAY % repr(_COMPARED), replay_config.model_dump_json()],
        env={
            k: v
            for k, v in os.environ.items()
            if k not in ("CC_EXECUTOR_CLI", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
        }
        | {"PATH": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    replayed = json.loads(done.stdout)
    assert replayed == recorded
    assert model.requests  # the recording did reach the model


def test_replay_cli_refuses_what_is_not_a_finished_transcript(tmp_path: Path) -> None:
    not_transcript = tmp_path / "x.jsonl"
    not_transcript.write_text('{"type": "system", "subtype": "init"}\n')
    with pytest.raises(ValueError, match="not a finished cc_executor transcript"):
        replay_cli(not_transcript, tmp_path)
    with pytest.raises(FileNotFoundError):
        replay_cli(tmp_path / "missing.jsonl", tmp_path)


# -- set_testing ---------------------------------------------------------------------------


async def test_set_testing_removes_retry_waits_and_restores(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    """A 600 s backoff would outlast the test's timeout: in test mode the retry is at once."""
    config = fake_cli("crash_with_session", num_retries=1, retry_backoff=(600, 600, 0))
    events: list[RetryEvent] = []
    assert not is_testing()
    with set_testing(True):
        assert is_testing()
        result = await cc_run("x", config, on_event=lambda e: events.append(e))
    assert not is_testing()
    assert len(result.attempts) == 2  # the retry ran (and crashed again, as scripted)
    (retry,) = [e for e in events if isinstance(e, RetryEvent)]
    assert retry.delay_s >= 600  # what would have been waited is still reported
    assert result.attempts[1].waited_s == 0


async def test_set_testing_attempts_caps_the_retries(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    config = fake_cli("crash_with_session", num_retries=3, retry_backoff=0)
    with set_testing(True, attempts=1):
        result = await cc_run("x", config)
    assert len(result.attempts) == 1 and result.error_type == "ProcessCrashedError"
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        set_testing(True, attempts=0)
