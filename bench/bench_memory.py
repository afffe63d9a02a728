"""Peak memory growth of the Python process while a fake CLI streams N MB.

    python bench/bench_memory.py [MB]          many ordinary lines (default 500 MB)
    python bench/bench_memory.py --line [MB]   one line of MB (default 100 MB): the
                                               result's text, parsed and kept as output

Growth is the process's peak RSS (`ru_maxrss`) after the run minus before it, after a
warm-up run (imports, first spawn, pydantic schemas). Run each case in a fresh process:
the peak only goes up. For one line, the least a run can hold at once is the line and
the text parsed out of it, 2x the line.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
from pathlib import Path

from _common import fake_cli_wrapper

from cc_executor import cc_run


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def main() -> None:
    args = sys.argv[1:]
    one_line = bool(args) and args[0] == "--line"
    if one_line:
        args = args[1:]
    mb = int(args[0]) if args else (100 if one_line else 500)
    with tempfile.TemporaryDirectory() as tmp:
        cli = fake_cli_wrapper(Path(tmp))
        await cc_run("warm", cli_path=cli, env={"FAKE_CLI_MODE": "ok"}, transcript_dir=Path(tmp))
        before = peak_mib()
        mode = "big_line" if one_line else "flood"
        env = {"FAKE_CLI_MODE": mode, "FAKE_CLI_BYTES": str(mb << 20)}
        result = await cc_run("task", cli_path=cli, env=env, transcript_dir=Path(tmp))
        assert result.success, result.error
        after = peak_mib()
        transcript = result.transcript_path
        assert transcript is not None
        size = transcript.stat().st_size
        if one_line:
            assert len(result.output) == mb << 20
    growth = after - before
    what = f"one line of {mb} MiB" if one_line else f"{mb} MiB of lines"
    print(f"streamed {what} (transcript {size / 2**20:.0f} MiB)")
    print(f"peak RSS before: {before:.1f} MiB, after: {after:.1f} MiB")
    print(
        f"peak memory growth: {growth:.1f} MiB"
        + (f" = {growth / mb:.2f}x the line" if one_line else "")
    )


if __name__ == "__main__":
    asyncio.run(main())
