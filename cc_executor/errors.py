"""The exception tree of cc_executor.

::

    CCExecutorError
    ├── ConfigError                 bad configuration or input; nothing was started
    ├── CLINotFoundError            no `claude` executable; nothing was started
    ├── StateStoreError             state.db cannot be read or written     .path .cause
    ├── RunLockedError              another call holds this run_id         .run_id .holder_pid
    └── TaskFailedError             the task started and did not succeed   .result
        ├── TaskTimeoutError        total timeout
        │   └── IdleTimeoutError    no output for idle_timeout seconds
        ├── ProcessCrashedError     exited or was killed without a result  .exit_code .stderr_tail
        ├── CLIArgumentError        the CLI refused its command line or input (exit 1, reason
        │                           on stderr, nothing on stdout); never retried
        ├── APIError                the API refused the request            .status_code
        │   ├── AuthenticationError 401 / 403, or no credentials at all; never retried
        │   ├── BillingError        the account cannot pay; never retried
        │   ├── RateLimitError      429, or a plan usage limit               .reset_at
        │   ├── OverloadedError     529
        │   └── BadRequestError     400, or the CLI's `invalid_request`; never retried
        ├── MaxTurnsError
        ├── BudgetExceededError
        ├── PermissionDeniedError   a tool was denied and on_permission_denied="fail"
        ├── StructuredOutputError   answer missing or not valid   .raw .validation_errors
        ├── StepSkippedError        a step of a task graph that never started  .reason
        │   └── DependencyFailedError   a step it depends on failed         .dependency
        └── MergeConflictError      isolated steps' work does not merge    .files

A `TaskFailedError` that is none of the subclasses is a failure the CLI reported
without saying more (an unknown subtype, a local slash command that failed...);
it is never retried.

Every `TaskFailedError` carries the full `TaskResult` on `.result`, so nothing
the CLI reported is lost when the call raises. The result holds the failure as
plain data (`error_type`, `error_message`, `error_fields`); `TaskResult.error`
builds the exception from it with `error_from_data` (see docs/results.md).
The mapping from what the CLI printed to one of these classes lives in one
place: `cc_executor.result.classify`; which of them are worth a retry is decided
next to it, in `cc_executor.result.is_transient`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from .pipeline import TaskListResult
    from .result import TaskResult

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "CCExecutorError",
    "CLIArgumentError",
    "CLINotFoundError",
    "ConfigError",
    "DependencyFailedError",
    "IdleTimeoutError",
    "MaxTurnsError",
    "MergeConflictError",
    "OverloadedError",
    "PermissionDeniedError",
    "ProcessCrashedError",
    "RateLimitError",
    "RunLockedError",
    "StateStoreError",
    "StepSkippedError",
    "StructuredOutputError",
    "TaskFailedError",
    "TaskTimeoutError",
]
# `__all__` lists the exception classes (the CLI maps each to an exit code); the module
# also offers `error_from_data`, which builds one of them from a result's data.


class CCExecutorError(Exception):
    """Root of every error cc_executor raises."""


class ConfigError(CCExecutorError, ValueError):
    """The configuration is invalid; `field` names the offending field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CLINotFoundError(CCExecutorError, FileNotFoundError):
    """No usable `claude` executable was found; nothing was started.

    `searched` lists every place that was looked at (as shown in the message),
    `fix` is the one command that installs the CLI where the lookup finds it
    (empty when it is not known).
    """

    def __init__(self, message: str, *, searched: tuple[str, ...] = (), fix: str = "") -> None:
        super().__init__(message)
        self.searched = searched
        self.fix = fix


class StateStoreError(CCExecutorError):
    """The state store (`<state_dir>/state.db`: journal and history) failed.

    `path` is the file, `cause` a short name of what went wrong: ``"disk full"``,
    ``"corrupt"``, ``"read-only"``, ``"permission denied"``, ``"busy"``, ``"I/O error"``
    or ``"error"``; the message says what to do (for a corrupt file: the command that
    moves it aside). The underlying error is chained (`__cause__`). When it stops a
    task list, `list_result` holds every step that ran, each recorded as finished.
    """

    def __init__(self, message: str, *, path: Path | str, cause: str) -> None:
        super().__init__(message)
        self.path = str(path)
        self.cause = cause
        self.list_result: TaskListResult | None = None


