"""Time the file change detection adds to one task, on a tree of N files (default
100,000; target ≤ 1 s per task): snapshot mode (the walk before the run, the walk after
it, and the comparison) and git mode (a tree object before and after through a
temporary index, `git diff-tree` between them, the unified diff, and the walk of what
git ignores).

python bench/bench_snapshot.py [files] [repeats]

Snapshot mode (snapshot_files="walk"), two cases:
- typical: every file older than the racy window (50 ms), so size + mtime decide;
- worst: every file stamped at the task's start (as if a previous step had written
  all of them in its last 50 ms), so every one is hashed before and after.
Git mode (snapshot_files="auto" in a repository), two cases:
- committed: the tree committed, so the repository's index knows every file;
- untracked: the same files never added, so every task hashes all of them.
Each repeat modifies, creates and deletes 100 files between the two walks, and
checks the result, so the diff is not empty.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median

from cc_executor._snapshot import FileTracker

DIRS_PER_LEVEL = 32
DEFAULT_IGNORE = (".git", "node_modules", "__pycache__", ".venv")


def build_tree(root: Path, files: int) -> list[Path]:
    """`files` small files (50-100 bytes), ~100 per directory, two levels deep."""
    paths: list[Path] = []
    per_dir = 100
    for i in range(files):
        d = root / f"d{(i // per_dir) // DIRS_PER_LEVEL:03d}" / f"e{(i // per_dir):04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i:06d}.txt"
        p.write_bytes(b"x" * (50 + i % 50))
        paths.append(p)
    return paths


def cpu_s() -> float:
    """CPU seconds of this process and of the children it waited for (git)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def set_mtimes(paths: list[Path], when: float) -> None:
    for p in paths:
        os.utime(p, (when, when))


async def one_task(
    root: Path, paths: list[Path], round_: int, mode: str
) -> tuple[float, float, float]:
    tracker = FileTracker(root, [], enabled=mode, ignore=DEFAULT_IGNORE)  # type: ignore[arg-type]
    c0 = cpu_s()
    t0 = time.perf_counter()
    await tracker.start()
    before = time.perf_counter() - t0
    cpu = cpu_s() - c0
    # What the task does: modify 100, create 100, delete 100.
    for p in paths[round_ * 300 : round_ * 300 + 100]:
        # New content each time: git compares content, a rewrite of the same bytes is no change.
        p.write_bytes(b"changed, and longer than before %d" % time.monotonic_ns() * 4)
    created = [root / f"new_{round_}_{i}.txt" for i in range(100)]
    for p in created:
        p.write_bytes(b"new")
    for p in paths[round_ * 300 + 100 : round_ * 300 + 200]:
        p.unlink()
    c1 = cpu_s()
    t1 = time.perf_counter()
    changes = await tracker.finish()
    after = time.perf_counter() - t1
    cpu += cpu_s() - c1
    assert len(changes.modified) == 100, len(changes.modified)
    assert len(changes.created) == 100 and len(changes.deleted) == 100
    assert (tracker.diff is not None) == (mode == "auto"), tracker.diff
    # Restore the tree for the next round.
    for p in created:
        p.unlink()
    for p in paths[round_ * 300 + 100 : round_ * 300 + 200]:
        p.write_bytes(b"x" * 60)
    return before, after, cpu


async def run_case(
    root: Path, paths: list[Path], repeats: int, fresh: bool, mode: str = "walk"
) -> tuple[list[float], list[float]]:
    totals: list[float] = []
    cpus: list[float] = []
    for r in range(repeats):
        # "fresh": a second ahead, so every file is still racy when the walk starts.
        # Git mode: the files stay as the repository's index recorded them (a new mtime
        # on every file would make git hash each one again, as after a fresh checkout).
        if mode == "walk":
            set_mtimes(paths, time.time() + 1 if fresh else time.time() - 3600)
        before, after, cpu = await one_task(root, paths, r, mode)
        totals.append(before + after)
        cpus.append(cpu)
        print(
            f"    run {r + 1}: before {before * 1000:5.0f} ms  after+diff {after * 1000:5.0f} ms"
            f"  (CPU {cpu * 1000:5.0f} ms)"
        )
    return totals, cpus


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory(prefix="cc_snapshot_bench_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        paths = build_tree(root, files)
        # An ignored directory with many files costs nothing: it is never opened.
        build_tree(root / "node_modules", files // 10)
        took = time.perf_counter() - t0
        print(f"tree: {files} files (+{files // 10} in node_modules) in {took:.1f} s")
        cases = [
            ("snapshot mode, typical (files older than 50 ms)", False, None),
            ("snapshot mode, worst (every file racy: hashed before and after)", True, None),
            ("git mode, committed (the index knows every file)", False, "commit"),
            ("git mode, untracked (every file hashed each task)", False, "untracked"),
        ]
        for name, fresh, repo in cases:
            if repo is not None:
                set_mtimes(paths, time.time() - 3600)
                git_repo(root, commit=repo == "commit")
            print(f"  {name}:")
            mode = "walk" if repo is None else "auto"
            totals, cpus = asyncio.run(run_case(root, paths, repeats, fresh, mode))
            print(
                f"  -> added per task, median of {repeats}: {median(totals) * 1000:.0f} ms "
                f"(min {min(totals) * 1000:.0f}, max {max(totals) * 1000:.0f}); "
                f"CPU median {median(cpus) * 1000:.0f} ms"
            )


def git_repo(root: Path, *, commit: bool) -> None:
    """`root` as a fresh repository; with `commit`, every file committed."""
    subprocess.run(["rm", "-rf", str(root / ".git")], check=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    t0 = time.perf_counter()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    (root / ".gitignore").write_text("node_modules/\n")
    if commit:
        subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", "tree"], cwd=root, check=True, env=env)
    print(
        f"  (git repository {'committed' if commit else 'created'} in "
        f"{time.perf_counter() - t0:.1f} s)"
    )


if __name__ == "__main__":
    main()
