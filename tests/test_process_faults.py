"""Level 2: the process layer against a fake CLI that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor import (
    AuthenticationError,
    CCExecutorConfig,
    IdleTimeoutError,
    ProcessCrashedError,
    TaskTimeoutError,
    UnknownEvent,
    cc_execute,
    cc_run,
    cc_stream,
)
from cc_executor._transcript import read_transcript
from cc_executor.events import InitEvent

from .conftest import read_pids, sigint_as_ctrl_c

Factory = Callable[..., CCExecutorConfig]


def process_state(pid: int) -> str:
    """'gone' if the pid does not exist or is a zombie, else its /proc state letter."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return "gone"
    state = data[data.rfind(b")") + 2 :].split()[0].decode()
    return "gone" if state in ("Z", "X") else state


def assert_all_gone(pids: list[int]) -> None:
    assert pids, "the fake CLI recorded no pids"
    alive = {pid: process_state(pid) for pid in pids if process_state(pid) != "gone"}
    assert not alive, f"processes left alive: {alive}"


async def test_success_returns_output_and_writes_transcript(fake_cli: Factory) -> None:
    result = await cc_run("-starts with a dash\n'quotes' \"double\" ünïcödé", fake_cli("ok"))
    assert result.success, result.error
    assert result.output == "echo:-starts with a dash\n'quotes' \"double\" ünïcödé"
    assert str(result) == result.output
    assert result.session_id == "fake-session-1"
    assert result.exit_code == 0
    assert result.transcript_path is not None
    header, lines, footer = read_transcript(result.transcript_path)
    assert header is not None and footer is not None
    assert header["execution_uuid"] == result.execution_uuid
    assert footer["status"] == "success"
    assert json.loads(lines[-1])["type"] == "result"
    assert stat.S_IMODE(result.transcript_path.stat().st_mode) == 0o600
    assert result.execution_uuid in result.transcript_path.name
    assert "dash" not in result.transcript_path.name


