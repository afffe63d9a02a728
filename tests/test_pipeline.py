"""Task lists: order, resume after a crash, budgets, concurrency, task-list files.

The real CLI against the scripted model wherever it can produce the case (request
counts at the model prove what ran); the fake CLI for concurrency spans, hangs
and timeouts.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from cc_executor import (
    BudgetExceededError,
    CCExecutorConfig,
    ConfigError,
    MaxTurnsError,
    StepEvent,
    TaskFailedError,
    TaskListResult,
    TaskResult,
    TaskSpec,
    TaskTimeoutError,
    cc_execute_list,
    cc_execute_list_sync,
    cc_run,
    load_task_list,
)
from cc_executor._journal import Journal
from cc_executor._process import find_marked_processes
from cc_executor._transcript import read_transcript
from cc_executor.config import project_folder_name
from cc_executor.testing import ScriptedModel, hang, text, tool_use

from .conftest import ROOT, read_pids
from .test_process_faults import assert_all_gone, process_state

Factory = Callable[..., CCExecutorConfig]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def config(
    model: ScriptedModel, workdir: Path, transcripts: Path, state_dir: Path
) -> CCExecutorConfig:
    return model.config(cwd=workdir, transcript_dir=transcripts, state_dir=state_dir)


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    messages: list[str] = []
    logger.enable("cc_executor")
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)
    logger.disable("cc_executor")


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


def _journal_rows(state_dir: Path, run_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(state_dir / "state.db") as db:
        return db.execute(
            "SELECT step, status FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()


# ------------------------------------------------------------------ sequential, real CLI


async def test_sequential_steps_start_after_the_previous_one_ended(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    """Fresh session per step, continue_session resumes, a callable sees the answers so far."""
    model.add(text("alpha"), text("beta"), text("gamma"))
    seen: list[list[str]] = []

    def third(results: list[TaskResult]) -> str:
        seen.append([r.output for r in results])
        return f"use {results[-1].output}"

    out = await cc_execute_list(
        ["first", TaskSpec("second", name="two", continue_session=True), third], config
    )
    assert out.success and out.error is None and out.failed_step is None and out.skipped == []
    assert [r.output for r in out] == ["alpha", "beta", "gamma"]
    assert len(out) == 3 and out[1].output == "beta" and out[-1] is out.results[2]
    for k in range(1, len(out)):
        # ended_at is taken after the CLI and everything it started were gone.
        assert out[k].started_at >= out[k - 1].ended_at
    assert seen == [["alpha", "beta"]]
    assert model.prompts == ["first", "first", "use beta"]
    # Step 1 continued step 0's session: its request carries step 0's exchange.
    sizes = [len(r.body["messages"]) for r in model.main_requests]
    assert out[1].session_id == out[0].session_id and sizes[1] > sizes[0]
    assert out[2].session_id != out[0].session_id and sizes[2] == sizes[0]
    assert out.total_cost_usd == pytest.approx(sum(r.total_cost_usd or 0 for r in out))
    assert out.labels == ["first", "two", "use beta"]
    assert out.run_id and "3/3 ok" in out.summary()


async def test_stop_on_failure_skips_the_rest_and_a_rerun_continues_at_the_failed_step(
    model: ScriptedModel, config: CCExecutorConfig, state_dir: Path
) -> None:
    tasks: list[Any] = ["one", TaskSpec("two", max_turns=1, allowed_tools=["Bash"]), "three"]
    model.add(text("1"), _bash("true"))
    out = await cc_execute_list(tasks, config, run_id="plan")
    assert not out.success and out.failed_step == 1 and out.skipped == [2]
    assert isinstance(out.error, MaxTurnsError) and out.error is out[1].error
    assert len(model.main_requests) == 2
    assert _journal_rows(state_dir, "plan") == [(0, "success"), (1, "failed")]
    summary = out.summary()
    assert "failed" in summary and "skipped" in summary and "MaxTurnsError" in summary

    model.add(text("2"), text("3"))
    again = await cc_execute_list(tasks, config, run_id="plan")
    assert again.success and again.restored == [0]
    assert [r.output for r in again] == ["1", "2", "3"]
    assert model.prompts == ["one", "two", "two", "three"]  # step 0 was not run again


async def test_stop_on_failure_false_runs_every_step(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(text("1"), _bash("true"), text("3"))
    tasks: list[Any] = ["one", TaskSpec("two", max_turns=1, allowed_tools=["Bash"]), "three"]
    out = await cc_execute_list(tasks, config, stop_on_failure=False)
    assert [r.success for r in out] == [True, False, True]
    assert out.failed_step == 1 and out.skipped == [] and not out.success
    assert isinstance(out.error, MaxTurnsError)
    assert model.prompts == ["one", "two", "three"]


async def test_seed_form_uses_the_defaults(
    model: ScriptedModel, tmp_path: Path, records_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cc_execute_list([...], sequential=True)` as in the seed: the journal in the
    current directory's project folder of the per-user records, nothing in the directory."""
    for name, value in model.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    model.add(text("made"), text("modelled"))
    results = await cc_execute_list(
        ["1. Create project structure", "2. Add database models"], sequential=True
    )
    assert [r.output for r in results] == ["made", "modelled"]
    assert model.prompts == ["1. Create project structure", "2. Add database models"]
    assert list(tmp_path.iterdir()) == []
    db = records_home / "projects" / project_folder_name(tmp_path.resolve()) / "state.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert _journal_rows(db.parent, results.run_id) == [(0, "success"), (1, "success")]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# ------------------------------------------------------------------ resume, real CLI

