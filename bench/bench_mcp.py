"""The MCP server's own cost, seen from the official MCP client over stdio:

- start: spawning `python -m cc_executor.mcp` until `initialize` has returned;
- a read-only call: `get_task_complexity` round trip;
- execute_task vs cc_execute: the same one-turn task (real CLI, scripted model)
  through the server and through the library in this process, interleaved.

Prints medians.

    python bench/bench_mcp.py [N]      (default 9)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median
from mcp import ClientSession, StdioServerParameters, stdio_client

from cc_executor import cc_execute
from cc_executor.testing import ScriptedModel, text


def params(env: dict[str, str], cwd: Path) -> StdioServerParameters:
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "cc_executor.mcp", "--transcript-dir", str(cwd / "transcripts")],
        env={
            **env,
            "PYTHONPATH": pythonpath,
            "CC_EXECUTOR_CLI": os.environ.get("CC_EXECUTOR_CLI", "claude"),
        },
        cwd=cwd,
    )


async def start_once(env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    async with stdio_client(params(env, cwd)) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            took = time.perf_counter() - t0
    return took


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    with ScriptedModel() as model, tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = model.env()
        model.add(*[text("hello") for _ in range(2 * n + 2)])
        starts = [await start_once(env, cwd) for _ in range(n)]
        calls, served, direct = [], [], []
        async with stdio_client(params(env, cwd)) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                await session.call_tool("execute_task", {"task": "say hello"})  # warm-up
                await cc_execute("say hello", env=env, cwd=cwd, transcript_dir=cwd / "t")
                for _ in range(n):
                    t0 = time.perf_counter()
                    await session.call_tool("get_task_complexity", {"task": "Fix bug 42"})
                    calls.append(time.perf_counter() - t0)
                for _ in range(n):  # interleaved, so drift hits both alike
                    t0 = time.perf_counter()
                    result = await session.call_tool("execute_task", {"task": "say hello"})
                    served.append(time.perf_counter() - t0)
                    assert not result.is_error, result
                    t0 = time.perf_counter()
                    await cc_execute("say hello", env=env, cwd=cwd, transcript_dir=cwd / "t")
                    direct.append(time.perf_counter() - t0)
    s, d = median(served), median(direct)
    print(f"{n} runs each, the official MCP client over stdio")
    print(f"  server start → initialized     : median {median(starts) * 1000:.0f} ms")
    print(f"  get_task_complexity round trip : median {median(calls) * 1000:.1f} ms")
    print(f"  execute_task (one-turn task)   : median {s * 1000:.0f} ms")
    print(f"  cc_execute in-process (same)   : median {d * 1000:.0f} ms")
    print(f"  server overhead per task       : {(s - d) * 1000:+.0f} ms ({s / d:.3f}x)")


if __name__ == "__main__":
    asyncio.run(main())
