"""Pre-started CLIs in task lists: the next step's CLI is spawned while a step runs,
used only when nothing it read at start changed, and never outlives its list.

The real CLI against the scripted model throughout: the requests the model
receives show what each CLI saw, psutil shows which processes are left.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from loguru import logger

from cc_executor import (
    CCExecutorConfig,
    MaxTurnsError,
    TaskResult,
    TaskSpec,
    TaskTimeoutError,
    _otel,
    cc_execute_list,
)
from cc_executor._command import build_command
from cc_executor._contain import containment_mode
from cc_executor._journal import restore_result
from cc_executor._prestart import fingerprint, watched_paths
from cc_executor._transcript import read_transcript
from cc_executor.testing import ScriptedModel, hang, text, tool_use

from .conftest import ROOT, sigint_as_ctrl_c

# The CLI's wait on stdin in CI; FACTS and docs/performance.md report a longer manual one.
LONG_WAIT_S = 25.0


@dataclass
class Prestarts:
    """Every CLI the library pre-started during the test: (pid, execution uuid)."""

    started: list[tuple[int, str]] = field(default_factory=list)
    event: asyncio.Event | None = None

    @property
    def pids(self) -> list[int]:
        return [pid for pid, _ in self.started]

    @property
    def executions(self) -> list[str]:
        return [uuid for _, uuid in self.started]


@pytest.fixture
def prestarts() -> Iterator[Prestarts]:
    seen = Prestarts()
    pattern = re.compile(r"pre-started CLI pid (\d+) for execution (\S+)")

    def sink(message: Any) -> None:
        match = pattern.search(str(message))
        if match:
            seen.started.append((int(match.group(1)), match.group(2)))
            if seen.event is not None:
                seen.event.set()

    logger.enable("cc_executor")
    sink_id = logger.add(sink, level="DEBUG", format="{message}")
    yield seen
    logger.remove(sink_id)
    logger.disable("cc_executor")


@pytest.fixture(autouse=True)
def _no_tracer_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a process without OpenTelemetry: tests/test_otel.py installs a global tracer
    provider for the rest of the session, and with one no step is pre-started (each
    attempt's TRACEPARENT is known only when its span starts)."""
    monkeypatch.setattr(_otel, "_trace", lambda: None)


@pytest.fixture
def config(model: ScriptedModel, workdir: Path, transcripts: Path) -> CCExecutorConfig:
    return model.config(cwd=workdir, transcript_dir=transcripts, state_dir=None)


def _header(result: TaskResult) -> dict[str, Any]:
    assert result.transcript_path is not None
    header, _, _ = read_transcript(result.transcript_path)
    assert header is not None
    return header


def _processes_of(model: ScriptedModel) -> dict[int, str]:
    """Live processes started for `model` (its URL in their environment): pid → marker."""
    found: dict[int, str] = {}
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
            if env.get("ANTHROPIC_BASE_URL") == model.url and proc.status() != "zombie":
                found[proc.pid] = env.get("CC_EXECUTOR_EXECUTION", "")
        except (psutil.Error, OSError):
            continue
    return found


def _gate(workdir: Path) -> Any:
    """A Bash call that returns once the test creates `workdir/go`."""
    return tool_use("Bash", {"command": "until [ -e go ]; do sleep 0.1; done", "description": "w"})


# ------------------------------------------------------------------ used when nothing changed


async def test_the_next_step_runs_on_the_cli_started_while_the_step_before_ran(
    model: ScriptedModel, config: CCExecutorConfig, prestarts: Prestarts
) -> None:
    model.add(text("alpha"), text("beta"), text("gamma"))
    out = await cc_execute_list(["first", "second", TaskSpec("third", name="3")], config)
    assert out.success and [r.output for r in out] == ["alpha", "beta", "gamma"]
    assert model.prompts == ["first", "second", "third"]
    assert out[0].prestarted_at is None and _header(out[0])["prestarted"] is False
    for k in (1, 2):
        result = out[k]
        # Spawned before the step before it ended; its prompt only after that end.
        assert result.prestarted_at is not None
        assert result.prestarted_at < out[k - 1].ended_at <= result.started_at
        header = _header(result)
        assert header["prestarted"] is True
        assert header["prestarted_at"] == result.prestarted_at.isoformat()
        assert header["execution_uuid"] == result.execution_uuid
    assert prestarts.executions == [out[1].execution_uuid, out[2].execution_uuid]
    assert not _processes_of(model)


