"""`TaskResult`, the record of one run, and `classify`, the one place that
decides from what the CLI printed whether a run failed and how (with
`is_transient` beside it: which failures are worth another attempt)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    CLIArgumentError,
    IdleTimeoutError,
    MaxTurnsError,
    OverloadedError,
    PermissionDeniedError,
    ProcessCrashedError,
    RateLimitError,
    StructuredOutputError,
    TaskFailedError,
    TaskTimeoutError,
    error_from_data,
)
from .events import (
    ApiRetryEvent,
    AssistantEvent,
    BackgroundTasksChangedEvent,
    Event,
    InitEvent,
    PermissionDenial,
    RateLimitEvent,
    RateLimitInfo,
    ResultEvent,
    TaskNotificationEvent,
    TaskStartedEvent,
    TaskUpdatedEvent,
    UnknownEvent,
)

if TYPE_CHECKING:
    from ._structured import StructuredCheck

__all__ = [
    "Attempt",
    "StopReason",
    "StreamFacts",
    "TaskResult",
    "TimeoutSource",
    "ToolUse",
    "classify",
    "is_transient",
    "limit_reset_at",
    "parse_reset_time",
    "result_failed",
    "sum_usage",
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
    parent_tool_use_id: str | None = None
    """The `Task` call whose sub-agent made this call; None for the main agent."""


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
    """Everything recorded about one run. `str(result)` is the final answer text.

    A failure is kept as data (`error_type`, `error_message`, `error_fields`), so a
    result serialises, pickles and copies whole; `error` builds the typed exception
    from it. The constructor also takes `error=<TaskFailedError>` and stores its data.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, defer_build=True)

    task: str
    success: bool
    output: str = ""
    error_type: str | None = Field(
        default=None,
        description="Class name of the failure (a TaskFailedError subclass); None on success.",
    )
    error_message: str | None = Field(default=None, description="The failure's message.")
    error_fields: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "The failure's own attributes by name (status_code, reset_at, timeout_s, tools, "
            "raw, validation_errors...); empty on success and for the classes without any."
        ),
    )
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
    """When the task's CLI got its prompt (the start of its first attempt)."""
    ended_at: datetime
    prestarted_at: datetime | None = Field(
        default=None,
        description=(
            "When the task's CLI was spawned, if it was pre-started (a task list spawns the "
            "next step's CLI while a step runs; it waits for its prompt until started_at); "
            "None when the CLI was spawned with its prompt."
        ),
    )
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
    diff: str | None = Field(
        default=None,
        description=(
            "The unified diff of the task's changes (`git diff` form, binary files named "
            "as such), from git; None when cwd is not in a git work tree or git was not "
            "used (snapshot_files). At most DIFF_CAP_BYTES (256 KiB), then a line saying "
            "it was cut and where the whole diff is (diff_path). Secrets are masked."
        ),
    )
    diff_path: Path | None = Field(
        default=None,
        description=(
            "The whole diff (masked), next to the transcript: <transcript_dir>/"
            "<stamp>_<execution_uuid>.diff, mode 0600; None without a diff or transcript."
        ),
    )
    attempts: list[Attempt] = Field(default_factory=list)
    """Every run of the CLI for this task, in order (one when nothing was retried)."""
    timeout_s: float | None = Field(default=None, description="The timeout the run had.")
    timeout_source: TimeoutSource = Field(
        default="explicit", description='Where timeout_s came from (see timeout="auto").'
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="The task's `metadata` option: your labels ({name: text, number, bool}).",
    )
    branch: str | None = Field(
        default=None,
        description=(
            'A list step under isolation="worktree": the git branch its work is committed '
            "on (cc-executor/<run_id>/<n>-<name>)."
        ),
    )
    commit: str | None = Field(
        default=None,
        description='isolation="worktree": the commit (sha) of the step\'s work on `branch`.',
    )
    workdir: Path | None = Field(
        default=None,
        description=(
            "A list step under isolation: the folder it ran in (its worktree, removed when "
            'it ended; or its copy under isolation="copy", kept).'
        ),
    )

    _error: TaskFailedError | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _error_as_data(cls, data: Any) -> Any:
        """`error=<exception>` given to the constructor: keep its data, not the object."""
        if not isinstance(data, dict) or "error" not in data:
            return data
        data = dict(data)
        error = data.pop("error")
        if error is not None:
            if not isinstance(error, TaskFailedError):
                raise TypeError(f"error must be a TaskFailedError, got {type(error).__name__}")
            data.setdefault("error_type", type(error).__name__)
            data.setdefault("error_message", str(error))
            data.setdefault("error_fields", error.fields)
        return data

    @property
    def error(self) -> TaskFailedError | None:
        """The failure as its typed exception (None on success), with `.result` this result.

        Built from `error_type` / `error_message` / `error_fields` on first access and
        kept; a copy of the result (`model_copy`, pickle, JSON) builds its own.
        """
        if self.error_type is None:
            return None
        error = self._error
        if error is None or getattr(error, "result", None) is not self:
            error = error_from_data(
                self.error_type, self.error_message or "", self.error_fields, result=self
            )
            self._error = error
        return error

    @error.setter
    def error(self, error: TaskFailedError | None) -> None:
        """Store `error`'s data (None clears it); `success` is left as it is."""
        self.error_type = type(error).__name__ if error is not None else None
        self.error_message = str(error) if error is not None else None
        self.error_fields = error.fields if error is not None else {}
        self._error = None

    def __getstate__(self) -> dict[Any, Any]:
        # The built exception refers back to this result; the data is enough.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private:
            state["__pydantic_private__"] = {**private, "_error": None}
        return state

    def __eq__(self, other: object) -> bool:
        # The fields decide; whether `error` was built yet does not.
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.output

    def raise_for_error(self) -> TaskResult:
        """Raise `error` if the task failed; return self otherwise."""
        error = self.error
        if error is not None:
            raise error
        return self


