"""The public calls. Thin: each one builds a `RetryingRun` (every attempt of the task)
and consumes it."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import Any, TypeVar

from ._display import with_live_view
from ._predict import TimeoutPrediction, predict
from ._retry import RetryingRun, run_task
from ._run import TaskStream
from ._runtime import require_asyncio
from .config import CCExecutorConfig
from .result import TaskResult

__all__ = [
    "cc_execute",
    "cc_execute_sync",
    "cc_run",
    "cc_run_sync",
    "cc_stream",
    "predict_timeout",
    "run_blocking",
    "run_sync",
]

_T = TypeVar("_T")


def _config(config: CCExecutorConfig | None, overrides: dict[str, Any]) -> CCExecutorConfig:
    # stream_output: the live view subscribes to the run here, never inside it.
    return with_live_view((config or CCExecutorConfig()).with_overrides(**overrides))


def cc_stream(task: str, config: CCExecutorConfig | None = None, **overrides: Any) -> TaskStream:
    """Run `task` and yield its typed events live; `stream.result` holds the TaskResult after.

    Raises `ConfigError` / `CLINotFoundError` at once if nothing can start.
    Use it as `async with cc_stream(task) as stream: async for event in stream: ...`.
    """
    return TaskStream(RetryingRun(task, _config(config, overrides)))


async def cc_run(task: str, config: CCExecutorConfig | None = None, **overrides: Any) -> TaskResult:
    """Run `task` and return its `TaskResult`, successful or not.

    Raises only when nothing could start (`ConfigError`, `CLINotFoundError`);
    a task that started and failed has `success=False` and `error` set. `ConfigError`
    also covers input the CLI cannot take: an empty or blank `task`, one with a lone
    surrogate (`field="task"`), a `cwd` that cannot be entered (`field="cwd"`), an
    argument or variable too big for the OS, and a call under an event loop other than
    asyncio (trio).
    """
    require_asyncio("cc_run")
    return await run_task(task, _config(config, overrides))


async def cc_execute(task: str, config: CCExecutorConfig | None = None, **overrides: Any) -> Any:
    """Run `task` and return its answer; raise the typed `TaskFailedError` on failure.

    The answer is the final text (`str`); with `return_json=True` or a dict
    `json_schema` it is the checked `dict`, with a pydantic class as `json_schema`
    an instance of it (`StructuredOutputError` when missing or invalid). The full
    `TaskResult` is on `error.result`.
    """
    require_asyncio("cc_execute")
    result = await cc_run(task, config, **overrides)
    result.raise_for_error()
    if result.structured is not None:
        return result.structured
    return result.output


async def predict_timeout(
    task: str, config: CCExecutorConfig | None = None, **overrides: Any
) -> TimeoutPrediction:
    """The timeout `timeout="auto"` would give `task` now: history, else agent, else heuristic.

    Never raises for an unreadable history or a failed agent call: it falls
    back to the next source (and logs why).
    """
    require_asyncio("predict_timeout")
    return await predict(task, (config or CCExecutorConfig()).with_overrides(**overrides), run_task)


def run_blocking(coro: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(coro)`, with SIGTERM handled as Ctrl-C is.

    Ctrl-C: asyncio.run cancels the task, whose cleanup ends the CLI and its tool
    processes, then raises KeyboardInterrupt here. SIGTERM does the same while
    `coro` runs, if it is called from the main thread and SIGTERM has its default
    disposition (a host's own handler is left alone); the handler before it is
    put back afterwards. Used by the sync wrappers and `cc-execute` only: the
    async API never touches signal handling.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return asyncio.run(coro)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):  # asyncio.run's: cancel the main task, let cleanup run
            on_sigint(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return asyncio.run(coro)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run `coro` to its end from code without an event loop (the `*_sync` calls).

    Raises `RuntimeError` (and closes `coro`) when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_blocking(coro)
    coro.close()
    raise RuntimeError(
        "cc_*_sync cannot run inside a running event loop; use `await cc_execute(...)` / "
        "`await cc_run(...)` there instead"
    )


def cc_execute_sync(task: str, config: CCExecutorConfig | None = None, **overrides: Any) -> Any:
    """`cc_execute` for scripts without an event loop."""
    return run_sync(cc_execute(task, config, **overrides))


def cc_run_sync(task: str, config: CCExecutorConfig | None = None, **overrides: Any) -> TaskResult:
    """`cc_run` for scripts without an event loop."""
    return run_sync(cc_run(task, config, **overrides))
