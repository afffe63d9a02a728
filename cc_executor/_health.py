"""Can this machine run tasks? The checks, once, as data; two front ends render them.

`cc-execute doctor` (`_doctor.py`: one ✓ / ! / ✗ line per check, with the fix) and the
MCP tool ``check_executor_status`` (`mcp/_checks.py`: `ExecutorStatus`) ask the same
questions: is there a ``claude`` CLI and which version, where would it find
credentials, can transcripts be written, can the state store be used. Each question
is one probe here, returning what it found; neither front end probes on its own.

The probes block (a subprocess, the file system, SQLite): call them from a worker
thread in async code (`_statestore.run_sync`). Nothing here reads a secret's value:
credentials are reported by where they come from (`_command.find_auth`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._command import AuthSource, cli_tested_status, find_auth, find_cli
from ._statestore import cause_of, connect, db_path, store_error
from .config import CCExecutorConfig
from .errors import CLINotFoundError, StateStoreError

__all__ = [
    "CLIProbe",
    "DirProbe",
    "StoreProbe",
    "VERSION_TIMEOUT_S",
    "existing_parent",
    "probe_auth",
    "probe_cli",
    "probe_state_store",
    "probe_transcript_dir",
]

VERSION_TIMEOUT_S = 30.0
"""How long ``claude --version`` may take before the CLI counts as not answering."""


# -- the claude CLI ------------------------------------------------------------------


@dataclass(frozen=True)
class CLIProbe:
    """What ``find_cli`` and ``claude --version`` said."""

    path: str | None
    """The executable found, or None (then `not_found` says where it looked)."""
    not_found: CLINotFoundError | None = None
    printed: str | None = None
    """What ``--version`` printed on stdout, stripped (e.g. "2.1.328 (Claude Code)")."""
    version: str | None = None
    """The version number in it, None when `--version` did not give one."""
    tested: Literal["tested", "older", "untested"] | None = None
    """`cli_tested_status(version)`."""
    error: str | None = None
    """Why there is no version, as a phrase after "`claude --version`" (e.g. "did not
    answer within 30 s"); None when there is one or no CLI was found."""


def probe_cli(config: CCExecutorConfig, env: dict[str, str]) -> CLIProbe:
    """Find the CLI as a task would (`find_cli`) and run ``--version`` (outside any
    Claude Code session: ``CLAUDECODE`` removed). Blocks up to `VERSION_TIMEOUT_S`."""
    try:
        path = find_cli(config, env)
    except CLINotFoundError as exc:
        return CLIProbe(path=None, not_found=exc)
    run_env = {k: v for k, v in env.items() if k != "CLAUDECODE"}
    try:
        proc = subprocess.run(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=VERSION_TIMEOUT_S,
            env=run_env,
        )
    except subprocess.TimeoutExpired:
        return CLIProbe(path=path, error=f"did not answer within {VERSION_TIMEOUT_S:g} s")
    except OSError as exc:
        return CLIProbe(path=path, error=f"could not be started: {exc}")
    printed = proc.stdout.strip()
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-300:]
        return CLIProbe(
            path=path, printed=printed, error=f"exited with code {proc.returncode}: {tail}"
        )
    match = re.search(r"\d+(?:\.\d+)+", printed)
    if match is None:
        said = (proc.stdout + proc.stderr).strip()[:200]
        return CLIProbe(path=path, printed=printed, error=f"printed no version: {said!r}")
    version = match.group(0)
    return CLIProbe(path=path, printed=printed, version=version, tested=cli_tested_status(version))


# -- credentials ---------------------------------------------------------------------


def probe_auth(env: dict[str, str]) -> AuthSource | None:
    """Where the CLI would find credentials (its own order), None when nowhere."""
    return find_auth(env)


# -- the transcript folder -----------------------------------------------------------


@dataclass(frozen=True)
class DirProbe:
    """Whether the transcript folder can take a transcript."""

    path: Path
    state: Literal["disabled", "writable", "creatable", "not_writable", "not_creatable"]
    """`disabled`: save_transcript=False; `creatable`: absent, its parent is writable;
    `not_creatable`: absent and its nearest existing parent is not writable."""
    parent: Path | None = None
    """For an absent folder: its nearest existing parent."""
    error: OSError | None = None


def probe_transcript_dir(config: CCExecutorConfig, *, create: bool) -> DirProbe:
    """Write a temporary file in the transcript folder; `create=True` first makes the
    folder (owner-only) as a run would, `create=False` changes nothing on disk."""
    directory = config.resolved_transcript_dir().absolute()
    if not config.save_transcript:
        return DirProbe(directory, "disabled")
    try:
        if create:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        elif not directory.is_dir():
            parent = existing_parent(directory)
            if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
                return DirProbe(directory, "creatable", parent)
            return DirProbe(directory, "not_creatable", parent)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return DirProbe(directory, "not_writable", error=exc)
    return DirProbe(directory, "writable")


# -- the state store -----------------------------------------------------------------


@dataclass(frozen=True)
class StoreProbe:
    """Whether `<state_dir>/state.db` can be used, and what it holds."""

    path: Path | None
    """None: state_dir=None (no journal, no SQLite history)."""
    state: Literal["disabled", "usable", "creatable", "not_creatable", "broken"]
    runs: int = 0
    """Task-list runs in the journal."""
    records: int = 0
    """Records in the execution history."""
    parent: Path | None = None
    error: StateStoreError | None = None
    """For `broken`: names the file, the cause (`.cause`: "corrupt", "read-only", ...)
    and the fix (for a corrupt file, the command that moves it aside)."""


def probe_state_store(config: CCExecutorConfig, *, create: bool) -> StoreProbe:
    """Open the state file and read every page (``quick_check``). `create=True` opens it
    as a run would (created and migrated if needed); `create=False` only reads an
    existing file (read-only) and says whether an absent one could be created."""
    if config.state_dir is None:
        return StoreProbe(None, "disabled")
    path = db_path(config.state_dir)
    if not create and not path.exists():
        parent = existing_parent(config.state_dir)
        state: Literal["creatable", "not_creatable"] = (
            "creatable" if os.access(parent, os.W_OK | os.X_OK) else "not_creatable"
        )
        return StoreProbe(path, state, parent=parent)
    try:
        conn = connect(path, read_only=not create, check=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            runs = (
                conn.execute("SELECT COUNT(DISTINCT run_id) FROM steps").fetchone()[0]
                if "steps" in tables
                else 0
            )
            records = (
                conn.execute("SELECT COUNT(*) FROM history").fetchone()[0]
                if "history" in tables
                else 0
            )
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        error = store_error(exc, path, "checking it", cause=cause_of(exc))
        error.__cause__ = exc
        return StoreProbe(path, "broken", error=error)
    return StoreProbe(path, "usable", runs=int(runs), records=int(records))


def existing_parent(path: Path) -> Path:
    """`path` or its nearest ancestor that exists."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
