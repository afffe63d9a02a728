"""`stream_output` is a subscriber: the API layer installs the live view on the run's
hooks; the core (the run, its retries, the list runner) never writes to stdout/stderr."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, StepEvent, TaskResult, cc_execute_list, cc_run
from cc_executor._retry import RetryingRun
from cc_executor.testing import ScriptedModel, text, tool_use

Factory = Callable[..., CCExecutorConfig]


async def test_the_core_never_writes_to_stdout_or_stderr(
    model: ScriptedModel,
    config: CCExecutorConfig,
    fake_cli: Factory,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The real CLI (whose tool writes to both streams), a task list with a journal, a
    retried crash: with stream_output=False nothing reaches fd 1 or fd 2."""
    bash = tool_use("Bash", {"command": "echo out; echo err >&2", "description": "run"})
    model.add(bash, text("done"), text("step a"), text("step b"))
    result = await cc_run("x", config, allowed_tools=["Bash"])
    assert result.success, result.error
    listed = await cc_execute_list(["a", "b"], config, state_dir=tmp_path / "state")
    assert listed.success, listed.error
    crashed = await cc_run("y", fake_cli("crash_mid_stream", num_retries=1, retry_backoff=0))
    assert not crashed.success and len(crashed.attempts) == 2
    assert capfd.readouterr() == ("", "")


async def test_the_run_itself_shows_nothing_even_with_stream_output(
    fake_cli: Factory, capfd: pytest.CaptureFixture[str]
) -> None:
    """The view is not a step of the run: the core, used without the API layer, is silent."""
    run = RetryingRun(
        "x", fake_cli("crash_mid_stream", num_retries=1, retry_backoff=0, stream_output=True)
    )
    batches = run.batches()
    async for _ in batches:
        pass
    assert run.result is not None and len(run.result.attempts) == 2
    assert capfd.readouterr() == ("", "")


async def test_stream_output_subscribes_beside_the_callers_hooks(
    fake_cli: Factory, capfd: pytest.CaptureFixture[str]
) -> None:
    events: list[Any] = []
    failed: list[TaskResult] = []
    config = fake_cli("crash_mid_stream", num_retries=1, retry_backoff=0)
    result = await cc_run(
        "x", config, stream_output=True, on_event=events.append, failure_callback=[failed.append]
    )
    out, err = capfd.readouterr()
    assert out == ""
    # The failed attempt that was retried: its error with its message, when it happened.
    message = result.attempts[0].error_message or ""
    assert "● session" in err and f"↻ attempt 1 failed: ProcessCrashedError: {message[:40]}" in err
    # One closing line for the task, after retries too.
    ends = [line for line in err.splitlines() if " turn(s) · " in line]
    assert ends == [err.rstrip("\n").splitlines()[-1]], err
    assert ends[0].startswith("✗ ProcessCrashedError: ") and " · 2 attempts · " in ends[0]
    assert ends[0].endswith(f"transcript {result.transcript_path}")
    # The caller's hooks still get everything, once.
    assert failed == [result]
    assert sum(type(e).__name__ == "RetryEvent" for e in events) == 1


async def test_a_list_shows_its_steps_as_a_subscriber_of_on_step(
    fake_cli: Factory, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[StepEvent] = []
    config = fake_cli("ok", state_dir=tmp_path / "state")
    out = await cc_execute_list(["a", "b"], config, on_step=seen.append, stream_output=True)
    assert out.success
    stdout, err = capfd.readouterr()
    assert stdout == ""
    assert err.count(f"● task list {out.run_id} · 2 step(s) · journal {tmp_path / 'state'}") == 1
    assert "━━ step 1/2 · a" in err and "━━ step 2/2 · b" in err  # counted from 1
    assert sum(line.startswith("✓ ") and " turn(s) · " in line for line in err.splitlines()) == 2
    assert [(e.index, e.status) for e in seen] == [
        (0, "started"),
        (0, "success"),
        (1, "started"),
        (1, "success"),
    ]
