"""Time the file snapshots add to one task: the walk before the run, the walk after it,
and the diff, on a tree of N files (default 100,000; target ≤ 1 s per task).

python bench/bench_snapshot.py [files] [repeats]

Two cases:
- typical: every file older than the racy window (50 ms), so size + mtime decide;
- worst: every file stamped at the task's start (as if a previous step had written
  all of them in its last 50 ms), so every one is hashed before and after.
Each repeat modifies, creates and deletes 100 files between the two walks, and
checks the result, so the diff is not empty.
"""

from __future__ import annotations

import asyncio
import os
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


def set_mtimes(paths: list[Path], when: float) -> None:
    for p in paths:
        os.utime(p, (when, when))


async def one_task(root: Path, paths: list[Path], round_: int) -> tuple[float, float, float]:
    tracker = FileTracker(root, [], enabled=True, ignore=DEFAULT_IGNORE)
    c0 = time.process_time()
    t0 = time.perf_counter()
    await tracker.start()
    before = time.perf_counter() - t0
    cpu = time.process_time() - c0
    # What the task does: modify 100, create 100, delete 100.
    for p in paths[round_ * 300 : round_ * 300 + 100]:
        p.write_bytes(b"changed, and longer than before" * 4)
    created = [root / f"new_{round_}_{i}.txt" for i in range(100)]
    for p in created:
        p.write_bytes(b"new")
    for p in paths[round_ * 300 + 100 : round_ * 300 + 200]:
        p.unlink()
    c1 = time.process_time()
    t1 = time.perf_counter()
    changes = await tracker.finish()
    after = time.perf_counter() - t1
    cpu += time.process_time() - c1
    assert len(changes.modified) == 100, len(changes.modified)
    assert len(changes.created) == 100 and len(changes.deleted) == 100
    # Restore the tree for the next round.
    for p in created:
        p.unlink()
    for p in paths[round_ * 300 + 100 : round_ * 300 + 200]:
        p.write_bytes(b"x" * 60)
    return before, after, cpu


async def run_case(
    root: Path, paths: list[Path], repeats: int, fresh: bool
) -> tuple[list[float], list[float]]:
    totals: list[float] = []
    cpus: list[float] = []
    for r in range(repeats):
        # "fresh": a second ahead, so every file is still racy when the walk starts.
        set_mtimes(paths, time.time() + 1 if fresh else time.time() - 3600)
        before, after, cpu = await one_task(root, paths, r)
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
        for name, fresh in (
            ("typical (files older than 50 ms)", False),
            ("worst (every file racy: hashed before and after)", True),
        ):
            print(f"  {name}:")
            totals, cpus = asyncio.run(run_case(root, paths, repeats, fresh))
            print(
                f"  -> added per task, median of {repeats}: {median(totals) * 1000:.0f} ms "
                f"(min {min(totals) * 1000:.0f}, max {max(totals) * 1000:.0f}); "
                f"CPU median {median(cpus) * 1000:.0f} ms"
            )


if __name__ == "__main__":
    main()
