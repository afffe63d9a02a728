"""Isolated steps of a task list: each step works in its own git worktree
(``isolation="worktree"``) or its own copy of the directory (``isolation="copy"``).

Worktree mode, for a list whose `cwd` is inside a git work tree:

- At the start (`open_worktrees`) the repository, its checked-out branch and commit are
  read; a work tree with uncommitted changes or untracked files is a `ConfigError` naming
  them (a step would not see them, and the final merge could overwrite them); no commit
  yet is one too. Leftover worktrees of the same run id (a crash) are removed first.
- A step (`WorktreeRun.start_step`) gets a worktree on its own branch
  ``cc-executor/<run id>/<n>-<name>``, outside `cwd` (``<state_dir>/worktrees/<run id>/``, or
  a folder under the system temp dir when `state_dir` is none or inside the repository),
  created from the starting commit or from its bases' commits merged one after another.
  A merge that conflicts is aborted, the worktree and the branch removed, and
  `MergeConflict` raised naming the files in conflict.
- When the step ends (`WorktreeRun.finish_step`) every change in its worktree (``git add -A``:
  ignored files are not committed) is committed on its branch, author and message from
  the library (step, run id, execution uuid), and the worktree is removed. No change: no
  commit (the branch stays at its base).
- When the list ends (`WorktreeRun.finish_list`): the final state is the merge of the
  given commits; on success it is merged into the starting branch in `cwd` (``"auto"``:
  computed in a temporary worktree first, so `cwd` only ever sees a fast-forward to a
  finished merge) or left on ``cc-executor/<run id>/result`` (``"branch"``).

Every git command is spawned with `asyncio.create_subprocess_exec` (no shell), with the
user's global and system git config ignored, hooks off, no signing, no pager or prompt,
and the library as author and committer: the user's setup cannot make a step's commit
fail or run code. The repository's own config (``.git/config``) still applies.

Copy mode (no git needed): each step works in a copy of `cwd` (the `snapshot_ignore`
names skipped, ``.git`` always), under ``<state_dir>/copies/<run id>/`` (or the temp
folder); a step with one base starts from a copy of its base's copy, with several from a
copy of `cwd` with each base's changes laid over it (the same path changed by two bases
differently: `MergeConflict`). Copies are kept, nothing is merged back: each step's
`TaskResult.workdir` names its copy and its ``files_*`` lists its changes there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import filecmp
import hashlib
import os
import re
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._log import logger
from ._snapshot import ALWAYS_IGNORED
from .errors import ConfigError, MergeConflictError
from .result import TaskResult

if TYPE_CHECKING:
    from ._models import TaskListResult, TaskSpec
    from .config import CCExecutorConfig

__all__ = [
    "BRANCH_PREFIX",
    "CopyRun",
    "Delivery",
    "GitError",
    "ListIsolation",
    "MergeConflict",
    "NotEntered",
    "StepTree",
    "WorktreeRun",
    "branch_prefix",
    "check_isolated_step",
    "conflict_result",
    "git",
    "open_copies",
    "open_worktrees",
]

BRANCH_PREFIX = "cc-executor/"
AUTHOR = ("cc_executor", "cc_executor@localhost")
# -c options on every git call: nothing of the user's setup runs or asks.
_GIT_OPTIONS = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "tag.gpgSign=false",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "core.editor=true",
    "-c",
    "merge.autoStash=false",
    "-c",
    "rebase.autoStash=false",
    "-c",
    "advice.detachedHead=false",
)
_LISTED = 10  # files named in a message, at most


class GitError(Exception):
    """A git command failed; `stderr` holds what it said."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} exited with {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


class NotEntered(Exception):
    """A step's isolated folder could not be made: the step fails without running, as a
    `TaskFailedError` (git failed: a full disk, a commit gone)."""

    error_type = "TaskFailedError"

    def fields(self) -> dict[str, Any]:
        return {}


class MergeConflict(NotEntered):
    """Merging the bases of a step (or the final state) conflicted; `files` are in conflict."""

    error_type = "MergeConflictError"

    def __init__(self, message: str, files: list[str]) -> None:
        super().__init__(message)
        self.files = files

    def fields(self) -> dict[str, Any]:
        return {"files": self.files}


