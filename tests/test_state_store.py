"""state.db failures are typed and lose nothing; one run id runs in one place at a time.

Real SQLite, real processes, a real tmpfs (we are root in CI), the real CLI against
the scripted model; the fake CLI only where a step must hang until it is killed.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from cc_executor import (
    CCExecutorConfig,
    ConfigError,
    RunLockedError,
    StateStoreError,
    StepEvent,
    cc_execute_list,
    get_execution_history,
)
from cc_executor._doctor import check_state_store
from cc_executor.testing import ScriptedModel, extract_prompt, text

from .conftest import read_pids

CHILD = Path(__file__).parent / "list_child.py"


def _rows(state: Path, run_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(state / "state.db") as db:
        return db.execute(
            "SELECT step, status FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()


def _prompts(model: ScriptedModel) -> list[str | None]:
    return [extract_prompt(r.body) for r in model.main_requests]


# -- a corrupt state.db ----------------------------------------------------------


async def _make_state(model: ScriptedModel, config: CCExecutorConfig, state: Path) -> None:
    model.add(text("one"), text("two"))
    done = await cc_execute_list(["first", "second"], config, state_dir=state, run_id="r")
    assert done.success
    assert not (state / "state.db-wal").exists() or (state / "state.db-wal").stat().st_size == 0


def _overwrite_page(db: Path, page: int) -> None:
    """Page numbers as SQLite counts them: 1 is the header page."""
    size = int.from_bytes(db.read_bytes()[16:18], "big") or 65536
    with db.open("r+b") as f:
        f.seek((page - 1) * size)
        f.write(os.urandom(size))


@pytest.mark.parametrize("page", ["first", "second", "last"])
async def test_a_corrupt_state_db_is_refused_with_the_command_to_move_it_aside(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path, page: str
) -> None:
    state = tmp_path / "state"
    await _make_state(model, config, state)
    db = state / "state.db"
    pages = db.stat().st_size // int.from_bytes(db.read_bytes()[16:18], "big")
    _overwrite_page(db, {"first": 1, "second": 2, "last": pages}[page])
    before = db.read_bytes()

    model.add(text("must not run"))
    with pytest.raises(StateStoreError) as info:
        await cc_execute_list(["first", "second", "third"], config, state_dir=state, run_id="r")
    err = info.value
    assert err.cause == "corrupt" and err.path == str(db)
    assert f"mv {db} {db}.corrupt" in str(err)
    assert len(model.main_requests) == 2  # nothing ran on a store it cannot trust

    with pytest.raises(StateStoreError) as history_info:
        await get_execution_history(state_dir=state)
    assert history_info.value.cause == "corrupt"
    assert f"mv {db} {db}.corrupt" in str(history_info.value)
    assert db.read_bytes() == before  # refused, never "repaired" or replaced
    doctor = check_state_store(config.with_overrides(state_dir=state))
    assert doctor.status == "fail" and f"mv {db} {db}.corrupt" in (doctor.fix or "")

    # Moved aside as told: a new store, and the list runs again.
    db.rename(db.with_name("state.db.corrupt"))
    model.add(text("1"), text("2"), text("3"))
    again = await cc_execute_list(["first", "second", "third"], config, state_dir=state)
    assert again.success


async def test_a_stored_result_that_does_not_parse_is_a_corrupt_store(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    await _make_state(model, config, state)
    with sqlite3.connect(state / "state.db") as db:
        db.execute("UPDATE steps SET result_json = '{\"not a result' WHERE step = 1")
    db.close()
    with pytest.raises(StateStoreError) as info:
        await cc_execute_list(["first", "second"], config, state_dir=state, run_id="r")
    assert info.value.cause == "corrupt" and "reading run 'r'" in str(info.value)
    assert len(model.main_requests) == 2


# -- a full disk -----------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full; return it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return filler


async def test_state_dir_filling_up_mid_list_is_typed_and_the_finished_step_never_reruns(
    model: ScriptedModel, config: CCExecutorConfig, small_tmpfs: Path
) -> None:
    state = small_tmpfs / "state"
    fillers: list[Path] = []

    def fill_when_step_1_starts(event: StepEvent) -> None:
        if event.index == 1 and event.status == "started":
            fillers.append(_fill(small_tmpfs))

    model.add(text("one"), text("two"))
    with pytest.raises(StateStoreError) as info:
        await cc_execute_list(
            ["first", "second", "third"],
            config,
            state_dir=state,
            run_id="full",
            on_step=fill_when_step_1_starts,
        )
    err = info.value
    assert err.cause == "disk full" and err.path == str(state / "state.db")
    assert "rollback" not in str(err) and "resume does not run it again" in str(err)
    # Nothing lost: both steps that ran are on the error, and recorded as finished.
    assert err.list_result is not None
    assert [r.output for r in err.list_result.results] == ["one", "two"]
    assert _rows(state, "full") == [(0, "success"), (1, "success")]

    fillers[0].unlink()
    model.add(text("three"))
    resumed = await cc_execute_list(
        ["first", "second", "third"], config, state_dir=state, run_id="full"
    )
    assert resumed.success and resumed.restored == [0, 1]
    assert _prompts(model) == ["first", "second", "third"]  # each step ran once


async def test_a_list_on_a_full_state_dir_is_refused_before_any_step_runs(
    model: ScriptedModel, config: CCExecutorConfig, small_tmpfs: Path
) -> None:
    _fill(small_tmpfs)
    model.add(text("must not run"))
    with pytest.raises(StateStoreError) as info:
        await cc_execute_list(["first"], config, state_dir=small_tmpfs / "state")
    assert info.value.cause == "disk full"
    assert str(small_tmpfs / "state") in info.value.path
    assert model.main_requests == []


# -- one run id at a time ----------------------------------------------------------


async def test_a_second_call_on_a_held_run_id_is_refused_naming_the_holder(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold(event: StepEvent) -> None:
        if event.status == "started":
            holding.set()
            await release.wait()

    model.add(text("one"))
    first = asyncio.create_task(
        cc_execute_list(["only"], config, state_dir=state, run_id="busy", on_step=hold)
    )
    await holding.wait()
    with pytest.raises(RunLockedError) as info:
        await cc_execute_list(["only"], config, state_dir=state, run_id="busy")
    err = info.value
    assert (err.run_id, err.holder_pid, err.holder_host) == (
        "busy",
        os.getpid(),
        socket.gethostname(),
    )
    assert f"process {os.getpid()}" in str(err) and "wait_for_lease" in str(err)
    # Another run id in the same state_dir is not held.
    model.add(text("other"))
    assert (await cc_execute_list(["x"], config, state_dir=state, run_id="other")).success

    waiting = asyncio.create_task(
        cc_execute_list(["only"], config, state_dir=state, run_id="busy", wait_for_lease=60)
    )
    await asyncio.sleep(0.3)  # let it start waiting; the assertions below do not depend on it
    release.set()
    assert (await first).success
    second = await waiting
    assert second.success and second.restored == [0]
    assert sorted(map(str, _prompts(model))) == ["only", "x"]  # "only" ran once


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "10", True])
async def test_wait_for_lease_must_be_seconds(
    config: CCExecutorConfig, tmp_path: Path, bad: Any
) -> None:
    with pytest.raises(ConfigError) as info:
        await cc_execute_list(["x"], config, state_dir=tmp_path, wait_for_lease=bad)
    assert info.value.field == "wait_for_lease"


def _child(config: CCExecutorConfig, **args: Any) -> subprocess.Popen[str]:
    fields = config.model_dump(mode="json", exclude_unset=True)
    payload = json.dumps({"config": fields, **args})
    return subprocess.Popen(
        [sys.executable, str(CHILD), payload],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(60):
        while not condition():
            await asyncio.sleep(0.05)


async def test_two_processes_on_one_run_id_run_each_step_once(
    model: ScriptedModel, config: CCExecutorConfig, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    run = {"prompts": ["step a", "step b"], "run_id": "shared", "wait": 120}
    cfg = config.with_overrides(state_dir=state)
    # Step a answers late, so the second process starts while the first holds the run id.
    model.add(text("A", delay_before=4), text("B"))
    first = _child(cfg, **run)
    await _until(lambda: len(model.main_requests) == 1)
    second = _child(cfg, probe_first=True, **run)
    out_second, err_second = await asyncio.to_thread(second.communicate, timeout=120)
    out_first, err_first = await asyncio.to_thread(first.communicate, timeout=120)
    assert first.returncode == 0, err_first
    assert second.returncode == 0, err_second
    a, b = json.loads(out_first), json.loads(out_second)
    assert b["was_locked"] == a["pid"]  # it was refused while the first held the run id
    assert a["outputs"] == b["outputs"] == ["A", "B"]
    assert a["restored"] == [] and b["restored"] == [0, 1]
    assert _prompts(model) == ["step a", "step b"]  # each step ran exactly once


async def test_a_sigkilled_holder_does_not_block_the_resume(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path, pidfile: Path
) -> None:
    state = tmp_path / "state"
    holder = _child(
        fake_cli("hang_silent", state_dir=state, timeout=600),
        prompts=["the step"],
        run_id="crashed",
    )
    try:
        await _until(lambda: len(read_pids(pidfile)) >= 1)  # its CLI runs: the lock is held
        assert _rows(state, "crashed") == [(0, "started")]
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    finally:
        for pid in read_pids(pidfile):  # the orphaned fake CLI
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    resumed = await cc_execute_list(["the step"], fake_cli("ok", state_dir=state), run_id="crashed")
    assert resumed.success and resumed.restored == []
    assert resumed[0].output == "echo:the step"
    assert _rows(state, "crashed") == [(0, "success")]
