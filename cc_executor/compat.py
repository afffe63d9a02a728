"""Calls the system cc_executor grew from used, kept working unchanged.

Its orchestrator prompt calls::

    result = execute_task_via_websocket(task, timeout=120, tools=["Write", "Edit"])
    if result["success"]:
        print(result["output"])
    else:
        print(result["exit_code"])

There is no websocket any more: the task runs here, as `cc_run` runs it (retries,
timeouts, cleanup, transcript and history included).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import Any

from ._api import cc_run
from .config import CCExecutorConfig
from .result import TaskResult

__all__ = ["execute_task_via_websocket"]


def execute_task_via_websocket(
    task: str,
    timeout: float = 120,
    tools: Sequence[str] | None = ("Write", "Edit"),
    *,
    config: CCExecutorConfig | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run `task` and wait for it (synchronous); the outcome as a dict, success or not.

    `timeout` is the task's total seconds (`timeout=`); `tools` the tools it may use
    without asking (`allowed_tools=`; None: the permission mode alone decides); any
    other keyword is a `CCExecutorConfig` option. Called where an event loop is
    running, the task runs in a worker thread and this call blocks until it ends.

    Returns ``{"success": bool, "output": str, "exit_code": int, "error": str | None,
    "error_type": str | None, "execution_uuid": str, "session_id": str | None,
    "total_cost_usd": float | None, "duration_s": float, "num_turns": int | None,
    "transcript_path": str | None, "files_created": [...], "files_modified": [...],
    "files_deleted": [...]}``. `exit_code` is the CLI's exit status; when the process
    had none to give (ended by the library), 0 for a success and -1 otherwise.

    Raises, as `cc_run` does, only when nothing could start: `ConfigError`
    (a bad option or task), `CLINotFoundError`.
    """
    overrides: dict[str, Any] = {"timeout": timeout, **options}
    if tools is not None:
        overrides["allowed_tools"] = tuple(tools)
    coro = cc_run(task, config, **overrides)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return as_dict(asyncio.run(coro))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return as_dict(pool.submit(asyncio.run, coro).result())


def as_dict(result: TaskResult) -> dict[str, Any]:
    """`result` in the shape `execute_task_via_websocket` returns (see there)."""
    exit_code = result.exit_code
    if exit_code is None:
        exit_code = 0 if result.success else -1
    return {
        "success": result.success,
        "output": result.output,
        "exit_code": exit_code,
        "error": str(result.error) if result.error is not None else None,
        "error_type": type(result.error).__name__ if result.error is not None else None,
        "execution_uuid": result.execution_uuid,
        "session_id": result.session_id,
        "total_cost_usd": result.total_cost_usd,
        "duration_s": result.duration_s,
        "num_turns": result.num_turns,
        "transcript_path": str(result.transcript_path) if result.transcript_path else None,
        "files_created": list(result.files_created),
        "files_modified": list(result.files_modified),
        "files_deleted": list(result.files_deleted),
    }
