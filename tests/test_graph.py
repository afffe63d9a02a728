"""Task graphs: steps with `depends_on` (the local runner; Temporal's graph is in
test_temporal.py).

The real CLI against the scripted model: the requests the model received prove what
ran, and how often; files the steps' Bash calls write prove what overlapped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    BudgetExceededError,
    CCExecutorConfig,
    ConfigError,
    DependencyFailedError,
    MaxTurnsError,
    StepEvent,
    StepSkippedError,
    TaskSpec,
    cc_execute_list,
    cc_execute_plan,
    load_task_list,
    suggest_execution_strategy,
)
from cc_executor._policy import GraphRun, check_graph, topological_order
from cc_executor._process import find_marked_processes
from cc_executor.testing import ScriptedModel, hang, text, tool_use

from .conftest import ROOT, read_pids
from .test_process_faults import assert_all_gone, process_state


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def config(
    model: ScriptedModel, workdir: Path, transcripts: Path, state_dir: Path
) -> CCExecutorConfig:
    return model.config(cwd=workdir, transcript_dir=transcripts, state_dir=state_dir)


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


def _journal_rows(state_dir: Path, run_id: str) -> list[tuple[int, str | None, str]]:
    with sqlite3.connect(state_dir / "state.db") as db:
        return db.execute(
            "SELECT step, name, status FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()


# Each of two steps registers in `met/` and waits until two have: if the steps ran one
# after the other, the first would wait until its timeout and fail.
_MEET = (
    "mkdir -p ../met && touch ../met/$$ && "
    "while [ $(ls ../met | wc -l) -lt 2 ]; do sleep 0.05; done; echo met"
)


def _diamond(**extra: Any) -> list[TaskSpec]:
    both = {"allowed_tools": ["Bash"], "timeout": 120, **extra}
    return [
        TaskSpec("make the base", name="A"),
        TaskSpec("left branch", name="B", depends_on=["A"], **both),
        TaskSpec("right branch", name="C", depends_on=["A"], **both),
        TaskSpec("join", name="D", depends_on=["B", "C"]),
    ]


# ------------------------------------------------------------------ rules (pure)


def test_graph_rules_name_the_problem() -> None:
    names = ["A", "B", "C"]
    with pytest.raises(ConfigError, match=r"cycle: 'A' -> 'C' -> 'B' -> 'A'"):
        check_graph(names, [["C"], ["A"], ["B"]], [False] * 3)
    with pytest.raises(ConfigError, match=r"depends on 'buidl'.*did you mean 'build'"):
        check_graph(["build", "test"], [[], ["buidl"]], [False] * 2)
    with pytest.raises(ConfigError, match="depends on itself"):
        check_graph(names, [[], ["B"], []], [False] * 3)
    with pytest.raises(ConfigError, match="both named 'A'"):
        check_graph(["A", "A"], [[], ["A"]], [False] * 2)
    with pytest.raises(ConfigError, match="exactly one|has 2"):
        check_graph(names, [[], [], ["A", "B"]], [False, False, True])
    with pytest.raises(ConfigError, match="both continue the session of step 1"):
        check_graph(names, [[], ["A"], ["A"]], [False, True, True])
    assert check_graph(names, [[], ["A"], ["A", "B"]], [False, True, False]) == [
        (),
        (0,),
        (0, 1),
    ]


def test_graph_run_starts_ready_steps_and_skips_downstream_of_a_failure() -> None:
    edges = [(), (0,), (0,), (1, 2), ()]  # diamond 0 -> 1, 2 -> 3, and a free step 4
    assert topological_order(edges) == [0, 1, 2, 3, 4]
    assert topological_order([(1,), ()]) == [1, 0]
    graph = GraphRun(edges)
    assert graph.start(3) == [0, 4]
    graph.succeeded(0)
    assert graph.start(1) == [1]  # one free slot: the lower index first
    assert graph.failed(1) == {3: (1, 1)}  # D waits for B: skipped, though C runs on
    assert graph.start(2) == [2] and graph.start(2) == []
    graph.succeeded(2)
    graph.succeeded(4)
    assert graph.not_started() == []
    assert graph.status == {
        0: "success",
        1: "failed",
        2: "success",
        3: "skipped",
        4: "success",
    }
    chain = GraphRun([(), (0,), (1,), ()])
    assert chain.start(1) == [0]
    assert chain.failed(0) == {1: (0, 0), 2: (1, 0)}
    assert chain.causes == {1: 0, 2: 0}
    assert chain.not_started() == [3] and chain.causes[3] == 3


def test_graph_run_costs_linear_time_in_the_size_of_the_graph() -> None:
    """A 10,000-step chain run to the end: every step is handed out once, in order
    (a scan of the whole graph per finished step would be 10^8 steps of work)."""
    n = 10_000
    graph = GraphRun([()] + [(i - 1,) for i in range(1, n)])
    order = []
    while batch := graph.start(3):
        for i in batch:
            order.append(i)
            graph.succeeded(i)
    assert order == list(range(n))


async def test_a_bad_graph_is_a_config_error_before_any_cli_starts(
    model: ScriptedModel, config: CCExecutorConfig, state_dir: Path
) -> None:
    cycle = [
        TaskSpec("a", name="A", depends_on=["C"]),
        TaskSpec("b", name="B", depends_on=["A"]),
        TaskSpec("c", name="C", depends_on=["B"]),
    ]
    with pytest.raises(ConfigError, match=r"cycle: 'A' -> 'C' -> 'B' -> 'A'"):
        await cc_execute_list(cycle, config)
    unknown = [TaskSpec("a", name="build"), TaskSpec("b", name="test", depends_on=["biuld"])]
    with pytest.raises(ConfigError, match="did you mean 'build'") as caught:
        await cc_execute_list(unknown, config)
    assert caught.value.field == "depends_on"
    with pytest.raises(ConfigError, match="plan is not an ExecutionStrategy") as bad_plan:
        await cc_execute_plan({"tasks": "not a list"}, config)
    assert bad_plan.value.field == "plan"
    assert model.requests == [] and not state_dir.exists()


# ------------------------------------------------------------------ running, real CLI


async def test_diamond_runs_b_and_c_at_once_and_d_after_both(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, state_dir: Path
) -> None:
    model.add(text("a"), _bash(_MEET), _bash(_MEET), text("bc"), text("bc"), text("d"))
    events: list[tuple[str | None, str]] = []
    out = await cc_execute_list(
        _diamond(),
        config,
        run_id="diamond",
        on_step=lambda e: events.append((e.name, e.status)),
    )
    assert out.success, out.summary()
    assert out["A"].output == "a" and out["D"].output == "d" and out.by_name("B").success
    assert out[1] is out["B"] and out.names == ["A", "B", "C", "D"]
    # Each ran once: A and D one request each; B and C two each (the tool call, the answer).
    assert sorted(model.prompts) == sorted(
        ["make the base", "left branch", "left branch", "right branch", "right branch", "join"]
    )
    assert model.prompts[0] == "make the base" and model.prompts[-1] == "join"
    # B and C both met in met/: neither could end before the other had started.
    assert len(list((workdir.parent / "met").iterdir())) == 2
    assert out["D"].started_at >= max(out["B"].ended_at, out["C"].ended_at)
    assert min(out["B"].started_at, out["C"].started_at) >= out["A"].ended_at
    assert events[0] == ("A", "started") and events[-1] == ("D", "success")
    assert [(i, n, s) for i, n, s in _journal_rows(state_dir, "diamond")] == [
        (0, "A", "success"),
        (1, "B", "success"),
        (2, "C", "success"),
        (3, "D", "success"),
    ]


async def test_a_failed_step_skips_what_depends_on_it_and_the_other_branch_finishes(
    model: ScriptedModel, config: CCExecutorConfig, state_dir: Path
) -> None:
    tasks = [
        TaskSpec("base", name="A"),
        TaskSpec("fails", name="B", depends_on=["A"], max_turns=1, allowed_tools=["Bash"]),
        TaskSpec("fine", name="C", depends_on=["A"]),
        TaskSpec("join", name="D", depends_on=["B", "C"]),
        TaskSpec("after join", name="E", depends_on=["D"]),
    ]
    # max_concurrency=1: B (the lower index) starts before C, so B gets the tool call
    # that ends it at max_turns=1 and C the answer.
    model.add(text("a"), _bash("true"), text("c"))
    events: list[StepEvent] = []
    out = await cc_execute_list(
        tasks,
        config,
        run_id="fail",
        stop_on_failure=False,
        max_concurrency=1,
        on_step=events.append,
    )
    assert not out.success and out.failed_step == 1 and out.skipped == [3, 4]
    assert isinstance(out.error, MaxTurnsError) and out.error is out["B"].error
    assert out["C"].success and out["C"].output == "c"
    d, e = out["D"], out["E"]
    assert not d.success and isinstance(d.error, DependencyFailedError)
    assert d.error.dependency == "B" and "its dependency 'B' (step 2) failed" in str(d.error)
    assert isinstance(e.error, DependencyFailedError) and e.error.dependency == "B"
    assert "'D' was skipped because 'B' (step 2) failed" in str(e.error)
    assert sorted(model.prompts) == ["base", "fails", "fine"]
    assert [(ev.name, ev.status) for ev in events if ev.status == "skipped"] == [
        ("D", "skipped"),
        ("E", "skipped"),
    ]
    summary = out.summary()
    assert "skipped" in summary and "its dependency 'B'" in summary
    assert [s for _, _, s in _journal_rows(state_dir, "fail")] == [
        "success",
        "failed",
        "success",
        "skipped",
        "skipped",
    ]


async def test_stop_on_failure_starts_nothing_new_after_a_failure(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    tasks = [
        TaskSpec("fails", name="A", max_turns=1, allowed_tools=["Bash"]),
        TaskSpec("independent", name="B"),
        TaskSpec("needs A", name="C", depends_on=["A"]),
    ]
    model.add(_bash("true"), text("never"))
    out = await cc_execute_list(tasks, config, max_concurrency=1)  # stop_on_failure=True
    assert not out.success and out.failed_step == 0 and out.skipped == [1, 2]
    assert isinstance(out["B"].error, StepSkippedError)
    assert not isinstance(out["B"].error, DependencyFailedError)
    assert "stop_on_failure=True" in str(out["B"].error)
    assert isinstance(out["C"].error, DependencyFailedError)
    assert model.prompts == ["fails"]


async def test_a_spent_budget_starts_nothing_new_and_says_so(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    tasks = [
        TaskSpec("base", name="A"),
        TaskSpec("independent", name="B"),
        TaskSpec("needs A", name="C", depends_on=["A"]),
    ]
    model.add(text("a"), text("never"))
    out = await cc_execute_list(
        tasks, config, max_total_cost_usd=1e-6, stop_on_failure=False, max_concurrency=1
    )
    # A ran with --max-budget-usd capped at what the list had left, and spent it.
    assert isinstance(out.error, BudgetExceededError) and out.skipped == [1, 2]
    assert out.error is not out["A"].error and out.failed_step == 0
    b, c = out["B"].error, out["C"].error
    assert isinstance(b, StepSkippedError) and not isinstance(b, DependencyFailedError)
    assert "max_total_cost_usd" in str(b)
    assert isinstance(c, DependencyFailedError) and c.dependency == "A"
    assert model.prompts == ["base"]


async def test_cancelling_a_graph_ends_every_running_step(
    fake_cli: Callable[..., CCExecutorConfig], pidfile: Path, state_dir: Path
) -> None:
    tasks = [
        TaskSpec("hang a", name="A"),
        TaskSpec("hang b", name="B"),
        TaskSpec("hang c", name="C"),
        TaskSpec("never", name="D", depends_on=["A", "B"]),
    ]
    config = fake_cli("hang_silent", state_dir=state_dir)
    task = asyncio.create_task(cc_execute_list(tasks, config, max_concurrency=2, run_id="c"))
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
    assert _journal_rows(state_dir, "c") == [(0, "A", "started"), (1, "B", "started")]


_ORCHESTRATOR = """
import asyncio, json, os
from cc_executor import CCExecutorConfig, TaskSpec, cc_execute_list

