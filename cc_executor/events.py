"""Typed events of the CLI's `stream-json` output, and `parse_event`.

Each stdout line of `claude -p --output-format stream-json` is one JSON object.
`parse_event` turns it into one of the models below, chosen by its `type` (and,
for `system` lines, its `subtype`). Lines of a type or subtype this version does
not know become an `UnknownEvent` holding the raw object, so a newer CLI does
not break older code. Only a line that is not a JSON object at all raises
`InvalidLineError` (the caller keeps its bytes in the transcript).

Every model keeps fields it does not declare (`extra="allow"`), reachable with
`event.model_extra`.

Reading is tolerant, so that what the CLI says is never lost to a detail of its
shape: a `null` in a field that has a default gives the default (CLI versions
write `null` for `usage`, `permission_denials`, `errors`, `is_error`...), an
optional field of an unexpected shape is left out, a `result` line without
`subtype` is still a `ResultEvent`, and a line the fast JSON parser refuses (a
lone UTF-16 surrogate escape such as `\\ud83d`, nesting deeper than its limit)
is read again with the standard library's `json`. The strict models stay the
fast path; only a line they refuse is read again leniently (`_salvage`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "ApiRetryEvent",
    "AssistantEvent",
    "AssistantMessage",
    "BackgroundTasksChangedEvent",
    "CompactBoundaryEvent",
    "ContentBlock",
    "Event",
    "HookResponseEvent",
    "HookStartedEvent",
    "InitEvent",
    "InvalidLineError",
    "ModelFallbackEvent",
    "PermissionDenial",
    "PermissionDeniedEvent",
    "RateLimitEvent",
    "RateLimitInfo",
    "ResultEvent",
    "RetryEvent",
    "StatusEvent",
    "StreamEvent",
    "TaskNotificationEvent",
    "TaskProgressEvent",
    "TaskStartedEvent",
    "TaskUpdatedEvent",
    "TextBlock",
    "ThinkingBlock",
    "ThinkingTokensEvent",
    "ToolResultBlock",
    "ToolUseBlock",
    "UnknownBlock",
    "UnknownEvent",
    "UserEvent",
    "parse_event",
]


class _Model(BaseModel):
    # defer_build: schemas are built on first use, which keeps `import cc_executor` fast.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


_DECLARED: dict[type[BaseModel], frozenset[str]] = {}


def _declared_names(cls: type[BaseModel]) -> frozenset[str]:
    names = _DECLARED.get(cls)
    if names is None:
        found = set(cls.model_fields)
        found.update(f.alias for f in cls.model_fields.values() if f.alias)
        names = _DECLARED[cls] = frozenset(found)
    return names


# --- content blocks -------------------------------------------------------------


class TextBlock(_Model):
    type: Literal["text"]
    text: str = ""


class ThinkingBlock(_Model):
    type: Literal["thinking"]
    thinking: str = ""


class ToolUseBlock(_Model):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Model):
    type: Literal["tool_result"]
    tool_use_id: str
    content: Any = None
    is_error: bool = False


class UnknownBlock(_Model):
    """A content block of a type this version does not model."""

    type: str


ContentBlock = Annotated[
    Union[  # noqa: UP007 - a discriminated union inside a fallback union reads clearer this way
        Annotated[
            Union[TextBlock, ThinkingBlock, ToolUseBlock, ToolResultBlock],  # noqa: UP007
            Field(discriminator="type"),
        ],
        UnknownBlock,
    ],
    Field(union_mode="left_to_right"),
]


# --- events ----------------------------------------------------------------------


class _Event(_Model):
    session_id: str | None = None
    uuid: str | None = None


class InitEvent(_Event):
    """`system/init`: the first line; names the session, model, tools and cwd."""

    type: Literal["system"]
    subtype: Literal["init"]
    cwd: str | None = None
    model: str | None = None
    tools: list[str] = Field(default_factory=list)
    permission_mode: str | None = Field(default=None, alias="permissionMode")
    claude_code_version: str | None = None


class StatusEvent(_Event):
    """`system/status`: what the CLI is doing (e.g. `requesting`, `compacting`)."""

    type: Literal["system"]
    subtype: Literal["status"]
    status: str | None = None
    compact_result: str | None = None
    """`success` (or a failure word) once a compaction ended."""


class ApiRetryEvent(_Event):
    """`system/api_retry`: the CLI's own retry of a failed API call."""

    type: Literal["system"]
    subtype: Literal["api_retry"]
    attempt: int | None = None
    max_retries: int | None = None
    retry_delay_ms: float | None = None
    error_status: int | None = None
    error: str | None = None


