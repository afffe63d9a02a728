"""A failure is data on its TaskResult; the exception is built from it (docs/results.md)."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, cc_execute, cc_execute_list, cc_run
from cc_executor._journal import Journal
from cc_executor.errors import (
    ProcessCrashedError,
    RateLimitError,
    TaskFailedError,
    error_from_data,
)
from cc_executor.result import TaskResult

RESET = 1795263082


def _limit_stream(tmp_path: Path) -> Path:
    """A run the plan's usage limit refused: the CLI names the reset in its result."""
    lines = [
        {"type": "system", "subtype": "init", "session_id": "s-limit", "model": "m", "cwd": "/"},
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "num_turns": 1,
            "result": f"Claude AI usage limit reached|{RESET}",
            "session_id": "s-limit",
        },
    ]
    path = tmp_path / "limit.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _limited(fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path) -> CCExecutorConfig:
    return fake_cli(
        "replay", env={"FAKE_CLI_REPLAY": str(_limit_stream(tmp_path)), "FAKE_CLI_EXIT": "1"}
    )


async def test_a_failure_is_stored_as_data_and_error_is_built_from_it(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    result = await cc_run("x", _limited(fake_cli, tmp_path))
    reset = datetime.fromtimestamp(RESET, timezone.utc)
    assert result.error_type == "RateLimitError"
    assert result.error_fields == {"status_code": 429, "reset_at": reset}
    assert "usage limit reached" in (result.error_message or "")
    error = result.error
    assert isinstance(error, RateLimitError) and isinstance(error, TaskFailedError)
    assert error.reset_at == reset and error.status_code == 429
    assert error.result is result and result.error is error
    # JSON keeps the data: the same typed error comes back.
    back = TaskResult.model_validate_json(result.model_dump_json())
    assert back.error_fields["reset_at"] == reset.isoformat().replace("+00:00", "Z")
    assert isinstance(back.error, RateLimitError) and back.error.reset_at == reset
    assert back.error.result is back
    with pytest.raises(RateLimitError) as raised:
        back.raise_for_error()
    assert raised.value.result is back


async def test_a_copied_result_builds_its_own_error(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    """What merging attempts does (`model_copy`) can never leave an error pointing at the
    other result: each result's error points at that result."""
    result = await cc_run("x", _limited(fake_cli, tmp_path))
    first = result.error
    copy = result.model_copy(update={"task": "another step"})
    assert copy.error is not first and copy.error is not None
    assert copy.error.result is copy and first is not None and first.result is result
    assert isinstance(copy.error, RateLimitError) and copy.error.reset_at == first.reset_at


async def test_after_retries_the_error_points_at_the_merged_result(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    config = fake_cli("crash_mid_stream", num_retries=1, retry_backoff=0)
    with pytest.raises(ProcessCrashedError) as raised:
        await cc_execute("x", config)
    result = raised.value.result
    assert len(result.attempts) == 2  # two attempts merged into one result
    assert result.error is not None and result.error.result is result
    assert raised.value.exit_code == 3 and "something broke" in raised.value.stderr_tail


async def test_each_step_error_points_at_its_own_step(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    config = fake_cli("crash_mid_stream", num_retries=1, retry_backoff=0)
    out = await cc_execute_list(["a", "b"], config, stop_on_failure=False, state_dir=None)
    assert [r.task for r in out.results] == ["a", "b"]
    for step in out.results:
        assert isinstance(step.error, ProcessCrashedError) and step.error.result is step
    assert out.error is out[0].error


async def test_a_result_and_a_raised_error_pickle_round_trip(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    with pytest.raises(RateLimitError) as raised:
        await cc_execute("x", _limited(fake_cli, tmp_path))
    error = raised.value
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitError and str(copy) == str(error)
    assert copy.reset_at == error.reset_at and copy.status_code == 429
    assert copy.result.execution_uuid == error.result.execution_uuid
    assert copy.result.error is not None and copy.result.error.result is copy.result
    result = pickle.loads(pickle.dumps(error.result))
    assert result == error.result
    assert isinstance(result.error, RateLimitError) and result.error.result is result


def test_error_from_data_keeps_unknown_kinds_failing() -> None:
    error = error_from_data("AFutureError", "went wrong", {"detail": 1})
    assert type(error) is TaskFailedError and str(error) == "went wrong"
    assert error.fields == {"detail": 1}


async def test_the_journal_restores_a_failure_as_data(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    """The real SQLite journal: a failed step comes back with its typed error."""
    result = await cc_run("x", _limited(fake_cli, tmp_path))
    journal = await Journal.open(tmp_path / "state")
    try:
        await journal.start("run-1", 0, None, "hash", drop_later=False)
        await journal.finish("run-1", 0, result)
        records = await journal.load("run-1")
    finally:
        await journal.close()
    restored = records[0].result
    assert restored is not None and restored is not result
    assert restored.error_type == "RateLimitError" and not restored.success
    error: Any = restored.error
    assert isinstance(error, RateLimitError) and error.result is restored
    assert error.reset_at == datetime.fromtimestamp(RESET, timezone.utc)
    assert error.status_code == 429 and str(error) == str(result.error)


def test_assigning_error_stores_its_data() -> None:
    now = datetime.now(timezone.utc)
    result = TaskResult(task="t", success=False, execution_uuid="u", started_at=now, ended_at=now)
    result.error = RateLimitError("limited", status_code=429, reset_at=now)
    assert result.error_type == "RateLimitError"
    assert result.error_fields == {"status_code": 429, "reset_at": now}
    assert isinstance(result.error, RateLimitError) and result.error.result is result
    result.error = None
    assert result.error is None and result.error_type is None and result.error_fields == {}
