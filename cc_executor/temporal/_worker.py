"""The worker: polls a task queue, runs task-list workflows and their steps.

Several workers, on several machines, may poll one queue: a step runs on
whichever polls first, and moves to another when its worker is lost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ..config import CCExecutorConfig
from ._activities import StepActivities
from ._client import DEFAULT_TASK_QUEUE, connect
from ._workflow import TaskListWorkflow

__all__ = ["main", "run_worker"]

# Steps a worker runs at once unless told otherwise: each is a CLI process.
DEFAULT_MAX_CONCURRENT_STEPS = 4
HEARTBEAT_THROTTLE_S = 2.0
STICKY_TIMEOUT_S = 3.0


async def run_worker(
    address: str,
    task_queue: str = DEFAULT_TASK_QUEUE,
    *,
    namespace: str = "default",
    config: CCExecutorConfig | None = None,
    max_concurrent_steps: int = DEFAULT_MAX_CONCURRENT_STEPS,
) -> None:
    """Run a worker for task lists until cancelled; then end every running step's CLI.

    `address` is the Temporal frontend, ``HOST:PORT``. `config` is the base
    config of the steps this worker runs (a list's own options override it):
    the place for what must not travel through Temporal's history, like
    callbacks or the CLI's path on this machine. Credentials come from the
    worker's environment, which the CLI inherits.
    """
    client = await connect(address, namespace=namespace)
    activities = StepActivities(config)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[TaskListWorkflow],
        activities=[
            activities.run_step,
            activities.predict_timeout,
            activities.open_isolation,
            activities.finish_isolation,
        ],
        max_concurrent_activities=max_concurrent_steps,
        # The workflow imports only pydantic models of this package, no I/O.
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                "cc_executor", "pydantic", "pydantic_core", "loguru"
            )
        ),
        # Heartbeats (sent on stream events) reach the server at least this often while
        # the CLI prints, and a cancellation comes back with their response.
        max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_THROTTLE_S),
        # A list's next workflow task goes to the worker that ran its last one; if that
        # worker is gone, another takes it after this long (it replays the short history).
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=STICKY_TIMEOUT_S),
        # On shutdown the running steps are cancelled at once: their CLIs end, and
        # Temporal retries the steps elsewhere.
        graceful_shutdown_timeout=timedelta(0),
    )
    async with worker:
        print(
            f"cc_executor worker {os.getpid()}: task queue {task_queue!r} at {address} "
            f"(namespace {namespace!r})",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.Future()  # until cancelled


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cc_executor.temporal worker --address HOST:PORT --task-queue Q``: the
    command ``cc-execute worker`` (one definition, one help style)."""
    import typer

    from .._help import placeholders_in_words
    from .._worker_cli import worker_command

    def group() -> None:
        """Temporal workers for cc_executor's task-list workflows."""

    app = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(group)  # keeps `worker` a subcommand, as documented
    app.command(name="worker")(worker_command(serve))
    placeholders_in_words()
    args = sys.argv[1:] if argv is None else list(argv)
    typer.main.get_command(app).main(args=args, prog_name="python -m cc_executor.temporal")
    return 0


def serve(
    address: str,
    task_queue: str = DEFAULT_TASK_QUEUE,
    *,
    namespace: str = "default",
    config: CCExecutorConfig | None = None,
    max_concurrent_steps: int = DEFAULT_MAX_CONCURRENT_STEPS,
) -> None:
    """`run_worker` in its own event loop until SIGINT or SIGTERM, which end it cleanly."""

    async def until_signalled() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await run_worker(
                address,
                task_queue,
                namespace=namespace,
                config=config,
                max_concurrent_steps=max_concurrent_steps,
            )
        except asyncio.CancelledError:
            pass

    asyncio.run(until_signalled())
