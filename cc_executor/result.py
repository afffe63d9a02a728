"""`TaskResult`, the record of one run, and `classify`, the one place that
decides from what the CLI printed whether a run failed and how (with
`is_transient` beside it: which failures are worth another attempt)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
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
from .events import (
    ApiRetryEvent,
    AssistantEvent,
    Event,
    PermissionDenial,
    RateLimitEvent,
    RateLimitInfo,
    ResultEvent,
)

if TYPE_CHECKING:
    from ._structured import StructuredCheck

__all__ = [
    "Attempt",
    "StopReason",
    "TaskResult",
    "TimeoutSource",
    "ToolUse",
    "classify",
    "is_transient",
    "limit_reset_at",
]

StopReason = Literal["timeout", "idle_timeout", "auth_failed", "result_no_exit", "cancelled"]
"""Why the library ended the CLI itself (None when it exited on its own)."""

TimeoutSource = Literal["history", "agent", "heuristic", "explicit"]
"""Where a run's timeout came from: given by the caller, or predicted (timeout="auto")."""


class ToolUse(BaseModel):
    """One tool call the model made, in order."""

    model_config = ConfigDict(defer_build=True)

    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Attempt(BaseModel):
    """One run of the CLI for a task; a retried task has several (`TaskResult.attempts`)."""

    model_config = ConfigDict(defer_build=True)

    number: int
    """1 for the first attempt."""
    success: bool
    error_type: str | None = None
    error_message: str | None = None
    started_at: datetime
    ended_at: datetime
    duration_s: float
    cost_usd: float | None = None
    """What this attempt cost alone; None when the CLI ended without reporting a cost."""
    session_id: str | None = None
    resumed_session: str | None = None
    """The session this attempt continued (`--resume`), if it did."""
    waited_s: float = 0.0
    """Seconds waited before this attempt started (backoff or a limit's reset)."""
    transcript_path: Path | None = None
    execution_uuid: str


