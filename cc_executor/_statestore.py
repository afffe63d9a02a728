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

The file: this module owns `<state_dir>/state.db` (`DB_NAME`, `db_path`). `connect` is
the one place a connection is made: the file and its folder created owner-only, the
pragmas (`BUSY_TIMEOUT_MS`, WAL, ``synchronous=FULL``) set, and the schema brought up to
date (`MIGRATIONS`, counted in ``PRAGMA user_version``). `run_sync` is the one way its
blocking calls leave the event loop: a worker thread (`anyio.to_thread`), waited for
even when the caller is cancelled, so a write in flight always finishes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from .errors import RunLockedError, StateStoreError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_NAME",
    "MIGRATIONS",
    "RunLock",
    "cause_of",
    "check_integrity",
    "connect",
    "db_path",
    "move_aside_command",
    "run_sync",
    "store_error",
]

DB_NAME = "state.db"
"""The state file's name in `state_dir`: the task-list journal, the run holders and the
SQLite history, one file."""
BUSY_TIMEOUT_MS = 30_000
"""How long a write waits for another writer (another step, task or process) to commit."""
MIGRATIONS: tuple[str, ...] = (
    # 1: the task-list journal (one row per step of a run) and who holds a run's lock.
    """
    CREATE TABLE IF NOT EXISTS steps (
        run_id          TEXT    NOT NULL,
        step            INTEGER NOT NULL,
        name            TEXT,
        prompt_hash     TEXT    NOT NULL,
        status          TEXT    NOT NULL,   -- started | success | failed
        attempts        INTEGER NOT NULL DEFAULT 1,
        result_json     TEXT,               -- TaskResult.model_dump_json()
        error_json      TEXT,               -- the error's own attributes (timeout_s, ...)
        cost_usd        REAL,
        transcript_path TEXT,
        started_at      TEXT    NOT NULL,
        ended_at        TEXT,
        PRIMARY KEY (run_id, step)
    );
    CREATE TABLE IF NOT EXISTS holders (
        run_id   TEXT PRIMARY KEY,
        pid      INTEGER NOT NULL,
        host     TEXT    NOT NULL,
        since    TEXT    NOT NULL       -- who holds the run lock; the flock decides, this names
    );
    """,
    # 2: the execution history (one row per finished task; `_history.HistoryRecord`).
    """
    CREATE TABLE IF NOT EXISTS history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_uuid TEXT NOT NULL UNIQUE,
        prompt_hash TEXT NOT NULL,
        prompt_class TEXT NOT NULL,
        normalized_prompt TEXT NOT NULL,
        model TEXT,
        duration_s REAL NOT NULL,
        success INTEGER NOT NULL,
        error_type TEXT,
        cost_usd REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        num_turns INTEGER,
        tool_calls INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        timeout_s REAL,
        timeout_source TEXT,
        started_ts REAL NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX IF NOT EXISTS history_by_class ON history (prompt_class, started_ts);
    CREATE INDEX IF NOT EXISTS history_by_start ON history (started_ts);
    """,
    # 3: the run's metadata on each history record (a JSON object), for a history table
    # made before it had the column (a table made by step 2 has it already).
    """
    ALTER TABLE history ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
    """,
    # 4: the names a task-graph step depends on (a JSON list; NULL outside graphs), so
    # a reader of the journal (the dashboard) can draw the graph.
    """
    ALTER TABLE steps ADD COLUMN depends_on TEXT;
    """,
)
"""The schema, one step per version: a file at ``user_version`` N gets steps N+1 ... on
`connect`. Append a step to change it; never edit one that has shipped."""

_T = TypeVar("_T")

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


def db_path(state_dir: Path) -> Path:
    """`<state_dir>/state.db`, absolute."""
    return state_dir.absolute() / DB_NAME


def create_private(path: Path) -> None:
    """Create `path` (and its folder) readable by the owner only, if absent: the file
    holds prompts, results and task text. SQLite gives its -wal and -shm files the same
    permissions. Raises `OSError`."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return
    # Never open (and close) the database file itself: closing any descriptor of a file
    # drops every POSIX lock this process holds on it, including the locks of SQLite
    # connections in other threads -- two writers then corrupt the file. The empty file
    # is made under a temporary name, closed, then linked into place (or not, if another
    # thread or process was first), so no descriptor of `path` is ever closed here.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)


def connect(path: Path, *, read_only: bool = False, check: bool = False) -> sqlite3.Connection:
    """A connection to the state file `path`, set up the one way: autocommit
    (transactions are explicit ``BEGIN IMMEDIATE``), usable from any thread (the caller
    serialises), `BUSY_TIMEOUT_MS`, WAL, ``synchronous=FULL`` (a commit survives a power
    cut), schema migrated to the last of `MIGRATIONS`.

    `check=True` first reads every page (`check_integrity`): a damaged file is refused
    before anything is written to it. `read_only=True` opens an existing file without
    writing anything (no creation, no migration): what a health check does. Raises
    `sqlite3.Error` / `OSError` as they come; callers name them with `store_error`.
    """
    if read_only:
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    else:
        create_private(path)
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if check:
            check_integrity(conn)
        if not read_only:
            # WAL is a property of the file: set once; asking again from every
            # connection would take the file's exclusive lock each time.
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])  # under the lock
        for number in range(version, len(MIGRATIONS)):
            for statement in _statements(MIGRATIONS[number]):
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as exc:
                    # A file whose history a release without user_version already gave
                    # the column: the step is done.
                    if "duplicate column name" not in str(exc):
                        raise
        conn.execute(f"PRAGMA user_version = {max(version, len(MIGRATIONS))}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """`script` cut into whole statements (SQLite's own test: a ";" in a comment or a
    string does not end one)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


async def run_sync(fn: Callable[..., _T], *args: object) -> _T:
    """Run the blocking `fn(*args)` in a worker thread; a cancelled caller still waits
    for it to return, so a write in flight is never cut in half."""
    return await anyio.to_thread.run_sync(fn, *args)


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
