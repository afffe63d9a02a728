"""The execution history: SQLite (default) and a real redis-server, through real runs and
direct recording."""

from __future__ import annotations

import asyncio
import re
import stat
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    CCExecutorConfig,
    HistoryRecord,
    TaskResult,
    cc_run,
    cc_stream,
    get_execution_history,
)
from cc_executor._history import normalize_prompt, record_history
from cc_executor.testing import ScriptedModel, http_error, text, tool_use

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fake_result(task: str, *, seconds: float = 10.0, start: float = 0.0, **kw: Any) -> TaskResult:
    """A TaskResult as a finished run leaves it (for store tests that need no CLI)."""
    started = T0 + timedelta(seconds=start)
    return TaskResult(
        task=task,
        success=kw.pop("success", True),
        execution_uuid=str(uuid.uuid4()),
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
        duration_s=seconds,
        **kw,
    )


def backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Config fields and get_execution_history keywords for one store."""
    if kind == "redis":
        return {"history_url": request.getfixturevalue("redis_url")}
    return {"state_dir": tmp_path / "state"}


STORES = ["sqlite", "redis"]


@pytest.mark.parametrize("kind", STORES)
async def test_real_runs_round_trip_through_the_store(
    kind: str, claude_cli: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = backend(kind, tmp_path, request)
    target = tmp_path / "out.txt"
    with ScriptedModel(
        [
            tool_use("Write", {"file_path": str(target), "content": "hi"}),
            text("Wrote out.txt"),
            http_error(400, times=None),
        ]
    ) as model:
        config = model.config(cwd=tmp_path, save_transcript=False, **store)
        ok = await cc_run("Write hi to out.txt (ticket 4711)", config)
        failed = await cc_run("Summarise https://example.com/a", config)
    assert ok.success and target.read_text() == "hi"
    assert not failed.success

    records = await get_execution_history(**store)
    assert [r.execution_uuid for r in records] == [failed.execution_uuid, ok.execution_uuid]
    newest, oldest = records
    assert oldest.success and oldest.error_type is None
    assert oldest.normalized_prompt == "write hi to out.txt (ticket <n> )"
    assert oldest.duration_s == pytest.approx(ok.duration_s, abs=1e-3)
    assert oldest.cost_usd == ok.total_cost_usd and oldest.cost_usd
    assert oldest.num_turns == ok.num_turns == 2
    assert oldest.tool_calls == 1
    assert oldest.input_tokens and oldest.output_tokens
    assert oldest.model == next(iter(ok.model_usage))
    assert oldest.started_at == ok.started_at
    assert oldest.timeout_s == 3600 and oldest.timeout_source == "explicit"
    assert newest.success is False and newest.error_type == "BadRequestError"
    assert newest.normalized_prompt == "summarise <url>"
    # The exact prompt is not stored, only its hash.
    # (Ids and hashes are left out: a random hex id may contain "4711" by chance.)
    ids = {"execution_uuid", "prompt_hash", "prompt_class"}
    assert "4711" not in oldest.model_dump_json(exclude=ids)
    assert oldest.prompt_hash != newest.prompt_hash


@pytest.mark.parametrize("kind", STORES)
async def test_limit_and_since_select_the_newest(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = backend(kind, tmp_path, request)
    config = CCExecutorConfig(**store)
    for i in range(5):
        await record_history(fake_result(f"task number {i}", start=i * 60), config)
    records = await get_execution_history(limit=2, **store)
    assert [r.started_at for r in records] == [T0 + timedelta(minutes=4), T0 + timedelta(minutes=3)]
    since = await get_execution_history(since=T0 + timedelta(minutes=2), **store)
    assert [int((r.started_at - T0).total_seconds()) for r in since] == [240, 180, 120]
    assert all(isinstance(r, HistoryRecord) for r in since)


@pytest.mark.parametrize("kind", STORES)
async def test_growth_is_bounded_to_the_newest_per_prompt_class(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = backend(kind, tmp_path, request)
    config = CCExecutorConfig(history_max_per_class=3, **store)
    # Same task with other numbers: one prompt class.
    for i in range(8):
        await record_history(fake_result(f"fix issue {i}", start=i), config)
    for i in range(2):
        await record_history(fake_result(f"write the changelog for v{i}", start=100 + i), config)
    records = await get_execution_history(limit=100, **store)
    fixes = [r for r in records if r.normalized_prompt == "fix issue <n>"]
    assert [(r.started_at - T0).total_seconds() for r in fixes] == [7, 6, 5]
    assert len(records) == 5


@pytest.mark.parametrize("kind", STORES)
async def test_concurrent_writers_lose_no_record(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """20 tasks finishing at once in this process while 2 other processes record 20 each."""
    store = backend(kind, tmp_path, request)
    config = CCExecutorConfig(**store)
    script = (
        "import asyncio, sys, uuid\n"
        "from datetime import datetime, timezone\n"
        "from cc_executor import CCExecutorConfig, TaskResult\n"
        "from cc_executor._history import record_history\n"
        f"config = CCExecutorConfig(**{ {k: str(v) for k, v in store.items()}!r})\n"
        "now = datetime.now(timezone.utc)\n"
        "async def main():\n"
        "    await asyncio.gather(*(record_history(TaskResult(task=f'same task {sys.argv[1]}',"
        " success=True, execution_uuid=str(uuid.uuid4()), started_at=now, ended_at=now),"
        " config) for _ in range(20)))\n"
        "asyncio.run(main())\n"
    )
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(n)) for n in range(2)
    ]
    await asyncio.gather(
        *(record_history(fake_result("same task here"), config) for _ in range(20))
    )
    assert [await p.wait() for p in procs] == [0, 0]
    records = await get_execution_history(limit=1000, **store)
    assert len(records) == 60
    assert len({r.execution_uuid for r in records}) == 60


async def test_history_file_is_private_and_shared_with_the_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    await record_history(fake_result("a"), CCExecutorConfig(state_dir=state))
    db = state / "state.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


async def test_default_state_dir_is_the_projects_folder_in_the_records_home(
    tmp_path: Path, records_home: Path
) -> None:
    """Not the current directory (the project an agent edits): the per-user records."""
    await record_history(fake_result("a"), CCExecutorConfig())
    project = "-" + "-".join(filter(None, re.split(r"[^A-Za-z0-9]", str(tmp_path.resolve()))))
    assert (records_home / "projects" / project / "state.db").is_file()
    assert list(tmp_path.iterdir()) == []  # conftest: cwd is tmp_path
    assert [r.normalized_prompt for r in await get_execution_history()] == ["a"]


async def test_reading_an_empty_history_creates_nothing(tmp_path: Path) -> None:
    assert await get_execution_history(state_dir=tmp_path / "none") == []
    assert not (tmp_path / "none").exists()


async def test_record_history_false_records_nothing(
    claude_cli: str, tmp_path: Path, records_home: Path
) -> None:
    with ScriptedModel([text("ok")]) as model:
        config = model.config(cwd=tmp_path, record_history=False)
        result = await cc_run("hello", config)
    assert result.success
    assert config.state_dir is not None and not (config.state_dir / "state.db").exists()


async def test_a_broken_store_never_fails_the_task(claude_cli: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with socket_closed_port() as port, ScriptedModel([text("one"), text("two")]) as model:
        on_file = await cc_run("hello", model.config(cwd=tmp_path, state_dir=blocker))
        on_redis = await cc_run(
            "hello", model.config(cwd=tmp_path, history_url=f"redis://127.0.0.1:{port}/0")
        )
    assert (on_file.output, on_redis.output) == ("one", "two")
    assert on_file.success and on_redis.success


def socket_closed_port() -> Any:
    """A loopback port nothing listens on (bound, not listening, so nobody takes it)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def port() -> Any:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            yield s.getsockname()[1]

    return port()


async def test_get_execution_history_rejects_a_bad_limit() -> None:
    from cc_executor import ConfigError

    with pytest.raises(ConfigError, match="limit must be an int >= 1"):
        await get_execution_history(limit=0)


def test_normalize_prompt_replaces_numbers_ids_and_urls() -> None:
    assert (
        normalize_prompt("Fix  Issue #42 in commit 3f9a2c1d, see https://x.io/1\nThanks")
        == "fix issue # <n> in commit <id> , see <url> thanks"
    )
    assert normalize_prompt("id 123e4567-e89b-12d3-a456-426614174000") == "id <id>"


async def test_a_streamed_task_is_recorded_once_when_its_stream_ends(
    fake_cli: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with cc_stream("streamed task", fake_cli("ok", state_dir=state)) as stream:
        async for _event in stream:
            pass
    records = await get_execution_history(state_dir=state)
    assert [r.execution_uuid for r in records] == [stream.result.execution_uuid]