def git_env() -> dict[str, str]:
    """The environment of every git call: the caller's, minus its GIT_* variables (a
    GIT_DIR or GIT_INDEX_FILE set for another repository would redirect every command),
    plus the library's identity and switches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=AUTHOR[0],
        GIT_AUTHOR_EMAIL=AUTHOR[1],
        GIT_COMMITTER_NAME=AUTHOR[0],
        GIT_COMMITTER_EMAIL=AUTHOR[1],
        GIT_PAGER="cat",
        LC_ALL="C",
        LANGUAGE="C",
    )
    return env


async def git(*args: str, cwd: Path, check: bool = True) -> tuple[int, str, str]:
    """Run ``git <args>`` in `cwd`: (exit status, stdout, stderr). `check`: raise
    `GitError` on a non-zero status. FileNotFoundError when git is not installed."""
    proc = await asyncio.create_subprocess_exec(
        "git",
        *_GIT_OPTIONS,
        *args,
        cwd=cwd,
        env=git_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:  # cancelled: never leave a git process behind
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    code = proc.returncode
    assert code is not None
    stdout = out.decode("utf-8", "surrogateescape")
    stderr = err.decode("utf-8", "surrogateescape")
    if check and code != 0:
        raise GitError(args, code, stderr)
    return code, stdout, stderr


# A lock lives while someone holds or awaits it; then it goes (loops come and go).
_REPO_LOCKS: weakref.WeakValueDictionary[tuple[int, Path], asyncio.Lock] = (
    weakref.WeakValueDictionary()
)


def _repo_lock(repo: Path) -> asyncio.Lock:
    """The lock of `repo` in the running event loop (a lock belongs to one loop)."""
    key = (id(asyncio.get_running_loop()), repo)
    lock = _REPO_LOCKS.get(key)
    if lock is None:
        lock = _REPO_LOCKS[key] = asyncio.Lock()
    return lock


async def _to_the_end(awaitable: Awaitable[None]) -> None:
    """Await `awaitable` to its end, shielded from anyio's and asyncio's cancellation
    alike (cleanup must finish); a cancellation that arrived meanwhile is re-raised."""
    import anyio

    from ._run import uncancellable

    with anyio.CancelScope(shield=True):
        await uncancellable(awaitable)


def branch_prefix(run_id: str) -> str:
    """``cc-executor/<run id>/``: every branch of the run starts with it."""
    return f"{BRANCH_PREFIX}{_slug(run_id) or 'run'}/"


def _slug(text: str) -> str:
    """`text` as a ref name component: letters, digits, ``.``, ``_``, ``-``; no ``..``,
    no leading ``.``/``-``, no trailing ``.lock``, at most 60 characters."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    slug = re.sub(r"\.{2,}", ".", slug).strip(".-")[:60].strip(".-")
    return slug[: -len(".lock")] if slug.endswith(".lock") else slug


