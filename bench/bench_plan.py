"""Planning at scale: `suggest_execution_strategy` and `get_task_complexity`.

- plan N tasks (a mix of independent tasks, tasks sharing files, tasks that refer
  back): seconds, answer size (JSON), sum of depends_on lengths; for N in 500,
  2,000, 10,000 (the cap);
- the MCP server (in process): how long the event loop is blocked while the
  planning tools run — the longest gap between ticks of a 1 ms ticker during a
  `suggest_execution_strategy` of 2,000 tasks and a `get_task_complexity` on a
  20 MB prompt (a blocked loop shows the whole call as one gap).

    python bench/bench_plan.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from cc_executor import CCExecutorConfig, suggest_execution_strategy
from cc_executor.mcp import create_server


def mixed(n: int) -> list[str]:
    tasks = []
    for i in range(n):
        if i % 5 == 4:
            tasks.append(f"Then check the result of the previous work ({i})")
        elif i % 5 in (1, 3):
            tasks.append(f"Edit src/module_{i % 17}.py to handle case {i}")
        else:
            tasks.append(f"Write a short note number {i}")
    return tasks


def plan_figures() -> None:
    print(f"{'tasks':>6}  {'seconds':>8}  {'answer':>10}  {'sum depends_on':>14}")
    for n in (500, 2000, 10_000):
        tasks = mixed(n)
        t0 = time.perf_counter()
        plan = suggest_execution_strategy(tasks)
        took = time.perf_counter() - t0
        size = len(plan.model_dump_json())
        edges = sum(len(t.depends_on) for t in plan.tasks)
        print(f"{n:>6}  {took:>8.3f}  {size / 1e6:>8.2f}MB  {edges:>14}")


async def longest_gap(tool: str, arguments: dict[str, Any], cwd: Path) -> tuple[float, float]:
    server = create_server(CCExecutorConfig(cwd=cwd, state_dir=None))
    done = asyncio.Event()
    gap = 0.0

    async def ticker() -> None:
        nonlocal gap
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gap = max(gap, now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await server.call_tool(tool, arguments)
    took = time.perf_counter() - t0
    done.set()
    await ticking
    return took, gap


async def loop_figures() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("suggest_execution_strategy", {"tasks": mixed(2000)}, "2,000 tasks"),
            (
                "get_task_complexity",
                {"task": "refactor parser.py then test it " * 625_000},
                "20 MB prompt",
            ),
        ]
        print(f"\n{'MCP tool':<28}  {'input':<12}  {'call s':>7}  {'longest loop gap s':>18}")
        for tool, arguments, label in cases:
            took, gap = await longest_gap(tool, arguments, Path(tmp))
            print(f"{tool:<28}  {label:<12}  {took:>7.2f}  {gap:>18.3f}")


if __name__ == "__main__":
    plan_figures()
    asyncio.run(loop_figures())
