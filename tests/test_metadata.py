"""`metadata={...}` on a task and per step travels to every record: the result and
callbacks, the transcript header, the journal, the history (SQLite and Redis); the
history filters by it and `cc-execute history --by KEY` sums cost per value (issue 17)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    CCExecutorConfig,
    ConfigError,
    StepEvent,
    TaskResult,
    TaskSpec,
    cc_execute_list,
    cc_run,
    cc_run_sync,
    get_execution_history,
)
from cc_executor._journal import Journal
from cc_executor._transcript import read_transcript

FakeCLI = Callable[..., CCExecutorConfig]


async def test_metadata_round_trips_through_result_callbacks_transcript_journal_and_history(
    fake_cli: FakeCLI, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    finished: list[TaskResult] = []
    steps: list[StepEvent] = []
    config = fake_cli(
        "ok", state_dir=state, metadata={"team": "ml"}, success_callback=finished.append
    )
    tasks = [TaskSpec("build it", metadata={"step": "build", "n": 1}), "test it"]
    listed = await cc_execute_list(tasks, config, run_id="r1", on_step=steps.append)
    assert listed.success
    build = {"team": "ml", "step": "build", "n": 1}
    assert [r.metadata for r in listed.results] == [build, {"team": "ml"}]
    assert [r.metadata for r in finished] == [build, {"team": "ml"}]
    assert [(e.status, e.metadata) for e in steps] == [
        ("started", build),
        ("success", build),
        ("started", {"team": "ml"}),
        ("success", {"team": "ml"}),
    ]
    for result in listed.results:
        assert result.transcript_path is not None
        header, _, _ = read_transcript(result.transcript_path)
        assert header is not None and header["metadata"] == result.metadata

    journal = await Journal.open(state)
    try:
        records = await journal.load("r1")
    finally:
        await journal.close()
    assert [records[i].result.metadata for i in (0, 1)] == [build, {"team": "ml"}]  # type: ignore[union-attr]
    steps.clear()
    again = await cc_execute_list(tasks, config, run_id="r1", on_step=steps.append)
    assert [r.metadata for r in again.results] == [build, {"team": "ml"}]
    assert [(e.status, e.metadata) for e in steps] == [
        ("restored", build),
        ("restored", {"team": "ml"}),
    ]

    history = await get_execution_history(state_dir=state)
    assert sorted(json.dumps(r.metadata, sort_keys=True) for r in history) == sorted(
        json.dumps(m, sort_keys=True) for m in (build, {"team": "ml"})
    )
    only = await get_execution_history(state_dir=state, metadata={"step": "build"})
    assert [r.metadata for r in only] == [build]
    assert len(await get_execution_history(state_dir=state, metadata={"team": "ml"})) == 2
    assert await get_execution_history(state_dir=state, metadata={"n": True}) == []
    assert await get_execution_history(state_dir=state, metadata={"team": "web"}) == []
    assert len(await get_execution_history(1, state_dir=state, metadata={"team": "ml"})) == 1


async def test_redis_history_keeps_and_filters_metadata(fake_cli: FakeCLI, redis_url: str) -> None:
    config = fake_cli("ok", history_url=redis_url)
    for team in ("ml", "web", "ml"):
        assert (await cc_run(f"task for {team}", config, metadata={"team": team})).success
    ml = await get_execution_history(history_url=redis_url, metadata={"team": "ml"})
    assert [r.metadata for r in ml] == [{"team": "ml"}, {"team": "ml"}]
    newest = await get_execution_history(1, history_url=redis_url, metadata={"team": "web"})
    assert [r.metadata for r in newest] == [{"team": "web"}]


async def test_a_history_made_before_metadata_gains_the_column(
    fake_cli: FakeCLI, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    from cc_executor import _history

    old_schema = _history._SCHEMA.replace(",\n    metadata TEXT NOT NULL DEFAULT '{}'", "")
    assert "metadata" not in old_schema
    conn = sqlite3.connect(state / "state.db")
    conn.executescript(old_schema)
    conn.execute(
        "INSERT INTO history (execution_uuid, prompt_hash, prompt_class, normalized_prompt,"
        " duration_s, success, tool_calls, started_at, started_ts, cost_usd)"
        " VALUES ('old', 'h', 'c', 'old task', 1.0, 1, 0, '2026-01-01T00:00:00+00:00',"
        " 1767225600, 0.5)"
    )
    conn.commit()
    conn.close()
    assert (await cc_run("new", fake_cli("ok", state_dir=state, metadata={"k": "v"}))).success
    records = await get_execution_history(state_dir=state)
    assert [(r.execution_uuid == "old", r.metadata) for r in records] == [
        (False, {"k": "v"}),
        (True, {}),
    ]


def test_history_by_key_sums_cost_per_value(fake_cli: FakeCLI, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = fake_cli("ok", state_dir=state)  # the fake CLI reports $0.001 per run
    for metadata in ({"team": "ml"}, {"team": "ml"}, {"team": "web"}, {}):
        assert cc_run_sync("x", config, metadata=metadata).success
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "history", "--state-dir", str(state)]
        + ["--by", "team", "--json"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [
        {"team": "ml", "runs": 2, "cost_usd": 0.002},
        {"team": "(none)", "runs": 1, "cost_usd": 0.001},
        {"team": "web", "runs": 1, "cost_usd": 0.001},
    ]
    table = subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "history", "--state-dir", str(state)]
        + ["--by", "team"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert table.returncode == 0 and "$0.0020" in table.stdout and "total" in table.stdout


@pytest.mark.parametrize(
    "metadata",
    [{"a": [1]}, {"a": {"b": 1}}, {"a": None}, {"": "x"}, {"a": float("inf")}, ["a"]],
)
async def test_bad_metadata_is_refused_before_anything_starts(
    metadata: Any, fake_cli: FakeCLI, pidfile: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        await cc_run("x", fake_cli("ok"), metadata=metadata)
    assert caught.value.field == "metadata" and not pidfile.exists()
    with pytest.raises(ConfigError):
        await get_execution_history(metadata=metadata)
    with pytest.raises(ConfigError):
        TaskSpec("x", metadata=metadata)


def test_a_list_file_step_takes_metadata(tmp_path: Path) -> None:
    from cc_executor import load_task_list

    path = tmp_path / "tasks.yaml"
    path.write_text("tasks:\n  - prompt: build\n    metadata: {step: build, n: 2}\n  - test\n")
    specs = load_task_list(path)
    assert specs[0].overrides == {"metadata": {"step": "build", "n": 2}}
    path.write_text("tasks:\n  - prompt: build\n    metadata: {step: [1]}\n")
    with pytest.raises(ConfigError):
        load_task_list(path)