async def test_prestart_false_spawns_each_step_with_its_prompt(
    model: ScriptedModel, config: CCExecutorConfig, prestarts: Prestarts
) -> None:
    model.add(text("a"), text("b"), text("c"), text("d"), text("e"))
    out = await cc_execute_list(["one", TaskSpec("two", prestart=False), "three"], config)
    assert out.success
    assert [r.prestarted_at is not None for r in out] == [False, False, True]
    assert prestarts.executions == [out[2].execution_uuid]
    off = await cc_execute_list(["four", "five"], config, prestart=False)
    assert off.success and [r.prestarted_at for r in off] == [None, None]
    assert _header(off[1])["prestarted"] is False and len(prestarts.started) == 1


async def test_with_a_tracer_provider_no_step_is_prestarted(
    model: ScriptedModel,
    config: CCExecutorConfig,
    prestarts: Prestarts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each attempt's TRACEPARENT is known only when its span starts."""
    monkeypatch.setattr(_otel, "tracing", lambda: True)
    model.add(text("a"), text("b"))
    out = await cc_execute_list(["one", "two"], config)
    assert out.success and [r.prestarted_at for r in out] == [None, None]
    assert prestarts.started == []


# ------------------------------------------------------------------ discarded when settings change


async def test_a_step_writing_claude_settings_gets_the_next_step_a_fresh_cli_that_sees_them(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, prestarts: Prestarts
) -> None:
    """Step 1 writes a deny rule into .claude/settings.json; step 2's pre-started CLI
    read the settings before that, so it is ended, and the fresh one denies Write."""
    deny = json.dumps({"permissions": {"deny": ["Write"]}})
    model.add(
        tool_use("Write", {"file_path": str(workdir / ".claude/settings.json"), "content": deny}),
        text("settings written"),
        tool_use("Write", {"file_path": str(workdir / "x.txt"), "content": "x"}),
        text("done"),
    )
    config = config.with_overrides(setting_sources=("project",), on_permission_denied="warn")
    # The CLI protects .claude/ from edits unless permissions are bypassed (root: sandbox).
    writer = TaskSpec(
        "write settings",
        permission_mode="bypassPermissions",
        env={**config.env, "IS_SANDBOX": "1"},
    )
    out = await cc_execute_list([writer, "write x"], config)
    assert out[0].files_created == [".claude/settings.json"]
    assert len(prestarts.started) == 1, "step 2 was pre-started"
    assert out[1].prestarted_at is None
    header = _header(out[1])
    assert header["prestarted"] is False
    assert ".claude/settings.json" in header["prestart_discarded"]
    assert prestarts.pids[0] not in _processes_of(model)
    # The fresh CLI loaded the deny rule: the model was told Write is not available.
    tool_result = model.main_requests[3].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and tool_result.get("is_error")
    assert "Write" in json.dumps(tool_result["content"])
    assert not (workdir / "x.txt").exists()


async def test_an_mcp_json_written_between_steps_discards_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, prestarts: Prestarts
) -> None:
    """Written by the caller's on_step hook (not by the step): the content check sees it."""
    model.add(text("a"), text("b"), text("c"))

    def write_mcp(event: Any) -> None:
        if event.index == 1 and event.status == "started":
            (workdir / ".mcp.json").write_text('{"mcpServers": {}}')

    out = await cc_execute_list(["one", "two", "three"], config, on_step=write_mcp)
    assert out.success
    assert out[1].prestarted_at is None
    assert ".mcp.json" in _header(out[1])["prestart_discarded"]
    assert out[2].prestarted_at is not None  # nothing changed after step 2's start
    assert len(prestarts.started) == 2 and prestarts.pids[0] not in _processes_of(model)