class TaskResult(BaseModel):
    """Everything recorded about one run. `str(result)` is the final answer text."""

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

    task: str
    success: bool
    output: str = ""
    error: TaskFailedError | None = Field(default=None, exclude=True, repr=False)
    subtype: str | None = None
    is_error: bool | None = None
    terminal_reason: str | None = None
    session_id: str | None = None
    num_turns: int | None = None
    duration_s: float = 0.0
    duration_api_ms: float | None = None
    total_cost_usd: float | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    model_usage: dict[str, Any] = Field(default_factory=dict)
    permission_denials: list[PermissionDenial] = Field(default_factory=list)
    tool_uses: list[ToolUse] = Field(default_factory=list)
    api_retries: list[ApiRetryEvent] = Field(default_factory=list)
    exit_code: int | None = None
    stderr_tail: str = ""
    transcript_path: Path | None = None
    transcript_complete: bool = Field(
        default=True,
        description=(
            "False when a transcript of this task (any attempt's) could not be written to "
            "its end (disk full, I/O error): it holds the run up to that point and has no "
            "footer. The result itself is unaffected."
        ),
    )
    execution_uuid: str
    started_at: datetime
    ended_at: datetime
    stopped_by: StopReason | None = Field(
        default=None, description="Set when the library ended the CLI itself, and why."
    )
    structured_output: Any = Field(
        default=None, description="The CLI's raw structured_output, as it printed it."
    )
    structured: Any = Field(
        default=None,
        description=(
            "The checked answer for return_json / json_schema: a dict, or an instance of "
            "the json_schema model class. None when not asked for or invalid."
        ),
    )
    files_created: list[str] = Field(default_factory=list)
    files_modified: list[str] = Field(default_factory=list)
    files_deleted: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    """Every run of the CLI for this task, in order (one when nothing was retried)."""
    timeout_s: float | None = Field(default=None, description="The timeout the run had.")
    timeout_source: TimeoutSource = Field(
        default="explicit", description='Where timeout_s came from (see timeout="auto").'
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_type(self) -> str | None:
        """Class name of `error`, kept when the result is serialised."""
        return type(self.error).__name__ if self.error is not None else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_message(self) -> str | None:
        return str(self.error) if self.error is not None else None

    def __str__(self) -> str:
        return self.output

    def raise_for_error(self) -> TaskResult:
        """Raise `error` if the task failed; return self otherwise."""
        if self.error is not None:
            raise self.error
        return self


def classify(
    *,
    result: ResultEvent | None,
    exit_code: int | None,
    stopped_by: StopReason | None,
    api_retries: list[ApiRetryEvent],
    timeout_s: float,
    idle_timeout_s: float | None,
    on_permission_denied: Literal["fail", "warn"],
    stderr_tail: str,
    limit_reset_at: datetime | None = None,
    structured: StructuredCheck | None = None,
) -> TaskFailedError | None:
    """Decide whether a finished run failed and return the matching error, or None.

    This is the only place that maps CLI output to exceptions.
    """
    if stopped_by == "timeout":
        return TaskTimeoutError(
            f"Task exceeded its timeout of {timeout_s:g} s", timeout_s=timeout_s
        )
    if stopped_by == "idle_timeout":
        assert idle_timeout_s is not None
        return IdleTimeoutError(
            f"The CLI printed nothing for {idle_timeout_s:g} s (idle_timeout) and was ended",
            timeout_s=idle_timeout_s,
        )
    if stopped_by == "auth_failed":
        status = next((r.error_status for r in api_retries if r.error_status in (401, 403)), 401)
        return AuthenticationError(
            f"The API refused the credentials (HTTP {status}). Check ANTHROPIC_API_KEY "
            "or log in with `claude`; the CLI was stopped instead of retrying for minutes.",
            status_code=status,
        )
    if result is None:
        detail = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else "no stderr"
        return ProcessCrashedError(
            f"The CLI exited with code {exit_code} without a result: {detail}"
        )
    failed = result.is_error or result.subtype != "success"
    if failed:
        return _result_error(result, limit_reset_at, structured)
    if exit_code not in (0, None) and stopped_by is None:
        return ProcessCrashedError(
            f"The CLI reported success but exited with code {exit_code}; not trusting it"
        )
    if result.permission_denials and on_permission_denied == "fail":
        tools = sorted({d.tool_name for d in result.permission_denials})
        names = ", ".join(tools)
        return PermissionDeniedError(
            f"The CLI denied {len(result.permission_denials)} tool call(s) ({names}); the "
            f"model's answer may claim work that was not done. Allow them with "
            f"allowed_tools=[{', '.join(repr(t) for t in tools)}] or a wider permission_mode, "
            f'or pass on_permission_denied="warn" to accept the result anyway.',
            tools=tools,
        )
    if structured is not None and structured.errors:
        return StructuredOutputError(
            "The structured answer is invalid: " + "; ".join(structured.errors[:5]),
            raw=structured.raw,
            validation_errors=structured.errors,
        )
    return None


def _result_error(
    result: ResultEvent, reset_at: datetime | None, structured: StructuredCheck | None
) -> TaskFailedError:
    text = (result.result or "").strip() or "; ".join(str(e) for e in result.errors)
    subtype, reason = result.subtype, result.terminal_reason
    if subtype == "error_max_structured_output_retries" or (
        reason == "structured_output_retry_exhausted"
    ):
        return StructuredOutputError(
            f"The model gave no valid structured answer within the CLI's retries: {text[:500]}",
            raw=structured.raw if structured is not None else None,
            validation_errors=[str(e) for e in result.errors] or [text],
        )
    if subtype == "error_max_turns" or reason == "max_turns":
        return MaxTurnsError(f"The task reached max_turns after {result.num_turns} turn(s)")
    if subtype == "error_max_budget_usd" or reason in ("max_budget", "max_budget_usd"):
        return BudgetExceededError(
            f"The task reached max_budget_usd (spent ${result.total_cost_usd or 0:.4f})"
        )
    status = result.api_error_status
    text_reset = _reset_in_text(result.result)  # what older CLIs print for a usage limit
    if text_reset is not None or result.api_error == "usage_limit_reached":
        return RateLimitError(
            text or "usage limit reached",
            status_code=status or 429,
            reset_at=reset_at or text_reset,
        )
    if status is not None or reason == "api_error":
        message = text or f"API error {status}"
        if status in (401, 403):
            return AuthenticationError(message, status_code=status)
        if status == 429:
            return RateLimitError(message, status_code=status, reset_at=reset_at)
        if status == 529:
            return OverloadedError(message, status_code=status)
        if status == 400:
            return BadRequestError(message, status_code=status)
        return APIError(message, status_code=status)
    return TaskFailedError(
        f"The CLI reported failure (subtype={subtype}, terminal_reason={reason}): {text[:500]}"
    )


# Older CLIs end a run that hit the plan's usage limit with this text as the result.
_USAGE_LIMIT_TEXT = re.compile(r"usage limit reached\|(\d{9,13})", re.IGNORECASE)


def _reset_in_text(text: str | None) -> datetime | None:
    match = _USAGE_LIMIT_TEXT.search(text or "")
    if match is None:
        return None
    return RateLimitInfo(resetsAt=int(match.group(1))).reset_at


def limit_reset_at(event: Event) -> datetime | None:
    """When a limit the run hit resets, if `event` is the CLI passing on the API's word.

    A `rate_limit_event` whose status is `rejected`, or the API-error message the
    CLI writes when the plan's usage limit refused a request (its
    `api_error_params.rate_limit_info`). `None` for any other event.
    """
    info: RateLimitInfo | None = None
    if isinstance(event, RateLimitEvent):
        info = event.rate_limit_info
    elif isinstance(event, AssistantEvent) and event.api_error_params:
        raw = event.api_error_params.get("rate_limit_info")
        if isinstance(raw, dict):
            info = RateLimitInfo.model_validate(raw)
    if info is None or info.status != "rejected":
        return None
    return info.reset_at


def is_transient(error: BaseException | None) -> bool:
    """Whether another attempt may succeed where this one failed.

    Transient: HTTP 429 (rate or usage limit), 529 and other 5xx, connection
    errors (an `APIError` without a status), 408, a CLI that crashed or was
    killed without a result (`ProcessCrashedError`), an `IdleTimeoutError`.
    Everything else is permanent: 400, 401/403, other 4xx, max turns, budget,
    permission denied, the total timeout, configuration errors, and any
    `TaskFailedError` subclass not named here.
    """
    if isinstance(error, (AuthenticationError, BadRequestError)):
        return False
    if isinstance(error, APIError):
        status = error.status_code
        return status is None or status in (408, 429) or status >= 500
    return isinstance(error, (ProcessCrashedError, IdleTimeoutError))
