"""The execution history: one `HistoryRecord` per finished task.

Two backends, one interface:

- SQLite (default): table `history` in `<state_dir>/state.db`, the embedded
  state file the pipeline journal also lives in. WAL mode and a busy timeout
  let several tasks, threads and processes write at once without losing a
  record; every write is one `BEGIN IMMEDIATE` transaction (insert + prune).
- Redis (`history_url="redis://…"`): for several machines sharing one history.
  Each record is a JSON member of two sorted sets scored by start time (all
  records, and the record's prompt class); a Lua script adds and prunes
  atomically.

Growth is bounded: after each write only the newest `history_max_per_class`
records of that prompt class are kept. A prompt class is the hash of the
normalized prompt (lower case, numbers, ids and URLs replaced by
placeholders), so re-runs of "the same task with other numbers" share a class.

Recording never fails a task: errors are logged and dropped. Reading
(`get_execution_history`) raises `StateStoreError` naming the file and the
cause ("corrupt", "disk full", ...), never a raw sqlite3 error. The blocking
SQLite calls run in a worker thread, Redis through `redis.asyncio`, so the
event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict

from ._log import logger
from ._runtime import require_asyncio
from .errors import ConfigError

if TYPE_CHECKING:
    import sqlite3

    from .config import CCExecutorConfig
    from .result import TaskResult

__all__ = [
    "HistoryRecord",
    "connect",
    "create_private",
    "get_execution_history",
    "load_candidates",
    "normalize_prompt",
    "prompt_class",
    "record_history",
    "redis_recent",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

STATE_FILE = "state.db"
REDIS_PREFIX = "cc_executor:history:"
NORMALIZED_MAX_CHARS = 2000
_CONNECT_TIMEOUT_S = 5.0
_BUSY_TIMEOUT_MS = 30_000


class HistoryRecord(BaseModel):
    """One finished task, as the history keeps it (JSON-serialisable)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    execution_uuid: str
    prompt_hash: str
    """sha256 of the exact prompt (first 16 hex digits); the prompt itself is not stored."""
    prompt_class: str
    """sha256 of `normalized_prompt` (first 16 hex digits): pruning keeps the newest per class."""
    normalized_prompt: str
    model: str | None = None
    duration_s: float
    success: bool
    error_type: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    num_turns: int | None = None
    tool_calls: int = 0
    started_at: datetime
    timeout_s: float | None = None
    timeout_source: str | None = None
    metadata: dict[str, Any] = {}
    """The task's `metadata` option ({name: text, number or bool})."""


# -- normalization -------------------------------------------------------------

_URL = re.compile(r"https?://\S+")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_HEXID = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_SPACE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """Lower case; URLs, ids, hashes and numbers as placeholders; one space between words.

    The form the history stores and compares: "fix issue 42" and "fix issue 7"
    normalize alike.
    """
    text = text.lower()
    text = _URL.sub(" <url> ", text)
    text = _UUID.sub(" <id> ", text)
    text = _HEXID.sub(" <id> ", text)
    text = _NUMBER.sub(" <n> ", text)
    return _SPACE.sub(" ", text).strip()[:NORMALIZED_MAX_CHARS]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def prompt_class(normalized: str) -> str:
    return _digest(normalized)


def record_from_result(result: TaskResult, config: CCExecutorConfig) -> HistoryRecord:
    from ._secrets import find_secrets

    # Masked before normalising: the lower-cased copy must not hold a secret either.
    normalized = normalize_prompt(find_secrets(config).mask(result.task))
    usage = result.usage or {}
    input_tokens = _int_sum(
        usage, "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"
    )
    return HistoryRecord(
        execution_uuid=result.execution_uuid,
        prompt_hash=_digest(result.task),
        prompt_class=prompt_class(normalized),
        normalized_prompt=normalized,
        model=next(iter(result.model_usage), None) or config.model,
        duration_s=round(result.duration_s, 3),
        success=result.success,
        error_type=result.error_type,
        cost_usd=result.total_cost_usd,
        input_tokens=input_tokens,
        output_tokens=_int_sum(usage, "output_tokens"),
        num_turns=result.num_turns,
        tool_calls=len(result.tool_uses),
        started_at=result.started_at,
        timeout_s=result.timeout_s,
        timeout_source=result.timeout_source,
        metadata=dict(result.metadata),
    )