def step_slug(index: int, name: str | None) -> str:
    """A step's folder and branch name: ``<n>-<name>`` (n from 1), or ``step-<n>``."""
    slug = _slug(name or "")
    return f"{index + 1}-{slug}" if slug else f"step-{index + 1}"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def isolation_home(state_dir: Path | None, repo: Path, kind: str, run_id: str) -> Path:
    """Where a run keeps its step folders: ``<state_dir>/<kind>/<run id>``, or a folder of
    the system temp dir when there is no `state_dir` or it lies inside `repo`."""
    run = _slug(run_id) or "run"
    if state_dir is not None:
        base = state_dir.expanduser().resolve()
        if not _inside(base, repo) and not _inside(repo, base):
            return base / kind / run
    digest = hashlib.sha256(str(repo).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return Path(tempfile.gettempdir()).resolve() / f"cc-executor-{kind}" / digest / run


def _listed(files: Sequence[str]) -> str:
    shown = ", ".join(files[:_LISTED])
    return shown + (f" and {len(files) - _LISTED} more" if len(files) > _LISTED else "")


# ------------------------------------------------------------------------------ worktrees


@dataclass
class StepTree:
    """A step's isolated folder: `cwd` is where its CLI runs (the list's cwd inside it)."""

    path: Path
    cwd: Path
    branch: str | None = None
    base: str | None = None
    """The commit the worktree was created at (after merging its bases)."""


@dataclass
class WorktreeRun:
    """The git side of one isolated list run (see the module docstring)."""

    repo: Path
    """Top level of the work tree holding the list's cwd."""
    subdir: Path
    """The list's cwd relative to `repo`."""
    start_commit: str
    start_branch: str | None
    """The branch checked out at the start (None: a detached HEAD)."""
    run_id: str
    home: Path
    merge: str = "auto"
    trees: dict[int, StepTree] = field(default_factory=dict)

    async def _git(self, *args: str, cwd: Path, check: bool = True) -> tuple[int, str, str]:
        """`git`, one command at a time per repository in this process: concurrent
        `git worktree add`s (and ref updates) in one repository race on its
        administrative files (two lists in one repository included)."""
        async with _repo_lock(self.repo):
            return await git(*args, cwd=cwd, check=check)

    @property
    def prefix(self) -> str:
        return branch_prefix(self.run_id)

    @property
    def result_branch(self) -> str:
        return self.prefix + "result"

    async def cleanup(self) -> None:
        """Remove every worktree of this run (left by a crash, or still open) and prune."""
        _, listing, _ = await self._git("worktree", "list", "--porcelain", cwd=self.repo)
        for block in listing.split("\n\n"):
            lines = dict(
                (line.split(" ", 1) + [""])[:2] for line in block.splitlines() if line.strip()
            )
            path, branch = lines.get("worktree"), lines.get("branch", "")
            if path is None or Path(path) == self.repo:
                continue
            ours = branch.startswith("refs/heads/" + self.prefix)
            if ours or _inside(Path(path), self.home):
                logger.info("isolation: removing the worktree {} ({})", path, branch or "detached")
                await self._git(
                    "worktree", "remove", "--force", "--force", path, cwd=self.repo, check=False
                )
        if self.home.exists():
            await asyncio.to_thread(shutil.rmtree, self.home, True)
        await self._git("worktree", "prune", cwd=self.repo, check=False)
        self.trees.clear()

    async def has_commit(self, commit: str | None) -> bool:
        if not commit:
            return False
        code, _, _ = await self._git(
            "cat-file", "-e", f"{commit}^{{commit}}", cwd=self.repo, check=False
        )
        return code == 0

    async def start_step(
        self, index: int, name: str | None, bases: Sequence[str], *, label: str
    ) -> StepTree:
        """A worktree for step `index` on its branch, at the merge of the commits `bases`
        (none: the starting commit). Raises `MergeConflict` (nothing left behind)."""
        slug = step_slug(index, name)
        branch = self.prefix + slug
        path = self.home / slug
        if path.exists():  # a leftover of a crash that `cleanup` could not see
            await self._git(
                "worktree", "remove", "--force", "--force", str(path), cwd=self.repo, check=False
            )
            await asyncio.to_thread(shutil.rmtree, path, True)
        path.parent.mkdir(parents=True, exist_ok=True)
        first = bases[0] if bases else self.start_commit
        await self._git("worktree", "add", "--quiet", "-B", branch, str(path), first, cwd=self.repo)
        tree = StepTree(path=path, cwd=path / self.subdir, branch=branch)
        self.trees[index] = tree
        try:
            for other in bases[1:]:
                code, _, err = await self._git(
                    "merge", "--no-ff", "--no-edit", "-m",
                    f"cc_executor: merge {other[:12]} for step {index + 1} ({label})",
                    other, cwd=path, check=False,
                )  # fmt: skip
                if code != 0:
                    _, out, _ = await self._git(
                        "diff", "--name-only", "--diff-filter=U", "-z", cwd=path, check=False
                    )
                    files = sorted(f for f in out.split("\0") if f)
                    await self._git("merge", "--abort", cwd=path, check=False)
                    raise MergeConflict(
                        f"step {index + 1} ({label}) did not run: merging the work of the steps "
                        f"it depends on conflicts in {_listed(files) or err.strip()}",
                        files,
                    )
            _, head, _ = await self._git("rev-parse", "HEAD", cwd=path)
            tree.base = head.strip()
            tree.cwd.mkdir(parents=True, exist_ok=True)
        except BaseException:
            await self.drop_step(index, delete_branch=True)
            raise
        return tree

    async def finish_step(self, index: int, message: str, *, keep: bool = False) -> str | None:
        """Commit every change in step `index`'s worktree on its branch (none: no commit),
        remove the worktree (unless `keep`: `drop_step` later); the branch's commit (None
        if committing failed, logged)."""
        tree = self.trees[index]
        try:
            await self._git("add", "-A", cwd=tree.path)
            code, _, _ = await self._git("diff", "--cached", "--quiet", cwd=tree.path, check=False)
            if code != 0:
                await self._git("commit", "--quiet", "--no-verify", "-m", message, cwd=tree.path)
            _, head, _ = await self._git("rev-parse", "HEAD", cwd=tree.path)
            return head.strip()
        except GitError as exc:
            logger.error("isolation: committing step {} failed: {}", index + 1, exc)
            return None
        finally:
            if not keep:
                await self.drop_step(index, delete_branch=False)

    async def drop_step(self, index: int, *, delete_branch: bool) -> None:
        """Remove step `index`'s worktree (and its branch), whatever state it is in; runs
        to the end when the caller is cancelled (then re-raises the cancellation)."""
        await _to_the_end(self._drop_step(index, delete_branch=delete_branch))

    async def _drop_step(self, index: int, *, delete_branch: bool) -> None:
        tree = self.trees.get(index)
        if tree is None:
            return
        await self._git(
            "worktree", "remove", "--force", "--force", str(tree.path), cwd=self.repo, check=False
        )
        if tree.path.exists():
            await asyncio.to_thread(shutil.rmtree, tree.path, True)
            await self._git("worktree", "prune", cwd=self.repo, check=False)
        if delete_branch and tree.branch is not None:
            await self._git("branch", "-D", tree.branch, cwd=self.repo, check=False)
        self.trees.pop(index, None)

    async def final_commit(self, commits: Sequence[str], label: str) -> str:
        """The merge of `commits` (their common result), made in a temporary worktree.
        Raises `MergeConflict`."""
        unique = list(dict.fromkeys(commits))
        if not unique:
            return self.start_commit
        if len(unique) == 1:
            return unique[0]
        tree = await self.start_step(-1, "merge", unique, label=label)
        try:
            assert tree.base is not None
            return tree.base
        finally:
            await self.drop_step(-1, delete_branch=True)

    async def deliver(self, final: str) -> tuple[str | None, str | None, MergeConflict | None]:
        """Bring `final` to the user: (merged_into, branch, conflict). ``"auto"``: merged
        into the starting branch as `git merge` would (a fast-forward, else a merge
        commit); when that cannot be done cleanly it is left on the result branch with a
        `MergeConflict` saying why. ``"branch"``: left on the result branch."""
        if self.merge == "branch":
            await self._git("branch", "-f", self.result_branch, final, cwd=self.repo)
            return None, self.result_branch, None
        problem = await self._merge_into_start(final)
        if problem is None:
            return self.start_branch or "HEAD", None, None
        await self._git("branch", "-f", self.result_branch, final, cwd=self.repo)
        problem.args = (f"{problem.args[0]}; the result is on branch {self.result_branch}",)
        return None, self.result_branch, problem

    async def _merge_into_start(self, final: str) -> MergeConflict | None:
        code, branch, _ = await self._git(
            "symbolic-ref", "-q", "--short", "HEAD", cwd=self.repo, check=False
        )
        now = branch.strip() if code == 0 else None
        if now != self.start_branch:
            return MergeConflict(
                f"not merged: {self.start_branch or 'a detached HEAD'} was checked out at the "
                f"start, {now or 'a detached HEAD'} is now",
                [],
            )
        _, head, _ = await self._git("rev-parse", "HEAD", cwd=self.repo)
        head = head.strip()
        target = final
        code, _, _ = await self._git(
            "merge-base", "--is-ancestor", head, final, cwd=self.repo, check=False
        )
        if code != 0:  # the branch moved during the run: a real merge, done aside first
            name = self.start_branch or "HEAD"
            try:
                target = await self.final_commit(
                    [head, final], f"merge of run {self.run_id} into {name}"
                )
            except MergeConflict as exc:
                return MergeConflict(
                    f"not merged: the result conflicts with {name}, which moved during the "
                    f"run, in {_listed(exc.files)}",
                    exc.files,
                )
        code, _, err = await self._git(
            "merge", "--ff-only", "--quiet", target, cwd=self.repo, check=False
        )
        if code != 0:
            paths = [
                line.strip()
                for line in err.splitlines()
                if line.startswith(("\t", "    ")) and line.strip()
            ]
            return MergeConflict(
                f"not merged into {self.start_branch or 'HEAD'}: git merge refused "
                f"({err.strip().splitlines()[0] if err.strip() else code})",
                paths,
            )
        return None

    async def delete_branches(self, branches: Sequence[str]) -> None:
        for branch in branches:
            await self._git("branch", "-D", branch, cwd=self.repo, check=False)


async def open_worktrees(
    cwd: Path, *, run_id: str, state_dir: Path | None, merge: str
) -> WorktreeRun:
    """The repository holding `cwd`, checked; leftover worktrees of `run_id` removed.

    Raises `ConfigError`: `cwd` is not in a git work tree (the fix: ``isolation="copy"``),
    git is not installed, the repository has no commit, or its work tree has uncommitted
    changes or untracked files (named)."""
    try:
        code, top, _ = await git("rev-parse", "--show-toplevel", cwd=cwd, check=False)
    except FileNotFoundError:
        raise ConfigError(
            'isolation="worktree" needs git, which is not installed; use isolation="copy"',
            field="isolation",
        ) from None
    if code != 0 or not top.strip():
        raise ConfigError(
            f'isolation="worktree" needs cwd inside a git work tree; {cwd} is not in one. '
            'Use isolation="copy" to run each step in a copy of the directory, or git init '
            "and commit it first",
            field="isolation",
        )
    repo = Path(top.strip())  # absolute, symlinks resolved, as git prints it
    code, head, _ = await git("rev-parse", "--verify", "-q", "HEAD^{commit}", cwd=repo, check=False)
    if code != 0:
        raise ConfigError(
            f'isolation="worktree": the repository {repo} has no commit yet; commit its '
            "files first (the steps start from the checked-out commit)",
            field="isolation",
        )
    _, status, _ = await git(
        "status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=none",
        cwd=repo,
    )  # fmt: skip
    dirty = sorted(
        {entry[3:] for entry in status.split("\0") if len(entry) > 3 and entry[2] == " "}
    )
    if dirty:
        raise ConfigError(
            f'isolation="worktree": the work tree of {repo} has uncommitted changes or '
            f"untracked files ({_listed(dirty)}); the steps start from the last commit and "
            "would not see them, and the final merge could overwrite them. Commit them, or "
            "`git stash --include-untracked`, then run again",
            field="isolation",
        )
    _, prefix, _ = await git("rev-parse", "--show-prefix", cwd=cwd)  # cwd in the repository
    code, branch, _ = await git("symbolic-ref", "-q", "--short", "HEAD", cwd=repo, check=False)
    run = WorktreeRun(
        repo=repo,
        subdir=Path(prefix.strip() or "."),
        start_commit=head.strip(),
        start_branch=branch.strip() if code == 0 else None,
        run_id=run_id,
        home=isolation_home(state_dir, repo, "worktrees", run_id),
        merge=merge,
    )
    await run.cleanup()
    return run


# ------------------------------------------------------------------------------- copies


@dataclass
class CopyRun:
    """The copies of one ``isolation="copy"`` list run (see the module docstring)."""

    source: Path
    run_id: str
    home: Path
    ignore: tuple[str, ...]
    trees: dict[int, StepTree] = field(default_factory=dict)

    async def start_step(
        self, index: int, name: str | None, bases: Sequence[Path], *, label: str
    ) -> StepTree:
        """A fresh copy for step `index`: of its only base's copy, of `source` (no base),
        or of `source` with each base's changes over it. Raises `MergeConflict`."""
        path = self.home / step_slug(index, name)
        if path.exists():  # a leftover of an earlier try of this run
            await asyncio.to_thread(shutil.rmtree, path, True)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(self._make, path, list(bases), index, label)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, path, True)
            raise
        tree = StepTree(path=path, cwd=path)
        self.trees[index] = tree
        return tree

    def _make(self, path: Path, bases: list[Path], index: int, label: str) -> None:
        ignore = shutil.ignore_patterns(ALWAYS_IGNORED, *self.ignore)
        if len(bases) == 1:
            shutil.copytree(bases[0], path, symlinks=True, ignore=ignore)
            return
        shutil.copytree(self.source, path, symlinks=True, ignore=ignore)
        if not bases:
            return
        # Several bases: each one's difference from the source, laid over the copy.
        changes = [(base, _changed(self.source, base, ignore)) for base in bases]
        conflicts: set[str] = set()
        decided: dict[str, Path | None] = {}
        for base, changed in changes:
            for rel in changed:
                here: Path | None = base / rel if os.path.lexists(base / rel) else None
                if rel in decided:
                    there = decided[rel]
                    same = (here is None and there is None) or (
                        here is not None
                        and there is not None
                        and filecmp.cmp(here, there, shallow=False)
                    )
                    if not same:
                        conflicts.add(rel)
                    continue
                decided[rel] = here
        if conflicts:
            files = sorted(conflicts)
            raise MergeConflict(
                f"step {index + 1} ({label}) did not run: the steps it depends on changed "
                f"{_listed(files)} differently",
                files,
            )
        for rel, src in decided.items():
            target = path / rel
            if src is None:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif os.path.lexists(target):
                    target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                if os.path.lexists(target):
                    target.unlink()
                shutil.copy2(src, target, follow_symlinks=False)

    async def finish_step(self, index: int) -> Path | None:
        tree = self.trees.pop(index, None)
        return tree.path if tree is not None else None


