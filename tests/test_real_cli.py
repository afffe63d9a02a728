"""Level 3: the pinned real `claude` binary against the scripted Messages API on loopback.

These run in CI and are never skipped: a missing CLI fails them (see conftest).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    AuthenticationError,
    BadRequestError,
    CCExecutorConfig,
    MaxTurnsError,
    PermissionDeniedError,
    TaskTimeoutError,
    cc_execute,
    cc_run,
    cc_stream,
)
from cc_executor._transcript import read_transcript
from cc_executor.events import ResultEvent, StreamEvent
from cc_executor.testing import (
    ScriptedModel,
    big_text,
    hang,
    http_error,
    text,
    tool_use,
)

from .test_process_faults import process_state


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


async def test_write_tool_really_writes_the_file(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "hello.py"
    model.add(
        tool_use("Write", {"file_path": str(target), "content": "print('hello')\n"}),
        text("Created hello.py"),
    )
    result = await cc_run("create hello.py", config)
    assert result.success, result.error
    assert target.read_text() == "print('hello')\n"
    assert result.output == "Created hello.py"
    assert [t.name for t in result.tool_uses] == ["Write"]
    assert result.session_id and result.num_turns == 2
    assert result.total_cost_usd is not None and result.total_cost_usd > 0
    assert model.prompts[0] == "create hello.py"


async def test_bash_tool_call_runs_and_its_output_reaches_the_model(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(_bash("echo bash-ran-$((6*7))"), text("done"))
    result = await cc_run("run it", config, allowed_tools=["Bash"])
    assert result.success, result.error
    tool_result = model.main_requests[1].body["messages"][-1]
    assert "bash-ran-42" in str(tool_result)


async def test_permission_denial_in_default_mode_fails_the_task(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    target = workdir / "hello.py"
    model.add(
        tool_use("Write", {"file_path": str(target), "content": "x"}),
        text("Created hello.py"),  # the model claims success
    )
    with pytest.raises(PermissionDeniedError) as info:
        await cc_execute("create hello.py", config, permission_mode="default")
    assert not target.exists()
    assert info.value.tools == ["Write"]
    assert info.value.result.output == "Created hello.py"
    assert [d.tool_name for d in info.value.result.permission_denials] == ["Write"]


async def test_permission_denial_with_warn_keeps_the_result(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    model.add(tool_use("Write", {"file_path": str(workdir / "a"), "content": "x"}), text("ok"))
    result = await cc_run("x", config, permission_mode="default", on_permission_denied="warn")
    assert result.success
    assert len(result.permission_denials) == 1


async def test_http_400_is_bad_request(model: ScriptedModel, config: CCExecutorConfig) -> None:
    model.add(http_error(400, "scripted bad request", times=None))
    with pytest.raises(BadRequestError) as info:
        await cc_execute("x", config)
    assert info.value.status_code == 400
    assert info.value.result.is_error is True
    assert info.value.result.subtype == "success"  # the CLI's own word, not trusted


async def test_http_401_fails_fast(model: ScriptedModel, config: CCExecutorConfig) -> None:
    model.add(http_error(401, "invalid x-api-key", times=None))
    t0 = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        await cc_execute("x", config)
    elapsed = time.monotonic() - t0
    first_401 = model.main_requests[0].received_at
    assert elapsed < 5, elapsed
    assert info.value.result.ended_at.timestamp() - first_401 < 5
    assert info.value.status_code == 401
    assert info.value.result.stopped_by == "auth_failed"


async def test_529_then_recovery_succeeds_with_the_retry_recorded(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(529, "Overloaded"), text("recovered"))
    result = await cc_run("x", config)
    assert result.success, result.error
    assert result.output == "recovered"
    assert [r.error_status for r in result.api_retries] == [529]


async def test_max_turns(model: ScriptedModel, config: CCExecutorConfig) -> None:
    model.add(_bash("true"), text("never reached"))
    with pytest.raises(MaxTurnsError) as info:
        await cc_execute("x", config, max_turns=1, allowed_tools=["Bash"])
    assert info.value.result.subtype == "error_max_turns"


async def test_a_3_mb_answer(model: ScriptedModel, config: CCExecutorConfig) -> None:
    turn = big_text(3)
    model.add(turn)
    answer = await cc_execute("x", config)
    assert answer == turn.text
    assert len(answer) >= 3_000_000


async def test_200_kb_prompt_starting_with_dash_arrives_verbatim(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    line = "-- 'single' \"double\" `tick` $HOME \\n ünïcödé 日本語 🎉\n"
    prompt = "-" + line * (200_000 // len(line))
    assert len(prompt.encode()) > 200_000
    model.add(text("ok"))
    assert await cc_execute(prompt, config) == "ok"
    assert model.prompts[0] == prompt


async def test_timeout_while_bash_tool_runs_ends_the_tool_process(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    pidfile = workdir / "tool.pid"
    script = "import os,time; open('tool.pid','w').write(str(os.getpid())); time.sleep(300)"
    model.add(_bash(f'python3 -c "{script}"'), text("never"))
    task = asyncio.create_task(cc_run("x", config, allowed_tools=["Bash"], timeout=4))
    result = await task
    assert isinstance(result.error, TaskTimeoutError)
    pid = int(pidfile.read_text())
    assert process_state(pid) == "gone"


async def test_background_process_of_a_bash_command_does_not_outlive_the_task(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    script = "import os,time; open('bg.pid','w').write(str(os.getpid())); time.sleep(300)"
    wait = "for i in $(seq 100); do [ -s bg.pid ] && break; sleep 0.05; done"
    model.add(_bash(f'nohup python3 -c "{script}" >/dev/null 2>&1 & {wait}'), text("started"))
    result = await cc_run("x", config, allowed_tools=["Bash"])
    assert result.success, result.error
    pid = int((workdir / "bg.pid").read_text())
    assert process_state(pid) == "gone"


async def test_stream_yields_live_typed_events_then_the_result(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(text("one two three four", chunks=4, delay=0.2))
    arrivals: list[tuple[float, str]] = []
    async with cc_stream("x", config) as stream:
        async for event in stream:
            if isinstance(event, StreamEvent) and event.text_delta:
                arrivals.append((time.monotonic(), event.text_delta))
            assert isinstance(event, ResultEvent) or stream._execution.result is None
    assert "".join(t for _, t in arrivals) == "one two three four"
    # Live: the deltas arrived spread out, not all at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.4
    assert stream.result.success and stream.result.output == "one two three four"


async def test_idle_timeout_when_the_model_hangs(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(hang())
    result = await cc_run("x", config, idle_timeout=2, kill_grace=2, num_retries=0)
    assert result.stopped_by == "idle_timeout"
    assert type(result.error).__name__ == "IdleTimeoutError"


async def test_stream_output_prints_a_live_view(
    model: ScriptedModel, config: CCExecutorConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    model.add(_bash("echo hi"), text("all done"))
    await cc_execute("x", config, stream=True, allowed_tools=["Bash"])
    err = capsys.readouterr().err
    assert "⏺ Bash" in err and "all done" in err and "$" in err


async def test_api_key_never_reaches_the_transcript(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(_bash("echo key=$ANTHROPIC_API_KEY"), text("printed"))
    result = await cc_run("x", config, allowed_tools=["Bash"])
    assert result.success, result.error
    # The key did travel through the stream (the tool printed it)...
    assert model.api_key in str(model.main_requests[1].body)
    # ...and was masked on its way to disk.
    assert result.transcript_path is not None
    data = result.transcript_path.read_bytes()
    assert model.api_key.encode() not in data
    assert b"key=[REDACTED]" in data
    header, lines, footer = read_transcript(result.transcript_path)
    assert header is not None and header["task"] == "x"
    assert footer is not None and footer["status"] == "success"


async def test_keep_background_processes_lets_a_server_outlive_its_step(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    script = "import os,time; open('bg.pid','w').write(str(os.getpid())); time.sleep(300)"
    wait = "for i in $(seq 100); do [ -s bg.pid ] && break; sleep 0.05; done"
    model.add(_bash(f'nohup python3 -c "{script}" >/dev/null 2>&1 & {wait}'), text("started"))
    result = await cc_run("x", config, allowed_tools=["Bash"], keep_background_processes=True)
    assert result.success, result.error
    pid = int((workdir / "bg.pid").read_text())
    try:
        assert process_state(pid) != "gone"
    finally:
        os.kill(pid, signal.SIGKILL)
