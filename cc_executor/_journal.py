"""The task-list journal: one SQLite row per (run_id, step), written at every step boundary.

A step's row is written when it starts (status ``started``) and again when it
ends (``success`` / ``failed``, with the serialised `TaskResult`), each write
committed before the list moves on. The database runs in WAL mode with
``synchronous=FULL``: a committed boundary survives a SIGKILL of the
orchestrator and a power cut (measured: ~0.3 ms per commit on the project's
machine). A row left at ``started`` is a step that never ended; resume runs it
again.

The blocking sqlite3 calls run in a worker thread (`anyio.to_thread`), so a
slow disk never stalls the event loop that reads the CLIs' output; a write in
flight finishes even when the list is cancelled. One connection, guarded by a
lock, serves every thread.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio.to_thread

from . import errors
from .result import TaskResult

__all__ = ["Journal", "NullJournal", "StepRecord", "error_json", "restore_result"]

DB_NAME = "state.db"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    run_id          TEXT    NOT NULL,
    step            INTEGER NOT NULL,
    name            TEXT,
    prompt_hash     TEXT    NOT NULL,
    status          TEXT    NOT NULL,   -- started | success | failed
    attempts        INTEGER NOT NULL DEFAULT 1,
    result_json     TEXT,               -- TaskResult.model_dump_json()
    error_json      TEXT,               -- the error's own attributes (timeout_s, status_code, ...)
    cost_usd        REAL,
    transcript_path TEXT,
    started_at      TEXT    NOT NULL,
    ended_at        TEXT,
    PRIMARY KEY (run_id, step)
)
"""


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
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Results hold task text and output: owner-only. SQLite gives the -wal
        # and -shm files the database file's permissions.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    @classmethod
    async def open(cls, state_dir: Path) -> Journal:
        try:
            return await anyio.to_thread.run_sync(lambda: cls(state_dir.absolute() / DB_NAME))
        except (OSError, sqlite3.Error) as exc:
            raise errors.ConfigError(
                f"cannot open the task-list journal in {str(state_dir)!r}: {exc}. Pass a "
                "writable state_dir, or state_dir=None to run without a journal (no resume)",
                field="state_dir",
            ) from exc

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run `statements` as one transaction, committed (and synced) on return."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _load(self, run_id: str) -> dict[int, StepRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT step, name, prompt_hash, status, attempts, result_json, error_json "
                "FROM steps WHERE run_id = ? ORDER BY step",
                (run_id,),
            ).fetchall()
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

    async def load(self, run_id: str) -> dict[int, StepRecord]:
        """Every step recorded for `run_id`, by index."""
        return await anyio.to_thread.run_sync(self._load, run_id)

    async def start(
        self, run_id: str, index: int, name: str | None, prompt_hash: str, *, drop_later: bool
    ) -> None:
        """Record that step `index` starts. `drop_later` forgets the steps after it
        (in a sequential list they were built on what this step is about to redo)."""
        now = datetime.now(timezone.utc).isoformat()
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (_START, (run_id, index, name, prompt_hash, now))
        ]
        if drop_later:
            statements.append((_DROP_LATER, (run_id, index)))
        await anyio.to_thread.run_sync(self._write, *statements)

    async def finish(self, run_id: str, index: int, result: TaskResult) -> None:
        """Record how step `index` ended, with its whole result."""
        row = (
            "success" if result.success else "failed",
            result.model_dump_json(),
            error_json(result),
            result.total_cost_usd,
            str(result.transcript_path) if result.transcript_path else None,
            result.ended_at.isoformat(),
            run_id,
            index,
        )
        await anyio.to_thread.run_sync(self._write, (_FINISH, row))

    def _close(self) -> None:
        with self._lock:
            self._db.close()

    async def close(self) -> None:
        await anyio.to_thread.run_sync(self._close)


_START = """
INSERT INTO steps (run_id, step, name, prompt_hash, status, started_at)
VALUES (?, ?, ?, ?, 'started', ?)
ON CONFLICT (run_id, step) DO UPDATE SET
    name = excluded.name, prompt_hash = excluded.prompt_hash, status = 'started',
    attempts = attempts + 1, result_json = NULL, error_json = NULL, cost_usd = NULL,
    transcript_path = NULL, started_at = excluded.started_at, ended_at = NULL
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
        self, run_id: str, index: int, name: str | None, prompt_hash: str, *, drop_later: bool
    ) -> None:
        return None

    async def finish(self, run_id: str, index: int, result: TaskResult) -> None:
        return None

    async def close(self) -> None:
        return None


def error_json(result: TaskResult) -> str | None:
    """The attributes of `result.error` (timeout_s, status_code, ...) as JSON, for
    `restore_result`; None on success."""
    if result.error is None:
        return None
    attrs = {k: v for k, v in vars(result.error).items() if k != "result"}
    return json.dumps(attrs, default=str)


def restore_result(result_json: str, error_json: str | None = None) -> TaskResult:
    """A `TaskResult` back from the journal; a failure gets its typed error back.

    `error` is not part of the serialised result, but `error_type` and
    `error_message` are: the matching `TaskFailedError` subclass is rebuilt with
    its own attributes (`error_json`) and linked both ways, so a restored
    failure still fails (`raise_for_error`, `success`, `isinstance`).
    """
    result = TaskResult.model_validate_json(result_json)
    data = json.loads(result_json)
    error_type, message = data.get("error_type"), data.get("error_message")
    if error_type:
        cls = getattr(errors, error_type, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.TaskFailedError)):
            cls = errors.TaskFailedError  # a class this version does not know
        state = json.loads(error_json) if error_json else {}
        error = errors._rebuild(cls, message or "", state)
        error.result = result
        result.error = error
    return result


def run_ids(state_dir: Path) -> list[str]:
    """The run ids recorded in the journal of `state_dir`, newest first.

    Reads only: an absent journal gives ``[]`` and creates nothing. Raises
    `sqlite3.Error` / `OSError` when the file exists but cannot be read.
    """
    path = state_dir.absolute() / DB_NAME
    if not path.is_file():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
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
