"""File changes and the unified diff of a task, from git: only changed files are hashed.

For a root (`cwd`, an `add_dirs` entry) inside a git work tree, `GitChanges` records
the root's whole state — tracked, modified and untracked files alike, as `git add -A`
sees them — as a tree object before the CLI starts and again once its process tree is
gone, and compares the two trees. Files that were already dirty or untracked before
the task are in both trees, so only what the task changed shows.

Nothing of the user's is touched: the trees are written through a temporary index
(`GIT_INDEX_FILE`, seeded with a copy of the repository's own index so unchanged files
are not hashed again), never the repository's index, HEAD, refs, stash or work tree.
The only trace left is loose blob and tree objects in the object store (as
`git stash create` leaves), which `git gc` prunes.

What is compared is what `git add -A` would record: files git ignores (`.gitignore`,
`.git/info/exclude`, `core.excludesFile`) are not in the trees but listed (`ignored`
of `start` / `finish`) for the caller to walk, as snapshot mode does; the names in
`snapshot_ignore` and the library's own folders are left out; a rename is a deletion
and a creation; a submodule or a nested repository is one entry, changed when its
checked-out commit changes. Git runs without a shell, its output pinned (no pager,
colour, external diff, textconv, renames, custom context or algorithm; C locale),
without hooks or fsmonitor, and with no `GIT_*` variable of the caller's environment.

Any failure raises `GitUnavailable`; the caller then walks the root instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Awaitable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ._log import logger
from ._secrets import Secrets

__all__ = [
    "DIFF_CAP_BYTES",
    "GitChanges",
    "GitUnavailable",
    "cap_diff",
    "keep_diff",
    "net_diff",
]

DIFF_CAP_BYTES = 256 * 1024
"""`TaskResult.diff` holds at most this many bytes of the diff (UTF-8), then a marker."""
FULL_DIFF_MAX_BYTES = 16 * 1024 * 1024
"""The diff file next to the transcript stops here (memory stays bounded)."""
GIT_TIMEOUT_S = 300.0
GIT = "git"
"""The git program, found on PATH."""
_TRUNCATED = "\n[cc_executor: diff truncated at {cap} of {size} bytes{where}]\n"
_CUT = "\n[cc_executor: diff truncated: git's output went on beyond {limit} bytes]\n"

# `-c` settings that would change what git records or prints, or run a program.
_PINNED = (
    "core.quotepath=off",
    "core.fsmonitor=false",
    "core.splitIndex=false",
    "core.checkStat=default",
    "core.safecrlf=false",
    "core.hooksPath=/dev/null",
    "gc.auto=0",
    "maintenance.auto=false",
    "color.ui=never",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "diff.relative=false",
    "diff.renames=false",
    "diff.suppressBlankEmpty=false",
    "diff.algorithm=myers",
    "diff.context=3",
    "diff.interHunkContext=0",
    "diff.orderFile=/dev/null",
    "advice.addEmbeddedRepo=false",
    "advice.addIgnoredFile=false",
)
_DIFF_OPTS = (
    "-r",
    "--no-renames",
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "--full-index",
    "--ignore-submodules=none",
)


_A = TypeVar("_A")
_B = TypeVar("_B")
Ignored = tuple[list[str], list[str]]
"""What git ignores: (directories ignored whole, single files), absolute paths."""


class GitUnavailable(Exception):
    """Git is missing, the root is not in a work tree, or a git command failed."""


def git_env(index: str | None = None) -> dict[str, str]:
    """The caller's environment without any GIT_* variable, output pinned."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        LC_ALL="C",
        LANGUAGE="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_PAGER="cat",
        PAGER="cat",
    )
    if index is not None:
        env["GIT_INDEX_FILE"] = index
    return env


