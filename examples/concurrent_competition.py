"""Three Claude Code instances solve the same problem at once, each in its own git
worktree; a test decides, and the best solution is merged into the repository.

    python examples/concurrent_competition.py          # offline: the real CLI, scripted models
    python examples/concurrent_competition.py --live   # the real model (needs credentials)
    python examples/concurrent_competition.py --keep   # keep its temp dir (else removed at exit)

`cc_execute_best_of` starts every attempt from the repository's checked-out commit on a
branch of its own (``cc-executor/<run id>/...``), in a worktree outside the repository,
so no attempt sees another's half-written files. When an attempt ends, its work is
committed on its branch and the test command runs in its worktree. The passing attempt
with the lowest cost (then the shortest run) wins and is merged into ``main``; the other
branches and every worktree are removed. Offline, each instance has its own scripted
model: one writes the naive recursion (too deep for the test), one a loop, and one a
loop with an off-by-one bug.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cc_executor import CCExecutorConfig, TaskSpec, cc_execute_best_of
from cc_executor.testing import ScriptedModel, text, tool_use

TASK = (
    "Write fib.py defining fib(n), which returns the n-th Fibonacci number "
    "(fib(0) == 0, fib(1) == 1). It must work for n up to 10,000. Check it with "
    "`python check_fib.py`."
)
LOOP = (
    "def fib(n):\n    a, b = 0, 1\n    for _ in range({}):\n        a, b = b, a + b\n    return a\n"
)
SOLUTIONS = {
    "A": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",  # naive recursion
    "B": LOOP.format("n"),  # a loop
    "C": LOOP.format("n - 1"),  # a loop, off by one
}
# The test every attempt's worktree is checked with (committed in the repository).
CHECK = """\
import sys

sys.setrecursionlimit(500)  # a solution must not recurse n levels deep
from fib import fib

got = [fib(n) for n in range(16)]
want = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610]
if got != want:
    n = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    sys.exit(f"wrong: fib({n}) = {got[n]}, expected {want[n]}")
try:
    assert len(str(fib(10_000))) == 2090
except RecursionError:
    sys.exit("too slow: fib(10000) recursed too deep")
print("correct")
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Example", "-c", "user.email=example@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_repo(root: Path) -> Path:
    """A git repository holding the test, on branch main."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "check_fib.py").write_text(CHECK)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "The test a solution must pass")
    return repo


def scripted_attempts(models: dict[str, ScriptedModel]) -> list[TaskSpec]:
    """Offline: one attempt per instance, each answered by its own scripted model, which
    writes its solution with the Bash tool (in the attempt's own worktree)."""
    attempts = []
    for name, solution in SOLUTIONS.items():
        escaped = solution.replace("\n", "\\n")  # printf %b turns \n back into newlines
        models[name] = ScriptedModel(
            [
                tool_use("Bash", {"command": f"printf '%b' '{escaped}' > fib.py"}),
                text(f"Instance {name}: wrote fib.py."),
            ]
        ).start()
        attempts.append(TaskSpec(TASK, name=name, env=models[name].env()))
    return attempts


async def main(live: bool) -> int:
    root = Path(tempfile.mkdtemp(prefix="cc-competition-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, root, True)
    if not live:
        print("Models: SCRIPTED (offline; the CLIs are real). Use --live for the real model.\n")
    repo = make_repo(root)
    config = CCExecutorConfig(
        cwd=repo,
        timeout=600 if live else 120,
        allowed_tools=["Bash"],
        state_dir=root / "state",  # the worktrees live under it, outside the repository
        save_transcript=False,
    )
    models: dict[str, ScriptedModel] = {}
    t0 = time.monotonic()
    try:
        out = await cc_execute_best_of(
            TASK if live else scripted_attempts(models),
            [sys.executable, "check_fib.py"],
            config,
            n=3,
            run_id="fib",
        )
    finally:
        for model in models.values():
            model.close()
    wall = time.monotonic() - t0
    runs = sum(a.result.duration_s for a in out.attempts)
    print(f"3 instances ran concurrently: {wall:.1f}s wall clock, {runs:.1f}s of runs in total\n")
    for attempt in out.attempts:
        r = attempt.result
        name = "ABC"[attempt.index]
        verdict = attempt.test_output.strip().splitlines()[-1] if attempt.test_output else "failed"
        cost = f"${r.total_cost_usd or 0:.4f}"
        print(f"instance {name}: {verdict:<40} on {r.branch}  run {r.duration_s:.1f}s  {cost}")
    if out.best is None:
        print("\nno correct solution; every branch kept:", ", ".join(out.branches))
        return 1
    winner = "ABC"[out.best.index]
    print(f"\nwinner: instance {winner} (passed the test), merged into {out.merged_into}")
    print(f"fib.py on main:\n{(repo / 'fib.py').read_text()}")
    print("git log:", " / ".join(git(repo, "log", "--format=%an: %s").strip().splitlines()))
    print("branches left:", git(repo, "branch", "--format=%(refname:short)").split())
    kept = "" if "--keep" in sys.argv else " (removed at exit; --keep keeps it)"
    print(f"repository in {repo}{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
