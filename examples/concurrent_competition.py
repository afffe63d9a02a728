"""Three Claude Code instances solve the same problem at once; the results are compared.

    python examples/concurrent_competition.py          # offline: the real CLI, scripted models
    python examples/concurrent_competition.py --live   # the real model (needs credentials)
    python examples/concurrent_competition.py --keep   # keep its temp dir (else removed at exit)

Each instance is its own CLI process working in its own directory; `asyncio.gather`
runs them concurrently. The example then runs every solution against the same
test (correctness, then speed) and names a winner. Offline, each instance has its
own scripted model: one writes the naive recursion, one a loop, and one a loop
with an off-by-one bug.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cc_executor import CCExecutorConfig, TaskResult, cc_run
from cc_executor.testing import ScriptedModel, text, tool_use

TASK = (
    "Write fib.py defining fib(n), which returns the n-th Fibonacci number "
    "(fib(0) == 0, fib(1) == 1). Make it correct first, then fast."
)
LOOP = (
    "def fib(n):\n    a, b = 0, 1\n    for _ in range({}):\n        a, b = b, a + b\n    return a\n"
)
SOLUTIONS = {
    "A": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",  # naive recursion
    "B": LOOP.format("n"),  # a loop
    "C": LOOP.format("n - 1"),  # a loop, off by one
}
EXPECTED = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610]
# Run in a fresh interpreter inside the instance's directory: values, then the time of fib(24).
CHECK = (
    "import json, time; from fib import fib; values = [fib(n) for n in range(16)]; "
    "t = time.perf_counter(); fib(24); print(json.dumps([values, time.perf_counter() - t]))"
)


async def compete(name: str, workdir: Path, live: bool) -> tuple[str, Path, TaskResult]:
    """One contestant: its own directory, its own CLI process (and scripted model)."""
    if live:
        return name, workdir, await cc_run(TASK, CCExecutorConfig(cwd=workdir, timeout=600))
    script = [
        tool_use("Write", {"file_path": str(workdir / "fib.py"), "content": SOLUTIONS[name]}),
        text(f"Instance {name}: wrote fib.py."),
    ]
    with ScriptedModel(script) as model:
        config = model.config(cwd=workdir, timeout=120, save_transcript=False)
        return name, workdir, await cc_run(TASK, config)


def judge(workdir: Path) -> tuple[bool, float | None, str]:
    """(correct, seconds for fib(24), note), by running the solution in a subprocess."""
    if not (workdir / "fib.py").exists():
        return False, None, "no fib.py"
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=workdir, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        return False, None, proc.stderr.strip().splitlines()[-1]
    values, seconds = json.loads(proc.stdout)
    if values != EXPECTED:
        n = next(i for i, (a, b) in enumerate(zip(values, EXPECTED, strict=True)) if a != b)
        return False, seconds, f"wrong: fib({n}) = {values[n]}, expected {EXPECTED[n]}"
    return True, seconds, "correct"


async def main(live: bool) -> int:
    root = Path(tempfile.mkdtemp(prefix="cc-competition-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, root, True)
    if not live:
        print("Models: SCRIPTED (offline; the CLIs are real). Use --live for the real model.\n")
    t0 = time.monotonic()
    for name in "ABC":
        (root / name).mkdir()
    entries = await asyncio.gather(*(compete(n, root / n, live) for n in "ABC"))
    wall = time.monotonic() - t0
    print(f"3 instances ran concurrently: {wall:.1f}s wall clock, ", end="")
    print(f"{sum(r.duration_s for _, _, r in entries):.1f}s of runs in total\n")

    scores = []
    for name, workdir, result in entries:
        correct, seconds, note = judge(workdir) if result.success else (False, None, "failed")
        took = f"fib(24) in {seconds * 1e6:9,.0f} µs" if seconds is not None else " " * 22
        cost = f"${result.total_cost_usd or 0:.4f}"
        print(f"instance {name}: {note:<36} {took}  run {result.duration_s:.1f}s  {cost}")
        if correct and seconds is not None:
            scores.append((seconds, name))
    if not scores:
        print("\nno correct solution")
        return 1
    seconds, winner = min(scores)
    print(f"\nwinner: instance {winner} (correct, fastest: {seconds * 1e6:,.0f} µs)")
    kept = "" if "--keep" in sys.argv else " (removed at exit; --keep keeps them)"
    print(f"solutions in {root}{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