class PermissionDeniedEvent(_Event):
    """`system/permission_denied`: the CLI refused a tool call."""

    type: Literal["system"]
    subtype: Literal["permission_denied"]
    tool_name: str | None = None
    tool_use_id: str | None = None
    message: str | None = None


class ModelFallbackEvent(_Event):
    """`system/model_fallback`: the CLI switched to a `fallback_model` (e.g. on overload)."""

    type: Literal["system"]
    subtype: Literal["model_fallback"]
    trigger: str | None = None
    original_model: str | None = None
    fallback_model: str | None = None
    content: str | None = None


class HookStartedEvent(_Event):
    """`system/hook_started`: a configured hook began to run."""

    type: Literal["system"]
    subtype: Literal["hook_started"]
    hook_id: str | None = None
    hook_name: str | None = None
    hook_event: str | None = None


class HookResponseEvent(_Event):
    """`system/hook_response`: a hook finished; its output and exit code."""

    type: Literal["system"]
    subtype: Literal["hook_response"]
    hook_id: str | None = None
    hook_name: str | None = None
    hook_event: str | None = None
    output: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    outcome: str | None = None


class TaskStartedEvent(_Event):
    """`system/task_started`: a sub-agent or background job started.

    `is_backgrounded=True`: the model may end its turn while it runs; the CLI then
    prints a `result`, keeps running, and prints another `result` after the job.
    """

    type: Literal["system"]
    subtype: Literal["task_started"]
    task_id: str | None = None
    tool_use_id: str | None = None
    description: str | None = None
    task_type: str | None = None
    is_backgrounded: bool = False


class TaskProgressEvent(_Event):
    """`system/task_progress`: a running task's progress (usage so far, last tool)."""

    type: Literal["system"]
    subtype: Literal["task_progress"]
    task_id: str | None = None
    tool_use_id: str | None = None
    description: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    last_tool_name: str | None = None


class TaskUpdatedEvent(_Event):
    """`system/task_updated`: fields of a task changed (`patch`, e.g. `status`)."""

    type: Literal["system"]
    subtype: Literal["task_updated"]
    task_id: str | None = None
    patch: dict[str, Any] = Field(default_factory=dict)


class TaskNotificationEvent(_Event):
    """`system/task_notification`: a task ended (`status`: completed, failed, killed...)."""

    type: Literal["system"]
    subtype: Literal["task_notification"]
    task_id: str | None = None
    tool_use_id: str | None = None
    status: str | None = None
    output_file: str | None = None
    summary: str | None = None


class BackgroundTasksChangedEvent(_Event):
    """`system/background_tasks_changed`: `tasks` lists every background task still running.

    An empty list: no background work is pending any more.
    """

    type: Literal["system"]
    subtype: Literal["background_tasks_changed"]
    tasks: list[dict[str, Any]] = Field(default_factory=list)


class CompactBoundaryEvent(_Event):
    """`system/compact_boundary`: the conversation was compacted here."""

    type: Literal["system"]
    subtype: Literal["compact_boundary"]
    compact_metadata: dict[str, Any] = Field(default_factory=dict)


