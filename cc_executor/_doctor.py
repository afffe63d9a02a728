"""`cc-execute doctor`: can this machine run tasks? One `Check` per requirement.

Each check says what it found and, when it fails, the fix. Secrets are never
read into the output: an API key is reported as set or not, a login as the
file that holds it.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from ._command import (
    INSTALL_CLI,
    cli_tested_status,
    describe_tested_clis,
    find_auth,
    find_cli,
    provider_name,
)
from ._statestore import cause_of, check_integrity, move_aside_command
from .config import CCExecutorConfig
from .errors import CLINotFoundError

__all__ = ["Check", "auth_source", "run_checks"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def run_checks(config: CCExecutorConfig, environ: dict[str, str] | None = None) -> list[Check]:
    env = dict(os.environ if environ is None else environ)
    return [
        check_cli(config, env),
        check_auth(env),
        check_transcript_dir(config),
        check_state_store(config),
        check_platform(),
    ]


def check_cli(config: CCExecutorConfig, env: dict[str, str]) -> Check:
    install = INSTALL_CLI
    try:
        path = find_cli(config, env)
    except CLINotFoundError as exc:
        detail = "not found in " + "; ".join(exc.searched) if exc.searched else str(exc)
        return Check("claude CLI", "fail", detail, f"{exc.fix or install}, or set $CC_EXECUTOR_CLI")
    run_env = {k: v for k, v in env.items() if k != "CLAUDECODE"}
    try:
        proc = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, env=run_env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("claude CLI", "fail", f"{path}: `--version` failed: {exc}", install)
    match = re.search(r"\d+(\.\d+)+", proc.stdout)
    if proc.returncode != 0 or match is None:
        said = (proc.stdout + proc.stderr).strip()[:200]
        return Check("claude CLI", "fail", f"{path}: `--version` gave {said!r}", install)
    version = match.group(0)
    tested = f"tested: {describe_tested_clis()}"
    status = cli_tested_status(version)
    if status == "tested":
        return Check("claude CLI", "ok", f"{path} · {version}, a tested version ({tested})")
    if status == "older":
        return Check(
            "claude CLI",
            "warn",
            f"{path} · {version}, older than every tested version ({tested})",
            install,
        )
    return Check(
        "claude CLI",
        "ok",
        f"{path} · {version}, not a tested version ({tested}); newer CLIs usually work",
    )


def auth_source(env: dict[str, str]) -> str | None:
    """Where the CLI would find credentials, in words; None when it would find none."""
    source = find_auth(env)
    if source is None:
        return None
    if source.kind == "provider":
        return (
            f"{provider_name(source.name)} (${source.name}); its credentials are checked by the CLI"
        )
    if source.kind == "variable":
        return f"${source.name} is set"
    if source.kind == "login":
        return f"logged-in session ({source.name})"
    # Tasks load no settings file unless asked (setting_sources, docs/options.md).
    return (
        f"apiKeyHelper in {source.name}: tasks use it only with setting_sources=['user'] "
        "or settings={'apiKeyHelper': ...}"
    )


def check_auth(env: dict[str, str]) -> Check:
    source = auth_source(env)
    if source is not None:
        return Check("authentication", "ok", source)
    if sys.platform == "darwin":
        return Check(
            "authentication",
            "warn",
            "no API key set; a login may be in the macOS keychain (not checked)",
            "if tasks fail with AuthenticationError: run `claude` and /login",
        )
    return Check(
        "authentication",
        "fail",
        "no API key set and no logged-in session",
        "export ANTHROPIC_API_KEY=…, or run `claude` once and /login "
        "(`cc-execute demo` needs neither)",
    )


def check_transcript_dir(config: CCExecutorConfig) -> Check:
    directory = config.resolved_transcript_dir()
    fix = "set $CC_EXECUTOR_TRANSCRIPT_DIR (or transcript_dir=) to a writable folder"
    if not config.save_transcript:
        return Check("transcripts", "ok", "disabled (save_transcript=False)")
    if directory.is_dir():
        try:
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            return Check("transcripts", "fail", f"{directory} is not writable: {exc}", fix)
        return Check("transcripts", "ok", f"{directory} is writable")
    parent = _existing_parent(directory)
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return Check("transcripts", "ok", f"{directory} will be created on the first run")
    return Check("transcripts", "fail", f"{directory} cannot be created in {parent}", fix)


def check_state_store(config: CCExecutorConfig) -> Check:
    if config.state_dir is None:
        return Check("state store", "ok", "disabled (state_dir=None): no journal, no history")
    path = config.state_dir / "state.db"
    fix = f"check the permissions of {path}, or move it away (a new one is created)"
    if not path.exists():
        parent = _existing_parent(config.state_dir)
        if os.access(parent, os.W_OK | os.X_OK):
            return Check("state store", "ok", f"{path} will be created on the first run")
        return Check("state store", "fail", f"{path} cannot be created in {parent}", fix)
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            check_integrity(conn)
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
    except sqlite3.Error as exc:
        cause = cause_of(exc)
        if cause == "corrupt":
            fix = f"move it aside (a new one is created): {move_aside_command(path)}"
        return Check("state store", "fail", f"{path} cannot be read: {cause}: {exc}", fix)
    return Check(
        "state store", "ok", f"{path}: {runs} task-list run(s), {records} history record(s)"
    )


def check_platform() -> Check:
    if sys.platform.startswith("linux"):
        from ._contain import containment_mode

        mode = containment_mode()
        how = "a cgroup leaf + a subreaper" if mode == "cgroup+subreaper" else "a subreaper"
        return Check(
            "platform", "ok", f"Linux: every process a task starts is contained ({how}) and ended"
        )
    return Check(
        "platform",
        "warn",
        f"{sys.platform}: only the CLI's process group is ended when a task ends",
        "run on Linux for full process tracking (docs/processes.md)",
    )


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
