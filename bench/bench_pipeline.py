"""Task-list overhead: a list of N instant fake-CLI steps (tests/fake_cli.py, mode `ok`).

Times, per step:
  (a) a bare `create_subprocess_exec` of the same fake-CLI executable, stdout
      read to the end (the cost of starting a process, which no library avoids);
  (b) `cc_run` of the same task, N times in a loop (half before (c), half after);
  (c) one `cc_execute_list` of N steps, journal on (two committed SQLite writes
      per step, WAL, synchronous=FULL);
  (d) the journal alone: N step starts + N step ends.

The headline figure is measured inside (c) itself, so machine drift between
phases cannot move it: the list's wall time minus the time its steps' runs
took (`TaskResult.duration_s`, process start to process tree gone), per step.
That is everything the list adds around a step: resolving the step, config,
budget checks, the two journal commits, callbacks, and cc_run's own setup.
(b) gets the same figure for a bare `cc_run` loop, for comparison.

    python bench/bench_pipeline.py [N]      (default 1000)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import FAKE_CLI, fake_cli_wrapper

from cc_executor import CCExecutorConfig, cc_execute_list, cc_run
from cc_executor._journal import Journal


async def bare(n: int, cli: Path, env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec(
            str(cli),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        out, _ = await proc.communicate(b"step")
        assert b'"result"' in out
    return time.perf_counter() - t0


async def runs(n: int, config: CCExecutorConfig) -> tuple[float, float]:
    """(wall time, sum of the runs' own duration_s)."""
    t0 = time.perf_counter()
    inside = 0.0
    for i in range(n):
        result = await cc_run(f"step {i}", config)
        assert result.success, result.error
        inside += result.duration_s
    return time.perf_counter() - t0, inside


async def task_list(n: int, config: CCExecutorConfig) -> tuple[float, float]:
    """(wall time, sum of the steps' own duration_s)."""
    t0 = time.perf_counter()
    out = await cc_execute_list([f"step {i}" for i in range(n)], config, run_id="bench")
    elapsed = time.perf_counter() - t0
    assert out.success and len(out) == n and not out.restored, out.error
    return elapsed, sum(r.duration_s for r in out)


async def journal_only(n: int, state_dir: Path, config: CCExecutorConfig) -> float:
    result = await cc_run("sample", config)
    journal = await Journal.open(state_dir)
    t0 = time.perf_counter()
    for i in range(n):
        await journal.start("journal-bench", i, None, "0" * 64, drop_later=True)
        await journal.finish("journal-bench", i, result)
    elapsed = time.perf_counter() - t0
    await journal.close()
    return elapsed


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "FAKE_CLI_MODE": "ok"}
        cli = fake_cli_wrapper(root)
        config = CCExecutorConfig(
            cli_path=cli,
            cwd=root,
            env={"FAKE_CLI_MODE": "ok"},
            transcript_dir=root / "transcripts",
            state_dir=root / "state",
        )
        await bare(5, cli, env, root)  # warm-up
        await runs(5, config)
        a = await bare(n, cli, env, root)
        b1, b1_inside = await runs(n // 2, config)
        c, c_inside = await task_list(n, config)
        b2, b2_inside = await runs(n - n // 2, config)
        d = await journal_only(n, root / "journal", config)
    b, b_inside = b1 + b2, b1_inside + b2_inside
    ms = 1000 / n
    print(f"{n} instant fake-CLI steps ({FAKE_CLI.name}, mode ok, via a /bin/sh wrapper)")
    print(f"  (a) bare process spawn + read : {a * ms:7.2f} ms/step")
    print(f"  (b) cc_run in a loop          : {b * ms:7.2f} ms/step")
    print(f"  (c) cc_execute_list (journal) : {c * ms:7.2f} ms/step")
    print(f"  (d) journal alone (2 commits) : {d * ms:7.2f} ms/step")
    print("overhead per step beyond the step's own run (wall - sum of duration_s):")
    print(f"  cc_execute_list: {(c - c_inside) * ms:.2f} ms   (target <= 10 ms)")
    print(f"  cc_run loop    : {(b - b_inside) * ms:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
