"""What the MCP server's read-only tools look at: is the executor ready, and did a run happen.

Plain async functions over a `CCExecutorConfig`, independent of the MCP SDK, so
they read (and test) like the rest of the library. Nothing here prints a
secret: the status names where credentials come from, never their values.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from .._command import MARKER_VAR, TESTED_CLI_VERSIONS, cli_tested_status, find_auth, find_cli
from .._cost import JSONCost
from .._process import find_marked_processes
from .._transcript import find_transcripts, read_transcript, transcript_root
from .._version import __version__
from ..config import CCExecutorConfig
from ..errors import CCExecutorError, ConfigError

__all__ = [
    "AuthStatus",
    "CLIStatus",
    "ExecutionVerification",
    "ExecutorStatus",
    "StoreStatus",
    "check_status",
    "verify_execution",
]

VERSION_TIMEOUT_S = 10.0
TASK_PREVIEW_CHARS = 500
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class CLIStatus(BaseModel):
    model_config = ConfigDict(defer_build=True)

    found: bool
    path: str | None = None
    version: str | None = None
    """What `claude --version` printed, e.g. "2.1.328 (Claude Code)"."""
    tested: bool | None = None
    """Whether that version is one of `tested_versions` (None: no version)."""
    tested_versions: list[str] = Field(default_factory=lambda: list(TESTED_CLI_VERSIONS))
    """The CLI versions cc_executor's real-CLI suite passed on (the pinned one first)."""
    error: str | None = None


class AuthStatus(BaseModel):
    model_config = ConfigDict(defer_build=True)

    configured: bool
    method: str | None = None
    """Where credentials come from (a variable's name, a file's path, a cloud provider)."""
    detail: str


class StoreStatus(BaseModel):
    model_config = ConfigDict(defer_build=True)

    location: str | None
    usable: bool
    error: str | None = None


class ExecutorStatus(BaseModel):
    """`check_executor_status`: can this server run tasks now, and what is it doing."""

    model_config = ConfigDict(defer_build=True)

    ready: bool
    """The CLI answers, credentials are configured and transcripts can be written."""
    problems: list[str]
    """One line per problem, each saying how to fix it."""
    cc_executor_version: str
    cli: CLIStatus
    auth: AuthStatus
    state_store: StoreStatus
    """`state_dir/state.db` (task-list journal, execution history), or the Redis history."""
    transcript_dir: StoreStatus
    running_tasks: int
    """Claude Code runs this server has going now (single tasks and task-list steps)."""
    running_task_lists: int
    cwd: str
    """Where tasks run; a task's `cwd` must be inside it."""
    permission_mode: str
    model: str | None


class ExecutionVerification(BaseModel):
    """`verify_execution`: what the transcript on disk says about one run."""

    model_config = ConfigDict(defer_build=True)

    execution_uuid: str
    found: bool
    """A transcript with this execution uuid exists in the transcript dir (a file
    elsewhere, e.g. in the project the agent edits, is never looked at)."""
    ended: bool
    """The transcript has its footer: cc_executor saw the run end (however it ended)."""
    status: str | None = None
    """The footer's status: success, failed, cancelled or not_started."""
    success: bool | None = None
    error_type: str | None = None
    error_message: str | None = None
    exit_code: int | None = None
    stopped_by: str | None = None
    total_cost_usd: JSONCost = None
    duration_s: float | None = None
    session_id: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    attempt: int | None = None
    task: str | None = None
    """The task as given (first 500 characters)."""
    cwd: str | None = None
    cli_result: dict[str, Any] | None = None
    """The CLI's own `result` line (subtype, is_error, num_turns, result text), if printed."""
    still_running: bool = False
    """A process carrying this execution's marker is alive now."""
    transcript_path: str | None = None
    conflicting_transcripts: list[str] = []
    """Set when more than one transcript carries this uuid: none of them is trusted
    (`success` stays None) and the summary says so."""
    summary: str
    """One plain sentence: what happened."""


# -- check_executor_status -----------------------------------------------------------


async def check_status(
    config: CCExecutorConfig, *, running_tasks: int = 0, running_task_lists: int = 0
) -> ExecutorStatus:
    env = {**os.environ, **config.env}
    cli, state, transcripts = await asyncio.gather(
        _cli_status(config, env), _state_status(config), _transcript_status(config)
    )
    auth = _auth_status(env)
    problems = []
    if not cli.found or cli.version is None:
        problems.append(f"Claude Code CLI: {cli.error}")
    if not auth.configured:
        problems.append(f"authentication: {auth.detail}")
    if not transcripts.usable:
        problems.append(f"transcript dir: {transcripts.error}")
    if not state.usable:
        problems.append(f"state store: {state.error}")
    return ExecutorStatus(
        ready=cli.version is not None and auth.configured and transcripts.usable,
        problems=problems,
        cc_executor_version=__version__,
        cli=cli,
        auth=auth,
        state_store=state,
        transcript_dir=transcripts,
        running_tasks=running_tasks,
        running_task_lists=running_task_lists,
        cwd=str((config.cwd or Path.cwd()).absolute()),
        permission_mode=config.permission_mode,
        model=config.model,
    )


