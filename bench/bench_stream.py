"""End to end over a large stream: the library vs a bare `readline` + `json.loads` loop,
all reading the same fake CLI printing N MB of partial-message (`stream_event`) lines.

    python bench/bench_stream.py [MB] [ROUNDS]      (default 200 MB, 5 rounds)

Three runs per round, interleaved (the order alternates each round, so drift in the
machine's load hits all three alike):

- bare:      `create_subprocess_exec` + `readline` + `json.loads` on every line
- cc_run:    the library with a transcript (every byte written, masked), the typed events
             the outcome depends on, and `stream_event` lines read but typed only if read
- cc_stream: the same, with a consumer typing every event (`async for event in stream`)

Prints each round, then the paired ratios (library / bare of the same round) as
min / median / max, of wall time and of this process's CPU time (user + system; the
fake CLI's is not in it). The machine's load average is printed too: on a shared
machine the wall ratios move with the load, the CPU ratios much less.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import fake_cli_wrapper

from cc_executor import cc_run, cc_stream


async def bare(cli: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        "-p",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
        limit=256 << 20,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(b"task")
    proc.stdin.close()
    while line := await proc.stdout.readline():
        json.loads(line)
    await proc.wait()
    return time.perf_counter() - t0


async def library(cli: Path, env: dict[str, str], transcripts: Path) -> float:
    t0 = time.perf_counter()
    result = await cc_run("task", cli_path=cli, env=env, transcript_dir=transcripts)
    assert result.success, result.error
    return time.perf_counter() - t0


async def consumer(cli: Path, env: dict[str, str], transcripts: Path) -> float:
    t0 = time.perf_counter()
    count = 0
    async with cc_stream("task", cli_path=cli, env=env, transcript_dir=transcripts) as stream:
        async for event in stream:
            count += event.type is not None
    assert stream.result.success, stream.result.error
    return time.perf_counter() - t0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


async def main() -> None:
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    env = {"FAKE_CLI_MODE": "flood", "FAKE_CLI_BYTES": str(mb << 20)}
    times: dict[str, list[float]] = {"bare": [], "cc_run": [], "cc_stream": []}
    cpu: dict[str, list[float]] = {"bare": [], "cc_run": [], "cc_stream": []}
    print(f"{mb} MB stream of stream_event lines, {rounds} interleaved rounds")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        cli = fake_cli_wrapper(Path(tmp))
        transcripts = Path(tmp) / "transcripts"
        await cc_run("warm", cli_path=cli, env={"FAKE_CLI_MODE": "ok"}, transcript_dir=transcripts)
        runs = {
            "bare": lambda: bare(cli, env),
            "cc_run": lambda: library(cli, env, transcripts),
            "cc_stream": lambda: consumer(cli, env, transcripts),
        }
        for r in range(rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                c0 = cpu_s()
                times[name].append(await runs[name]())
                cpu[name].append(cpu_s() - c0)
            for path in transcripts.iterdir():  # 200 MB each: keep the disk free
                path.unlink()
            b = times["bare"][-1]
            print(
                f"  round {r + 1}: bare {b:.2f} s, cc_run {times['cc_run'][-1]:.2f} s "
                f"({times['cc_run'][-1] / b:.2f}x), cc_stream {times['cc_stream'][-1]:.2f} s "
                f"({times['cc_stream'][-1] / b:.2f}x)"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("wall seconds, min / median / max (CPU seconds of this process):")
    for name, values in times.items():
        print(
            f"  {name:9s} {spread(values)}  ({mb / statistics.median(values):.0f} MB/s median)"
            f"  (CPU {spread(cpu[name])})"
        )
    print("paired ratio to bare (same round), min / median / max:")
    for name in ("cc_run", "cc_stream"):
        walls = [t / b for t, b in zip(times[name], times["bare"], strict=True)]
        cpus = [t / b for t, b in zip(cpu[name], cpu["bare"], strict=True)]
        print(f"  {name:9s} wall {spread(walls)}   CPU {spread(cpus)}")


if __name__ == "__main__":
    asyncio.run(main())
