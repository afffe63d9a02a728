"""Planning scales: `suggest_execution_strategy` names only direct dependencies (a
compact answer, linear in the tasks), caps its input, and the MCP tools do their CPU
work off the event loop. The time it takes is measured in bench/bench_plan.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, ConfigError, suggest_execution_strategy
from cc_executor._predict import MAX_PLAN_TASKS
from cc_executor.mcp import create_server


def _mixed(n: int) -> list[str]:
    """Independent tasks, tasks sharing files, and tasks that refer back."""
    tasks = []
    for i in range(n):
        if i % 5 == 4:
            tasks.append(f"Then check the result of the previous work ({i})")
        elif i % 5 in (1, 3):
            tasks.append(f"Edit src/module_{i % 17}.py to handle case {i}")
        else:
            tasks.append(f"Write a short note number {i}")
    return tasks


def _ancestors(depends_on: list[list[int]]) -> list[set[int]]:
    seen: list[set[int]] = []
    for direct in depends_on:
        closure: set[int] = set(direct)
        for d in direct:
            closure |= seen[d]
        seen.append(closure)
    return seen


def test_two_thousand_tasks_get_a_compact_plan_of_direct_dependencies() -> None:
    chain = ["Implement the parser"] + [f"Then extend what step {i} built" for i in range(1999)]
    plan = suggest_execution_strategy(chain)
    assert [t.depends_on for t in plan.tasks] == [[]] + [[i] for i in range(1999)]
    assert len(plan.concurrent_groups) == 2000
    assert len(plan.model_dump_json()) < 2_000_000

    tasks = _mixed(2000)
    plan = suggest_execution_strategy(tasks)
    answer = plan.model_dump_json()
    assert len(answer) < 2_000_000
    depends_on = [t.depends_on for t in plan.tasks]
    assert sum(map(len, depends_on)) < 2 * len(tasks)  # linear, not every earlier task
    # The meaning is unchanged: what a task waited for before, it still waits for.
    closure = _ancestors(depends_on)
    for i, task in enumerate(tasks):
        if task.startswith("Then"):
            assert closure[i] == set(range(i)), i
        elif "src/" in task:
            same_file = {j for j in range(i) if tasks[j].split()[1] == task.split()[1]}
            assert same_file <= closure[i], i
        else:
            assert depends_on[i] == [], i
    stage = {i: n for n, group in enumerate(plan.concurrent_groups) for i in group}
    assert all(stage[d] < stage[i] for i, ds in enumerate(depends_on) for d in ds)
    assert json.loads(answer)["tasks"][4]["depends_on"] == [0, 1, 2, 3]


def test_too_many_tasks_is_a_config_error_before_any_work() -> None:
    assert MAX_PLAN_TASKS >= 10_000
    with pytest.raises(ConfigError) as info:
        suggest_execution_strategy(["say hi"] * (MAX_PLAN_TASKS + 1))
    assert info.value.field == "tasks"
    assert f"{MAX_PLAN_TASKS:,}" in str(info.value) and "in parts" in str(info.value)


async def test_mcp_strategy_tool_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """While the tool computes, the server's event loop keeps running other work.
    (get_task_complexity reads a bounded prefix of the prompt: its loop gaps on a
    20 MB prompt are in bench/bench_plan.py.)"""
    tool, arguments = "suggest_execution_strategy", {"tasks": _mixed(3000)}
    server = create_server(CCExecutorConfig(cwd=tmp_path, state_dir=None))
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    async def call() -> int:
        await asyncio.sleep(0)  # the ticker has started
        start = ticks
        result = await server.call_tool(tool, arguments)
        assert not getattr(result, "is_error", False), result
        done.set()
        return ticks - start

    ticking = asyncio.create_task(ticker())
    during = await call()
    await ticking
    assert during >= 5  # a blocking call lets the ticker run once at most


async def test_mcp_complexity_of_a_huge_prompt(tmp_path: Path) -> None:
    server = create_server(CCExecutorConfig(cwd=tmp_path, state_dir=None))
    result = await server.call_tool(
        "get_task_complexity", {"task": "refactor parser.py then test it " * 625_000}
    )
    content = getattr(result, "structured_content", None)
    assert content is not None and content["level"] == "complex", result