async def git(
    args: Sequence[str],
    *,
    cwd: str,
    index: str | None = None,
    limit: int | None = None,
    ok: Collection[int] = (0,),
) -> bytes:
    """Run `git <args>` in `cwd` (no shell); its stdout. Over `limit` bytes of output the
    rest is dropped (git is ended). `GitUnavailable` on a missing git, an exit status
    outside `ok`, or `GIT_TIMEOUT_S`. The process is gone when this returns or raises."""
    argv = [GIT, "--no-pager"]
    for setting in _PINNED:
        argv += ["-c", setting]
    argv += args
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=git_env(index),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise GitUnavailable(f"cannot start git: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(_read(proc, limit), GIT_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise GitUnavailable(f"git {args[0]} took over {GIT_TIMEOUT_S:g} s") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(proc.wait())
    if proc.returncode not in ok and not (limit is not None and len(out) >= limit):
        message = err.decode("utf-8", "replace").strip().splitlines()
        raise GitUnavailable(
            f"git {args[0]} exited with {proc.returncode}: {message[-1] if message else ''}"
        )
    return out


async def _read(proc: asyncio.subprocess.Process, limit: int | None) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    if limit is None:
        return await proc.communicate()
    err_task = asyncio.ensure_future(proc.stderr.read())
    try:
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await proc.stdout.read(min(1 << 20, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size >= limit:
            proc.kill()
        await proc.wait()
        return b"".join(chunks), await err_task
    finally:
        err_task.cancel()


@dataclass
class _Repo:
    """One work tree and the roots inside it that git follows."""

    top: str
    index: str  # the repository's own index (read, never written)
    specs: list[str]  # pathspecs, relative to `top`, of the followed roots
    excludes: list[str] = field(default_factory=list)
    tmp: str | None = None
    before: str | None = None
    after: str | None = None

    @property
    def pathspecs(self) -> list[str]:
        return [*self.specs, *self.excludes]


class GitChanges:
    """The git side of a task's file changes. `await start(roots)` returns the roots it
    does not follow (to be walked); `await finish()` gives created/modified/deleted
    absolute paths and the unified diff; `close()` removes the temporary index."""

    def __init__(self, ignore_names: Iterable[str], exclude: Iterable[str]) -> None:
        self._names = [n for n in ignore_names if n != ".git"]
        self._exclude = [os.path.realpath(p) for p in exclude]
        self._repos: list[_Repo] = []

    @property
    def active(self) -> bool:
        return bool(self._repos)

    @property
    def followed(self) -> list[str]:
        """The roots git follows (real paths)."""
        return [root for repo in self._repos for root in _spec_roots(repo)]

    async def start(self, roots: Sequence[str]) -> tuple[list[str], Ignored]:
        """Record the state before the run of every root inside a git work tree. Returns
        the roots left to walk, and what git ignores in the others (see `ignored`). Never
        raises: a root git cannot follow is walked."""
        repos: dict[str, _Repo] = {}
        rest: list[str] = []
        for root in roots:
            try:
                top, index = await _work_tree(root)
                if await _ignored(top, root):
                    raise GitUnavailable(f"{root} is ignored by git")
            except GitUnavailable as exc:
                logger.debug("file changes of {}: walking it ({})", root, exc)
                rest.append(root)
                continue
            repo = repos.setdefault(top, _Repo(top=top, index=index, specs=[]))
            rel = _relative(_real(root), top)
            repo.specs.append("." if rel == "." else f":(top,literal){rel}")
        ignored: Ignored = ([], [])
        for repo in repos.values():
            repo.excludes = self._excludes(repo.top)
            try:
                repo.tmp = tempfile.mkdtemp(prefix="cc_executor_git_")
                # Its stat data spares hashing every unchanged file again; copy2 keeps
                # the file's mtime, which git's racy-entry check compares against.
                with contextlib.suppress(FileNotFoundError):  # no index yet: start empty
                    shutil.copy2(repo.index, os.path.join(repo.tmp, "index"))
                repo.before, (dirs, files) = await _both(self._tree(repo), _ignored_in(repo))
            except (GitUnavailable, OSError) as exc:
                logger.debug("file changes of {}: walking it ({})", repo.top, exc)
                _remove(repo)
                rest.extend(_spec_roots(repo))
                continue
            except BaseException:  # cancelled: nothing of it stays behind
                _remove(repo)
                raise
            self._repos.append(repo)
            ignored[0].extend(dirs)
            ignored[1].extend(files)
        return rest, ignored

    async def finish(self) -> tuple[list[str], list[str], list[str], str, Ignored]:
        """(created, modified, deleted) absolute paths, the unified diff (at most
        `FULL_DIFF_MAX_BYTES`), and what git ignores now. `GitUnavailable` if git fails."""
        created: list[str] = []
        modified: list[str] = []
        deleted: list[str] = []
        diffs: list[str] = []
        ignored: Ignored = ([], [])
        for repo in self._repos:
            after, (dirs, files) = await _both(self._tree(repo), _ignored_in(repo))
            repo.after = after
            ignored[0].extend(dirs)
            ignored[1].extend(files)
            status, patch = await _both(
                git(
                    [
                        "diff-tree",
                        *_DIFF_OPTS,
                        "-z",
                        "--name-status",
                        repo.before or "",
                        after,
                    ],
                    cwd=repo.top,
                ),
                _patch(repo.top, repo.before or "", after),
            )
            fields = status.split(b"\0")
            for kind, path in zip(fields[0::2], fields[1::2], strict=False):
                absolute = os.path.join(repo.top, os.fsdecode(path))
                if kind == b"A":
                    created.append(absolute)
                elif kind == b"D":
                    deleted.append(absolute)
                else:  # M, T (type change)
                    modified.append(absolute)
            diffs.append(patch)
        return created, modified, deleted, "".join(diffs), ignored

    @property
    def trees(self) -> list[tuple[str, str, str]]:
        """(work tree, tree before, tree after) per repository, once finished."""
        return [(r.top, r.before, r.after) for r in self._repos if r.before and r.after]

    def close(self) -> None:
        for repo in self._repos:
            _remove(repo)

    async def _tree(self, repo: _Repo) -> str:
        assert repo.tmp is not None
        index = os.path.join(repo.tmp, "index")
        add = ["add", "-A", "--ignore-errors", "--", *repo.pathspecs]
        await git(add, cwd=repo.top, index=index)
        out = await git(["write-tree"], cwd=repo.top, index=index)
        return out.decode().strip()

    def _excludes(self, top: str) -> list[str]:
        specs: list[str] = []
        for name in self._names:
            specs += [f":(exclude,glob)**/{name}", f":(exclude,glob)**/{name}/**"]
        for path in self._exclude:
            if _inside(path, top) and path != top:
                specs.append(f":(exclude,literal){os.path.relpath(path, top)}")
        return specs


async def _ignored_in(repo: _Repo) -> Ignored:
    """What git ignores in `repo`'s followed roots, bar `snapshot_ignore` and the
    excluded folders: (directories, files), absolute. A directory git ignores whole is
    one entry, not entered (`ls-files --directory`); the caller walks them, as snapshot
    mode would."""
    out = await git(
        [
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
            "--full-name",
            "--",
            *repo.pathspecs,
        ],
        cwd=repo.top,
    )
    dirs: list[str] = []
    files: list[str] = []
    for entry in out.split(b"\0"):
        if entry:
            path = os.path.join(repo.top, os.fsdecode(entry))
            (dirs if path.endswith("/") else files).append(path.rstrip("/"))
    return dirs, files


async def _both(first: Awaitable[_A], second: Awaitable[_B]) -> tuple[_A, _B]:
    """Both results, the two run at once; the first failure cancels the other (its git
    process ended) and is raised."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    for task in tasks:  # the failure, not the sibling it cancelled
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return tasks[0].result(), tasks[1].result()


async def _work_tree(root: str) -> tuple[str, str]:
    out = await git(
        ["rev-parse", "--is-inside-work-tree", "--show-toplevel", "--git-path", "index"],
        cwd=root,
    )
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) != 3 or lines[0] != "true":
        raise GitUnavailable("not inside a work tree")
    top = _real(lines[1])
    return top, os.path.join(root, lines[2])


async def _ignored(top: str, root: str) -> bool:
    """Whether git ignores the directory `root` (in work tree `top`): then it is walked."""
    real = _real(root)
    if real == top:
        return False
    out = await git(["check-ignore", "--", real], cwd=top, ok=(0, 1))  # 1: not ignored
    return bool(out.strip())


async def _patch(top: str, before: str, after: str) -> str:
    patch = await git(
        ["diff-tree", *_DIFF_OPTS, "-p", before, after], cwd=top, limit=FULL_DIFF_MAX_BYTES
    )
    return _text(patch, FULL_DIFF_MAX_BYTES)


async def net_diff(
    first: Sequence[tuple[str, str, str]], last: Sequence[tuple[str, str, str]]
) -> str | None:
    """The diff from the first attempt's trees before to the last one's after (`trees`
    of each), when both followed the same repositories; else None. Never raises."""
    if not first or [t[0] for t in first] != [t[0] for t in last]:
        return None
    try:
        return "".join([await _patch(a[0], a[1], b[2]) for a, b in zip(first, last, strict=True)])
    except GitUnavailable as exc:
        logger.debug("the diff over every attempt failed: {}", exc)
        return None


def _spec_roots(repo: _Repo) -> list[str]:
    roots = []
    for spec in repo.specs:
        rel = spec.removeprefix(":(top,literal)")
        roots.append(repo.top if rel == "." else os.path.join(repo.top, rel))
    return roots


def _remove(repo: _Repo) -> None:
    if repo.tmp is not None:
        shutil.rmtree(repo.tmp, ignore_errors=True)
        repo.tmp = None


# A few lstat calls per task, not worth a thread hop.
def _real(path: str) -> str:
    return os.path.realpath(path)


def _relative(path: str, start: str) -> str:
    return os.path.relpath(path, start)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _text(patch: bytes, limit: int) -> str:
    if len(patch) < limit:
        return patch.decode("utf-8", "replace")
    head = patch[: patch.rfind(b"\n") + 1] or patch
    return head.decode("utf-8", "replace") + _CUT.format(limit=limit)


def cap_diff(diff: str, cap: int = DIFF_CAP_BYTES, where: str | None = None) -> str:
    """`diff` cut to at most `cap` UTF-8 bytes (at a line end where one is near), with a
    marker line naming the full size and, if given, where the whole diff is."""
    data = diff.encode("utf-8", "surrogateescape")
    if len(data) <= cap:
        return diff
    head = data[:cap]
    cut = head.rfind(b"\n")
    if cut > cap // 2:
        head = head[: cut + 1]
    marker = _TRUNCATED.format(
        cap=len(head), size=len(data), where=f"; the whole diff: {where}" if where else ""
    )
    return head.decode("utf-8", "ignore") + marker


def keep_diff(
    diff: str | None, transcript: Path | None, secrets: Secrets, *, replace: bool = False
) -> tuple[str | None, Path | None]:
    """The diff for `TaskResult.diff` (masked, capped) and where the whole one went:
    `<transcript>.diff` beside the transcript (masked, mode 0600), when there is a
    transcript and a diff; `replace`: over the file an attempt wrote there. A file that
    cannot be written is logged, never raised."""
    if diff is None:
        return None, None
    masked = secrets.mask(diff)
    path: Path | None = None
    if transcript is not None and masked:
        path = transcript.with_suffix(".diff")
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        flags |= os.O_TRUNC if replace else os.O_EXCL
        try:
            fd = os.open(path, flags, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(masked.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            logger.warning("cannot write the diff to {}: {}", path, exc)
            path = None
    return cap_diff(masked, where=str(path) if path is not None else None), path