async def _cli_status(config: CCExecutorConfig, env: dict[str, str]) -> CLIStatus:
    try:
        path = find_cli(config, env)
    except CCExecutorError as exc:
        return CLIStatus(found=False, error=str(exc))
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in env.items() if k != "CLAUDECODE"},
        )
    except OSError as exc:
        return CLIStatus(found=True, path=path, error=f"{path} could not be started: {exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), VERSION_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return CLIStatus(
            found=True,
            path=path,
            error=f"`{path} --version` did not answer within {VERSION_TIMEOUT_S:g} s",
        )
    if proc.returncode != 0:
        tail = (err or out).decode(errors="replace").strip()[-300:]
        return CLIStatus(
            found=True,
            path=path,
            error=f"`{path} --version` exited with code {proc.returncode}: {tail}",
        )
    version = out.decode(errors="replace").strip()
    number = re.match(r"\d+(?:\.\d+)+", version)
    tested = number is not None and cli_tested_status(number.group(0)) == "tested"
    return CLIStatus(found=True, path=path, version=version, tested=tested)


def _auth_status(env: dict[str, str]) -> AuthStatus:
    """Where the CLI will find credentials (`find_auth`, the CLI's own order); no value."""
    source = find_auth(env)
    if source is None:
        config_dir = env.get("CLAUDE_CONFIG_DIR") or str(Path(env.get("HOME", "~"), ".claude"))
        credentials = Path(config_dir).expanduser() / ".credentials.json"
        return AuthStatus(
            configured=False,
            detail=(
                "no ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN or CLAUDE_CODE_OAUTH_TOKEN in the "
                f"environment and no logged-in session ({credentials}); set ANTHROPIC_API_KEY "
                "in the server's environment (the `env` of its .mcp.json entry) or run "
                "`claude` once and log in"
            ),
        )
    detail = {
        "provider": f"{source.name} is set: the provider's own credentials are used",
        "variable": f"{source.name} is set",
        "login": f"a logged-in Claude Code session ({source.name})",
        "api_key_helper": (
            f"an apiKeyHelper in {source.name} (tasks use it only with "
            "setting_sources=['user'] or settings={'apiKeyHelper': ...})"
        ),
    }[source.kind]
    return AuthStatus(configured=True, method=source.name, detail=detail)


async def _state_status(config: CCExecutorConfig) -> StoreStatus:
    from .._history import STATE_FILE, connect, create_private, redis_recent
    from .._statestore import check_integrity, store_error

    if config.history_url:
        location = _without_password(config.history_url)
        try:
            await redis_recent(config.history_url, 1, None)
        except Exception as exc:
            return StoreStatus(location=location, usable=False, error=f"Redis: {exc!r}")
        return StoreStatus(location=location, usable=True)
    if config.state_dir is None:
        return StoreStatus(
            location=None,
            usable=False,
            error="state_dir is None: no task-list journal (no resume) and no SQLite history",
        )
    path = config.state_dir.absolute() / STATE_FILE

    def probe() -> None:
        create_private(path)
        conn = connect(path)
        try:
            check_integrity(conn)
        finally:
            conn.close()

    try:
        await asyncio.to_thread(probe)
    except Exception as exc:
        error = store_error(exc, path, "checking it")
        return StoreStatus(location=str(path), usable=False, error=str(error))
    return StoreStatus(location=str(path), usable=True)


async def _transcript_status(config: CCExecutorConfig) -> StoreStatus:
    directory = config.resolved_transcript_dir().absolute()
    if not config.save_transcript:
        return StoreStatus(
            location=str(directory),
            usable=False,
            error="save_transcript is off: runs leave no transcript and cannot be verified",
        )

    def probe() -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=directory):
            pass

    try:
        await asyncio.to_thread(probe)
    except OSError as exc:
        return StoreStatus(
            location=str(directory),
            usable=False,
            error=f"cannot write to {directory}: {exc}; start the server with a writable "
            "--transcript-dir",
        )
    return StoreStatus(location=str(directory), usable=True)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# -- verify_execution ---------------------------------------------------------------