_ORCHESTRATOR = """
import asyncio, json, os
from cc_executor import CCExecutorConfig, cc_execute_list

config = CCExecutorConfig(**json.loads(os.environ["LIST_CONFIG"]))
asyncio.run(cc_execute_list(json.loads(os.environ["LIST_TASKS"]), config, run_id="nightly"))
"""


async def test_sigkill_of_the_orchestrator_mid_step_then_rerun_resumes_at_that_step(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path, state_dir: Path
) -> None:
    tasks = ["step one", "step two", "step three"]
    model.add(text("one"), hang(), text("two"), text("three"))
    script = tmp_path / "orchestrator.py"
    script.write_text(_ORCHESTRATOR)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LIST_CONFIG": config.model_dump_json(exclude_unset=True),
        "LIST_TASKS": json.dumps(tasks),
    }
    orchestrator = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    try:
        deadline = time.monotonic() + 30
        while len(model.main_requests) < 2:  # step two's request reached the model
            assert orchestrator.returncode is None, "the orchestrator exited early"
            assert time.monotonic() < deadline, "step two never reached the model"
            await asyncio.sleep(0.02)
        clis = find_marked_processes(f"ANTHROPIC_BASE_URL={model.url}".encode())
        assert clis, "no CLI process found for step two"
    finally:
        orchestrator.send_signal(signal.SIGKILL)
        await orchestrator.wait()
    # PR_SET_PDEATHSIG: the orphaned CLI got SIGTERM and ends.
    deadline = time.monotonic() + 15
    while any(process_state(pid) != "gone" for pid in clis):
        assert time.monotonic() < deadline, "the killed orchestrator's CLI kept running"
        await asyncio.sleep(0.05)
    assert len(model.main_requests) == 2
    assert _journal_rows(state_dir, "nightly") == [(0, "success"), (1, "started")]

    out = await cc_execute_list(tasks, config, run_id="nightly")
    assert out.success and out.restored == [0] and len(out) == 3
    assert [r.output for r in out] == ["one", "two", "three"]
    assert model.prompts == ["step one", "step two", "step two", "step three"]
    assert _journal_rows(state_dir, "nightly") == [(0, "success"), (1, "success"), (2, "success")]


async def test_a_changed_prompt_reruns_that_step_and_every_later_one(
    model: ScriptedModel, config: CCExecutorConfig, warnings_logged: list[str]
) -> None:
    model.add(text("a"), text("b"), text("c"))
    first = await cc_execute_list(["A", "B", "C"], config, run_id="r")
    assert first.success and first.restored == []

    events: list[tuple[int, str]] = []
    same = await cc_execute_list(
        ["A", "B", "C"], config, run_id="r", on_step=lambda e: events.append((e.index, e.status))
    )
    assert same.success and same.restored == [0, 1, 2] and len(model.main_requests) == 3
    assert [r.output for r in same] == ["a", "b", "c"]
    assert events == [(0, "restored"), (1, "restored"), (2, "restored")]
    assert "restored" in same.summary()

    model.add(text("b2"), text("c2"))
    changed = await cc_execute_list(["A", "B changed", "C"], config, run_id="r")
    assert changed.success and changed.restored == [0]
    assert [r.output for r in changed] == ["a", "b2", "c2"]
    assert model.prompts == ["A", "B", "C", "B changed", "C"]
    assert any("prompt of step 2" in m and "changed" in m for m in warnings_logged)


