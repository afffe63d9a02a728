"""What the journal and the history share about `<state_dir>/state.db`: how its failures
are named, and the lock that lets one run id run in one place at a time.

Failures: `store_error` is the one mapping from what SQLite or the OS raised to a
`StateStoreError` naming the file and the cause ("disk full", "corrupt", "read-only",
...), with what to do about it. A corrupt file is never repaired or replaced here: the
message gives the command that moves it aside, so nothing is lost without the user's say.

Run locks: `RunLock.acquire` takes an advisory `flock` on `<state_dir>/run-<hash>.lock`
(one file per run id, hashed so any run id is a safe file name). The kernel holds it
for the open file and drops it when the call closes it or the process ends in any way,
SIGKILL included, so a crashed holder never blocks a resume. The file descriptor is not
inherited by the CLI processes (close-on-exec), so a leftover agent process cannot hold
it either. Who holds it is recorded in the journal (`holder` table: pid, host) only to
name the holder in `RunLockedError`; the lock itself is the one authority.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from .errors import RunLockedError, StateStoreError

__all__ = ["RunLock", "cause_of", "check_integrity", "move_aside_command", "store_error"]

_POLL_S = 0.1

# sqlite3 error codes (<sqlite3.h>); Python 3.11+ puts the code on the exception.
_SQLITE_CAUSES = {
    3: "permission denied",  # SQLITE_PERM
    5: "busy",  # SQLITE_BUSY
    6: "busy",  # SQLITE_LOCKED
    8: "read-only",  # SQLITE_READONLY
    10: "I/O error",  # SQLITE_IOERR
    11: "corrupt",  # SQLITE_CORRUPT
    13: "disk full",  # SQLITE_FULL
    14: "cannot open",  # SQLITE_CANTOPEN
    26: "corrupt",  # SQLITE_NOTADB
}
_SQLITE_MESSAGES = (
    ("disk is full", "disk full"),
    ("malformed", "corrupt"),
    ("not a database", "corrupt"),
    ("readonly", "read-only"),
    ("read-only", "read-only"),
    ("disk i/o error", "I/O error"),
    ("unable to open", "cannot open"),
    ("locked", "busy"),
)
_OS_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk full",
    errno.EROFS: "read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "I/O error",
}
_ADVICE = {
    "disk full": "free space on that file system (or pass another state_dir), then run "
    "the same call again: finished steps are kept",
    "read-only": "make the file and its folder writable, or pass another state_dir",
    "permission denied": "make the file and its folder writable by this user, or pass "
    "another state_dir",
    "busy": "another process holds the database for too long; retry",
    "cannot open": "check that the folder exists and is writable, or pass another state_dir",
}


def cause_of(exc: BaseException) -> str:
    """A short name of what went wrong: "disk full", "corrupt", "read-only", ..."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF) in _SQLITE_CAUSES:
            return _SQLITE_CAUSES[code & 0xFF]
        text = str(exc).lower()
        for needle, cause in _SQLITE_MESSAGES:
            if needle in text:
                return cause
        return "corrupt" if type(exc) is sqlite3.DatabaseError else "error"
    if isinstance(exc, OSError) and exc.errno in _OS_CAUSES:
        return _OS_CAUSES[exc.errno]
    return "error"


def store_error(
    exc: BaseException, path: Path, doing: str, *, cause: str | None = None
) -> StateStoreError:
    """The `StateStoreError` for `exc`, raised while `doing` something with `path`
    (`cause` overrides what `cause_of(exc)` would say)."""
    cause = cause or cause_of(exc)
    if cause == "corrupt":
        advice = (
            "the database is damaged and is not used; move it aside and run again "
            f"(a new one is created; finished steps in it are not restored): "
            f"{move_aside_command(path)}"
        )
    else:
        advice = _ADVICE.get(
            cause, "check the file and its folder (space, permissions), or pass another state_dir"
        )
    return StateStoreError(
        f"state store {str(path)!r}: {cause} while {doing} ({type(exc).__name__}: {exc}); {advice}",
        path=path,
        cause=cause,
    )


def check_integrity(conn: sqlite3.Connection) -> None:
    """Raise `sqlite3.DatabaseError` if the file has a damaged page (``quick_check``:
    every page read once, linear in the file's size; milliseconds for a state.db)."""
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError("database disk image is malformed: " + "; ".join(problems))


def move_aside_command(path: Path) -> str:
    """The shell command that moves a corrupt `path` aside (`mv state.db state.db.corrupt`)."""
    import shlex

    aside = path.with_name(path.name + ".corrupt")
    return f"mv {shlex.quote(str(path))} {shlex.quote(str(aside))}"


class RunLock:
    """The held lock of one run id. `release()` (or the process ending) gives it up."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    async def acquire(
        cls,
        state_dir: Path,
        run_id: str,
        *,
        wait_s: float,
        holder: Callable[[], tuple[int | None, str | None]],
    ) -> RunLock:
        """Take the lock of `run_id` in `state_dir` (absolute), waiting up to `wait_s`
        seconds (0: do not wait).

        Raises `RunLockedError` naming the holder (`holder()` reads it from the journal)
        when it stays taken, `StateStoreError` when the lock file cannot be made.
        """
        import fcntl

        digest = hashlib.sha256(run_id.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        path = state_dir / f"run-{digest}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise store_error(exc, path, "creating the run lock") from exc
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return cls(path, fd)
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                await anyio.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        try:
            pid, host = holder()
        except Exception:  # naming the holder is a courtesy; the lock decided
            pid, host = None, None
        who = f"process {pid} on {host}" if pid is not None else "another call"
        waited = f" after waiting {wait_s:g}s" if wait_s > 0 else ""
        raise RunLockedError(
            f"task list {run_id!r} is being run by {who}{waited} (lock {str(path)!r}): one "
            "run id runs in one place at a time. Wait for it to end, use another run_id, or "
            "pass wait_for_lease=SECONDS to wait",
            run_id=run_id,
            lock_path=path,
            holder_pid=pid,
            holder_host=host,
        )

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
