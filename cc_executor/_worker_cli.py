"""The command `cc-execute worker`, also `python -m cc_executor.temporal worker`: one
definition of its options and help for both programs. `serve` is passed in, so this
module imports nothing from the Temporal package (which needs the extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

__all__ = ["worker_command"]


def worker_command(serve: Callable[..., None]) -> Callable[..., None]:
    """The Typer command function that calls ``serve(address, task_queue, namespace=…,
    max_concurrent_steps=…)`` (`cc_executor.temporal.serve`)."""

    def worker(
        address: Annotated[
            str, typer.Option("--address", metavar="HOST:PORT", help="Temporal frontend.")
        ],
        task_queue: Annotated[
            str,
            typer.Option("--task-queue", metavar="NAME", help="Task queue shared by the workers."),
        ] = "cc-executor",
        namespace: Annotated[
            str, typer.Option("--namespace", metavar="NAME", help="Temporal namespace.")
        ] = "default",
        max_concurrent_steps: Annotated[
            int,
            typer.Option(
                "--max-concurrent-steps", metavar="N", help="Steps this worker runs at once."
            ),
        ] = 4,
    ) -> None:
        """A Temporal worker for task-list workflows (needs: pip install 'cc_executor\\[temporal]').

        Several workers on several machines can share one queue; SIGINT / SIGTERM end
        it cleanly (its running steps' CLIs are ended, Temporal retries them elsewhere).
        """
        serve(address, task_queue, namespace=namespace, max_concurrent_steps=max_concurrent_steps)

    return worker
