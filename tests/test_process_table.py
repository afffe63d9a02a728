"""The process table is read with psutil, in a worker thread, never on the event loop."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, _process, cc_run
from cc_executor._process import find_marked_processes, process_alive

from .conftest import read_pids

Factory = Callable[..., CCExecutorConfig]


def test_a_marked_process_is_found_until_it_is_gone() -> None:
    marker = f"CC_EXECUTOR_EXECUTION={uuid.uuid4()}"
    name, value = marker.split("=")
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, name: value}
    )
    try:
        assert find_marked_processes(marker.encode()) == {child.pid}
        assert find_marked_processes(f"{name}=other".encode()) == set()
    finally:
        child.kill()
    # Killed but not reaped: a zombie is not alive and not found.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert not process_alive(child.pid)
    assert find_marked_processes(marker.encode()) == set()
    child.wait()
    assert not process_alive(child.pid)


async def test_scans_run_off_the_event_loop(
    fake_cli: Factory, pidfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that leaves an orphan behind makes the runner scan for it: every scan of the
    process table happens in a worker thread, and the orphan is still ended."""
    loop_thread = threading.get_ident()
    scans: list[int] = []
    real_find, real_alive = _process.find_marked_processes, _process.process_alive

    def find(marker: bytes) -> set[int]:
        scans.append(threading.get_ident())
        return real_find(marker)

    def alive(pid: int) -> bool:
        scans.append(threading.get_ident())
        return real_alive(pid)

    monkeypatch.setattr(_process, "find_marked_processes", find)
    monkeypatch.setattr(_process, "process_alive", alive)
    result = await cc_run("x", fake_cli("orphan_then_exit"))
    assert result.success, result.error
    assert scans and loop_thread not in scans
    orphans = read_pids(pidfile)[1:]
    assert orphans and not any(real_alive(pid) for pid in orphans)


def test_import_does_not_load_psutil() -> None:
    code = "import sys, cc_executor; print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_alive_means_exists_and_not_a_zombie() -> None:
    assert process_alive(os.getpid())
    assert process_alive(1)  # exists, whatever of it we may read
    assert not process_alive(2**22 + 12345)  # above Linux's pid_max: never a process