def _changed(source: Path, copy: Path, ignore: object) -> set[str]:
    """Files (relative POSIX paths) that differ between `source` and `copy`: created,
    modified or deleted."""

    def files(root: Path) -> set[str]:
        found: set[str] = set()
        skip = ignore  # shutil.ignore_patterns callable
        for directory, dirs, names in os.walk(root):
            ignored = skip(directory, dirs + names) if callable(skip) else set()
            dirs[:] = [d for d in dirs if d not in ignored]
            for n in names:
                if n not in ignored:
                    found.add(Path(directory, n).relative_to(root).as_posix())
        return found

    before, after = files(source), files(copy)
    changed = before ^ after
    for rel in before & after:
        if not filecmp.cmp(source / rel, copy / rel, shallow=False):
            changed.add(rel)
    return changed


def open_copies(
    cwd: Path, *, run_id: str, state_dir: Path | None, ignore: tuple[str, ...]
) -> CopyRun:
    """The copies of `run_id` (their folder is outside `cwd`)."""
    source = cwd.resolve()
    return CopyRun(
        source=source,
        run_id=run_id,
        home=isolation_home(state_dir, source, "copies", run_id),
        ignore=ignore,
    )


# ------------------------------------------------------------------------- the list's side


@dataclass
class Delivery:
    """Where a list's final state went (`ListIsolation.deliver`)."""

    merged_into: str | None = None
    branch: str | None = None
    branches: list[str] = field(default_factory=list)
    error: MergeConflict | None = None