class RunLockedError(CCExecutorError):
    """Another call (this process or another) is running the task list `run_id`.

    One run id runs in one place at a time: the lock is an advisory `flock` on a file
    beside `state.db`, released by the kernel when its holder ends, even by SIGKILL.
    `holder_pid` / `holder_host` name the holder as it recorded itself (None when it
    had not yet); pass `wait_for_lease=SECONDS` to wait for it instead.
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        lock_path: Path | str,
        holder_pid: int | None,
        holder_host: str | None,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.lock_path = str(lock_path)
        self.holder_pid = holder_pid
        self.holder_host = holder_host


class TaskFailedError(CCExecutorError):
    """The task ran and did not succeed. `result` holds everything that was recorded.

    The error is built from its `TaskResult` (`TaskResult.error`, `raise_for_error()`),
    which sets `result`; a list-level error (a spent budget) is given the last step's
    result as `result=`. `fields` is the error's own data as plain values.
    """

    result: TaskResult

    def __init__(self, message: str, *, result: TaskResult | None = None) -> None:
        super().__init__(message)
        if result is not None:
            self.result = result

    @property
    def exit_code(self) -> int | None:
        return self.result.exit_code if hasattr(self, "result") else None

    @property
    def stderr_tail(self) -> str:
        return self.result.stderr_tail if hasattr(self, "result") else ""

    @property
    def fields(self) -> dict[str, Any]:
        """The attributes this class adds (`timeout_s`, `status_code`, `reset_at`, `tools`,
        `raw`, `validation_errors`...), by name: what `TaskResult.error_fields` stores."""
        return {k: v for k, v in vars(self).items() if k != "result" and not k.startswith("_")}

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor arguments do not pickle by default: rebuild from data.
        return (
            error_from_data,
            (type(self), str(self), self.fields, getattr(self, "result", None)),
        )


def error_from_data(
    error_type: str | type[TaskFailedError],
    message: str,
    fields: Mapping[str, Any] | None = None,
    result: TaskResult | None = None,
) -> TaskFailedError:
    """The exception a failure recorded as data stands for.

    `error_type` is a class of this module (or its name; a name this version does not
    know gives a plain `TaskFailedError`), `fields` its attributes as `fields` gave them
    (JSON round-tripped values are accepted: `reset_at` as an ISO 8601 string), and
    `result` the `TaskResult` the error is about, set as `.result`. The one place a
    `TaskFailedError` is rebuilt: `TaskResult.error`, the journal, Temporal, pickle.
    """
    cls = globals().get(error_type) if isinstance(error_type, str) else error_type
    if not (isinstance(cls, type) and issubclass(cls, TaskFailedError)):
        cls = TaskFailedError
    fields = dict(fields or {})
    accepted = inspect.signature(cls.__init__).parameters
    known = {k: v for k, v in fields.items() if k in accepted and k not in ("self", "message")}
    try:
        error = cls(message, **known)
    except TypeError:  # recorded without a field its constructor needs: keep what there is
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        known = {}
    vars(error).update({k: v for k, v in fields.items() if k not in known})
    if result is not None:
        error.result = result
    return error


class TaskTimeoutError(TaskFailedError):
    """The task ran longer than `timeout` seconds and was ended."""

    def __init__(self, message: str, *, timeout_s: float) -> None:
        super().__init__(message)
        self.timeout_s = timeout_s


class IdleTimeoutError(TaskTimeoutError):
    """The CLI printed nothing for `idle_timeout` seconds and was ended."""


class ProcessCrashedError(TaskFailedError):
    """The CLI exited, or was killed, without reporting a result."""


class CLIArgumentError(TaskFailedError):
    """The CLI refused to start with what it was given: an unknown flag in `extra_args`,
    an empty prompt, an option it rejects. It exited 1 with nothing on stdout; the
    message holds its stderr line. Permanent: never retried."""


class APIError(TaskFailedError):
    """The Messages API refused the request; `status_code` is its HTTP status."""

    def __init__(self, message: str, *, status_code: int | None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthenticationError(APIError):
    """401 / 403: the credentials were refused. Never retried."""


class BillingError(APIError):
    """The account cannot pay for the request (the CLI's `billing_error`). Never retried."""


class RateLimitError(APIError):
    """429: rate limited, or the plan's usage limit is reached.

    `reset_at` (an aware UTC datetime) is when the limit resets, when the API or the
    CLI's message said so (kept even if already past when the run ended).
    """

    def __init__(
        self, message: str, *, status_code: int | None, reset_at: datetime | str | None = None
    ) -> None:
        super().__init__(message, status_code=status_code)
        if isinstance(reset_at, str):  # as JSON gives it back
            reset_at = datetime.fromisoformat(reset_at.replace("Z", "+00:00"))
        self.reset_at = reset_at


class OverloadedError(APIError):
    """529: the API is overloaded."""


class BadRequestError(APIError):
    """400: the API rejected the request as invalid."""


class MaxTurnsError(TaskFailedError):
    """The task reached `max_turns` before finishing."""


class BudgetExceededError(TaskFailedError):
    """The task reached `max_budget_usd` before finishing."""


class PermissionDeniedError(TaskFailedError):
    """The CLI denied one or more tool calls and `on_permission_denied="fail"`."""

    def __init__(self, message: str, *, tools: list[str]) -> None:
        super().__init__(message)
        self.tools = tools


class StructuredOutputError(TaskFailedError):
    """The answer asked for with `return_json` / `json_schema` is missing or invalid.

    `raw` is what the model gave (the CLI's `structured_output`, or the model's last
    `StructuredOutput` call when the CLI passed none on; None if there was none);
    `validation_errors` lists what is wrong, one `"<json pointer>: <message>"` each.
    """

    def __init__(self, message: str, *, raw: Any, validation_errors: list[str]) -> None:
        super().__init__(message)
        self.raw = raw
        self.validation_errors = validation_errors


class StepSkippedError(TaskFailedError):
    """A step of a task graph that was never started: the list stopped first
    (`stop_on_failure=True` after another step failed, or a spent budget). `reason`
    says which; its `TaskResult` has `success=False`, no CLI ran. Never retried."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class DependencyFailedError(StepSkippedError):
    """A step of a task graph skipped because a step it depends on (directly or through
    other steps) failed: `dependency` is the failed step's name. Never retried."""

    def __init__(self, message: str, *, dependency: str, reason: str = "") -> None:
        super().__init__(message, reason=reason)
        self.dependency = dependency


class MergeConflictError(TaskFailedError):
    """The work of isolated steps (``isolation="worktree"`` or ``"copy"``) does not merge.

    On a step: the branches of the steps it depends on conflict, so it did not run (its
    result has no session and costs nothing) and the steps depending on it are skipped.
    On a list: its final state could not be merged into the starting branch (it moved
    during the run, or a local change is in the way); the state is left on a branch.
    `files` names the files in conflict (relative to the repository; may be empty when
    git refused for another reason, given in the message). Nothing is left half-merged.
    """

    def __init__(self, message: str, *, files: list[str]) -> None:
        super().__init__(message)
        self.files = files