config = CCExecutorConfig(**json.loads(os.environ["LIST_CONFIG"]))
tasks = [TaskSpec(**t) for t in json.loads(os.environ["LIST_TASKS"])]
asyncio.run(cc_execute_list(tasks, config, run_id="graph", max_concurrency=1))
"""


async def test_sigkill_in_the_middle_of_c_then_resume_restores_a_and_b(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path, state_dir: Path
) -> None:
    tasks = [
        {"prompt": "base", "name": "A"},
        {"prompt": "left", "name": "B", "depends_on": ["A"]},
        {"prompt": "right", "name": "C", "depends_on": ["A"]},
        {"prompt": "join", "name": "D", "depends_on": ["B", "C"]},
    ]
    # max_concurrency=1: A, then B, then C (lower index first), which hangs.
    model.add(text("a"), text("b"), hang(), text("c"), text("d"))
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
        deadline = time.monotonic() + 60
        while len(model.main_requests) < 3:
            assert orchestrator.returncode is None, "the orchestrator ended early"
            assert time.monotonic() < deadline, "step C never reached the model"
            await asyncio.sleep(0.02)
        clis = find_marked_processes(f"ANTHROPIC_BASE_URL={model.url}".encode())
        assert clis, "no CLI process found for step C"
    finally:
        orchestrator.send_signal(signal.SIGKILL)
        await orchestrator.wait()
    deadline = time.monotonic() + 15
    while any(process_state(pid) != "gone" for pid in clis):
        assert time.monotonic() < deadline, "the killed orchestrator's CLI kept running"
        await asyncio.sleep(0.05)
    assert model.prompts == ["base", "left", "right"]
    assert _journal_rows(state_dir, "graph") == [
        (0, "A", "success"),
        (1, "B", "success"),
        (2, "C", "started"),
    ]

    out = await cc_execute_list([TaskSpec(**t) for t in tasks], config, run_id="graph")
    assert out.success and out.restored == [0, 1], out.summary()
    assert [r.output for r in out] == ["a", "b", "c", "d"]
    # A and B were not asked again: only C (again) and D reached the model.
    assert model.prompts == ["base", "left", "right", "right", "join"]
    assert [s for _, _, s in _journal_rows(state_dir, "graph")] == ["success"] * 4


async def test_a_changed_step_reruns_it_and_what_depends_on_it(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    tasks = [
        TaskSpec("base", name="A"),
        TaskSpec("left", name="B", depends_on=["A"]),
        TaskSpec("right", name="C", depends_on=["A"]),
        TaskSpec("join", name="D", depends_on=["B"]),
    ]
    model.add(text("a"), text("b"), text("c"), text("d"))
    first = await cc_execute_list(tasks, config, run_id="g", max_concurrency=1)
    assert first.success
    changed = [*tasks[:1], TaskSpec("left, changed", name="B", depends_on=["A"]), *tasks[2:]]
    model.add(text("b2"), text("d2"))
    again = await cc_execute_list(changed, config, run_id="g", max_concurrency=1)
    assert again.success and again.restored == [0, 2]
    assert [r.output for r in again] == ["a", "b2", "c", "d2"]
    assert model.prompts[4:] == ["left, changed", "join"]


async def test_the_plan_from_suggest_execution_strategy_runs_as_is(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    plan = suggest_execution_strategy(
        ["Write notes.txt with a greeting", "Write todo.md", "Then summarise the above"]
    )
    assert [t.depends_on for t in plan.tasks] == [[], [], [0, 1]]
    model.add(text("one"), text("two"), text("three"))
    out = await cc_execute_plan(plan, config, max_concurrency=1)
    assert out.success and out.names == ["task 1", "task 2", "task 3"]
    assert out["task 3"].output == "three"
    assert model.prompts == [t.task for t in plan.tasks]
    # The plan's predicted timeouts are the steps' timeouts.
    assert [r.timeout_s for r in out] == [t.timeout_s for t in plan.tasks]
    # Its tasks given to cc_execute_list are the same graph.
    model.add(text("1"), text("2"), text("3"))
    again = await cc_execute_list(plan.tasks, config, max_concurrency=1)
    assert again.success and again.names == out.names
    assert model.prompts[3:] == [t.task for t in plan.tasks]


async def test_a_yaml_task_file_with_depends_on_runs_as_a_graph(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path
) -> None:
    listing = tmp_path / "tasks.yaml"
    listing.write_text(
        "tasks:\n"
        "  - {name: schema, prompt: design the schema}\n"
        "  - {name: api, prompt: write the api, depends_on: [schema]}\n"
        "  - {name: docs, prompt: write the docs, depends_on: [schema]}\n"
    )
    specs = load_task_list(listing)
    assert [s.depends_on for s in specs] == [(), ("schema",), ("schema",)]
    model.add(text("s"), text("x"), text("y"))
    out = await cc_execute_list(specs, config)
    assert out.success and model.prompts[0] == "design the schema"
    assert sorted(model.prompts[1:]) == ["write the api", "write the docs"]


def test_a_markdown_task_list_takes_depends_on_lines(tmp_path: Path) -> None:
    listing = tmp_path / "plan.md"
    listing.write_text(
        "# Plan\n\n"
        "Task 1: Create the schema\nWrite schema.sql.\n\n"
        "Task 2: Write the API\nDepends on: Task 1\nUse the schema.\n\n"
        "Task 3: Write the docs\n**Depends on:** 1, Task 2\n"
        "```\nDepends on: Task 9 (inside a fence: part of the prompt)\n```\n"
    )
    specs = load_task_list(listing)
    assert [s.depends_on for s in specs] == [
        (),
        ("Task 1: Create the schema",),
        ("Task 1: Create the schema", "Task 2: Write the API"),
    ]
    assert specs[1].prompt == "Write the API\n\nUse the schema."
    assert "Task 9 (inside a fence" in specs[2].prompt
    numbered = tmp_path / "numbered.md"
    numbered.write_text("1. Make a\n2. Make b\n   depends on: 1\n")
    assert [(s.name, s.depends_on) for s in load_task_list(numbered)] == [
        ("Task 1", ()),
        ("Task 2", ("Task 1",)),
    ]
    numbered.write_text("1. Make a\n2. Make b\n   depends on: 3\n")
    with pytest.raises(ConfigError, match="no task 3"):
        load_task_list(numbered)