def _int_sum(usage: dict[str, Any], *names: str) -> int | None:
    values = [usage[n] for n in names if isinstance(usage.get(n), int)]
    return sum(values) if values else None


# -- the public calls ----------------------------------------------------------


async def record_history(result: TaskResult, config: CCExecutorConfig) -> None:
    """Add `result` to the history of `config`. Never raises: a failure is logged."""
    if not config.record_history:
        return
    try:
        record = record_from_result(result, config)
        if config.history_url:
            await _redis_add(config.history_url, record, config.history_max_per_class)
        elif config.state_dir is not None:  # state_dir=None: no embedded state at all
            path = config.state_dir / STATE_FILE
            await asyncio.to_thread(_sqlite_add, path, record, config.history_max_per_class)
    except Exception as exc:
        logger.warning("could not record the task in the execution history: {}", exc)


async def get_execution_history(
    limit: int = 20,
    since: datetime | None = None,
    *,
    state_dir: str | os.PathLike[str] | None = None,
    history_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[HistoryRecord]:
    """The newest `limit` recorded tasks, newest first, started at or after `since`;
    with `metadata`, only those whose `metadata` holds every given name with the
    given value (``{"team": "ml"}``; ``True`` matches only ``True``, never ``1``).

    Reads `history_url` (Redis) if given, else `<state_dir>/state.db` (default: the
    current directory's project folder, `config.project_records_dir`). A naive `since`
    is local time. No history yet gives an empty list. Raises `StateStoreError` when
    `state.db` cannot be read (corrupt: the message gives the command that moves it aside).
    """
    require_asyncio("get_execution_history")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigError(f"limit must be an int >= 1, got {limit!r}", field="limit")
    wanted = _check_filter(metadata)
    since_ts = since.timestamp() if since is not None else None
    if history_url:
        return await redis_recent(history_url, limit, since_ts, wanted)
    if state_dir is not None:
        directory = Path(state_dir)
    else:
        from .config import project_records_dir

        directory = project_records_dir(Path.cwd().resolve())
    return await asyncio.to_thread(_sqlite_recent, directory / STATE_FILE, limit, since_ts, wanted)


def _check_filter(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """`metadata=` of `get_execution_history`, checked as the option itself is."""
    if metadata is None:
        return {}
    from .config import CCExecutorConfig

    return dict(CCExecutorConfig(metadata=metadata, state_dir=None).metadata)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: a bool equals only a bool (Python's True == 1 does not count)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def matches(record: HistoryRecord, wanted: Mapping[str, Any]) -> bool:
    """Whether `record.metadata` holds every name of `wanted` with its value."""
    return all(k in record.metadata and _same(record.metadata[k], v) for k, v in wanted.items())


def _first_matching(
    records: Iterable[HistoryRecord], wanted: Mapping[str, Any], limit: int
) -> list[HistoryRecord]:
    out: list[HistoryRecord] = []
    for record in records:
        if matches(record, wanted):
            out.append(record)
            if len(out) == limit:
                break
    return out


async def load_candidates(config: CCExecutorConfig, limit: int) -> list[HistoryRecord]:
    """The newest `limit` records for prediction; [] (logged) if the store can't be read."""
    try:
        if config.history_url:
            return await redis_recent(config.history_url, limit, None)
        if config.state_dir is None:
            return []
        path = config.state_dir / STATE_FILE
        return await asyncio.to_thread(_sqlite_recent, path, limit, None)
    except Exception as exc:
        logger.warning("could not read the execution history: {}", exc)
        return []


# -- SQLite --------------------------------------------------------------------

_SCHEMA = """
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
"""
_COLUMNS = tuple(HistoryRecord.model_fields)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the state file at `path` with the history's settings."""
    import sqlite3

    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
        _add_metadata_column(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _add_metadata_column(conn: sqlite3.Connection) -> None:
    """Give a history table made before `metadata` existed its column (once; two
    processes doing it at once is fine: the second finds it there)."""
    import sqlite3

    columns = {row[1] for row in conn.execute("PRAGMA table_info(history)")}
    if "metadata" in columns:
        return
    try:
        conn.execute("ALTER TABLE history ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}'")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):
            raise


def _typed_errors(doing: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Raise what the store fails with as `StateStoreError` (the path is the first
    argument); a rolled-back transaction is the connection's to end, on close."""

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            import sqlite3

            from ._statestore import store_error

            try:
                return fn(*args, **kwargs)
            except (sqlite3.Error, OSError) as exc:
                path = args[0]
                assert isinstance(path, Path)
                raise store_error(exc, path, doing) from exc

        return run

    return wrap


def create_private(path: Path) -> None:
    """Create the state file (and folder) readable by the owner only: it holds prompts."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


@_typed_errors("recording a task in the execution history")
def _sqlite_add(path: Path, record: HistoryRecord, keep: int) -> None:
    create_private(path)
    row = record.model_dump(mode="json")
    row["metadata"] = json.dumps(row["metadata"])
    values = [row[c] for c in _COLUMNS] + [record.started_at.timestamp()]
    placeholders = ", ".join("?" * len(values))
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            f"INSERT OR IGNORE INTO history ({', '.join(_COLUMNS)}, started_ts) "
            f"VALUES ({placeholders})",
            values,
        )
        conn.execute(
            "DELETE FROM history WHERE prompt_class = ?1 AND id NOT IN ("
            " SELECT id FROM history WHERE prompt_class = ?1"
            " ORDER BY started_ts DESC, id DESC LIMIT ?2)",
            (record.prompt_class, keep),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


@_typed_errors("reading the execution history")
def _sqlite_recent(
    path: Path, limit: int, since_ts: float | None, wanted: Mapping[str, Any] | None = None
) -> list[HistoryRecord]:
    from ._statestore import check_integrity

    if not path.exists():
        return []
    conn = connect(path)
    try:
        check_integrity(conn)
        # With a metadata filter, rows are read newest first until `limit` match.
        rows = conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM history WHERE started_ts >= ?"
            " ORDER BY started_ts DESC, id DESC LIMIT ?",
            (since_ts if since_ts is not None else float("-inf"), -1 if wanted else limit),
        )
        return _first_matching((_from_row(row) for row in rows), wanted or {}, limit)
    finally:
        conn.close()


def _from_row(row: tuple[Any, ...]) -> HistoryRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["metadata"] = json.loads(data["metadata"] or "{}")
    return HistoryRecord.model_validate(data)


# -- Redis ---------------------------------------------------------------------

# KEYS: all-records set, class set. ARGV: member, score, how many to keep per class.
_REDIS_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local old = redis.call('ZRANGE', KEYS[2], 0, -tonumber(ARGV[3]) - 1)
for _, member in ipairs(old) do
    redis.call('ZREM', KEYS[1], member)
    redis.call('ZREM', KEYS[2], member)
end
return #old
"""


def _redis_client(url: str) -> Any:
    try:
        import redis.asyncio
    except ImportError:
        raise ConfigError(
            "history_url needs the redis package: pip install 'cc_executor[redis]'",
            field="history_url",
        ) from None
    return redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=30.0
    )


async def _redis_add(url: str, record: HistoryRecord, keep: int) -> None:
    client = _redis_client(url)
    try:
        await client.eval(
            _REDIS_ADD,
            2,
            REDIS_PREFIX + "all",
            REDIS_PREFIX + "class:" + record.prompt_class,
            record.model_dump_json(),
            repr(record.started_at.timestamp()),
            str(keep),
        )
    finally:
        await client.aclose()


async def redis_recent(
    url: str, limit: int, since_ts: float | None, wanted: Mapping[str, Any] | None = None
) -> list[HistoryRecord]:
    client = _redis_client(url)
    page = limit if not wanted else max(limit, 200)
    found: list[HistoryRecord] = []
    try:
        # With a metadata filter, pages are read newest first until `limit` match.
        for offset in range(0, 2**62, page):
            members = await client.zrange(
                REDIS_PREFIX + "all",
                "+inf",
                repr(since_ts) if since_ts is not None else "-inf",
                desc=True,
                byscore=True,
                offset=offset,
                num=page,
            )
            records = [HistoryRecord.model_validate_json(m) for m in members]
            found += _first_matching(records, wanted or {}, limit - len(found))
            if len(found) >= limit or len(members) < page:
                break
    finally:
        await client.aclose()
    return found
