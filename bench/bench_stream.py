"""End to end over a large stream: cc_run (typed events + transcript) vs a bare
`readline` + `json.loads` loop, both reading the same fake CLI printing N MB.

    python bench/bench_stream.py [MB]      (default 200)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import fake_cli_wrapper, median

from cc_executor import cc_run


async def bare(cli: Path, env: dict[str, str]) -> float:
    import os

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
    count = 0
    while line := await proc.stdout.readline():
        json.loads(line)
        count += 1
    await proc.wait()
    return time.perf_counter() - t0


async def library(cli: Path, env: dict[str, str], transcripts: Path) -> float:
    t0 = time.perf_counter()
    result = await cc_run("task", cli_path=cli, env=env, transcript_dir=transcripts)
    assert result.success, result.error
    return time.perf_counter() - t0


async def main() -> None:
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    env = {"FAKE_CLI_MODE": "flood", "FAKE_CLI_BYTES": str(mb << 20)}
    with tempfile.TemporaryDirectory() as tmp:
        cli = fake_cli_wrapper(Path(tmp))
        bare_t, lib_t = [], []
        for _ in range(3):
            bare_t.append(await bare(cli, env))
            lib_t.append(await library(cli, env, Path(tmp) / "transcripts"))
    b, lib = median(bare_t), median(lib_t)
    print(f"{mb} MB stream of stream_event lines, median of 3")
    print(f"  bare readline + json.loads : {b:.2f} s  ({mb / b:.0f} MB/s)")
    print(f"  cc_run (typed + transcript): {lib:.2f} s  ({mb / lib:.0f} MB/s)")
    print(f"ratio cc_run/bare: {lib / b:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
