"""The one event-loop rule: cc_executor runs on asyncio (its processes, pipes and
timers are asyncio's). `require_asyncio` is the first line of every public async call,
so under another loop (trio, or anyio on trio) the caller gets a `ConfigError` saying
how to call it, before anything starts."""

from __future__ import annotations

import asyncio

from .errors import ConfigError

__all__ = ["require_asyncio"]


def require_asyncio(call: str) -> None:
    """Raise `ConfigError` unless an asyncio event loop runs in this thread.

    `call` names the public function in the message ("cc_run").
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigError(
            f"{call}() runs on asyncio, but {_running_library()} is running here, not "
            "asyncio. From trio, either run it on an asyncio loop inside trio with "
            "trio-asyncio (`async with trio_asyncio.open_loop(): await "
            f"trio_asyncio.aio_as_trio({call})(...)`), or in a worker thread with the "
            "synchronous form (`await trio.to_thread.run_sync(functools.partial("
            "cc_run_sync, task, ...))`). From plain synchronous code use cc_run_sync / "
            "cc_execute_sync / cc_execute_list_sync."
        ) from None


def _running_library() -> str:
    """The async library running this code, when sniffio (installed with trio and
    anyio) can tell; imported only here, on the error path."""
    try:
        import sniffio

        return f"another event loop ({sniffio.current_async_library()})"
    except Exception:  # sniffio missing, or no async library it knows of
        return "another event loop (or none)"