async def test_an_environment_changed_between_steps_discards_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.add(text("a"), text("b"))

    def change_env(event: Any) -> None:
        if event.index == 1 and event.status == "started":
            monkeypatch.setenv("CC_EXECUTOR_TEST_CHANGED", "1")

    out = await cc_execute_list(["one", "two"], config, on_step=change_env)
    assert out.success and out[1].prestarted_at is None
    assert _header(out[1])["prestart_discarded"] == "the step's environment changed"


async def test_a_prestarted_cli_that_died_while_waiting_is_replaced_by_a_fresh_one(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, prestarts: Prestarts
) -> None:
    model.add(_gate(workdir), text("one done"), text("two done"))
    prestarts.event = asyncio.Event()
    first = TaskSpec("one", allowed_tools=("Bash",))
    task = asyncio.create_task(cc_execute_list([first, "two"], config))
    await asyncio.wait_for(prestarts.event.wait(), 60)
    psutil.Process(prestarts.pids[0]).kill()
    (workdir / "go").touch()
    out = await task
    assert out.success and [r.output for r in out] == ["one done", "two done"]
    assert out[1].prestarted_at is None
    assert "exited while waiting" in _header(out[1])["prestart_discarded"]
    assert model.prompts[-1] == "two" and not _processes_of(model)


# ------------------------------------------------------------------ never leaks


async def test_a_cancelled_list_ends_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, prestarts: Prestarts
) -> None:
    model.add(hang())
    prestarts.event = asyncio.Event()
    task = asyncio.create_task(cc_execute_list(["hangs", "never runs"], config))
    await asyncio.wait_for(prestarts.event.wait(), 60)
    while not model.main_requests:  # step 1's CLI asked the model: it is running
        await asyncio.sleep(0.05)
    pids = list(_processes_of(model))
    assert len(set(_processes_of(model).values())) == 2  # step 1's CLI and step 2's
    # The pre-started CLI is contained like any task's: under its own supervisor, in
    # the cgroup leaf named by its execution id.
    ((pid, execution),) = prestarts.started
    assert psutil.Process(pid).ppid() != os.getpid()
    if containment_mode() == "cgroup+subreaper":
        assert f"cc-executor-{execution}" in Path(f"/proc/{pid}/cgroup").read_text()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert prestarts.pids[0] in pids
    assert not _processes_of(model)
    assert not [pid for pid in pids if psutil.pid_exists(pid) and _alive(pid)]
    assert model.prompts == ["hangs"]


_CTRL_C_CHILD = """
import json, os
from cc_executor import CCExecutorConfig, cc_execute_list_sync

config = CCExecutorConfig(**json.loads(os.environ["LIST_CONFIG"]))
cc_execute_list_sync(["hangs", "never runs"], config)
"""


async def test_ctrl_c_in_cc_execute_list_sync_ends_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path
) -> None:
    model.add(hang())
    script = tmp_path / "child.py"
    script.write_text(_CTRL_C_CHILD)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LIST_CONFIG": config.model_dump_json(exclude_unset=True),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env=env,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=sigint_as_ctrl_c,  # only resets a signal
    )
    try:
        # Step 1's CLI and step 2's pre-started one.
        await _until(lambda: len(set(_processes_of(model).values())) == 2, "two CLIs")
        pids = list(_processes_of(model))
        child.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(child.communicate(), 60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert b"KeyboardInterrupt" in stderr
    assert not [pid for pid in pids if _alive(pid)] and not _processes_of(model)


async def test_a_failed_step_ends_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, prestarts: Prestarts
) -> None:
    model.add(_gate(workdir))
    prestarts.event = asyncio.Event()
    first = TaskSpec("fails", max_turns=1, allowed_tools=("Bash",))
    task = asyncio.create_task(cc_execute_list([first, "never runs"], config))
    await asyncio.wait_for(prestarts.event.wait(), 60)
    (workdir / "go").touch()
    out = await task
    assert isinstance(out[0].error, MaxTurnsError) and out.skipped == [1]
    assert not _alive(prestarts.pids[0]) and not _processes_of(model)
    assert model.prompts == ["fails"]


