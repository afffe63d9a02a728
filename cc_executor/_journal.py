"""The task-list journal: one SQLite row per (run_id, step), written at every step boundary.

A step's row is written when it starts (status ``started``) and again when it
ends (``success`` / ``failed``, with the serialised `TaskResult`), each write
committed before the list moves on. A step of a task graph that is skipped (a step
it depends on failed, or the list stopped first) gets one row ``skipped`` with its
result. The database runs in WAL mode with
``synchronous=FULL``: a committed boundary survives a SIGKILL of the
orchestrator and a power cut (measured: ~0.3 ms per commit on the project's
machine). A row left at ``started`` is a step that never ended; resume runs it
again.

Failures are `StateStoreError`s naming the file and the cause (`_statestore`). A
corrupt file is refused when the journal opens (``PRAGMA quick_check``). A full
disk never loses a finished step: opening the journal sets aside a reserve file
(`RESERVE_BYTES`) beside it; when recording a step's end finds the disk full,
the reserve is deleted and the write made again in the space it held, then the
list stops with a ``disk full`` error. Opening refuses a disk too full to hold
the reserve, before any step runs.

The file, its connection setup and schema, and the worker thread the blocking
sqlite3 calls run in belong to `_statestore` (`connect`, `run_sync`): a slow disk
never stalls the event loop that reads the CLIs' output, and a write in flight
finishes even when the list is cancelled. One connection, guarded by a lock, serves
every thread.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import errors
from ._secrets import Secrets
from ._statestore import cause_of, connect, create_private, db_path, run_sync, store_error
from .result import TaskResult

__all__ = ["Journal", "NullJournal", "StepRecord", "error_json", "restore_result"]

RESERVE_BYTES = 4 * 1024 * 1024
"""Space kept free for recording the end of a step when the disk fills up."""
_NO_SECRETS = Secrets()


@dataclass(frozen=True)
class StepRecord:
    """What the journal holds about one step of one run."""

    index: int
    name: str | None
    prompt_hash: str
    status: str
    attempts: int
    result: TaskResult | None


class Journal:
    """The SQLite journal in `state_dir`. Open with `await Journal.open(state_dir)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reserve = path.with_name(path.name + ".reserve")
        self._lock = threading.Lock()
        try:
            create_private(path)
        except OSError as exc:
            if cause_of(exc) == "disk full":
                raise store_error(exc, path, "creating the journal") from exc
            raise errors.ConfigError(
                f"cannot create the task-list journal {str(path)!r}: {exc}. Pass a writable "
                "state_dir, or state_dir=None to run without a journal (no resume)",
                field="state_dir",
            ) from exc
        try:
            self._db = connect(path, check=True)
        except sqlite3.Error as exc:
            raise store_error(exc, path, "opening the journal") from exc
        try:
            self._make_reserve()
        except OSError as exc:
            self._db.close()
            raise store_error(exc, self._reserve, "setting aside space for the journal") from exc

    def _make_reserve(self) -> None:
        fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size < RESERVE_BYTES:  # real blocks, not a sparse file
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)
                else:
                    os.pwrite(fd, bytes(RESERVE_BYTES - size), size)
                os.fsync(fd)
        except OSError:
            os.close(fd)
            os.unlink(self._reserve)
            raise
        os.close(fd)

    def _free_reserve(self) -> bool:
        try:
            os.unlink(self._reserve)
        except FileNotFoundError:
            return False
        return True

    @classmethod
    async def open(cls, state_dir: Path) -> Journal:
        """Open (or create) `<state_dir>/state.db`. Raises `ConfigError` when the folder
        cannot be made, `StateStoreError` when the file is corrupt or the disk full."""
        return await run_sync(cls, db_path(state_dir))

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run `statements` as one transaction, committed (and synced) on return.

        On failure the transaction is rolled back if SQLite has not already done so
        (it does on a full disk), and the original error is what propagates.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the error being raised is the one that says what happened
                raise

    def _write_or_raise(self, doing: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
        try:
            self._write(*statements)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, doing) from exc

    def _load(self, run_id: str) -> dict[int, StepRecord]:
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT step, name, prompt_hash, status, attempts, result_json, error_json "
                    "FROM steps WHERE run_id = ? ORDER BY step",
                    (run_id,),
                ).fetchall()
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, f"reading run {run_id!r}") from exc
        try:
            return {
                step: StepRecord(
                    index=step,
                    name=name,
                    prompt_hash=prompt_hash,
                    status=status,
                    attempts=attempts,
                    result=restore_result(result_json, error_json) if result_json else None,
                )
                for step, name, prompt_hash, status, attempts, result_json, error_json in rows
            }
        except (ValueError, TypeError) as exc:  # a stored result that does not parse
            raise store_error(exc, self.path, f"reading run {run_id!r}", cause="corrupt") from exc

    async def load(self, run_id: str) -> dict[int, StepRecord]:
        """Every step recorded for `run_id`, by index."""
        return await run_sync(self._load, run_id)

    async def start(
        self,
        run_id: str,
        index: int,
        name: str | None,
        prompt_hash: str,
        *,
        drop_later: bool,
        depends_on: Sequence[str] = (),
    ) -> None:
        """Record that step `index` starts. `drop_later` forgets the steps after it
        (in a sequential list they were built on what this step is about to redo);
        `depends_on`: the names a graph step waits for."""
        now = datetime.now(timezone.utc).isoformat()
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (_START, (run_id, index, name, prompt_hash, now, _names(depends_on)))
        ]
        if drop_later:
            statements.append((_DROP_LATER, (run_id, index)))
        doing = f"recording the start of step {index + 1} of run {run_id!r}"
        await run_sync(self._write_or_raise, doing, *statements)

    async def finish(
        self, run_id: str, index: int, result: TaskResult, secrets: Secrets = _NO_SECRETS
    ) -> None:
        """Record how step `index` ended, with its whole result, `secrets` masked in it."""
        failure = error_json(result)
        row = (
            "success" if result.success else "failed",
            secrets.mask_json(result.model_dump_json()),
            secrets.mask_json(failure) if failure is not None else None,
            result.total_cost_usd,
            str(result.transcript_path) if result.transcript_path else None,
            result.ended_at.isoformat(),
            run_id,
            index,
        )
        await run_sync(self._finish, run_id, index, row)

    def _finish(self, run_id: str, index: int, row: tuple[Any, ...]) -> None:
        doing = f"recording the end of step {index + 1} of run {run_id!r}"
        try:
            self._write((_FINISH, row))
            return
        except sqlite3.Error as exc:
            if cause_of(exc) != "disk full" or not self._free_reserve():
                raise store_error(exc, self.path, doing) from exc
            first = exc
        # The disk is full: the reserve's space takes the step's end, then the list stops.
        try:
            self._write((_FINISH, row))
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, doing) from first
        error = store_error(first, self.path, doing)
        error.args = (
            f"{error} (the end of step {index + 1} was recorded in the space kept in reserve: "
            "a resume does not run it again)",
        )
        raise error from first

    async def skip(
        self,
        run_id: str,
        index: int,
        name: str | None,
        prompt_hash: str,
        result: TaskResult,
        *,
        depends_on: Sequence[str] = (),
    ) -> None:
        """Record that step `index` of a task graph was skipped (it never started), with
        its result saying why; a resume runs it."""
        row = (
            run_id,
            index,
            name,
            prompt_hash,
            result.model_dump_json(),
            error_json(result),
            result.ended_at.isoformat(),
            result.ended_at.isoformat(),
            _names(depends_on),
        )
        doing = f"recording that step {index + 1} of run {run_id!r} was skipped"
        await run_sync(self._write_or_raise, doing, (_SKIP, row))

    def claim(self, run_id: str) -> None:
        """Name this process as the holder of `run_id` (the flock is already held)."""
        row = (run_id, os.getpid(), socket.gethostname(), datetime.now(timezone.utc).isoformat())
        self._write_or_raise(f"recording the holder of run {run_id!r}", (_CLAIM, row))

    def holder(self, run_id: str) -> tuple[int | None, str | None]:
        """The (pid, host) that last claimed `run_id`, or (None, None)."""
        with self._lock:
            row = self._db.execute(
                "SELECT pid, host FROM holders WHERE run_id = ?", (run_id,)
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else (None, None)

    def _close(self) -> None:
        with self._lock:
            self._db.close()

    async def close(self) -> None:
        await run_sync(self._close)


_START = """
INSERT INTO steps (run_id, step, name, prompt_hash, status, started_at, depends_on)
VALUES (?, ?, ?, ?, 'started', ?, ?)
ON CONFLICT (run_id, step) DO UPDATE SET
    name = excluded.name, prompt_hash = excluded.prompt_hash, status = 'started',
    depends_on = excluded.depends_on,
    attempts = attempts + 1, result_json = NULL, error_json = NULL, cost_usd = NULL,
    transcript_path = NULL, started_at = excluded.started_at, ended_at = NULL
"""
_SKIP = """
INSERT INTO steps (run_id, step, name, prompt_hash, status, attempts, result_json, error_json,
    started_at, ended_at, depends_on)
VALUES (?, ?, ?, ?, 'skipped', 0, ?, ?, ?, ?, ?)
ON CONFLICT (run_id, step) DO UPDATE SET
    name = excluded.name, prompt_hash = excluded.prompt_hash, status = 'skipped',
    depends_on = excluded.depends_on,
    result_json = excluded.result_json, error_json = excluded.error_json, cost_usd = NULL,
    transcript_path = NULL, started_at = excluded.started_at, ended_at = excluded.ended_at
"""
_CLAIM = """
INSERT INTO holders (run_id, pid, host, since) VALUES (?, ?, ?, ?)
ON CONFLICT (run_id) DO UPDATE SET pid = excluded.pid, host = excluded.host, since = excluded.since
"""
_DROP_LATER = "DELETE FROM steps WHERE run_id = ? AND step > ?"
_FINISH = """
UPDATE steps SET status = ?, result_json = ?, error_json = ?, cost_usd = ?,
    transcript_path = ?, ended_at = ?
WHERE run_id = ? AND step = ?
"""


class NullJournal:
    """No journal (`state_dir=None`): nothing is recorded, nothing can be resumed."""

    async def load(self, run_id: str) -> dict[int, StepRecord]:
        return {}

    async def start(
        self,
        run_id: str,
        index: int,
        name: str | None,
        prompt_hash: str,
        *,
        drop_later: bool,
        depends_on: Sequence[str] = (),
    ) -> None:
        return None

    async def finish(
        self, run_id: str, index: int, result: TaskResult, secrets: Secrets = _NO_SECRETS
    ) -> None:
        return None

    async def skip(
        self,
        run_id: str,
        index: int,
        name: str | None,
        prompt_hash: str,
        result: TaskResult,
        *,
        depends_on: Sequence[str] = (),
    ) -> None:
        return None

    async def close(self) -> None:
        return None


def _names(depends_on: Sequence[str]) -> str | None:
    """The `depends_on` column: a JSON list of step names, NULL for a step outside a graph."""
    return json.dumps(list(depends_on)) if depends_on else None


def error_json(result: TaskResult) -> str | None:
    """`result.error_fields` (timeout_s, status_code, ...) as JSON; None on success.

    Kept in its own column for the journals written before the fields were part of
    the result itself."""
    if result.error_type is None:
        return None
    return json.dumps(result.error_fields, default=str)


def restore_result(result_json: str, error_json: str | None = None) -> TaskResult:
    """A `TaskResult` back from the journal; a failure keeps its data, so `error` is
    the typed exception again (`raise_for_error`, `success`, `isinstance`).

    `error_json` fills `error_fields` for a row recorded before they were stored
    in the result."""
    result = TaskResult.model_validate_json(result_json)
    if result.error_type and not result.error_fields and error_json:
        result = result.model_copy(update={"error_fields": json.loads(error_json)})
    return result


def run_ids(state_dir: Path) -> list[str]:
    """The run ids recorded in the journal of `state_dir`, newest first.

    Reads only: an absent journal gives ``[]`` and creates nothing. Raises
    `sqlite3.Error` / `OSError` when the file exists but cannot be read.
    """
    path = db_path(state_dir)
    if not path.is_file():
        return []
    db = connect(path, read_only=True)
    try:
        rows = db.execute(
            "SELECT run_id FROM steps GROUP BY run_id ORDER BY MIN(started_at) DESC"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a state.db that holds only the history
            return []
        raise
    finally:
        db.close()
    return [str(row[0]) for row in rows]
