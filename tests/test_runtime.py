"""Under an event loop other than asyncio every public async call raises a clear
`ConfigError` at once, before any process starts (issue 17, "Runtime")."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from cc_executor import (
    CCExecutorConfig,
    ConfigError,
    cc_execute,
    cc_execute_list,
    cc_run,
    cc_run_sync,
    cc_stream,
    get_execution_history,
    predict_timeout,
)

from .conftest import read_pids

FakeCLI = Callable[..., CCExecutorConfig]


async def _stream(config: CCExecutorConfig) -> None:
    async with cc_stream("x", config) as stream:
        async for _ in stream:
            pass


async def _stream_without_with(config: CCExecutorConfig) -> None:
    async for _ in cc_stream("x", config):
        pass


CALLS: dict[str, Callable[[CCExecutorConfig], Awaitable[Any]]] = {
    "cc_run": lambda c: cc_run("x", c),
    "cc_execute": lambda c: cc_execute("x", c),
    "cc_execute_list": lambda c: cc_execute_list(["a", "b"], c),
    "cc_stream": _stream,
    "cc_stream ": _stream_without_with,
    "get_execution_history": lambda c: get_execution_history(state_dir=c.state_dir),
    "predict_timeout": lambda c: predict_timeout("x", c),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_trio_gets_a_config_error_naming_asyncio_and_the_ways_round(
    name: str, fake_cli: FakeCLI, pidfile: Path
) -> None:
    config = fake_cli("ok")
    with pytest.raises(ConfigError) as caught:
        trio.run(CALLS[name], config)
    message = str(caught.value)
    assert f"{name.strip()}() runs on asyncio" in message
    assert "(trio)" in message and "trio-asyncio" in message and "to_thread" in message
    assert read_pids(pidfile) == []  # nothing started


def test_the_way_round_it_names_works_from_trio(fake_cli: FakeCLI) -> None:
    """The thread form the message gives runs the task under trio."""
    config = fake_cli("ok")

    async def main() -> Any:
        return await trio.to_thread.run_sync(functools.partial(cc_run_sync, "hi", config))

    result = trio.run(main)
    assert result.success and result.output == "echo:hi"
