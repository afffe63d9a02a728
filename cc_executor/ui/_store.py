"""What the dashboard reads, read-only: the journal and history in `<state_dir>/state.db`
and the transcripts under the transcript dir.

`state.db` is opened with SQLite's ``mode=ro`` (`_statestore.connect(read_only=True)`):
nothing is created, migrated or written; a state dir without a `state.db` reads as no
runs. A transcript is read only when its resolved path is inside the transcript root
(`Sources.contained`): a journal row or a URL naming a file elsewhere (``..``, an
absolute path, a symlink out of it) gets nothing.

The shapes are plain dataclasses (`RunView`, `StepView`, `AttemptView`, `TaskView`) with
`as_dict()` for the JSON API; times are aware UTC datetimes, durations seconds, costs USD.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .._history import HistoryRecord
from .._progress import token_counts
from .._statestore import connect, db_path
from .._transcript import read_transcript
from ..config import CCExecutorConfig, records_home

__all__ = [
    "AttemptView",
    "RunView",
    "Sources",
    "StepView",
    "TaskView",
    "TranscriptTail",
    "parse_time",
]

_HISTORY_LIMIT = 200
"""Single tasks shown from the history (newest first)."""


def parse_time(text: str | None) -> datetime | None:
    """An ISO 8601 time from the store, aware (UTC when it names no zone); None for None."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _plain(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict: lists and dicts copied one level, times as ISO
    text (`dataclasses.asdict` deep-copies everything: slow on a 1,000-step run)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, (list, dict)):
            value = value.copy()
        out[f.name] = value
    return out


@dataclass
class AttemptView:
    """One run of the CLI for a step (`TaskResult.attempts`)."""

    number: int
    success: bool
    error_type: str | None
    started_at: datetime
    ended_at: datetime
    duration_s: float
    waited_s: float
    cost_usd: float | None
    transcript: str | None
    """The transcript's path relative to the transcript root; None when it is not under it."""

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


@dataclass
class StepView:
    """One step of a task list as the journal holds it (`n` counts from 1).

    `status`: ``success``, ``failed``, ``running`` (started, its run's process alive),
    ``interrupted`` (started, its process gone: a resume runs it again), or whatever
    else the journal says (``skipped``...)."""

    n: int
    name: str | None
    label: str
    status: str
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    cost_usd: float | None
    turns: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tool_calls: int = 0
    files_created: list[str] = field(default_factory=list)
    files_modified: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None
    answer: str = ""
    task: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    attempt_list: list[AttemptView] = field(default_factory=list)
    transcript: str | None = None
    """The last attempt's transcript, relative to the transcript root (None: not known
    or not under it)."""
    transcript_outside: bool = False
    """The journal names a transcript that is not under the transcript root: not shown."""
    diff: str | None = None
    diff_file: str | None = None
    """The whole diff's file (`TaskResult.diff_path`) relative to the transcript root,
    when it is under it (the `diff` itself may be cut at its cap)."""
    prompt_hash: str = ""

    @property
    def files_changed(self) -> int:
        return len(self.files_created) + len(self.files_modified) + len(self.files_deleted)

    def as_dict(self) -> dict[str, Any]:
        data = _plain(self)
        data["attempt_list"] = [a.as_dict() for a in self.attempt_list]
        data.pop("prompt_hash")
        return data


@dataclass
class RunView:
    """One task list (`kind="list"`) or one single task from the history (`kind="task"`).

    `steps_total` is the number of steps the journal has seen (a step is recorded when
    it starts: a running sequential list has not recorded the steps after it yet)."""

    run_id: str
    kind: str
    status: str
    steps_done: int
    steps_total: int
    cost_usd: float | None
    started_at: datetime | None
    ended_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    holder: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at
        if self.status == "running" or end is None:
            end = datetime.now(timezone.utc)
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def url(self) -> str:
        return f"/runs/{self.run_id}" if self.kind == "list" else f"/tasks/{self.run_id}"

    def as_dict(self) -> dict[str, Any]:
        data = _plain(self)
        data["duration_s"] = self.duration_s
        return data


