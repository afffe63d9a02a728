"""One owner of state.db (`_statestore`), one set of health checks (`_health`).

The journal and the history open the same file the same way; `doctor` and the MCP
status tool render the same probes. Real SQLite, real files, a real (fake) CLI script.
"""

from __future__ import annotations

import ast
import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, get_execution_history
from cc_executor._doctor import check_cli, check_state_store, check_transcript_dir
from cc_executor._history import HistoryRecord, _sqlite_add
from cc_executor._journal import Journal, run_ids
from cc_executor._statestore import BUSY_TIMEOUT_MS, MIGRATIONS, connect, db_path
from cc_executor.mcp._checks import check_status

PACKAGE = Path(__file__).parent.parent / "cc_executor"


def _record(uuid: str) -> HistoryRecord:
    return HistoryRecord(
        execution_uuid=uuid,
        prompt_hash="p",
        prompt_class="c",
        normalized_prompt="say hi",
        duration_s=1.0,
        success=True,
        started_at=datetime.now(timezone.utc),
    )


def _source_lines(needle: str) -> dict[str, int]:
    """Modules whose code holds `needle`: in a string that is not prose (a docstring, a
    help text), or as a dotted name. "state.db" counts where it is the whole string, a
    file name; the pragmas and SQL anywhere in a string."""
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        hits = 0
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                used = node.value == needle if needle == "state.db" else needle in node.value
                if id(node) not in docstrings and used:
                    hits += 1
            elif isinstance(node, ast.Attribute) and needle == f"{ast.unparse(node)}":
                hits += 1
        if hits:
            found[str(path.relative_to(PACKAGE))] = hits
    return found


@pytest.mark.parametrize(
    "needle",
    ["state.db", "busy_timeout", "PRAGMA journal_mode", "PRAGMA synchronous", "CREATE TABLE"],
)
def test_each_state_db_rule_is_written_once(needle: str) -> None:
    assert list(_source_lines(needle)) == ["_statestore.py"]


@pytest.mark.parametrize("needle", ["sqlite3.connect", "asyncio.to_thread", "anyio.to_thread"])
def test_only_the_owner_connects_and_picks_the_thread(needle: str) -> None:
    users = set(_source_lines(needle)) & {"_journal.py", "_history.py", "_health.py", "_doctor.py"}
    assert users == set()


async def test_journal_and_history_share_one_file_set_up_one_way(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path)
    try:
        await journal.start("run-1", 0, None, "hash", drop_later=False)
    finally:
        await journal.close()
    await asyncio.to_thread(_sqlite_add, db_path(tmp_path), _record("u1"), 10)
    assert [r.execution_uuid for r in await get_execution_history(state_dir=tmp_path)] == ["u1"]
    assert run_ids(tmp_path) == ["run-1"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("state.db")) == [
        "state.db",
        "state.db-shm",
        "state.db-wal",
        "state.db.reserve",
    ]
    assert db_path(tmp_path).stat().st_mode & 0o777 == 0o600
    conn = connect(db_path(tmp_path))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (BUSY_TIMEOUT_MS,)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    finally:
        conn.close()


@pytest.mark.parametrize("first", ["history", "history+metadata", "journal"])
async def test_a_file_made_by_an_older_version_gets_the_missing_tables(
    tmp_path: Path, first: str
) -> None:
    """Before one owner, the history made its table (later with a `metadata` column)
    without a schema version and the journal set version 1 without the history table:
    every such file migrates on open."""
    path = db_path(tmp_path)
    with sqlite3.connect(path) as old:
        history = MIGRATIONS[1].replace(",\n        metadata TEXT NOT NULL DEFAULT '{}'", "")
        assert "metadata" not in history
        old.executescript(MIGRATIONS[0] if first == "journal" else history)
        if first == "history+metadata":  # the history added its own column, unversioned
            old.executescript(MIGRATIONS[2])
        old.execute(f"PRAGMA user_version = {1 if first == 'journal' else 0}")
    old.close()
    journal = await Journal.open(tmp_path)
    await journal.close()
    await asyncio.to_thread(_sqlite_add, path, _record("u2"), 10)
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in db.execute("PRAGMA table_info(history)")}
    db.close()
    assert {"steps", "holders", "history"} <= tables and version == len(MIGRATIONS)
    assert "metadata" in columns


# -- health: doctor and the MCP status render the same probes ----------------------


async def test_a_corrupt_store_fails_doctor_and_status_alike(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = db_path(state)
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    config = CCExecutorConfig(state_dir=state, transcript_dir=tmp_path / "t")
    doctor = check_state_store(config)
    status = (await check_status(config)).state_store
    assert doctor.status == "fail" and "corrupt" in doctor.detail
    assert status.usable is False and status.error is not None and "corrupt" in status.error
    aside = f"mv {db} {db}.corrupt"
    assert aside in (doctor.fix or "") and aside in status.error
    assert db.read_bytes().endswith(b"\xff" * 16)  # neither check touched it


async def test_a_cli_without_a_version_fails_doctor_and_status_alike(tmp_path: Path) -> None:
    cli = tmp_path / "claude"
    cli.write_text("#!/bin/sh\necho 'no number here'\n")
    cli.chmod(0o755)
    config = CCExecutorConfig(cli_path=cli, state_dir=tmp_path / "s", transcript_dir=tmp_path)
    doctor = check_cli(config, {"PATH": "/usr/bin:/bin"})
    status = await check_status(config)
    assert doctor.status == "fail" and "printed no version: 'no number here'" in doctor.detail
    assert status.cli.version is None and status.ready is False
    assert status.cli.error is not None and "printed no version" in status.cli.error


async def test_doctor_and_status_agree_on_a_working_setup(
    tmp_path: Path, claude_cli: str, cli_version: str
) -> None:
    config = CCExecutorConfig(
        cli_path=claude_cli, state_dir=tmp_path / "s", transcript_dir=tmp_path / "t"
    )
    doctor = check_cli(config, {"PATH": "/usr/bin:/bin"})
    # doctor changes nothing on disk; the status tool prepares what a run needs.
    assert check_transcript_dir(config).detail.endswith("will be created on the first run")
    assert check_state_store(config).detail.endswith("will be created on the first run")
    status = await check_status(config)
    assert doctor.status == "ok" and f"{claude_cli} · {cli_version}," in doctor.detail
    assert status.cli.path == claude_cli and status.cli.version is not None
    assert status.cli.version.startswith(cli_version)
    assert status.transcript_dir.usable and status.state_store.usable
    assert check_transcript_dir(config).detail.endswith("is writable")
    assert check_state_store(config).detail.endswith("0 task-list run(s), 0 history record(s)")
    assert json.loads(status.model_dump_json())["state_store"]["location"] == str(
        db_path(tmp_path / "s")
    )


_LOCK_PROBE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)  # SQLite's SHARED range
    print("free")
except OSError:
    print("locked")
"""


def test_opening_the_store_never_drops_another_connections_locks(tmp_path: Path) -> None:
    """Closing any descriptor of a file drops every POSIX lock the process holds on it:
    a second `connect` in the process (another thread's write) must not open and close
    state.db itself, or the first connection's locks vanish and two writers corrupt the
    file (seen: "database disk image is malformed", lost history records)."""
    path = db_path(tmp_path / "state")
    reader = connect(path)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM history").fetchone()  # holds SHARED
        probe = [sys.executable, "-c", _LOCK_PROBE, str(path)]
        assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "locked"
        connect(path).close()  # what every other thread's write does first
        assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "locked"
    finally:
        reader.close()