class ThinkingTokensEvent(_Event):
    """`system/thinking_tokens`: an estimate of the thinking tokens so far."""

    type: Literal["system"]
    subtype: Literal["thinking_tokens"]
    estimated_tokens: int | None = None
    estimated_tokens_delta: int | None = None


class RateLimitInfo(_Model):
    """The plan's usage limit as the API reported it (`anthropic-ratelimit-unified-*`)."""

    status: str | None = None
    """`allowed`, `allowed_warning` or `rejected` (the limit is reached)."""
    resets_at: int | None = Field(default=None, alias="resetsAt")
    """Unix time (seconds) when the limit resets."""
    rate_limit_type: str | None = Field(default=None, alias="rateLimitType")
    utilization: float | None = None

    @property
    def reset_at(self) -> datetime | None:
        if self.resets_at is None:
            return None
        seconds = self.resets_at / 1000 if self.resets_at > 10**11 else self.resets_at
        return datetime.fromtimestamp(seconds, timezone.utc)


class RateLimitEvent(_Event):
    """`rate_limit_event`: the plan's usage limit changed; `rejected` means it is reached."""

    type: Literal["rate_limit_event"]
    rate_limit_info: RateLimitInfo = Field(default_factory=RateLimitInfo)


class AssistantMessage(_Model):
    id: str | None = None
    model: str | None = None
    content: list[ContentBlock] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: dict[str, Any] | None = None


class AssistantEvent(_Event):
    """A complete assistant message: text, thinking and tool calls.

    `parent_tool_use_id` names the `Task` tool call whose sub-agent wrote it (None
    for the main agent). A message the CLI wrote itself (`is_api_error_message`,
    model `<synthetic>`) carries `error`: `authentication_failed`, `billing_error`,
    `rate_limit`, `invalid_request`, `server_error` or `unknown`. A local slash
    command's message carries `local_command_outcome` (`{"kind": "failed"}`...).
    """

    type: Literal["assistant"]
    message: AssistantMessage = Field(default_factory=AssistantMessage)
    parent_tool_use_id: str | None = None
    error: str | None = None
    is_api_error_message: bool = False
    api_error_status: int | None = None
    api_error: str | None = None
    api_error_params: dict[str, Any] | None = None
    local_command_outcome: dict[str, Any] | None = None
    local_command_source: str | None = None

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.message.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.message.content if isinstance(b, ToolUseBlock)]


class UserEvent(_Event):
    """A user turn the CLI sent back to the model, usually tool results."""

    type: Literal["user"]
    message: dict[str, Any] = Field(default_factory=dict)
    parent_tool_use_id: str | None = None
    tool_use_result: Any = None


class StreamEvent(_Event):
    """A raw Messages API streaming event (`--include-partial-messages`)."""

    type: Literal["stream_event"]
    event: dict[str, Any] = Field(default_factory=dict)
    parent_tool_use_id: str | None = None

    @property
    def text_delta(self) -> str | None:
        """The text of a `text_delta`, or None for any other streaming event."""
        if self.event.get("type") == "content_block_delta":
            delta = self.event.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = delta.get("text")
                return text if isinstance(text, str) else None
        return None


class PermissionDenial(_Model):
    tool_name: str = ""
    tool_use_id: str | None = None
    tool_input: dict[str, Any] = Field(default_factory=dict)


class ResultEvent(_Event):
    """A `result` line: the end of a turn. `subtype="success"` with `is_error=True` is a failure.

    A run usually has one; a CLI with background work prints one more per
    notification (`result_index` counts them, `origin` says what started the turn,
    e.g. `{"kind": "task-notification"}`). Some CLI versions omit `subtype`
    (None here) or write `is_error: null` (None here).
    """

    type: Literal["result"]
    subtype: str | None = None
    is_error: bool | None = None
    result: str | None = None
    num_turns: int | None = None
    duration_ms: float | None = None
    duration_api_ms: float | None = None
    total_cost_usd: float | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    model_usage: dict[str, Any] = Field(default_factory=dict, alias="modelUsage")
    permission_denials: list[PermissionDenial] = Field(default_factory=list)
    terminal_reason: str | None = None
    stop_reason: str | None = None
    api_error_status: int | None = None
    api_error_type: str | None = None
    api_error: str | None = None
    errors: list[Any] = Field(default_factory=list)
    structured_output: Any = None
    result_index: int | None = None
    origin: dict[str, Any] | None = None
    local_command: str | None = None