class StreamFacts:
    """What a run's stream said that decides its outcome. `observe` is fed every event.

    Kept small on purpose (no event list): the results, the CLI's API retries, the
    last synthetic API-error message, a rejected limit and its reset, a failed
    local command, the pending background tasks, and whether stdout said anything.
    """

    def __init__(self) -> None:
        self.results: list[ResultEvent] = []
        self.api_retries: list[ApiRetryEvent] = []
        self.limit_reset_at: datetime | None = None
        """When a limit the API rejected the run on resets (rejected `rate_limit_event`)."""
        self.limit_rejected = False
        self.api_error_kind: str | None = None
        """The synthetic assistant line's `error` (`authentication_failed`, `rate_limit`...)."""
        self.api_error_text = ""
        self.api_error_status: int | None = None
        self.local_command_failure: str | None = None
        self.local_command_ran = False
        self.last_text = ""
        """The main agent's last assistant text (the CLI's own messages included)."""
        self.session_id: str | None = None
        self.background_tasks: set[str] = set()
        """Ids of background tasks the CLI reported as started and not yet ended."""
        self.stdout_seen = False
        """Any stdout at all (even a line that is not an event)."""

    @classmethod
    def of(
        cls,
        result: ResultEvent | None,
        api_retries: Sequence[ApiRetryEvent] = (),
        limit_reset_at: datetime | None = None,
    ) -> StreamFacts:
        """Facts of a stream known only by its last result (and retries)."""
        facts = cls()
        facts.results = [result] if result is not None else []
        facts.api_retries = list(api_retries)
        facts.limit_reset_at = limit_reset_at
        facts.limit_rejected = limit_reset_at is not None
        facts.stdout_seen = result is not None
        return facts

    def observe(self, event: Event) -> None:
        """Take in one event of the stream (any type)."""
        session = getattr(event, "session_id", None)
        if session is None and isinstance(event, UnknownEvent):
            session = event.raw.get("session_id")
        if (
            isinstance(session, str)
            and session
            and (self.session_id is None or isinstance(event, InitEvent))
        ):
            self.session_id = session  # the first line's, unless an init line names one
        if isinstance(event, ResultEvent):
            self.results.append(event)
        elif isinstance(event, AssistantEvent):
            self._observe_assistant(event)
        elif isinstance(event, ApiRetryEvent):
            self.api_retries.append(event)
        elif isinstance(event, RateLimitEvent):
            reset = limit_reset_at(event)
            if event.rate_limit_info.status == "rejected":
                self.limit_rejected = True
                self.limit_reset_at = reset or self.limit_reset_at
        elif isinstance(event, TaskStartedEvent):
            if event.is_backgrounded and event.task_id:
                self.background_tasks.add(event.task_id)
        elif isinstance(event, TaskNotificationEvent):
            self.background_tasks.discard(event.task_id or "")
        elif isinstance(event, TaskUpdatedEvent):
            if event.patch.get("status") in _TASK_ENDED:
                self.background_tasks.discard(event.task_id or "")
        elif isinstance(event, BackgroundTasksChangedEvent):
            # The CLI's own list of what still runs in the background: authoritative.
            self.background_tasks = {
                str(t.get("task_id") or t.get("id") or i) for i, t in enumerate(event.tasks)
            }

    def _observe_assistant(self, event: AssistantEvent) -> None:
        reset = limit_reset_at(event)
        if reset is not None:
            self.limit_rejected = True
            self.limit_reset_at = reset
        if event.parent_tool_use_id is None and event.text.strip():
            self.last_text = event.text.strip()
        outcome = event.local_command_outcome or {}
        self.local_command_ran = self.local_command_ran or bool(outcome)
        if outcome.get("kind") in ("failed", "error"):
            source = event.local_command_source or ""
            stderr = _LOCAL_STDERR.search(source)
            self.local_command_failure = (
                event.text.strip() or (stderr.group(1).strip() if stderr else source.strip())
            ) or "the local command failed"
        if (event.error or event.is_api_error_message) and event.parent_tool_use_id is None:
            # The main agent's API failure; a sub-agent's is the main agent's to handle.
            self.api_error_kind = event.error or event.api_error or "unknown"
            self.api_error_text = event.text.strip()
            self.api_error_status = event.api_error_status

    @property
    def background_pending(self) -> bool:
        """True while the CLI reports background work that has not ended."""
        return bool(self.background_tasks)

    @property
    def kept_results(self) -> list[ResultEvent]:
        """The results that count: a zero-turn, zero-cost error result right after a
        success is noise (CLI 2.1.1–2.1.6 printed one after background work) and dropped."""
        kept: list[ResultEvent] = []
        for r in self.results:
            if kept and _is_noise(r) and not result_failed(kept[-1]):
                continue
            kept.append(r)
        return kept

    @property
    def noise_dropped(self) -> bool:
        return len(self.kept_results) < len(self.results)

    @property
    def final_result(self) -> ResultEvent | None:
        """The result that decides the run: the last one that counts."""
        kept = self.kept_results
        return kept[-1] if kept else None


