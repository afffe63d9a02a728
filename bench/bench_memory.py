"""Peak memory growth of the Python process while a fake CLI streams N MB.

python bench/bench_memory.py [MB]      (default 500)
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
from pathlib import Path

from _common import fake_cli_wrapper

from cc_executor import cc_run


async def main() -> None:
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        cli = fake_cli_wrapper(Path(tmp))
        env = {"FAKE_CLI_MODE": "ok"}
        # Warm up: imports, first spawn, pydantic schemas.
        await cc_run("warm", cli_path=cli, env=env, transcript_dir=Path(tmp))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        env = {"FAKE_CLI_MODE": "flood", "FAKE_CLI_BYTES": str(mb << 20)}
        result = await cc_run("task", cli_path=cli, env=env, transcript_dir=Path(tmp))
        assert result.success, result.error
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        transcript = result.transcript_path
        assert transcript is not None
        size = transcript.stat().st_size
    print(f"streamed {mb} MB (transcript {size / 1e6:.0f} MB)")
    print(f"peak RSS before: {before / 1024:.1f} MB, after: {after / 1024:.1f} MB")
    print(f"peak memory growth: {(after - before) / 1024:.1f} MB")


if __name__ == "__main__":
    asyncio.run(main())
