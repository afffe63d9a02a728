"""cc_executor: run Claude Code tasks from Python, unattended, and trust what comes back.

Every public name is here and in `__all__`. The runner's names (`cc_execute`,
`cc_execute_list`, ...) are imported on first use (PEP 562 `__getattr__`), so that
importing a data module (`cc_executor.config`, a result, the task-list loader) does
not import the runner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._log import log_to_stderr, log_to_stdlib
from ._models import StepEvent, TaskListResult, TaskSpec
from ._tasklist import load_task_list
from ._version import __version__
from .config import CCExecutorConfig, RetryBackoff
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    CCExecutorError,
    CLIArgumentError,
    CLINotFoundError,
    ConfigError,
    DependencyFailedError,
    IdleTimeoutError,
    MaxTurnsError,
    MergeConflictError,
    OverloadedError,
    PermissionDeniedError,
    ProcessCrashedError,
    RateLimitError,
    RunLockedError,
    StateStoreError,
    StepSkippedError,
    StructuredOutputError,
    TaskFailedError,
    TaskTimeoutError,
)
from .events import Event, RetryEvent, UnknownEvent, parse_event
from .result import Attempt, TaskResult, ToolUse, is_transient

if TYPE_CHECKING:
    from ._api import (
        cc_execute,
        cc_execute_sync,
        cc_run,
        cc_run_sync,
        cc_stream,
        predict_timeout,
    )
    from ._best_of import (
        BestOfAttempt,
        BestOfResult,
        cc_execute_best_of,
        cc_execute_best_of_sync,
    )
    from ._history import HistoryRecord, get_execution_history
    from ._predict import (
        ExecutionStrategy,
        TaskComplexity,
        TaskPlan,
        TimeoutPrediction,
        get_task_complexity,
        suggest_execution_strategy,
    )
    from ._run import TaskStream
    from .pipeline import (
        cc_execute_list,
        cc_execute_list_sync,
        cc_execute_plan,
        cc_execute_plan_sync,
    )

__all__ = [
    "APIError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BestOfAttempt",
    "BestOfResult",
    "BillingError",
    "BudgetExceededError",
    "CCExecutorConfig",
    "CCExecutorError",
    "CLIArgumentError",
    "CLINotFoundError",
    "ConfigError",
    "DependencyFailedError",
    "Event",
    "ExecutionStrategy",
    "HistoryRecord",
    "IdleTimeoutError",
    "MaxTurnsError",
    "MergeConflictError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProcessCrashedError",
    "RateLimitError",
    "RetryBackoff",
    "RetryEvent",
    "RunLockedError",
    "StateStoreError",
    "StepEvent",
    "StepSkippedError",
    "StructuredOutputError",
    "TaskComplexity",
    "TaskFailedError",
    "TaskListResult",
    "TaskPlan",
    "TaskResult",
    "TaskSpec",
    "TaskStream",
    "TaskTimeoutError",
    "TimeoutPrediction",
    "ToolUse",
    "UnknownEvent",
    "__version__",
    "cc_execute",
    "cc_execute_best_of",
    "cc_execute_best_of_sync",
    "cc_execute_list",
    "cc_execute_list_sync",
    "cc_execute_plan",
    "cc_execute_plan_sync",
    "cc_execute_sync",
    "cc_run",
    "cc_run_sync",
    "cc_stream",
    "get_execution_history",
    "get_task_complexity",
    "is_transient",
    "load_task_list",
    "log_to_stderr",
    "log_to_stdlib",
    "parse_event",
    "predict_timeout",
    "suggest_execution_strategy",
]

# Imported on first use: the runner and what only it needs.
_LAZY = {
    "BestOfAttempt": "._best_of",
    "BestOfResult": "._best_of",
    "cc_execute_best_of": "._best_of",
    "cc_execute_best_of_sync": "._best_of",
    "cc_execute": "._api",
    "cc_execute_sync": "._api",
    "cc_run": "._api",
    "cc_run_sync": "._api",
    "cc_stream": "._api",
    "HistoryRecord": "._history",
    "get_execution_history": "._history",
    "ExecutionStrategy": "._predict",
    "TaskComplexity": "._predict",
    "TaskPlan": "._predict",
    "TimeoutPrediction": "._predict",
    "get_task_complexity": "._predict",
    "predict_timeout": "._api",
    "suggest_execution_strategy": "._predict",
    "TaskStream": "._run",
    "cc_execute_list": ".pipeline",
    "cc_execute_list_sync": ".pipeline",
    "cc_execute_plan": ".pipeline",
    "cc_execute_plan_sync": ".pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