@dataclass
class TaskView:
    """A single task from the history, with its transcripts."""

    record: HistoryRecord
    transcripts: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {**self.record.model_dump(mode="json"), "transcripts": self.transcripts}


class Sources:
    """Where the dashboard reads: `state_dir` (its `state.db`) and `transcript_root`.

    Built from the `cc-execute ui` options the way the library resolves them: no
    `state_dir` is the current project's records folder, no `transcript_dir` is
    $CC_EXECUTOR_TRANSCRIPT_DIR, else every project's transcripts under the records home.
    """

    def __init__(self, state_dir: Path | None = None, transcript_dir: Path | None = None) -> None:
        options: dict[str, Any] = {}
        if state_dir is not None:
            options["state_dir"] = state_dir
        if transcript_dir is not None:
            options["transcript_dir"] = transcript_dir
        config = CCExecutorConfig(**options)
        assert config.state_dir is not None
        self.state_dir = config.state_dir.absolute()
        given = config.given_transcript_dir()
        self.nested = given is None
        """The default layout: `<records home>/projects/*/transcripts/*.jsonl`."""
        self.transcript_root = (given or records_home() / "projects").resolve()

    @property
    def db(self) -> Path:
        return db_path(self.state_dir)

    # -- the state store -------------------------------------------------------------

    def open(self) -> sqlite3.Connection | None:
        """A read-only connection to `state.db`, or None when there is none (yet).

        SQLite creates the -wal and -shm files of a WAL database for any reader when they
        are absent; with no -wal there is no writer and nothing outside the main file, so
        that file is opened ``immutable`` (no file is created). With a -wal, a plain
        ``mode=ro`` reader sees what the writer commits."""
        if not self.db.is_file():
            return None
        if self.db.with_name(self.db.name + "-wal").exists():
            return connect(self.db, read_only=True)
        return sqlite3.connect(
            f"{self.db.as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )

    def signature(self) -> tuple[tuple[int, int] | None, ...]:
        """(mtime, size) of `state.db` and its -wal: changes when anything is committed."""
        out: list[tuple[int, int] | None] = []
        for path in (self.db, self.db.with_name(self.db.name + "-wal")):
            try:
                st = path.stat()
            except OSError:
                out.append(None)
                continue
            out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    def runs(
        self,
        conn: sqlite3.Connection | None,
        *,
        status: str | None = None,
        metadata: Mapping[str, str] | None = None,
        history_limit: int = _HISTORY_LIMIT,
    ) -> list[RunView]:
        """Every task list in the journal and the newest single tasks of the history,
        newest first; `status` and `metadata` ({name: value as text}) filter them."""
        if conn is None:
            return []
        runs = self._lists(conn) + self._single_tasks(conn, history_limit)
        runs.sort(key=lambda r: r.started_at or datetime.min.replace(tzinfo=timezone.utc))
        runs.reverse()
        if status:
            runs = [r for r in runs if r.status == status]
        if metadata:
            runs = [r for r in runs if _metadata_matches(r.metadata, metadata)]
        return runs

    def run(self, conn: sqlite3.Connection | None, run_id: str) -> RunView | None:
        """The task list `run_id` of the journal, or None."""
        found = self._lists(conn, run_id) if conn is not None else []
        return found[0] if found else None

    def _lists(self, conn: sqlite3.Connection, one: str | None = None) -> list[RunView]:
        rows = _query(
            conn,
            """
            SELECT run_id, COUNT(*), SUM(status = 'success'), SUM(status = 'failed'),
                   SUM(status = 'started'), SUM(cost_usd),
                   MIN(COALESCE(json_extract(result_json, '$.started_at'), started_at)),
                   MAX(ended_at),
                   (SELECT json_extract(f.result_json, '$.metadata') FROM steps f
                     WHERE f.run_id = s.run_id AND f.result_json IS NOT NULL
                     ORDER BY f.step LIMIT 1),
                   (SELECT COALESCE(f.name, substr(json_extract(f.result_json, '$.task'), 1, 80))
                      FROM steps f WHERE f.run_id = s.run_id ORDER BY f.step LIMIT 1)
            FROM steps s WHERE ?1 IS NULL OR run_id = ?1 GROUP BY run_id
            """,
            (one,),
        )
        holders = self._holders(conn)
        runs = []
        for run_id, total, done, failed, started, cost, first, last, meta, label in rows:
            alive = _alive(holders.get(run_id))
            if started and alive:
                status = "running"
            elif started:
                status = "interrupted"
            elif failed:
                status = "failed"
            elif done == total:
                status = "success"
            else:
                status = "stopped"
            runs.append(
                RunView(
                    run_id=str(run_id),
                    kind="list",
                    status=status,
                    steps_done=int(done or 0),
                    steps_total=int(total),
                    cost_usd=cost,
                    started_at=parse_time(first),
                    ended_at=None if started else parse_time(last),
                    metadata=json.loads(meta) if meta else {},
                    label=str(label or ""),
                    holder=_holder_text(holders.get(run_id)) if status == "running" else None,
                )
            )
        return runs

    def cost_points(
        self, conn: sqlite3.Connection | None, runs: list[RunView]
    ) -> list[tuple[datetime, float, dict[str, Any]]]:
        """(when it ended, USD, metadata) of every finished step of the task lists among
        `runs` and of each single task among them: what the cost-over-time chart adds up."""
        if conn is None:
            return []
        lists = {r.run_id for r in runs if r.kind == "list"}
        points = []
        for run_id, ended, cost, meta in _query(
            conn,
            "SELECT run_id, ended_at, cost_usd, json_extract(result_json, '$.metadata') "
            "FROM steps WHERE cost_usd IS NOT NULL AND ended_at IS NOT NULL",
        ):
            when = parse_time(ended)
            if run_id in lists and when is not None:
                points.append((when, float(cost), json.loads(meta) if meta else {}))
        for r in runs:
            if r.kind == "task" and r.cost_usd and r.ended_at is not None:
                points.append((r.ended_at, r.cost_usd, r.metadata))
        return sorted(points, key=lambda p: p[0])

    def _holders(self, conn: sqlite3.Connection) -> dict[str, tuple[int, str]]:
        rows = _query(conn, "SELECT run_id, pid, host FROM holders")
        return {str(r): (int(p), str(h)) for r, p, h in rows}

    def _single_tasks(self, conn: sqlite3.Connection, limit: int) -> list[RunView]:
        if limit <= 0:
            return []
        in_lists = {
            str(row[0])
            for row in _query(
                conn,
                "SELECT json_extract(result_json, '$.execution_uuid') FROM steps "
                "WHERE result_json IS NOT NULL UNION "
                "SELECT json_extract(a.value, '$.execution_uuid') "
                "FROM steps, json_each(steps.result_json, '$.attempts') AS a "
                "WHERE steps.result_json IS NOT NULL",
            )
        }
        runs = []
        for record in self._history(conn, limit + len(in_lists)):
            if record.execution_uuid in in_lists:
                continue
            runs.append(
                RunView(
                    run_id=record.execution_uuid,
                    kind="task",
                    status="success" if record.success else "failed",
                    steps_done=1 if record.success else 0,
                    steps_total=1,
                    cost_usd=record.cost_usd,
                    started_at=record.started_at,
                    ended_at=record.started_at + timedelta(seconds=record.duration_s),
                    metadata=dict(record.metadata),
                    label=record.normalized_prompt[:80],
                )
            )
            if len(runs) == limit:
                break
        return runs

    def _history(self, conn: sqlite3.Connection, limit: int) -> list[HistoryRecord]:
        columns = tuple(HistoryRecord.model_fields)
        try:
            rows = conn.execute(
                f"SELECT {', '.join(columns)} FROM history ORDER BY started_ts DESC, id DESC "
                "LIMIT ?",
                (limit,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such" in str(exc):  # a journal-only state.db, or an older schema
                return []
            raise
        records = []
        for row in rows:
            data = dict(zip(columns, row, strict=True))
            data["metadata"] = json.loads(data["metadata"] or "{}")
            records.append(HistoryRecord.model_validate(data))
        return records

    def task(self, conn: sqlite3.Connection | None, execution_uuid: str) -> TaskView | None:
        """The single task `execution_uuid` of the history, or None."""
        if conn is None:
            return None
        columns = tuple(HistoryRecord.model_fields)
        rows = _query(
            conn,
            f"SELECT {', '.join(columns)} FROM history WHERE execution_uuid = ?",
            (execution_uuid,),
        )
        if not rows:
            return None
        data = dict(zip(columns, rows[0], strict=True))
        data["metadata"] = json.loads(data["metadata"] or "{}")
        record = HistoryRecord.model_validate(data)
        found = (self.relative(p) for p in self.transcripts_of(execution_uuid))
        return TaskView(record, [p for p in found if p is not None])

    def steps(
        self, conn: sqlite3.Connection | None, run_id: str, *, only: int | None = None
    ) -> list[StepView]:
        """Every step the journal holds for `run_id`, in order ([] for an unknown run);
        `only=n`: just step `n` (from 1), if the journal has it, with its transcripts
        (resolving a path is a few system calls: the whole run's listing leaves them out)."""
        if conn is None:
            return []
        columns = [row[1] for row in _query(conn, "PRAGMA table_info(steps)")]
        extra = [c for c in ("depends_on",) if c in columns]
        rows = _query(
            conn,
            "SELECT step, name, prompt_hash, status, attempts, result_json, error_json, "
            f"cost_usd, transcript_path, started_at, ended_at{''.join(', ' + c for c in extra)} "
            "FROM steps WHERE run_id = ? AND (? IS NULL OR step = ?) ORDER BY step",
            (run_id, only, None if only is None else only - 1),
        )
        if not rows:
            return []
        alive = _alive(self._holders(conn).get(run_id))
        return [self._step(row, alive, extra, only is not None) for row in rows]

    def _step(self, row: tuple[Any, ...], alive: bool, extra: list[str], paths: bool) -> StepView:
        (
            step,
            name,
            prompt_hash,
            status,
            attempts,
            result_json,
            error_json,
            cost,
            transcript_path,
            started,
            ended,
            *rest,
        ) = row
        more = dict(zip(extra, rest, strict=True))
        if status == "started":
            status = "running" if alive else "interrupted"
        view = StepView(
            n=int(step) + 1,
            name=name,
            label=name or f"step {int(step) + 1}",
            status=str(status),
            attempts=int(attempts),
            started_at=parse_time(started),
            ended_at=parse_time(ended),
            duration_s=None,
            cost_usd=cost,
            prompt_hash=str(prompt_hash),
        )
        depends = more.get("depends_on")
        if depends:
            view.depends_on = [str(d) for d in json.loads(depends)]
        if result_json:
            self._fill(view, json.loads(result_json), paths)
        elif transcript_path and paths:
            view.transcript = self.relative(Path(transcript_path))
        if view.duration_s is None and view.started_at and view.ended_at:
            view.duration_s = (view.ended_at - view.started_at).total_seconds()
        return view

    def _fill(self, view: StepView, result: dict[str, Any], paths: bool) -> None:
        """`view` from a stored result, read as the JSON `TaskResult.model_dump_json` wrote
        (its field names): a 1,000-step page reads a thousand of them, and building each
        `TaskResult` (`_journal.restore_result`) would cost more than the page itself."""
        tokens_in, tokens_out = token_counts(result.get("usage") or {})
        view.turns = result.get("num_turns")
        view.input_tokens, view.output_tokens = tokens_in, tokens_out
        view.tool_calls = len(result.get("tool_uses") or [])
        view.files_created = list(result.get("files_created") or [])
        view.files_modified = list(result.get("files_modified") or [])
        view.files_deleted = list(result.get("files_deleted") or [])
        view.error_type, view.error_message = result.get("error_type"), result.get("error_message")
        view.answer = str(result.get("output") or "")
        view.task = result.get("task")
        view.metadata = dict(result.get("metadata") or {})
        if not view.name:
            view.label = _first_line(view.task) or view.label
        diff = result.get("diff")
        view.diff = diff if isinstance(diff, str) and diff else None
        diff_path = result.get("diff_path")
        if isinstance(diff_path, str) and diff_path and paths:
            view.diff_file = self.relative(diff_path)
        attempts = result.get("attempts") or []
        view.attempts = max(view.attempts, len(attempts))  # CLI runs, retries included
        # The result's own times: the first attempt's start (the row's is the last's).
        started, ended = parse_time(result.get("started_at")), parse_time(result.get("ended_at"))
        view.started_at, view.ended_at = started or view.started_at, ended or view.ended_at
        view.duration_s = result.get("duration_s") or (
            (view.ended_at - view.started_at).total_seconds()
            if view.started_at and view.ended_at
            else None
        )
        for attempt in attempts:
            path = attempt.get("transcript_path")
            begun = parse_time(attempt.get("started_at")) or view.started_at
            done = parse_time(attempt.get("ended_at")) or view.ended_at
            if begun is None or done is None:
                continue
            view.attempt_list.append(
                AttemptView(
                    number=int(attempt.get("number") or len(view.attempt_list) + 1),
                    success=bool(attempt.get("success")),
                    error_type=attempt.get("error_type"),
                    started_at=begun,
                    ended_at=done,
                    duration_s=float(attempt.get("duration_s") or 0.0),
                    waited_s=float(attempt.get("waited_s") or 0.0),
                    cost_usd=attempt.get("cost_usd"),
                    transcript=self.relative(path) if path and paths else None,
                )
            )
        path = result.get("transcript_path")
        if path and paths:
            view.transcript = self.relative(path)
            view.transcript_outside = view.transcript is None

    # -- transcripts -------------------------------------------------------------------

    def relative(self, path: Path | str) -> str | None:
        """`path` relative to the transcript root, if it resolves inside it; else None."""
        resolved = self.contained(Path(path))
        return resolved.relative_to(self.transcript_root).as_posix() if resolved else None

    def contained(self, path: Path) -> Path | None:
        """`path` resolved, if it is inside the transcript root (symlinks followed);
        else None."""
        try:
            resolved = path.expanduser().resolve()
        except (OSError, RuntimeError):
            return None
        root = self.transcript_root
        return resolved if resolved != root and resolved.is_relative_to(root) else None

    def transcript_file(self, relative: str, suffix: str = ".jsonl") -> Path | None:
        """The transcript (or, `suffix=".diff"`, the whole diff) at `relative`, a path
        under the root as `relative` gives it: None when it names an absolute path, has
        a ``..`` part, resolves outside the root (a symlink out), or is not a file of
        that suffix."""
        parts = Path(relative).parts
        if not relative or Path(relative).is_absolute() or ".." in parts or "\\" in relative:
            return None
        found = self.contained(self.transcript_root / relative)
        if found is None or found.suffix != suffix or not found.is_file():
            return None
        return found

    def _candidates(self, pattern: str) -> Iterator[Path]:
        root = self.transcript_root
        if not root.is_dir():
            return
        yield from root.glob(f"*/transcripts/{pattern}" if self.nested else pattern)

    def transcripts_of(self, execution_uuid: str) -> list[Path]:
        """The transcripts of one execution under the root (resolved, inside it)."""
        found = (self.contained(p) for p in self._candidates(f"*_{execution_uuid}.jsonl"))
        return sorted({p for p in found if p is not None})

    def running_transcript(
        self, step: StepView, taken: frozenset[Path] = frozenset()
    ) -> Path | None:
        """The transcript a running step is writing (the journal names a step's
        transcript only once the step ends): the newest one started at or after the
        step whose header's task (or prompt) hashes to the step's prompt hash.

        A step of a task graph is hashed with its name and dependencies, and a task whose
        prompt held a secret is masked in the header: for those, the first transcript
        started at or after the step that has no footer yet and is not in `taken` (the
        other running steps' transcripts) is taken."""
        if step.started_at is None:
            return None
        since = step.started_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")
        best: tuple[str, Path] | None = None
        open_ones: list[tuple[str, str, Path]] = []
        for path in self._candidates("*.jsonl"):
            stamp = path.name.split("_", 1)[0]
            if stamp < since:
                continue
            header = _header(path)
            if header is None:
                continue
            texts = [header.get("task"), header.get("prompt")]
            if step.prompt_hash in (_sha256(t) for t in texts if isinstance(t, str)):
                found = self.contained(path)
                if found is not None and (best is None or stamp > best[0]):
                    best = (stamp, found)
            elif best is None and not _ended(path):
                open_ones.append((stamp, str(header.get("started_at") or ""), path))
        if best is not None:
            return best[1]
        for _, _, path in sorted(open_ones):
            found = self.contained(path)
            if found is not None and found not in taken:
                return found
        return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _ended(path: Path) -> bool:
    """Whether a transcript has its footer (the run it records has ended)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
            return b'{"type": "cc_executor.footer"' in f.read()
    except OSError:
        return True


def _header(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            line = f.readline(1_000_000)
        record = json.loads(line)
    except (OSError, ValueError):
        return None
    return (
        record if isinstance(record, dict) and record.get("type") == "cc_executor.header" else None
    )


class TranscriptTail:
    """A transcript read as it grows: `read()` returns the whole lines added since the
    last call (stdout lines; the header and footer are kept aside)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.header: dict[str, Any] | None = None
        self.footer: dict[str, Any] | None = None
        self._rest = b""

    def read(self, max_bytes: int = 8 * 1024 * 1024) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(max_bytes)
        except OSError:
            return []
        self.offset += len(data)
        data = self._rest + data
        *whole, self._rest = data.split(b"\n")
        lines = []
        for line in whole:
            if line.startswith(b'{"type": "cc_executor.'):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {}
                if record.get("type") == "cc_executor.header":
                    self.header = record
                    continue
                if record.get("type") == "cc_executor.footer":
                    self.footer = record
                    continue
            lines.append(line)
        return lines


def read_whole(path: Path) -> tuple[dict[str, Any] | None, list[bytes], dict[str, Any] | None]:
    """`_transcript.read_transcript` (header, stdout lines, footer) of a contained file."""
    return read_transcript(path)


def resume_command(run_id: str, state_dir: Path) -> str:
    """The command that resumes `run_id` (the task list file is not in the journal)."""
    return (
        f"cc-execute list TASKLIST_FILE --run-id {shlex.quote(run_id)} "
        f"--state-dir {shlex.quote(str(state_dir))}"
    )


def _query(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a state.db that holds only the history (or journal)
            return []
        raise


def _alive(holder: tuple[int, str] | None) -> bool:
    """Whether the process that holds a run is alive (on this host; another host's
    holder is taken as alive: its lock cannot be seen from here)."""
    if holder is None:
        return False
    pid, host = holder
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_text(holder: tuple[int, str] | None) -> str | None:
    return f"process {holder[0]} on {holder[1]}" if holder else None


def _first_line(text: str | None, limit: int = 80) -> str:
    line = next((s.strip() for s in (text or "").splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _metadata_matches(have: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """Each wanted name present with that value, compared as text (JSON's true/false)."""
    for name, value in wanted.items():
        if name not in have:
            return False
        got = have[name]
        text = json.dumps(got) if isinstance(got, bool) or got is None else str(got)
        if text != value:
            return False
    return True
