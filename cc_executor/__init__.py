"""cc_executor: run Claude Code tasks from Python, unattended, and trust what comes back."""

from ._api import cc_execute, cc_execute_sync, cc_run, cc_run_sync, cc_stream
from ._run import TaskStream
from ._version import __version__
from .config import CCExecutorConfig, RetryBackoff
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CCExecutorError,
    CLINotFoundError,
    ConfigError,
    IdleTimeoutError,
    MaxTurnsError,
    OverloadedError,
    PermissionDeniedError,
    ProcessCrashedError,
    RateLimitError,
    StructuredOutputError,
    TaskFailedError,
    TaskTimeoutError,
)
from .events import Event, RetryEvent, UnknownEvent, parse_event
from .pipeline import (
    StepEvent,
    TaskListResult,
    TaskSpec,
    cc_execute_list,
    cc_execute_list_sync,
    load_task_list,
)
from .result import Attempt, TaskResult, ToolUse, is_transient

__all__ = [
    "APIError",
    "Attempt",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CCExecutorConfig",
    "CCExecutorError",
    "CLINotFoundError",
    "ConfigError",
    "Event",
    "IdleTimeoutError",
    "MaxTurnsError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProcessCrashedError",
    "RateLimitError",
    "StructuredOutputError",
    "StepEvent",
    "RetryBackoff",
    "RetryEvent",
    "TaskFailedError",
    "TaskListResult",
    "TaskResult",
    "TaskSpec",
    "TaskStream",
    "TaskTimeoutError",
    "ToolUse",
    "UnknownEvent",
    "__version__",
    "cc_execute",
    "cc_execute_list",
    "cc_execute_list_sync",
    "cc_execute_sync",
    "cc_run",
    "cc_run_sync",
    "cc_stream",
    "load_task_list",
    "is_transient",
    "parse_event",
]
