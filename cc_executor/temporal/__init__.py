"""Task lists as Temporal workflows: durable, spread over many workers and machines.

Needs the extra: ``pip install 'cc_executor[temporal]'`` (the official SDK,
``temporalio``). See docs/cluster.md, "Running on a cluster".
"""

try:
    import temporalio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "cc_executor.temporal needs the Temporal SDK: pip install 'cc_executor[temporal]'"
    ) from exc

from ._activities import StepActivities
from ._client import DEFAULT_TASK_QUEUE, connect, result, submit_task_list
from ._worker import main, run_worker, serve
from ._workflow import TaskListWorkflow

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "StepActivities",
    "TaskListWorkflow",
    "connect",
    "main",
    "result",
    "run_worker",
    "serve",
    "submit_task_list",
]