async def test_environment_drops_nested_marker_and_merges_env(
    fake_cli: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDECODE", "1")
    result = await cc_run("x", fake_cli("echo_env", env={"FAKE_EXTRA": "yes"}))
    seen = json.loads(result.output)
    assert seen["CLAUDECODE"] is None
    assert seen["EXTRA"] == "yes"
    assert seen["argv"][:5] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    assert seen["prompt"] == "x"


async def test_secret_env_values_never_reach_the_transcript(fake_cli: Factory) -> None:
    secret = "sk-very-secret-value-1234567890"
    result = await cc_run("x", fake_cli("echo_env", env={"FAKE_API_KEY": secret}))
    # The process saw the real value...
    assert json.loads(result.output)["secret"] == secret
    # ...the transcript holds only the mask.
    assert result.transcript_path is not None
    data = result.transcript_path.read_bytes()
    assert secret.encode() not in data
    assert b"[REDACTED]" in data


async def test_idle_timeout_ends_a_silent_cli(fake_cli: Factory, pidfile: Path) -> None:
    t0 = time.monotonic()
    result = await cc_run("x", fake_cli("hang_silent", idle_timeout=1, kill_grace=1))
    assert isinstance(result.error, IdleTimeoutError)
    assert isinstance(result.error, TaskTimeoutError)
    assert result.stopped_by == "idle_timeout"
    assert time.monotonic() - t0 < 10
    assert_all_gone(read_pids(pidfile))
    assert result.transcript_path is not None
    _, _, footer = read_transcript(result.transcript_path)
    assert footer is not None and footer["error_type"] == "IdleTimeoutError"


async def test_output_keeps_idle_timeout_from_firing(fake_cli: Factory) -> None:
    result = await cc_run("x", fake_cli("slow_lines", idle_timeout=1))
    assert result.success, result.error
    assert result.output == "slow but alive"


async def test_a_slow_stream_consumer_is_not_an_idle_cli(fake_cli: Factory) -> None:
    """Output the library has not read yet because the consumer is busy is not silence."""
    async with cc_stream("x", fake_cli("slow_lines", idle_timeout=1)) as stream:
        async for event in stream:
            if isinstance(event, InitEvent):
                await asyncio.sleep(1.5)  # the consumer is busy; the CLI keeps printing
    assert stream.result.success, stream.result.error
    assert stream.result.output == "slow but alive"


async def test_total_timeout_raises_typed_error_with_result(fake_cli: Factory) -> None:
    with pytest.raises(TaskTimeoutError) as info:
        await cc_execute("x", fake_cli("slow_lines", timeout=0.5, kill_grace=1))
    assert not isinstance(info.value, IdleTimeoutError)
    assert info.value.result.stopped_by == "timeout"
    assert info.value.result.success is False
    assert info.value.result.session_id == "fake-session-1"


async def test_cli_ignoring_sigterm_is_killed_after_grace(fake_cli: Factory, pidfile: Path) -> None:
    t0 = time.monotonic()
    result = await cc_run("x", fake_cli("ignore_sigterm", timeout=0.5, kill_grace=0.5))
    assert isinstance(result.error, TaskTimeoutError)
    assert result.exit_code == -signal.SIGKILL
    assert time.monotonic() - t0 < 10
    assert_all_gone(read_pids(pidfile))


async def test_timeout_ends_child_in_its_own_session_that_ignores_sigterm(
    fake_cli: Factory, pidfile: Path
) -> None:
    result = await cc_run("x", fake_cli("stubborn_child_then_hang", timeout=1, kill_grace=0.5))
    assert isinstance(result.error, TaskTimeoutError)
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert_all_gone(pids)


async def test_result_without_exit_is_ended_and_result_stands(
    fake_cli: Factory, pidfile: Path
) -> None:
    t0 = time.monotonic()
    result = await cc_run("x", fake_cli("hang_after_result", result_exit_grace=0.5, kill_grace=0.5))
    assert result.success, result.error
    assert result.output == "the answer"
    assert result.stopped_by == "result_no_exit"
    assert time.monotonic() - t0 < 10
    assert_all_gone(read_pids(pidfile))


async def test_crash_without_result_is_process_crashed(fake_cli: Factory) -> None:
    with pytest.raises(ProcessCrashedError) as info:
        await cc_execute("x", fake_cli("crash_mid_stream"))
    err = info.value
    assert err.exit_code == 3
    assert "fatal: something broke" in err.stderr_tail
    assert "fatal: something broke" in str(err)
    assert err.result.transcript_path is not None
    _, lines, footer = read_transcript(err.result.transcript_path)
    assert footer is not None and footer["status"] == "failed"
    assert any(b"message_start" in line for line in lines)


async def test_success_result_with_nonzero_exit_is_not_trusted(fake_cli: Factory) -> None:
    result = await cc_run("x", fake_cli("success_then_exit_2"))
    assert isinstance(result.error, ProcessCrashedError)
    assert result.output == "claims success"
    assert result.exit_code == 2


async def test_garbage_lines_are_kept_in_transcript_and_not_fatal(fake_cli: Factory) -> None:
    events = []
    async with cc_stream("x", fake_cli("garbage_lines")) as stream:
        async for event in stream:
            events.append(event)
    result = stream.result
    assert result.success, result.error
    assert result.output == "survived"
    assert any(isinstance(e, UnknownEvent) and e.type == "brand_new_type" for e in events)
    assert result.transcript_path is not None
    _, lines, footer = read_transcript(result.transcript_path)
    assert b"this is not json" in lines
    assert b"\xff\xfe invalid utf-8 \xc3\x28" in lines
    assert footer is not None and footer["invalid_lines"] == 3


@pytest.mark.timeout(300)
async def test_a_100_mb_line_parses(fake_cli: Factory) -> None:
    result = await cc_run("x", fake_cli("big_line", save_transcript=False))
    assert result.success, result.error
    assert len(result.output) == 100 * 1024 * 1024


async def test_stderr_flood_keeps_a_bounded_tail(fake_cli: Factory) -> None:
    result = await cc_run("x", fake_cli("stderr_flood"))
    assert result.success, result.error
    assert len(result.stderr_tail) <= 64 * 1024
    assert result.stderr_tail.endswith("last stderr line\n")


async def test_background_process_left_by_task_is_ended_after_normal_exit(
    fake_cli: Factory, pidfile: Path
) -> None:
    result = await cc_run("x", fake_cli("orphan_then_exit"))
    assert result.success, result.error
    assert_all_gone(read_pids(pidfile))


async def test_keep_background_processes_lets_them_outlive_the_task(
    fake_cli: Factory, pidfile: Path
) -> None:
    result = await cc_run("x", fake_cli("orphan_then_exit", keep_background_processes=True))
    assert result.success, result.error
    cli_pid, orphan = read_pids(pidfile)
    try:
        assert process_state(cli_pid) == "gone"
        assert process_state(orphan) != "gone"
    finally:
        os.kill(orphan, signal.SIGKILL)


async def test_a_timeout_ends_background_processes_even_when_asked_to_keep_them(
    fake_cli: Factory, pidfile: Path
) -> None:
    """keep_background_processes covers a normal exit only; a timeout ends everything."""
    config = fake_cli("orphan_then_hang", timeout=1, kill_grace=0.5, keep_background_processes=True)
    result = await cc_run("x", config)
    assert isinstance(result.error, TaskTimeoutError)
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert_all_gone(pids)


async def test_auth_retries_end_the_run_fast(fake_cli: Factory, pidfile: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(AuthenticationError) as info:
        await cc_execute("x", fake_cli("auth_retries", kill_grace=1))
    assert time.monotonic() - t0 < 5
    assert info.value.status_code == 401
    assert len(info.value.result.api_retries) == 1
    assert_all_gone(read_pids(pidfile))


async def test_cancelling_the_task_ends_every_process(fake_cli: Factory, pidfile: Path) -> None:
    task = asyncio.create_task(cc_run("x", fake_cli("stubborn_child_then_hang", kill_grace=0.5)))
    while len(read_pids(pidfile)) < 2:
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_all_gone(read_pids(pidfile))


async def test_second_cancellation_cannot_skip_cleanup(fake_cli: Factory, pidfile: Path) -> None:
    task = asyncio.create_task(cc_run("x", fake_cli("stubborn_child_then_hang", kill_grace=0.5)))
    while len(read_pids(pidfile)) < 2:
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.1)  # cleanup is now in progress
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_all_gone(read_pids(pidfile))


async def test_cancelled_run_leaves_a_transcript_footer(
    fake_cli: Factory, pidfile: Path, transcripts: Path
) -> None:
    task = asyncio.create_task(cc_run("x", fake_cli("hang_silent", kill_grace=0.5)))
    while not read_pids(pidfile):
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (path,) = transcripts.iterdir()
    _, _, footer = read_transcript(path)
    assert footer is not None and footer["status"] == "cancelled"


async def test_breaking_out_of_a_stream_ends_the_process(fake_cli: Factory, pidfile: Path) -> None:
    async with cc_stream("x", fake_cli("slow_lines")) as stream:
        async for _event in stream:
            break
    assert_all_gone(read_pids(pidfile))
    with pytest.raises(RuntimeError, match="after the last event"):
        _ = stream.result


_SCRIPT = """
import sys
from cc_executor import cc_execute_sync
env = {"FAKE_CLI_MODE": "stubborn_child_then_hang", "FAKE_CLI_PIDFILE": sys.argv[3]}
cc_execute_sync("x", cli_path=sys.argv[1], cwd=sys.argv[2], transcript_dir=sys.argv[2],
                env=env, kill_grace=0.5)
"""


def _start_script(tmp_path: Path, pidfile: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SCRIPT,
            str(tmp_path / "claude"),
            str(tmp_path),
            str(pidfile),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_as_ctrl_c,
    )


def _wait_for_pids(pidfile: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while len(read_pids(pidfile)) < count:
        assert time.monotonic() < deadline, "fake CLI did not start"
        time.sleep(0.05)
    return read_pids(pidfile)


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(process_state(p) != "gone" for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_all_gone(pids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_in_sync_wrapper_ends_every_process(
    fake_cli: Factory, tmp_path: Path, pidfile: Path, sig: signal.Signals
) -> None:
    """SIGTERM is handled as Ctrl-C: the run is cancelled and its transcript gets a footer."""
    fake_cli("unused")  # writes the wrapper script
    proc = _start_script(tmp_path, pidfile)
    pids = _wait_for_pids(pidfile, 2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert b"KeyboardInterrupt" in err
    _wait_gone(pids, 1)
    (path,) = tmp_path.glob("*.jsonl")
    _, _, footer = read_transcript(path)
    assert footer is not None and footer["status"] == "cancelled"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_python_parent_ends_every_process_of_the_task(
    fake_cli: Factory, tmp_path: Path, pidfile: Path, sig: signal.Signals
) -> None:
    """The CLI and its child in a session of its own that ignores SIGTERM: both gone in 5 s."""
    fake_cli("unused")
    proc = _start_script(tmp_path, pidfile)
    pids = _wait_for_pids(pidfile, 2)
    try:
        proc.send_signal(sig)
        proc.wait(timeout=10)
        _wait_gone(pids, 5)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


_FORKING_SCRIPT = """
import asyncio, os, sys, time
from cc_executor import cc_run
env = {"FAKE_CLI_MODE": "stubborn_child_then_hang", "FAKE_CLI_PIDFILE": sys.argv[3]}

async def main():
    task = asyncio.create_task(cc_run("x", cli_path=sys.argv[1], cwd=sys.argv[2],
                                      transcript_dir=sys.argv[2], env=env, kill_grace=60))
    while len(open(sys.argv[3]).read().split()) < 2 if os.path.exists(sys.argv[3]) else True:
        await asyncio.sleep(0.05)
    if os.fork() == 0:  # as multiprocessing's default start method does
        time.sleep(60)
        os._exit(0)
    await task

asyncio.run(main())
"""


def test_a_forked_child_of_the_orchestrator_does_not_keep_the_task_alive(
    fake_cli: Factory, tmp_path: Path, pidfile: Path
) -> None:
    """The supervisor learns of the orchestrator's death from its socket's EOF: a child
    made by os.fork() must not hold that socket open."""
    fake_cli("unused")
    argv = [sys.executable, "-c", _FORKING_SCRIPT, str(tmp_path / "claude"), str(tmp_path)]
    proc = subprocess.Popen([*argv, str(pidfile)], stderr=subprocess.PIPE)
    pids = _wait_for_pids(pidfile, 2)
    forked = None
    try:
        deadline = time.monotonic() + 20
        while forked is None:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            forked = next(
                (
                    int(c)
                    for c in children
                    if int(c) not in pids
                    and "FAKE_CLI_MODE" in Path(f"/proc/{c}/cmdline").read_text()
                ),
                None,
            )
            assert time.monotonic() < deadline, "the orchestrator did not fork"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=10)
        _wait_gone(pids, 5)
        assert process_state(forked) != "gone"  # it did hold whatever it inherited
    finally:
        for pid in [*pids, *([forked] if forked else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
