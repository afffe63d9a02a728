"""Time isolation adds to one step of a list (isolation="worktree"): creating its
worktree and branch, committing its changes, removing the worktree; and the final merge
of two branches. A repository of N committed files (default 10,000); each repeat changes
10 files in the step's worktree. A plain `git worktree add` of the same repository is
timed beside it: checking out N files is what costs, and it depends on the disk.

python bench/bench_isolation.py [files] [repeats]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import median

from cc_executor._isolation import git, open_worktrees


def build_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    for i in range(files):
        d = repo / f"d{i // 100:04d}"
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:06d}.txt").write_bytes(b"x" * (50 + i % 50))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "files"]):
        subprocess.run(
            ["git", "-c", "user.name=b", "-c", "user.email=b@localhost", *args],
            cwd=repo,
            check=True,
        )
    return repo


async def measure(repo: Path, state: Path, repeats: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {
        "create": [],
        "commit+remove": [],
        "merge of 2": [],
        "plain git worktree add (for comparison)": [],
    }
    for r in range(repeats):
        # The same checkout by git alone, without the library: what the disk costs now.
        t0 = time.perf_counter()
        await git("worktree", "add", "-q", str(state / "plain"), "HEAD", cwd=repo)
        figures["plain git worktree add (for comparison)"].append(time.perf_counter() - t0)
        await git("worktree", "remove", "--force", str(state / "plain"), cwd=repo)
        run = await open_worktrees(repo, run_id=f"bench-{r}", state_dir=state, merge="branch")
        commits = []
        for k in range(2):
            t0 = time.perf_counter()
            tree = await run.start_step(k, f"s{k}", [], label="bench")
            t1 = time.perf_counter()
            for j in range(10):
                (tree.cwd / f"d{j:04d}" / f"new-{k}.txt").write_text("changed\n")
            commit = await run.finish_step(k, "bench step")
            t2 = time.perf_counter()
            assert commit is not None
            commits.append(commit)
            figures["create"].append(t1 - t0)
            figures["commit+remove"].append(t2 - t1)
        t0 = time.perf_counter()
        await run.final_commit(commits, "bench")
        figures["merge of 2"].append(time.perf_counter() - t0)
        await run.cleanup()
    return figures


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="cc-bench-isolation-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        repo = build_repo(root, files)
        print(f"repository of {files:,} files built in {time.perf_counter() - t0:.1f} s")
        figures = asyncio.run(measure(repo, root / "state", repeats))
    for name, values in figures.items():
        print(f"{name:>40}: median {median(values) * 1000:7.1f} ms  (n={len(values)})")


if __name__ == "__main__":
    main()
