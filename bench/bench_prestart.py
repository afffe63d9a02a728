"""Wall time per step of a 20-step list of one-turn tasks, real CLI + scripted model:

  (a) bare: a `create_subprocess_exec` + `json.loads` loop, one CLI after another;
  (b) `cc_execute_list(..., prestart=False)`: each step's CLI spawned with its prompt;
  (c) `cc_execute_list(...)` (prestart=True, the default): step N+1's CLI spawned
      while step N runs.

The three run interleaved, in a rotating order, ROUNDS times; each round gives one
per-step wall time for each (the sequence's wall / STEPS) and the paired ratios
(b)/(a) and (c)/(a) of that round. Prints min / median / max over the rounds.

    python bench/bench_prestart.py [ROUNDS] [STEPS]      (default 5 rounds of 20 steps)

The library runs with everything on (transcripts, file snapshots, journal, history,
the task supervisor); the machine's load average is printed before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _common import median

from cc_executor import cc_execute_list
from cc_executor._command import find_cli
from cc_executor.config import CCExecutorConfig
from cc_executor.testing import ScriptedModel, text

ARGS = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
ARGS += ["--permission-mode", "acceptEdits", "--setting-sources="]


async def bare(cli: str, env: dict[str, str], cwd: Path, steps: int) -> float:
    t0 = time.perf_counter()
    for i in range(steps):
        proc = await asyncio.create_subprocess_exec(
            cli,
            *ARGS,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
            cwd=cwd,
            limit=64 << 20,
        )
        assert proc.stdin and proc.stdout
        proc.stdin.write(f"say hello {i}".encode())
        proc.stdin.close()
        answer = None
        while line := await proc.stdout.readline():
            event = json.loads(line)
            if event.get("type") == "result":
                answer = event["result"]
        await proc.wait()
        assert answer == "hello", answer
    return (time.perf_counter() - t0) / steps


async def listed(config: CCExecutorConfig, steps: int, *, prestart: bool) -> float:
    t0 = time.perf_counter()
    out = await cc_execute_list([f"say hello {i}" for i in range(steps)], config, prestart=prestart)
    wall = time.perf_counter() - t0
    assert out.success and [r.output for r in out] == ["hello"] * steps, out.summary()
    used = sum(r.prestarted_at is not None for r in out)
    assert used == (steps - 1 if prestart else 0), f"{used} steps ran pre-started"
    return wall / steps


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def spread(values: list[float], unit: float = 1000, fmt: str = "{:.0f}") -> str:
    return " / ".join(fmt.format(v * unit) for v in (min(values), median(values), max(values)))


async def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    cli = find_cli(CCExecutorConfig())
    print(f"load average before: {load()}")
    with ScriptedModel() as model, tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp) / "work"
        cwd.mkdir()
        os.environ["CC_EXECUTOR_HOME"] = str(Path(tmp) / "home")
        env = model.env()
        model.add(*[text("hello") for _ in range((3 * rounds + 3) * steps)])
        config = CCExecutorConfig(
            env=env, cwd=cwd, transcript_dir=Path(tmp) / "t", state_dir=Path(tmp) / "state"
        )
        runs: dict[str, Callable[[], Awaitable[float]]] = {
            "bare": lambda: bare(cli, env, cwd, steps),
            "fresh": lambda: listed(config, steps, prestart=False),
            "prestart": lambda: listed(config, steps, prestart=True),
        }
        for run in runs.values():  # warm-up: page cache, first-run files in HOME
            await run()
        times: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:  # rotating order
                times[name].append(await runs[name]())
            print(
                f"round {r + 1}: per step bare {times['bare'][-1] * 1000:.0f} ms, "
                f"fresh {times['fresh'][-1] * 1000:.0f} ms, "
                f"prestart {times['prestart'][-1] * 1000:.0f} ms (load {load()})"
            )
    fresh = [f / b for f, b in zip(times["fresh"], times["bare"], strict=True)]
    pre = [p / b for p, b in zip(times["prestart"], times["bare"], strict=True)]
    print(f"\n{rounds} rounds of {steps} one-turn steps, real CLI {cli}, scripted model")
    print("per step, min / median / max over rounds:")
    print(f"  bare create_subprocess_exec + json.loads : {spread(times['bare'])} ms")
    print(f"  cc_execute_list, prestart=False          : {spread(times['fresh'])} ms")
    print(f"  cc_execute_list, prestart=True (default) : {spread(times['prestart'])} ms")
    print("paired ratios to bare (same round), min / median / max:")
    print(f"  prestart=False : {spread(fresh, 1, '{:.3f}')}")
    print(f"  prestart=True  : {spread(pre, 1, '{:.3f}')}   (target <= 0.75)")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    asyncio.run(main())
