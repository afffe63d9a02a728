"""Containment cost per task: start `/bin/true` and end its task, directly
(`create_subprocess_exec`, what runs off Linux) and under the task supervisor
(fork server → supervisor → CLI, cgroup leaf where writable). Prints medians.

    python bench/bench_contain.py [N]      (default 30)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

from _common import median

from cc_executor._command import Command
from cc_executor._contain import _Direct, _Supervised, containment_mode


async def one(supervised: bool) -> tuple[float, float]:
    command = Command(argv=["/bin/true"], env=dict(os.environ), cwd=Path.cwd(), secrets=())
    t0 = time.perf_counter()
    if supervised:
        child = await _Supervised.start(command, uuid.uuid4().hex, limit=1 << 20)
    else:
        child = await _Direct.start(command, limit=1 << 20)
    started = time.perf_counter() - t0
    await child.stdout.read()
    await child.wait()
    t1 = time.perf_counter()
    await child.sweep(1.0)  # after a normal exit: end what the task left (nothing here)
    return started, time.perf_counter() - t1


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    await one(True)  # the fork server starts once per process
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(n):
        for supervised in (False, True):
            runs[supervised].append(await one(supervised))
    print(f"{n} runs each, /bin/true; containment here: {containment_mode()}")
    for supervised, label in ((False, "direct    "), (True, "supervised")):
        start = median([r[0] for r in runs[supervised]]) * 1000
        end = median([r[1] for r in runs[supervised]]) * 1000
        print(f"  {label}: start {start:.1f} ms, end after exit {end:.1f} ms")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
