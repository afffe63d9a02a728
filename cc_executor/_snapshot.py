"""Which files a task created, modified and deleted — from what happened, not from the model.

Two sources are combined:

1. A snapshot of `cwd` and `add_dirs` taken before the CLI starts and again once
   its process tree is gone: path → (size, mtime_ns), one `lstat` per file
   through `os.scandir`, never descending into ignored directories or
   following symlinks. Size and mtime decide, except for a file whose mtime lay
   within `RACY_WINDOW_NS` of the first walk (a change in the same clock tick
   could keep both): such files are hashed before and, if size and mtime still
   match, after. This catches every change, Bash commands included.
2. The file tools in the stream (`Write`, `Edit`, `MultiEdit`, `NotebookEdit`,
   and any other tool whose input names a `file_path` / `notebook_path`, bar the
   read-only ones). They matter only for paths the snapshot does not cover (an
   ignored directory, outside `cwd` and `add_dirs`, or snapshots switched off),
   and only count when the CLI reported the call as done and the file exists
   afterwards.

Paths are reported relative to `cwd` (POSIX separators) when they lie inside
it, absolute otherwise (e.g. in an `add_dirs` entry elsewhere): a `../..` path
would depend on where the reader stands. Nothing here may fail a run: an
unreadable directory or file is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._gitchanges import GitChanges
from ._log import logger
from .events import AssistantEvent, Event, UserEvent

__all__ = ["FileChanges", "FileTracker", "Snapshot", "combine", "diff", "take_snapshot"]

# Files whose mtime is this close to (or after) the start of the first walk are
# hashed: a change within the same tick of the filesystem's clock could keep their
# timestamp. Linux stamps files from its coarse clock (one tick: 1-10 ms); a whole
# millisecond mtime suggests a coarse filesystem (FAT: 2 s, HFS+, SMB), given 2 s.
RACY_WINDOW_NS = 50_000_000
COARSE_RACY_WINDOW_NS = 2_000_000_000
ALWAYS_IGNORED = ".git"
# Tools that take a file_path but never change the file.
_READ_ONLY_TOOLS = frozenset({"Read", "NotebookRead", "Glob", "Grep", "LS"})
_PATH_KEYS = ("file_path", "notebook_path")
_HASH_CHUNK = 1 << 20

Stat = tuple[int, int]  # (size, mtime_ns)


@dataclass(frozen=True)
class FileChanges:
    created: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def combine(runs: Iterable[FileChanges]) -> FileChanges:
    """The net changes of runs that followed one another (the attempts of one task):
    created then deleted is nothing, deleted then created is modified, created then
    modified stays created."""
    net: dict[str, str] = {}
    for run in runs:
        for path in run.created:
            net[path] = "modified" if net.get(path) == "deleted" else "created"
        for path in run.modified:
            net[path] = "created" if net.get(path) == "created" else "modified"
        for path in run.deleted:
            if net.get(path) == "created":
                del net[path]
            else:
                net[path] = "deleted"
    return FileChanges(
        created=sorted(p for p, s in net.items() if s == "created"),
        modified=sorted(p for p, s in net.items() if s == "modified"),
        deleted=sorted(p for p, s in net.items() if s == "deleted"),
    )


@dataclass
class Snapshot:
    files: dict[str, Stat]
    hashes: dict[str, bytes | None]
    started_ns: int


class _Ignore:
    """Names (or glob patterns) matched against every file and directory name."""

    def __init__(self, patterns: Iterable[str], exclude: Iterable[Path]) -> None:
        pats = {ALWAYS_IGNORED, *patterns}
        self.names = frozenset(p for p in pats if not _magic(p))
        self.globs = tuple(p for p in pats if _magic(p))
        self.exclude = frozenset(os.path.normpath(os.path.abspath(p)) for p in exclude)

    def name(self, name: str) -> bool:
        return name in self.names or any(fnmatch.fnmatchcase(name, g) for g in self.globs)

    def covers(self, path: str, roots: Sequence[str]) -> bool:
        """Whether a walk of `roots` sees `path` (inside a root, no ignored part)."""
        for root in roots:
            if _inside(path, root):
                rel = os.path.relpath(path, root)
                parts = rel.split(os.sep)
                if any(self.name(p) for p in parts):
                    return False
                return not any(_inside(path, ex) for ex in self.exclude)
        return False


def _magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _hash(path: str) -> bytes | None:
    # os-level calls: most racy files are small, and open() costs more than reading them.
    # O_NONBLOCK: opening a FIFO must not wait for a writer; only regular files are read
    # (a device could be endless), a symlink is decided by its own size and mtime.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        logger.debug("snapshot: cannot hash {}: {}", path, exc)
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.blake2b(digest_size=16)
        while chunk := os.read(fd, _HASH_CHUNK):
            h.update(chunk)
        return h.digest()
    except OSError as exc:
        logger.debug("snapshot: cannot hash {}: {}", path, exc)
        return None
    finally:
        os.close(fd)


def _walk(roots: Sequence[str], ignore: _Ignore) -> dict[str, Stat]:
    # Each directory is opened once and its files are stat'ed relative to it
    # (fstatat): ~10% less time than a stat of every full path.
    files: dict[str, Stat] = {}
    stack = list(roots)
    exclude, names, globs = ignore.exclude, ignore.names, ignore.globs
    lstat = os.stat
    while stack:
        directory = stack.pop()
        prefix = directory.rstrip(os.sep) + os.sep
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            logger.debug("snapshot: cannot open {}: {}", directory, exc)
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    name = entry.name
                    if name in names or (globs and ignore.name(name)):
                        continue
                    path = prefix + name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if path not in exclude:
                                stack.append(path)
                            continue
                        st = lstat(name, dir_fd=fd, follow_symlinks=False)
                    except OSError as exc:
                        logger.debug("snapshot: skipping {}: {}", path, exc)
                        continue
                    files[path] = (st.st_size, st.st_mtime_ns)
        except OSError as exc:
            logger.debug("snapshot: cannot list {}: {}", directory, exc)
        finally:
            os.close(fd)
    return files


def _roots(paths: Iterable[Path]) -> list[str]:
    """Absolute, normalised, existing, and none inside another (walked once)."""
    unique = sorted({os.path.normpath(os.path.abspath(p)) for p in paths if os.path.isdir(p)})
    kept: list[str] = []
    for root in unique:
        if not any(_inside(root, k) for k in kept):
            kept.append(root)
    return kept


def take_snapshot(
    roots: Sequence[str], ignore: _Ignore, *, hash_racy: bool = True, single: Sequence[str] = ()
) -> Snapshot:
    """Walk `roots` and lstat the `single` files; with `hash_racy` (the first walk), hash
    the files size and mtime may not tell apart later (modified within the racy window
    of the walk, or after)."""
    started_ns = time.time_ns()
    files = _walk(roots, ignore)
    for path in single:
        with contextlib.suppress(OSError):  # gone: not there
            st = os.lstat(path)
            files[path] = (st.st_size, st.st_mtime_ns)
    hashes: dict[str, bytes | None] = {}
    if hash_racy:
        fine = started_ns - RACY_WINDOW_NS
        coarse = started_ns - COARSE_RACY_WINDOW_NS
        for path, (_size, mtime) in files.items():
            if mtime >= fine or (mtime >= coarse and mtime % 1_000_000 == 0):
                hashes[path] = _hash(path)
    return Snapshot(files=files, hashes=hashes, started_ns=started_ns)


def diff(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str], list[str]]:
    """(created, modified, deleted) absolute paths between two snapshots."""
    old, new = before.files, after.files
    created = list(new.keys() - old.keys())
    deleted = list(old.keys() - new.keys())
    # A created path gets its own stat back from .get, so it never counts as modified.
    modified = [p for p, now in new.items() if old.get(p, now) != now]
    for path, then in before.hashes.items():
        if then is not None and new.get(path) == old[path] and _hash(path) not in (then, None):
            modified.append(path)
    return created, modified, deleted


class FileTracker:
    """Collects one run's file changes: `start()` before the CLI, `observe()` per
    event, `finish()` once its process tree is gone."""

    def __init__(
        self,
        cwd: Path,
        add_dirs: Iterable[Path],
        *,
        enabled: bool | Literal["auto", "git", "walk"],
        ignore: Iterable[str],
        exclude: Iterable[Path] = (),
    ) -> None:
        """`enabled`: True or "auto" — git for the roots in a git work tree, a walk for
        the others; "git" — the same, with a warning for a root git cannot follow;
        "walk" — always walk; False — the file tools' calls only."""
        self._cwd = os.path.normpath(os.path.abspath(cwd))
        self._cwd_real = os.path.realpath(self._cwd)
        self._roots = _roots([cwd, *add_dirs]) if enabled else []
        self._walk_roots = self._roots
        self._ignore = _Ignore(ignore, exclude)
        self._mode = "auto" if enabled is True else enabled
        self._git = (
            GitChanges(self._ignore.names | set(self._ignore.globs), self._ignore.exclude)
            if self._roots and self._mode in ("auto", "git")
            else None
        )
        self.diff: str | None = None
        """The unified diff of what git followed (None without git), once finished."""
        self._ignored: tuple[list[str], list[str]] = ([], [])  # git-ignored (dirs, files)
        self._before: Snapshot | None = None
        self._calls: dict[str, tuple[str, str]] = {}  # tool_use id → (tool, absolute path)
        self._done: dict[str, str | None] = {}  # tool_use id → "create"/"update"/None

    @property
    def git(self) -> GitChanges | None:
        """The git side, when it follows at least one root."""
        return self._git if self._git is not None and self._git.active else None

    @property
    def git_trees(self) -> list[tuple[str, str, str]]:
        """(work tree, tree before, tree after) per repository git followed, once finished."""
        return self._git.trees if self._git is not None else []

    async def start(self) -> None:
        if not self._roots:
            return
        if self._git is not None:
            try:
                # What git ignores is walked, as snapshot mode would.
                self._walk_roots, self._ignored = await self._git.start(self._roots)
            except Exception as exc:  # never fail a run for bookkeeping
                logger.debug("file changes from git failed ({!r}); walking instead", exc)
                self._git.close()
                self._git = None
                self._walk_roots = self._roots
                self._ignored = ([], [])
            if self._mode == "git" and self._walk_roots:
                logger.warning(
                    "snapshot_files='git': git cannot follow {}; walking it instead",
                    ", ".join(self._walk_roots),
                )
        roots, single = self._walked(self._ignored)
        if not roots and not single:
            return
        try:
            self._before = await asyncio.to_thread(
                take_snapshot, roots, self._ignore, single=single
            )
        except Exception:  # never fail a run for bookkeeping
            logger.exception("snapshot before the run failed; file changes come from tools only")

    def _walked(self, *ignored: tuple[list[str], list[str]]) -> tuple[list[str], list[str]]:
        """The directories to walk and the single files to stat: the roots git does not
        follow, and what git ignores in those it does (before, and after, the run)."""
        dirs = [*self._walk_roots, *(d for entry in ignored for d in entry[0])]
        roots = _roots(Path(d) for d in dirs)
        single = {f for entry in ignored for f in entry[1] if not any(_inside(f, r) for r in roots)}
        return roots, sorted(single)

    def observe(self, event: Event) -> None:
        if isinstance(event, AssistantEvent):
            for block in event.tool_uses:
                path = _tool_path(block.name, block.input)
                if path is not None:
                    self._calls[block.id] = (block.name, self._absolute(path))
        elif isinstance(event, UserEvent):
            content = event.message.get("content")
            if not isinstance(content, list):
                return
            results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            kind = None
            if len(results) == 1 and isinstance(event.tool_use_result, dict):
                value = event.tool_use_result.get("type")
                kind = value if isinstance(value, str) else None
            for item in results:
                tool_id = item.get("tool_use_id")
                if tool_id in self._calls and not item.get("is_error"):
                    self._done[tool_id] = kind

    async def finish(self) -> FileChanges:
        from_git: tuple[list[str], list[str], list[str]] | None = None
        git_roots: list[str] = []
        ignored_after = self._ignored
        git = self.git
        if git is not None:
            try:
                created, modified, deleted, self.diff, ignored_after = await git.finish()
                from_git = (created, modified, deleted)
                git_roots = git.followed
            except Exception as exc:  # never fail a run for bookkeeping
                logger.warning(
                    "file changes from git failed after the run ({}); for {} they come from "
                    "the file tools' calls only",
                    exc,
                    ", ".join(git.followed),
                )
                self.diff = None
            finally:
                git.close()
        try:
            return await asyncio.to_thread(self._changes, from_git, git_roots, ignored_after)
        except Exception:  # never fail a run for bookkeeping
            logger.exception("detecting the task's file changes failed; reporting none")
            return FileChanges()

    def close(self) -> None:
        """Remove the temporary files of the git side (also when the run never finished)."""
        if self._git is not None:
            self._git.close()

    def _changes(
        self,
        from_git: tuple[list[str], list[str], list[str]] | None = None,
        git_roots: Sequence[str] = (),
        ignored_after: tuple[list[str], list[str]] = ([], []),
    ) -> FileChanges:
        created: set[str] = set()
        modified: set[str] = set()
        deleted: set[str] = set()
        covered: list[str] = list(git_roots)
        if from_git is not None:
            created.update(from_git[0])
            modified.update(from_git[1])
            deleted.update(from_git[2])
        if self._before is not None:
            roots, single = self._walked(self._ignored, ignored_after)
            after = take_snapshot(roots, self._ignore, hash_racy=False, single=single)
            c, m, d = diff(self._before, after)
            created.update(c)
            modified.update(m)
            deleted.update(d)
            covered += self._walk_roots
        covered_real = [os.path.realpath(r) for r in covered]
        for tool_id, kind in self._done.items():
            tool, path = self._calls[tool_id]
            real = os.path.realpath(path)
            if self._ignore.covers(path, covered) or self._ignore.covers(real, covered_real):
                continue  # the snapshot or git saw it, and has the last word
            if not os.path.lexists(path):
                continue  # claimed, or written and removed again: not a change that stands
            if tool == "Write" and kind == "create" and path not in modified:
                created.add(path)
            elif path not in created:
                modified.add(path)
        return FileChanges(
            created=sorted({self._display(p) for p in created}),
            modified=sorted({self._display(p) for p in modified}),
            deleted=sorted({self._display(p) for p in deleted}),
        )

    def _absolute(self, path: str) -> str:
        return os.path.normpath(os.path.join(self._cwd, os.path.expanduser(path)))

    def _display(self, path: str) -> str:
        for base in (self._cwd, self._cwd_real):
            if _inside(path, base) and path != base:
                return Path(os.path.relpath(path, base)).as_posix()
        return path


def _tool_path(tool: str, tool_input: dict[str, Any]) -> str | None:
    if tool in _READ_ONLY_TOOLS:
        return None
    for key in _PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return value
    return None