class UnknownEvent(BaseModel):
    """A line of a type (or `system` subtype) this version does not model."""

    model_config = ConfigDict(defer_build=True)

    type: str | None = None
    subtype: str | None = None
    raw: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and "raw" not in data:
            t, s = data.get("type"), data.get("subtype")
            return {
                "type": t if isinstance(t, str) else None,
                "subtype": s if isinstance(s, str) else None,
                "raw": data,
            }
        return data


_SystemEvent = Annotated[
    Union[  # noqa: UP007
        InitEvent,
        StatusEvent,
        ApiRetryEvent,
        PermissionDeniedEvent,
        ModelFallbackEvent,
        HookStartedEvent,
        HookResponseEvent,
        TaskStartedEvent,
        TaskProgressEvent,
        TaskUpdatedEvent,
        TaskNotificationEvent,
        BackgroundTasksChangedEvent,
        CompactBoundaryEvent,
        ThinkingTokensEvent,
    ],
    Field(discriminator="subtype"),
]
_KnownEvent = Annotated[
    Union[  # noqa: UP007
        _SystemEvent, AssistantEvent, UserEvent, StreamEvent, ResultEvent, RateLimitEvent
    ],
    Field(discriminator="type"),
]
Event = Annotated[
    Union[_KnownEvent, UnknownEvent],  # noqa: UP007
    Field(union_mode="left_to_right"),
]
"""Any event of the stream: the known models above, or `UnknownEvent`."""


class RetryEvent(BaseModel):
    """Sent by cc_executor itself (never by the CLI) when a failed attempt will be retried.

    It comes before the wait: `resume_at` says when the next attempt starts.
    `cc_stream` yields it between the attempts' events, `on_event` receives it,
    and `stream_output` prints it.
    """

    model_config = ConfigDict(defer_build=True)

    type: Literal["cc_executor_retry"] = "cc_executor_retry"
    attempt: int
    """The attempt that failed (1 for the first)."""
    error_type: str
    error_message: str
    reason: Literal["backoff", "limit_reset"]
    """`limit_reset`: waiting until the time the API named; `backoff`: exponential backoff."""
    delay_s: float
    resume_at: datetime
    reset_at: datetime | None = None
    """When the usage or rate limit resets, if the API said so."""
    strategy: Literal["resume", "restart"]
    session_id: str | None = None
    """The session the next attempt resumes (None when it starts fresh)."""


_adapter: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))


class InvalidLineError(ValueError):
    """A stdout line that is not a JSON object."""

    def __init__(self, line: bytes | str, reason: str) -> None:
        preview = line[:200]
        super().__init__(f"not a JSON object ({reason}): {preview!r}")
        self.line = line