async def verify_execution(execution_uuid: str, config: CCExecutorConfig) -> ExecutionVerification:
    """Find `<stamp>_<execution_uuid>.jsonl` under the transcript dir (`transcript_root`)
    and read how the run ended. Two files for one uuid are flagged, neither trusted.

    Raises ConfigError for a malformed uuid (it is also a file-name pattern).
    """
    uuid = execution_uuid.strip().lower() if isinstance(execution_uuid, str) else ""
    if not _UUID.match(uuid):
        raise ConfigError(
            f"execution_uuid must be a UUID like 3f2b8c1e-5d4a-4c2e-9f7b-0a1b2c3d4e5f, got "
            f"{execution_uuid!r}; take it from execute_task's result or get_execution_history",
            field="execution_uuid",
        )
    return await asyncio.to_thread(_verify, uuid, config)


def _verify(uuid: str, config: CCExecutorConfig) -> ExecutionVerification:
    running = bool(find_marked_processes(f"{MARKER_VAR}={uuid}".encode()))
    directory = transcript_root(config)
    matches = find_transcripts(uuid, config)
    if len(matches) > 1:
        return ExecutionVerification(
            execution_uuid=uuid,
            found=True,
            ended=False,
            still_running=running,
            conflicting_transcripts=[str(p) for p in matches],
            summary=(
                f"{len(matches)} transcripts in {directory} carry execution {uuid}, which "
                "cc_executor writes once: at least one was written by something else, so "
                "none is trusted. Inspect them: " + ", ".join(str(p) for p in matches)
            ),
        )
    if not matches:
        summary = (
            f"No transcript of execution {uuid} in {directory}: no run with this id wrote one "
            "here (wrong id, save_transcript off, another transcript dir, or deleted)."
        )
        if running:
            summary += " A process of that execution is running now, though."
        return ExecutionVerification(
            execution_uuid=uuid, found=False, ended=False, still_running=running, summary=summary
        )
    (path,) = matches
    header, lines, footer = read_transcript(path)
    header = header or {}
    task = header.get("task")
    report: dict[str, Any] = {
        "execution_uuid": uuid,
        "found": True,
        "ended": footer is not None,
        "transcript_path": str(path),
        "attempt": header.get("attempt"),
        "task": task[:TASK_PREVIEW_CHARS] if isinstance(task, str) else None,
        "cwd": header.get("cwd"),
        "started_at": header.get("started_at"),
        "cli_result": _cli_result(lines),
        "still_running": running,
    }
    if footer is None:
        state = (
            "a process of it is still running"
            if running
            else "no process of it is left: the program running cc_executor was killed or "
            "crashed during the run, so how it ended is unknown"
        )
        outcome = "printed its result" if report["cli_result"] else "printed no result"
        report["summary"] = (
            f"Execution {uuid} started at {report['started_at']} but its transcript has no "
            f"footer: {state}. The CLI {outcome} before the transcript stops "
            f"({len(lines)} line(s))."
        )
        return ExecutionVerification(**report)
    status = footer.get("status")
    report.update(
        status=status,
        success=status == "success",
        error_type=footer.get("error_type"),
        error_message=footer.get("error_message"),
        exit_code=footer.get("exit_code"),
        stopped_by=footer.get("stopped_by"),
        total_cost_usd=footer.get("total_cost_usd"),
        duration_s=footer.get("duration_s"),
        session_id=footer.get("session_id"),
        ended_at=footer.get("ended_at"),
    )
    how = {
        "success": "succeeded",
        "failed": f"failed with {report['error_type']}: {report['error_message']}",
        "cancelled": "was cancelled (its caller stopped it) before the CLI finished",
        "not_started": "never started: the CLI could not be launched",
    }.get(str(status), f"ended with status {status!r}")
    cost = report["total_cost_usd"]
    report["summary"] = (
        f"Execution {uuid} ran from {report['started_at']} to {report['ended_at']} and {how}"
        f" (exit code {report['exit_code']}"
        + (f", cost ${cost:.4f}" if isinstance(cost, (int, float)) else "")
        + ")."
    )
    return ExecutionVerification(**report)


def _cli_result(lines: list[bytes]) -> dict[str, Any] | None:
    for raw in reversed(lines):
        if b'"result"' not in raw:
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("type") != "result":
            continue
        text = record.get("result")
        return {
            "subtype": record.get("subtype"),
            "is_error": record.get("is_error"),
            "num_turns": record.get("num_turns"),
            "result": text[:TASK_PREVIEW_CHARS] if isinstance(text, str) else None,
        }
    return None