_TASK_ENDED = frozenset({"completed", "failed", "killed", "stopped", "cancelled", "error"})
_LOCAL_STDERR = re.compile(r"<local-command-stderr>(.*?)</local-command-stderr>", re.DOTALL)


def _is_noise(result: ResultEvent) -> bool:
    return result_failed(result) and not result.num_turns and not result.total_cost_usd


def result_failed(result: ResultEvent) -> bool:
    """Whether a result line reports failure. Unknown is never success.

    `is_error: true` fails; a `subtype` other than `success` fails. Without a
    `subtype`, the line succeeds only with `is_error: false`, no `errors`, and a
    `terminal_reason` that is absent or `completed`.
    """
    if result.is_error:
        return True
    if result.subtype is not None:
        return result.subtype != "success"
    if result.is_error is None or result.errors:
        return True
    return result.terminal_reason not in (None, "completed")


def sum_usage(usages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add token counts over several results' `usage` (or `modelUsage`) dicts.

    Numbers add up (nested dicts too); any other value is the last one seen.
    """
    total: dict[str, Any] = {}
    for usage in usages:
        for key, value in usage.items():
            old = total.get(key)
            if isinstance(value, bool) or value is None:
                total[key] = value if value is not None else old
            elif isinstance(value, (int, float)) and isinstance(old, (int, float)):
                total[key] = old + value
            elif isinstance(value, dict) and isinstance(old, dict):
                total[key] = sum_usage([old, value])
            else:
                total[key] = value
    return total


def classify(
    *,
    result: ResultEvent | None = None,
    exit_code: int | None,
    stopped_by: StopReason | None,
    api_retries: Sequence[ApiRetryEvent] = (),
    timeout_s: float,
    idle_timeout_s: float | None,
    on_permission_denied: Literal["fail", "warn"],
    stderr_tail: str,
    limit_reset_at: datetime | None = None,
    structured: StructuredCheck | None = None,
    facts: StreamFacts | None = None,
) -> TaskFailedError | None:
    """Decide whether a finished run failed and return the matching error, or None.

    This is the only place that maps what the CLI said (stream, exit code, stderr)
    to exceptions; docs/failures.md, "How outcomes are classified", is its table. Pass
    `facts` (everything the stream said), or, for a stream known only by its last
    line, `result`, `api_retries` and `limit_reset_at`.
    """
    if facts is None:
        facts = StreamFacts.of(result, api_retries, limit_reset_at)
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
        status = next(
            (r.error_status for r in facts.api_retries if r.error_status in (401, 403)), 401
        )
        return AuthenticationError(
            f"The API refused the credentials (HTTP {status}). Check ANTHROPIC_API_KEY "
            "or log in with `claude`; the CLI was stopped instead of retrying for minutes.",
            status_code=status,
        )
    final = facts.final_result
    if final is None:
        return _no_result_error(facts, exit_code, stderr_tail)
    local_failure = facts.local_command_failure is not None and not final.num_turns
    if result_failed(final) or local_failure:
        return _result_error(final, facts, structured)
    if _did_nothing(final, facts):
        said = f": {facts.last_text[:500]}" if facts.last_text else ""
        return TaskFailedError(
            "The CLI reported success after zero turns with no answer; nothing was done" + said
        )
    if exit_code not in (0, None) and stopped_by is None and not facts.noise_dropped:
        return ProcessCrashedError(
            f"The CLI reported success but exited with code {exit_code}; not trusting it"
        )
    if final.permission_denials and on_permission_denied == "fail":
        return _denied(final)
    if structured is not None and structured.errors:
        return StructuredOutputError(
            "The structured answer is invalid: " + "; ".join(structured.errors[:5]),
            raw=structured.raw,
            validation_errors=structured.errors,
        )
    return None


def _did_nothing(result: ResultEvent, facts: StreamFacts) -> bool:
    """Zero turns, no answer, and no local command that ran: not a success (a skill
    or command that stopped before doing anything, e.g. waiting for an approval)."""
    return (
        result.num_turns == 0
        and not (result.result or "").strip()
        and result.structured_output is None
        and not facts.local_command_ran
    )


def _denied(result: ResultEvent) -> PermissionDeniedError:
    tools = sorted({d.tool_name for d in result.permission_denials})
    names = ", ".join(tools)
    return PermissionDeniedError(
        f"The CLI denied {len(result.permission_denials)} tool call(s) ({names}); the "
        f"model's answer may claim work that was not done. Allow them with "
        f"allowed_tools=[{', '.join(repr(t) for t in tools)}] or a wider permission_mode, "
        f'or pass on_permission_denied="warn" to accept the result anyway.',
        tools=tools,
    )


def _no_result_error(
    facts: StreamFacts, exit_code: int | None, stderr_tail: str
) -> TaskFailedError:
    detail = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else "no stderr"
    if facts.limit_rejected:
        return RateLimitError(
            "The usage limit is reached (the CLI reported a rejected rate_limit_event "
            f"and exited with code {exit_code} without a result)",
            status_code=429,
            reset_at=facts.limit_reset_at,
        )
    if facts.api_error_kind is not None:
        typed = _api_error(facts.api_error_text, facts, None, None)
        if typed is not None:
            return typed
    if not facts.stdout_seen and exit_code == 1 and stderr_tail.strip():
        return CLIArgumentError(
            f"The CLI refused to start (exit code 1, nothing on stdout): {detail}. "
            "Check extra_args, the prompt and the other options; retrying cannot help."
        )
    return ProcessCrashedError(f"The CLI exited with code {exit_code} without a result: {detail}")


def _result_error(
    result: ResultEvent, facts: StreamFacts, structured: StructuredCheck | None
) -> TaskFailedError:
    errors_text = "; ".join(str(e) for e in result.errors if e is not None)
    text = (result.result or "").strip() or errors_text or facts.api_error_text
    subtype, reason = result.subtype, result.terminal_reason
    if subtype == "error_max_structured_output_retries" or (
        reason == "structured_output_retry_exhausted"
    ):
        return StructuredOutputError(
            f"The model gave no valid structured answer within the CLI's retries: {text[:500]}",
            raw=structured.raw if structured is not None else None,
            validation_errors=[str(e) for e in result.errors] or [text],
        )
    said = f": {errors_text[:500]}" if errors_text else ""
    if (
        subtype == "error_max_turns"
        or reason == "max_turns"
        or (subtype is None and _MAX_TURNS_TEXT.search(errors_text))
    ):
        return MaxTurnsError(f"The task reached max_turns after {result.num_turns} turn(s){said}")
    if (
        subtype == "error_max_budget_usd"
        or reason in ("max_budget", "max_budget_usd")
        or (subtype is None and _BUDGET_TEXT.search(errors_text))
    ):
        return BudgetExceededError(
            f"The task reached max_budget_usd (spent ${result.total_cost_usd or 0:.4f}){said}"
        )
    typed = _api_error(text, facts, result, reason)
    if typed is not None:
        return typed
    if subtype is None and (result.permission_denials or _DENIED_TEXT.search(errors_text or text)):
        if result.permission_denials:
            return _denied(result)
        return PermissionDeniedError(
            f"The CLI denied a tool call: {(errors_text or text)[:500]}", tools=[]
        )
    if facts.local_command_failure is not None and not result.num_turns:
        command = f"/{result.local_command} " if result.local_command else ""
        return TaskFailedError(
            f"The local command {command}failed: {facts.local_command_failure[:500]}"
        )
    return TaskFailedError(
        f"The CLI reported failure (subtype={subtype}, terminal_reason={reason}): {text[:500]}"
    )


def _api_error(
    text: str, facts: StreamFacts, result: ResultEvent | None, reason: str | None
) -> APIError | None:
    """The API failure the stream names, by status, limit wording or error kind; or None."""
    kind = facts.api_error_kind
    texts = [t for t in (text, facts.api_error_text) if t]
    status = (
        (result.api_error_status if result is not None else None)
        or facts.api_error_status
        or next((s for s in map(_status_in_text, texts) if s is not None), None)
    )
    reset = facts.limit_reset_at or next(
        (r for r in map(parse_reset_time, texts) if r is not None), None
    )
    message = text or facts.api_error_text or f"API error {status}"
    limit_named = any(_LIMIT_TEXT.search(t) for t in texts)
    if (
        reset is not None
        or facts.limit_rejected
        or kind == "rate_limit"
        or status == 429
        or (result is not None and result.api_error == "usage_limit_reached")
        or (limit_named and status is None)
    ):
        return RateLimitError(message, status_code=status or 429, reset_at=reset)
    if (
        kind == "authentication_failed"
        or status in (401, 403)
        or (status is None and any(_AUTH_TEXT.search(t) for t in texts))
    ):
        return AuthenticationError(
            f"{message}. The API refused the credentials or none were found: set "
            "ANTHROPIC_API_KEY or log in with `claude`.",
            status_code=status,
        )
    if kind == "billing_error" or (
        status is None and kind is None and any(_BILLING_TEXT.search(t) for t in texts)
    ):
        return BillingError(
            f"{message}. The account cannot pay for this request: check its billing.",
            status_code=status,
        )
    if kind == "invalid_request" or status == 400:
        return BadRequestError(message, status_code=status or 400)
    if status == 529 or (status is None and any(_OVERLOADED_TEXT.search(t) for t in texts)):
        return OverloadedError(message, status_code=529)
    if status is not None:
        return APIError(message, status_code=status)
    if kind is not None or reason == "api_error":
        # server_error, unknown, or an API error the CLI did not type: another try may work.
        return APIError(message, status_code=None)
    return None


# "API Error: 529 {...}" — older CLIs give the HTTP status only in the text.
_STATUS_TEXT = re.compile(
    r"\bAPI Error:?\s*(?:\(\s*)?(?:status\s*|Repeated\s+)?(\d{3})\b", re.IGNORECASE
)
_OVERLOADED_TEXT = re.compile(r"overloaded", re.IGNORECASE)
_BILLING_TEXT = re.compile(r"credit balance is too low|billing", re.IGNORECASE)
_LIMIT_TEXT = re.compile(
    r"usage limit|rate limit|hit your limit|(?<!context )limit (?:reached|exceeded)|"
    r"limit will reset",
    re.IGNORECASE,
)
_AUTH_TEXT = re.compile(
    r"not logged in|please run /login|invalid api key|authentication_error|"
    r"failed to authenticate|oauth token (?:has )?expired|invalid bearer token|invalid x-api-key",
    re.IGNORECASE,
)
_MAX_TURNS_TEXT = re.compile(r"max(?:imum)?[ _]?(?:number of )?turns", re.IGNORECASE)
_BUDGET_TEXT = re.compile(r"budget", re.IGNORECASE)
_DENIED_TEXT = re.compile(r"permission (?:to use \S+ )?(?:was )?denied|denied permission", re.I)


def _status_in_text(text: str | None) -> int | None:
    match = _STATUS_TEXT.search(text or "")
    return int(match.group(1)) if match else None


_EPOCH = re.compile(r"\|\s*(\d{9,13})\b")
_ISO = re.compile(
    r"\b(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2}| ?UTC)?)"
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_CLOCK = re.compile(
    r"\b(?:resets?|try\s+again|available\s+again|until)\b[\s:]*(?:at\s+|on\s+)?"
    r"(?:(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+"
    r"(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?"
    r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)?"
    r"(?:\s*\(?\s*(?P<tz>UTC|GMT|Z|[A-Za-z_]+/[A-Za-z_+\-]+(?:/[A-Za-z_+\-]+)?)\s*\)?)?",
    re.IGNORECASE,
)
_RELATIVE = re.compile(
    r"\bresets?\s+in\s+(?:(?P<h>\d+)\s*h(?:ours?|rs?)?)?\s*(?:(?P<m>\d+)\s*m(?:in(?:utes?|s)?)?)?",
    re.IGNORECASE,
)


def parse_reset_time(text: str | None, now: datetime | None = None) -> datetime | None:
    """When a limit resets, as a limit message's text words it; None if it does not say.

    Understood: `…|<unix seconds or ms>` ("Claude AI usage limit reached|1755806400"),
    an ISO 8601 time, "resets 1pm (Europe/Lisbon)", "resets at 3:30pm", "resets 15:00",
    "resets Jan 5, 3pm", "resets in 2h 30m". A clock time without a zone is local
    time; without a date it is the next time that hour comes (after `now`). The
    result is an aware UTC datetime, kept even if already past.
    """
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    if (epoch := _EPOCH.search(text)) is not None:
        return RateLimitInfo(resetsAt=int(epoch.group(1))).reset_at
    if (iso := _ISO.search(text)) is not None:
        with contextlib.suppress(ValueError):
            stamp = iso.group(1).replace("Z", "+00:00").replace(" UTC", "+00:00")
            value = datetime.fromisoformat(stamp.replace("UTC", "+00:00"))
            if value.tzinfo is None:
                value = value.astimezone()
            return value.astimezone(timezone.utc)
    if (clock := _CLOCK.search(text)) is not None and (clock["m"] or clock["ampm"]):
        return _clock_time(clock, now)
    if (rel := _RELATIVE.search(text)) is not None and (rel["h"] or rel["m"]):
        return now + timedelta(hours=int(rel["h"] or 0), minutes=int(rel["m"] or 0))
    return None


def _clock_time(clock: re.Match[str], now: datetime) -> datetime | None:
    hour, minute = int(clock["h"]), int(clock["m"] or 0)
    ampm = (clock["ampm"] or "").lower().replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone: tzinfo | None = None
    name = clock["tz"]
    if name:
        if name.upper() in ("UTC", "GMT", "Z"):
            zone = timezone.utc
        else:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                zone = ZoneInfo(name)
    # Local time when no (known) zone is named: astimezone() reads a naive datetime so.
    here = now.astimezone(zone) if zone is not None else now.astimezone()
    if clock["mon"]:
        month = _MONTHS.index(clock["mon"][:3].lower()) + 1
        try:
            naive = datetime(here.year, month, int(clock["day"]), hour, minute)
            if naive < here.replace(tzinfo=None) - timedelta(days=180):
                naive = naive.replace(year=naive.year + 1)  # "resets Jan 2" said on Dec 30
        except ValueError:
            return None
        return _aware(naive, zone).astimezone(timezone.utc)
    naive = here.replace(tzinfo=None, hour=hour, minute=minute, second=0, microsecond=0)
    candidate = _aware(naive, zone)
    if candidate <= now:
        candidate = _aware(naive + timedelta(days=1), zone)
    return candidate.astimezone(timezone.utc)


def _aware(naive: datetime, zone: tzinfo | None) -> datetime:
    return naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()


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
    Everything else is permanent: 400, 401/403 and missing credentials, billing,
    other 4xx, a CLI that refused its arguments (`CLIArgumentError`), max turns,
    budget, permission denied, the total timeout, configuration errors, and any
    `TaskFailedError` subclass not named here.
    """
    if isinstance(error, (AuthenticationError, BadRequestError, BillingError)):
        return False
    if isinstance(error, APIError):
        status = error.status_code
        return status is None or status in (408, 429) or status >= 500
    return isinstance(error, (ProcessCrashedError, IdleTimeoutError))