_SYSTEM_MODELS: dict[str, type[_Event]] = {
    m.model_fields["subtype"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (
        InitEvent,
        StatusEvent,
        ApiRetryEvent,
        PermissionDeniedEvent,
        ModelFallbackEvent,
        HookStartedEvent,
        HookResponseEvent,
        TaskStartedEvent,
        TaskProgressEvent,
        TaskUpdatedEvent,
        TaskNotificationEvent,
        BackgroundTasksChangedEvent,
        CompactBoundaryEvent,
        ThinkingTokensEvent,
    )
}
_TYPE_MODELS: dict[str, type[_Event]] = {
    "assistant": AssistantEvent,
    "user": UserEvent,
    "stream_event": StreamEvent,
    "result": ResultEvent,
    "rate_limit_event": RateLimitEvent,
}


def parse_event(line: bytes | str) -> Event:
    """Parse one stream-json line into a typed event.

    Raises `InvalidLineError` when the line is not a JSON object; never for an
    unknown type, which gives an `UnknownEvent`. A line the fast parser refuses
    is read again with the standard library (lone surrogate escapes, deep nesting:
    `json.loads`' own limits then apply).
    """
    try:
        return _salvage(_adapter.validate_json(line))
    except ValidationError:
        pass
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise InvalidLineError(line, str(exc) or type(exc).__name__) from None
    if not isinstance(data, dict):
        raise InvalidLineError(line, f"a JSON {type(data).__name__}, not an object")
    return parse_object(data, line)


def parse_object(data: dict[str, Any], line: bytes | str = b"") -> Event:
    """`parse_event` for a line already read as a JSON object (`data`).

    Raises `InvalidLineError` (naming `line`) when `data` cannot be typed at all.
    """
    try:
        event = _adapter.validate_python(data)
    except (ValidationError, RecursionError) as exc:
        raise InvalidLineError(line, str(exc).splitlines()[0]) from None
    return _salvage(event)


def _known_model(event: UnknownEvent) -> type[_Event] | None:
    if event.type == "system":
        return _SYSTEM_MODELS.get(event.subtype or "")
    return _TYPE_MODELS.get(event.type or "")


# Fields that carry a verdict: a line whose value here cannot be read is not guessed at.
_VERDICT_FIELDS = frozenset({"type", "subtype", "is_error", "permission_denials", "error"})


def _block_model(item: dict[str, Any]) -> type[_Model]:
    blocks: dict[Any, type[_Model]] = {
        "text": TextBlock,
        "thinking": ThinkingBlock,
        "tool_use": ToolUseBlock,
        "tool_result": ToolResultBlock,
    }
    return blocks.get(item.get("type"), UnknownBlock)


# Declared fields that hold models of their own: (model, field) -> model of an item.
_NESTED: dict[tuple[type[_Model], str], Callable[[dict[str, Any]], type[_Model]]] = {
    (AssistantEvent, "message"): lambda _: AssistantMessage,
    (AssistantMessage, "content"): _block_model,
    (ResultEvent, "permission_denials"): lambda _: PermissionDenial,
    (RateLimitEvent, "rate_limit_info"): lambda _: RateLimitInfo,
}


def _without_nulls(model: type[_Model], data: dict[str, Any]) -> dict[str, Any]:
    """`data` without the `null`s of declared fields (they take their defaults), nested
    models included; free-form values (`input`, `usage`, `structured_output`) untouched."""
    declared = _declared_names(model)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None and key in declared:
            continue
        nested = _NESTED.get((model, key))
        if nested is not None:
            if isinstance(value, dict):
                value = _without_nulls(nested(value), value)
            elif isinstance(value, list):
                value = [_without_nulls(nested(v), v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


def _salvage(event: Event) -> Event:
    """Read again, leniently, a line of a known type that the strict models refused.

    A `null` in a declared field gives its default (CLI versions write `null` for
    lists, dicts and flags they have nothing to say about); an optional field of an
    unexpected shape (a string where a number was...) is left out (it stays in the
    raw transcript). Fields that decide the outcome are never left out: such a line
    stays an `UnknownEvent`. Only lines the fast path refused pay for this.
    """
    if type(event) is not UnknownEvent:
        return event
    model = _known_model(event)
    if model is None:
        return event
    data = _without_nulls(model, event.raw)
    for _ in range(4):
        try:
            return cast("Event", model.model_validate(data))
        except ValidationError as exc:
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            if not bad or bad & _VERDICT_FIELDS or not bad <= data.keys():
                return event
            data = {k: v for k, v in data.items() if k not in bad}
    return event