# ------------------------------------------------------------------ budgets


async def test_cost_budget_caps_each_step_and_stops_the_list(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(text("one"), text("two"))
    out = await cc_execute_list(
        ["one", "two", "three"], config, max_total_cost_usd=1e-6, stop_on_failure=False
    )
    # Step 0 ran with --max-budget-usd capped at what the list had left...
    header = read_transcript(out[0].transcript_path)[0]  # type: ignore[arg-type]
    argv = header["argv"]
    assert float(argv[argv.index("--max-budget-usd") + 1]) == pytest.approx(1e-6)
    assert isinstance(out[0].error, BudgetExceededError)
    # ...and, the budget spent, no later step started.
    assert len(out) == 1 and out.skipped == [1, 2] and out.failed_step == 0
    assert isinstance(out.error, BudgetExceededError) and out.error is not out[0].error
    assert "step 2 and later were not started" in str(out.error)
    assert len(model.main_requests) == 1


async def test_duration_budget_ends_the_running_step_and_starts_no_other(
    fake_cli: Factory, state_dir: Path
) -> None:
    config = fake_cli("hang_silent", state_dir=state_dir, max_total_duration=0.5)
    out = await cc_execute_list(["hangs", "never"], config)
    assert isinstance(out[0].error, TaskTimeoutError) and out[0].error.timeout_s <= 0.5
    assert isinstance(out.error, BudgetExceededError) and "max_total_duration" in str(out.error)
    assert out.failed_step == 0 and out.skipped == [1]


# ------------------------------------------------------------------ concurrency, fake CLI


async def test_concurrency_is_bounded_and_each_task_keeps_its_cwd(
    fake_cli: Factory, tmp_path: Path, state_dir: Path
) -> None:
    spans = tmp_path / "spans.jsonl"
    dirs = [tmp_path / f"component{i}" for i in range(6)]
    for d in dirs:
        d.mkdir()
    config = fake_cli("span", env={"FAKE_CLI_SPANS": str(spans)}, state_dir=state_dir)
    tasks = [TaskSpec(f"build {i}", cwd=d) for i, d in enumerate(dirs)]
    out = await cc_execute_list(tasks, config, sequential=False, max_concurrency=2)
    assert out.success and [r.output for r in out] == [f"span:build {i}" for i in range(6)]
    recorded = [json.loads(line) for line in spans.read_text().splitlines()]
    assert sorted(r["cwd"] for r in recorded) == sorted(str(d) for d in dirs)

    def most_at_once(intervals: list[tuple[float, float]]) -> int:
        edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        running = peak = 0
        for _, step in edges:  # an end sorts before a start at the same instant
            running += step
            peak = max(peak, running)
        return peak

    # Inside each CLI process, and around it (TaskResult spans the whole process tree).
    assert most_at_once([(r["start"], r["end"]) for r in recorded]) == 2
    lifetimes = [(r.started_at.timestamp(), r.ended_at.timestamp()) for r in out]
    assert most_at_once(lifetimes) == 2


async def test_cancelling_a_concurrent_list_ends_every_running_task(
    fake_cli: Factory, pidfile: Path, state_dir: Path
) -> None:
    config = fake_cli("hang_silent", state_dir=state_dir)
    task = asyncio.create_task(
        cc_execute_list(
            [f"hang {i}" for i in range(4)],
            config,
            sequential=False,
            max_concurrency=2,
            run_id="c",
        )
    )
    deadline = time.monotonic() + 15
    while len(read_pids(pidfile)) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pids = read_pids(pidfile)
    assert len(pids) == 2  # never more than max_concurrency started
    assert_all_gone(pids)
    assert _journal_rows(state_dir, "c") == [(0, "started"), (1, "started")]


async def test_cancelling_a_sequential_list_ends_the_running_step(
    fake_cli: Factory, pidfile: Path, state_dir: Path
) -> None:
    task = asyncio.create_task(
        cc_execute_list(["hang", "never"], fake_cli("hang_silent", state_dir=state_dir))
    )
    deadline = time.monotonic() + 15
    while not read_pids(pidfile):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_all_gone(read_pids(pidfile))
    assert len(read_pids(pidfile)) == 1


# ------------------------------------------------------------------ progress


async def test_on_step_sync_and_async_and_a_raising_callback_never_breaks_the_list(
    fake_cli: Factory, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = fake_cli("ok", state_dir=state_dir)
    events: list[StepEvent] = []

    def broken(event: StepEvent) -> None:
        events.append(event)
        raise RuntimeError("callback bug")

    out = await cc_execute_list(["a", TaskSpec("b", name="bee")], config, on_step=broken)
    assert out.success
    assert [(e.index, e.status, e.name) for e in events] == [
        (0, "started", None),
        (0, "success", None),
        (1, "started", "bee"),
        (1, "success", "bee"),
    ]
    assert events[1].result is out[0] and events[0].result is None
    assert events[3].total_cost_usd == pytest.approx(0.002)
    assert {e.total for e in events} == {2} and {e.run_id for e in events} == {out.run_id}

    seen: list[str] = []

    async def coroutine_callback(event: StepEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event.status)

    await cc_execute_list(["a"], config, on_step=coroutine_callback, stream_output=True)
    assert seen == ["started", "success"]
    assert "━━ step 1/1 · a" in capsys.readouterr().err


def test_cc_execute_list_sync(fake_cli: Factory, state_dir: Path) -> None:
    out = cc_execute_list_sync(["x", "y"], fake_cli("ok", state_dir=state_dir))
    assert isinstance(out, TaskListResult) and [r.output for r in out] == ["echo:x", "echo:y"]


# ------------------------------------------------------------------ the journal itself


async def test_a_restored_failure_is_still_a_typed_failure(
    fake_cli: Factory, state_dir: Path
) -> None:
    result = await cc_run("x", fake_cli("hang_silent", timeout=0.3))
    assert isinstance(result.error, TaskTimeoutError)
    journal = await Journal.open(state_dir)
    try:
        await journal.start("j", 0, "timeout step", "hash", drop_later=True)
        await journal.finish("j", 0, result)
        record = (await journal.load("j"))[0]
    finally:
        await journal.close()
    assert record.status == "failed" and record.name == "timeout step" and record.attempts == 1
    restored = record.result
    assert restored is not None and not restored.success
    assert isinstance(restored.error, TaskTimeoutError) and restored.error.timeout_s == 0.3
    assert restored.error.result is restored and str(restored.error) == str(result.error)
    assert restored.model_dump() == result.model_dump()
    with pytest.raises(TaskTimeoutError):
        restored.raise_for_error()


# ------------------------------------------------------------------ validation


def test_task_spec_options_are_checked_when_the_spec_is_made() -> None:
    with pytest.raises(ConfigError) as info:
        TaskSpec("x", timeoutt=5)
    assert info.value.field == "timeoutt" and "timeout" in str(info.value)
    with pytest.raises(ConfigError) as info:
        TaskSpec("x", timeout=-1)
    assert info.value.field == "timeout"
    with pytest.raises(ConfigError) as info:
        TaskSpec("x", max_total_cost_usd=1)
    assert info.value.field == "max_total_cost_usd"
    with pytest.raises(ConfigError) as info:
        TaskSpec(name="no prompt")
    assert info.value.field == "prompt"
    spec = TaskSpec("x", timeout=5, stream=True, continue_session=True)
    assert spec.overrides == {"timeout": 5, "stream": True}


async def test_bad_lists_fail_before_any_step_starts(fake_cli: Factory, pidfile: Path) -> None:
    config = fake_cli("ok", state_dir=None)
    bad: list[tuple[Any, dict[str, Any], str]] = [
        ("just one prompt", {}, "tasks"),
        (["a", TaskSpec("b", continue_session=True)], {"sequential": False}, "continue_session"),
        ([TaskSpec("a", continue_session=True)], {}, "continue_session"),
        (["a", 42], {}, "tasks"),
        (["a"], {"max_concurrency": 0}, "max_concurrency"),
        (["a"], {"bogus_option": 1}, "bogus_option"),
    ]
    for tasks, kwargs, field in bad:
        with pytest.raises(ConfigError) as info:
            await cc_execute_list(tasks, config, **kwargs)
        assert info.value.field == field, (tasks, kwargs)
    assert not pidfile.exists()  # nothing started

    blocked = pidfile.parent / "not-a-dir"
    blocked.write_text("")
    with pytest.raises(ConfigError) as info:
        await cc_execute_list(["a"], config, state_dir=blocked / "state")
    assert info.value.field == "state_dir" and "state_dir=None" in str(info.value)
    assert not pidfile.exists()

    with pytest.raises(ConfigError, match="returned int"):
        await cc_execute_list(["a", lambda results: 42], config)


# ------------------------------------------------------------------ task-list files


def test_markdown_task_headings_keep_multi_line_bodies(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text(
        "# Plan\nIntro text, not a task.\n\n"
        "## Task 1: Create project structure\n"
        "Make `src/` and `tests/`.\n\n- keep it small\n\n"
        "```\nTask 9: inside a fence, not a task\n```\n"
        "**Task 2:** Add database models\n"
        "Task 3: Write tests\n"
    )
    specs = load_task_list(path)
    assert [s.name for s in specs] == [
        "Task 1: Create project structure",
        "Task 2: Add database models",
        "Task 3: Write tests",
    ]
    assert specs[0].prompt == (
        "Create project structure\n\nMake `src/` and `tests/`.\n\n- keep it small\n\n"
        "```\nTask 9: inside a fence, not a task\n```"
    )
    assert [s.prompt for s in specs[1:]] == ["Add database models", "Write tests"]


def test_markdown_numbered_lines(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text(
        "Steps:\n\n1. Create project structure\n   with a README\n2) Add database models\n"
        "Some closing remark.\n   3. an indented number is part of a body\n"
    )
    specs = load_task_list(path)
    assert [s.prompt for s in specs] == [
        "Create project structure\n\nwith a README",
        "Add database models",
    ]
    assert all(s.name is None for s in specs)


async def test_yaml_task_list_runs_with_its_per_task_options(
    tmp_path: Path, fake_cli: Factory
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    path = tmp_path / "plan.yaml"
    path.write_text(
        "tasks:\n"
        "  - Create project structure\n"
        f"  - prompt: Add database models\n    name: models\n    cwd: {other}\n"
        "    timeout: 600\n"
    )
    specs = load_task_list(path)
    assert specs[0].prompt == "Create project structure" and specs[0].overrides == {}
    assert specs[1].name == "models" and specs[1].overrides == {"cwd": str(other), "timeout": 600}
    out = await cc_execute_list(specs, fake_cli("echo_env", state_dir=tmp_path / "s"))
    assert json.loads(out[1].output)["prompt"] == "Add database models"

    path.write_text("- a\n- b\n")
    assert [s.prompt for s in load_task_list(path)] == ["a", "b"]


def test_task_list_files_with_mistakes_name_them(tmp_path: Path) -> None:
    cases = {
        "typo.yaml": ("- prompt: a\n  timout: 5\n", "task 1: Unknown option 'timout'"),
        "shape.yml": ("steps: [a]\n", "unknown key(s): steps"),
        "broken.yaml": ("- [unclosed\n", "invalid YAML"),
        "empty.md": ("# nothing here\n", "no tasks found"),
        "plan.toml": ("", "unknown task-list format"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ConfigError) as info:
            load_task_list(path)
        assert message in str(info.value) and name in str(info.value)


def test_the_list_result_is_list_like(fake_cli: Factory, state_dir: Path) -> None:
    out = cc_execute_list_sync(["x", "y", "z"], fake_cli("ok", state_dir=state_dir))
    assert [r.output for r in out[1:]] == ["echo:y", "echo:z"]
    assert list(out) == out.results and out.raise_for_error() is out
    assert isinstance(out[0], TaskResult) and not isinstance(out.error, TaskFailedError)
    table = out.summary().splitlines()
    assert table[0].split() == ["step", "status", "cost", "time", "task"]
    assert len(table) == 1 + 1 + 3 + 1 + 1  # header, rule, 3 steps, rule, total
    # Numbered as people count (and as the live view does): 1..3; the API's indices are 0-based.
    assert [line.split()[0] for line in table[2:5]] == ["1", "2", "3"]
    assert repr(out).startswith("<TaskListResult")
