"""cc_executor: run Claude Code tasks from Python, unattended, and trust what comes back."""

from ._api import cc_execute, cc_execute_sync, cc_run, cc_run_sync, cc_stream
from ._run import TaskStream
from ._version import __version__
from .config import CCExecutorConfig
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
from .events import Event, UnknownEvent, parse_event
from .result import TaskResult, ToolUse

__all__ = [
    "APIError",
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
    "TaskFailedError",
    "TaskResult",
    "TaskStream",
    "TaskTimeoutError",
    "ToolUse",
    "UnknownEvent",
    "__version__",
    "cc_execute",
    "cc_execute_sync",
    "cc_run",
    "cc_run_sync",
    "cc_stream",
    "parse_event",
]