async def test_a_timed_out_step_ends_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, prestarts: Prestarts
) -> None:
    model.add(_gate(workdir), hang())
    prestarts.event = asyncio.Event()
    first = TaskSpec("times out", allowed_tools=("Bash",), idle_timeout=4, num_retries=0)
    task = asyncio.create_task(cc_execute_list([first, "never runs"], config))
    await asyncio.wait_for(prestarts.event.wait(), 60)
    (workdir / "go").touch()
    out = await task
    assert isinstance(out[0].error, TaskTimeoutError) and out.skipped == [1]
    assert not _alive(prestarts.pids[0]) and not _processes_of(model)


async def test_a_budget_stop_ends_the_prestarted_cli(
    model: ScriptedModel, config: CCExecutorConfig, prestarts: Prestarts
) -> None:
    """max_total_duration spent by step 1: step 2 never starts, its CLI is ended."""
    model.add(text("slow", delay_before=1.5), text("never"))
    out = await cc_execute_list(["one", "two"], config, max_total_duration=1.0)
    assert out.skipped == [1] and out.error is not None
    assert len(prestarts.started) == 1
    assert not _alive(prestarts.pids[0]) and not _processes_of(model)


async def _until(condition: Any, what: str) -> None:
    """Poll `condition` (a process appearing cannot be awaited) for up to 60 s."""
    for _ in range(1200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != "zombie"
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------------------------------ waiting long on stdin


async def test_a_prestarted_cli_answers_correctly_after_waiting_long_on_stdin(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    """Step 1's answer takes LONG_WAIT_S; step 2's CLI waits that long for its prompt."""
    model.add(text("slow answer", delay_before=LONG_WAIT_S), text("step two's answer"))
    out = await cc_execute_list(["slow", "after the wait"], config)
    assert out.success and [r.output for r in out] == ["slow answer", "step two's answer"]
    second = out[1]
    assert second.prestarted_at is not None
    assert second.started_at - second.prestarted_at >= timedelta(seconds=LONG_WAIT_S)
    assert model.prompts == ["slow", "after the wait"]
    assert second.num_turns == 1 and second.exit_code == 0


# ------------------------------------------------------------------ resume, records


async def test_a_resumed_list_does_not_prestart_restored_steps(
    model: ScriptedModel,
    workdir: Path,
    transcripts: Path,
    tmp_path: Path,
    prestarts: Prestarts,
) -> None:
    config = model.config(cwd=workdir, transcript_dir=transcripts, state_dir=tmp_path / "state")
    model.add(text("a"), text("b"), hang())
    first = TaskSpec("three", idle_timeout=3, num_retries=0)
    tasks: list[Any] = ["one", "two", first, "four"]
    out = await cc_execute_list(tasks, config, run_id="r")
    assert out.failed_step == 2 and out[1].prestarted_at is not None
    ran_before = len(prestarts.started)
    assert ran_before == 3  # steps 2, 3 and 4 (ended unused when step 3 failed)
    model.add(text("c"), text("d"))
    again = await cc_execute_list(tasks, config, run_id="r")
    assert again.success and again.restored == [0, 1]
    # The restored results keep their record, prestarted_at included.
    assert again[1].prestarted_at == out[1].prestarted_at
    # The first step that runs again is spawned with its prompt; the one after it is
    # pre-started; no restored step ever is.
    assert again[2].prestarted_at is None
    assert again[3].prestarted_at is not None
    assert prestarts.executions[ran_before:] == [again[3].execution_uuid]
    assert model.prompts[-2:] == ["three", "four"]


def test_prestarted_at_survives_json_the_journal_and_temporal_payloads(
    tmp_path: Path,
) -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    result = TaskResult(
        task="t",
        success=True,
        execution_uuid="u",
        started_at=now,
        ended_at=now,
        prestarted_at=now - timedelta(seconds=2),
    )
    data = json.loads(result.model_dump_json())
    assert data["prestarted_at"] == result.model_dump(mode="json")["prestarted_at"]
    # The journal and the Temporal step outcome both carry the result as this JSON.
    assert restore_result(result.model_dump_json()).prestarted_at == result.prestarted_at
    assert TaskResult(**{**data, "prestarted_at": None}).prestarted_at is None


# ------------------------------------------------------------------ what is watched


def test_the_fingerprint_sees_settings_agents_and_mcp_json_but_not_the_cli_state(
    tmp_path: Path, model: ScriptedModel
) -> None:
    work = tmp_path / "w"
    (work / ".claude" / "agents").mkdir(parents=True)
    config = model.config(cwd=work, setting_sources=("user", "project"))
    command = build_command(config, "x")
    files, folders = watched_paths(command, config)
    home = Path(config.env["CLAUDE_CONFIG_DIR"])
    assert home / "settings.json" in files
    assert work / ".mcp.json" in files and work / ".claude" in folders
    assert tmp_path / ".mcp.json" in files  # the folders above cwd too
    before = fingerprint(files, folders)
    # The CLI's own state in its config folder is not configuration.
    (home / "projects").mkdir(parents=True, exist_ok=True)
    (home / "projects" / "s.jsonl").write_text("{}")
    assert fingerprint(files, folders) == before
    # Same content written again: the CLI would read the same thing.
    (work / ".claude" / "agents" / "a.md").write_text("agent")
    after_agent = fingerprint(files, folders)
    assert after_agent != before
    (work / ".claude" / "agents" / "a.md").write_text("agent")
    assert fingerprint(files, folders) == after_agent
    (home / "settings.json").write_text("{}")
    assert fingerprint(files, folders) != after_agent
    assert os.environ.get("CC_EXECUTOR_TEST_CHANGED") is None


# ------------------------------------------------------------------ the MCP server's pool


async def test_the_mcp_servers_pool_runs_execute_task_on_a_prestarted_cli(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    from .test_mcp import _report, mcp_server

    model.add(text("first answer"), text("second answer"))
    args = ("--transcript-dir", str(tmp_path / "t"), "--state-dir", str(tmp_path / "s"))
    async with mcp_server(tmp_path, workdir, model.env(), *args, "--prestart", "1") as session:
        # The pool fills when the server starts, before any call.
        await _until(lambda: any(_processes_of(model).values()), "the pool's first CLI")
        reports = []
        for task in ("  -first task\n", "second task"):
            reports.append(_report(await session.call_tool("execute_task", {"task": task})))
        pooled = [pid for pid, marker in _processes_of(model).items() if marker]
        assert len(pooled) == 1  # the pool's replacement CLI, waiting
        # Another command (a model named): a CLI of its own; the pooled one stays.
        model.add(text("third answer"))
        other = _report(
            await session.call_tool("execute_task", {"task": "third", "model": "other"})
        )
        assert other["output"] == "third answer"
        other_header = read_transcript(Path(other["transcript_path"]))[0]
        assert other_header is not None and other_header["prestarted"] is False
        assert pooled == [pid for pid, marker in _processes_of(model).items() if marker]
    headers = [read_transcript(Path(r["transcript_path"]))[0] for r in reports]
    assert [r["output"] for r in reports] == ["first answer", "second answer"]
    assert [(h or {}).get("prestart_discarded") for h in headers] == [None, None]
    assert all(h is not None and h["prestarted"] is True for h in headers), headers
    # The prompt reached the model verbatim (it went as a stream-json user message).
    assert model.prompts == ["  -first task\n", "second task", "third"]
    assert not _processes_of(model)  # the server's end ended the pool