class ListIsolation:
    """What a task list runner calls to isolate its steps (either mode): `check` each
    step before it runs, `enter` a step (its folder, from its bases' results), `leave` it
    (its result with `branch`/`commit`/`workdir`), `finish` the list, `close` always."""

    def __init__(
        self, mode: str, worktrees: WorktreeRun | None, copies: CopyRun | None, root: Path
    ) -> None:
        self.mode = mode
        self.worktrees = worktrees
        self.copies = copies
        self.root = root
        """Steps' cwd must lie in it: the repository (worktree) or the list's cwd (copy)."""

    @classmethod
    async def open(cls, config: CCExecutorConfig, run_id: str) -> ListIsolation | None:
        """None for ``isolation="none"``; else the run's isolation, checked (ConfigError)."""
        if config.isolation == "none":
            return None
        cwd = config.task_cwd()
        if config.isolation == "worktree":
            run = await open_worktrees(
                cwd, run_id=run_id, state_dir=config.state_dir, merge=config.isolation_merge
            )
            return cls("worktree", run, None, run.repo)
        copies = open_copies(
            cwd, run_id=run_id, state_dir=config.state_dir, ignore=config.snapshot_ignore
        )
        return cls("copy", None, copies, copies.source)

    def state(self) -> dict[str, Any]:
        """This isolation as JSON data, for `attach` in another process (a Temporal
        worker): where the repository or directory is, the starting commit and branch."""
        if self.worktrees is not None:
            w = self.worktrees
            return {
                "mode": "worktree",
                "repo": str(w.repo),
                "subdir": str(w.subdir),
                "start_commit": w.start_commit,
                "start_branch": w.start_branch,
                "run_id": w.run_id,
                "home": str(w.home),
                "merge": w.merge,
            }
        assert self.copies is not None
        c = self.copies
        return {
            "mode": "copy",
            "source": str(c.source),
            "run_id": c.run_id,
            "home": str(c.home),
            "ignore": list(c.ignore),
        }

    @classmethod
    def attach(cls, state: dict[str, Any]) -> ListIsolation:
        """The isolation `state` describes, already opened (checked, cleaned) elsewhere."""
        if state["mode"] == "worktree":
            run = WorktreeRun(
                repo=Path(state["repo"]),
                subdir=Path(state["subdir"]),
                start_commit=state["start_commit"],
                start_branch=state["start_branch"],
                run_id=state["run_id"],
                home=Path(state["home"]),
                merge=state["merge"],
            )
            return cls("worktree", run, None, run.repo)
        copies = CopyRun(
            source=Path(state["source"]),
            run_id=state["run_id"],
            home=Path(state["home"]),
            ignore=tuple(state["ignore"]),
        )
        return cls("copy", None, copies, copies.source)

    def ref(self, result: TaskResult) -> str | None:
        """Where a step's work is, for the steps built on it: its commit, or its copy."""
        if self.worktrees is not None:
            return result.commit
        return str(result.workdir) if result.workdir is not None else None

    def check(self, i: int, spec: TaskSpec, base: CCExecutorConfig) -> None:
        """ConfigError when step i cannot run isolated."""
        check_isolated_step(i, spec, self.mode)
        cwd = spec.overrides.get("cwd")
        if cwd is not None:
            self._mapped(i, Path(cwd), Path(self.root))
        del base

    def _mapped(self, i: int, cwd: Path, tree: Path) -> Path:
        path = cwd.expanduser().resolve()
        if not _inside(path, self.root):
            raise ConfigError(
                f"step {i + 1}: cwd={cwd} is outside {self.root}, which isolation={self.mode!r} "
                "gives each step a private copy of; use a folder inside it",
                field="cwd",
            )
        return tree / path.relative_to(self.root)

    async def can_restore(self, result: TaskResult) -> bool:
        """Whether a journal's finished step still has its work (its commit or copy)."""
        if self.worktrees is not None:
            return await self.worktrees.has_commit(result.commit)
        return result.workdir is not None and result.workdir.is_dir()

    async def enter(
        self, i: int, spec: TaskSpec, label: str, bases: Sequence[TaskResult]
    ) -> dict[str, Any]:
        """Step i's folder made from `bases` (the results it builds on; none: the start);
        the config overrides that run it there. Raises `MergeConflict`."""
        refs = [ref for ref in map(self.ref, bases) if ref is not None]
        return await self.enter_refs(i, spec.name, spec.overrides.get("cwd"), label, refs)

    async def enter_refs(
        self, i: int, name: str | None, cwd: Any, label: str, refs: Sequence[str]
    ) -> dict[str, Any]:
        """`enter` given the bases' `ref`s; `cwd` is the step's own cwd option (or None)."""
        try:
            if self.worktrees is not None:
                tree = await self.worktrees.start_step(i, name, refs, label=label)
            else:
                assert self.copies is not None
                tree = await self.copies.start_step(i, name, [Path(r) for r in refs], label=label)
        except (GitError, OSError) as exc:
            raise NotEntered(
                f"step {i + 1} ({label}) did not run: its {self.mode} could not be made: {exc}"
            ) from exc
        return {"cwd": self._mapped(i, Path(cwd), tree.path) if cwd is not None else tree.cwd}

    async def leave(self, i: int, result: TaskResult, label: str, run_id: str) -> TaskResult:
        """Step i ended: its work committed (worktree, then removed) or its copy kept."""
        if self.worktrees is not None:
            tree = self.worktrees.trees.get(i)
            if tree is None:
                return result
            status = "success" if result.success else f"failed: {result.error_type}"
            message = (
                f"cc_executor: step {i + 1} ({label}) of run {run_id}\n\n"
                f"status: {status}\nexecution_uuid: {result.execution_uuid}\n"
            )
            commit = await self.worktrees.finish_step(i, message)
            update: dict[str, Any] = {"branch": tree.branch, "commit": commit, "workdir": tree.path}
            if commit is None and result.success:  # its work is not on its branch: lost
                update.update(
                    success=False,
                    error_type="TaskFailedError",
                    error_message=f"step {i + 1} ({label}): committing its work on "
                    f"{tree.branch} failed (see the log)",
                    error_fields={},
                )
            return result.model_copy(update=update)
        assert self.copies is not None
        workdir = await self.copies.finish_step(i)
        return result.model_copy(update={"workdir": workdir})

    async def abandon(self, i: int) -> None:
        """Step i did not end (an exception, a cancellation): remove its worktree."""
        if self.worktrees is not None:
            await self.worktrees.drop_step(i, delete_branch=False)
        elif self.copies is not None:
            self.copies.trees.pop(i, None)

    async def finish(self, outcome: TaskListResult, finals: Sequence[TaskResult]) -> TaskListResult:
        """The list ended: on success its final state (the merge of `finals`) delivered;
        the branches of its steps named (deleted once merged)."""
        if self.worktrees is None:
            return outcome
        refs = [ref for ref in map(self.ref, finals) if ref is not None]
        branches = [r.branch for r in outcome.results if r.branch]
        delivery = await self.deliver(outcome.success, refs, branches)
        if delivery.error is None:
            return dataclasses.replace(
                outcome,
                merged_into=delivery.merged_into,
                branch=delivery.branch,
                branches=delivery.branches,
            )
        failure = MergeConflictError(str(delivery.error), files=delivery.error.files)
        if outcome.results:
            failure.result = outcome.results[-1]
        return dataclasses.replace(
            outcome,
            success=False,
            error=failure,
            branch=delivery.branch,
            branches=delivery.branches,
        )

    async def deliver(self, success: bool, finals: Sequence[str], branches: list[str]) -> Delivery:
        """Worktree mode, the list ended: when it succeeded, the merge of the commits
        `finals` merged into the starting branch or left on the result branch, and the
        step `branches` deleted; else (or when that merge fails) the branches kept."""
        run = self.worktrees
        if run is None or not success:
            return Delivery(branches=branches)
        merged_into = branch = None
        error: MergeConflict | None = None
        try:
            final = await run.final_commit(finals, f"final state of run {run.run_id}")
            merged_into, branch, error = await run.deliver(final)
        except MergeConflict as exc:
            error = exc
        except GitError as exc:  # git itself failed: nothing merged, the branches kept
            error = MergeConflict(f"not merged: {exc}", [])
        if error is None:
            await run.delete_branches(branches)
            return Delivery(merged_into=merged_into, branch=branch)
        logger.error("task list {}: {}", run.run_id, error)
        return Delivery(branch=branch, branches=branches, error=error)

    async def close(self) -> None:
        """Remove every worktree still open (shielded from cancellation)."""
        if self.worktrees is None:
            return
        import anyio

        with anyio.CancelScope(shield=True):
            for i in list(self.worktrees.trees):
                await self.worktrees.drop_step(i, delete_branch=False)
            await self.worktrees._git("worktree", "prune", cwd=self.worktrees.repo, check=False)


def check_isolated_step(i: int, spec: TaskSpec, mode: str) -> None:
    """ConfigError when step i asks for what an isolated step cannot have."""
    if spec.continue_session:
        raise ConfigError(
            f"step {i + 1} has continue_session=True, which isolation={mode!r} cannot "
            "honour (each step runs in its own folder, and a session belongs to its "
            "folder): drop continue_session, or isolation",
            field="continue_session",
        )


def conflict_result(prompt: str, conflict: NotEntered, metadata: dict[str, Any]) -> TaskResult:
    """The result of a step that did not run: its bases' work does not merge, or its
    folder could not be made."""
    now = datetime.now(timezone.utc)
    result = TaskResult(
        task=prompt,
        success=False,
        error_type=conflict.error_type,
        error_message=str(conflict),
        error_fields=conflict.fields(),
        execution_uuid=str(uuid.uuid4()),
        started_at=now,
        ended_at=now,
        metadata=metadata,
    )
    return result
