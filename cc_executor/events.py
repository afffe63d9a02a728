"""Typed events of the CLI's `stream-json` output, and `parse_event`.

Each stdout line of `claude -p --output-format stream-json` is one JSON object.
`parse_event` turns it into one of the models below, chosen by its `type` (and,
for `system` lines, its `subtype`). Lines of a type or subtype this version does
not know become an `UnknownEvent` holding the raw object, so a newer CLI does
not break older code. Only a line that is not a JSON object at all raises
`InvalidLineError` (the caller keeps its bytes in the transcript).

Every model keeps fields it does not declare (`extra="allow"`), reachable with
`event.model_extra`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "ApiRetryEvent",
    "AssistantEvent",
    "AssistantMessage",
    "ContentBlock",
    "Event",
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
    "TextBlock",
    "ThinkingBlock",
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


# --- content blocks -------------------------------------------------------------


class TextBlock(_Model):
    type: Literal["text"]
    text: str


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
    """`system/status`: what the CLI is doing (e.g. `requesting`)."""

    type: Literal["system"]
    subtype: Literal["status"]
    status: str | None = None


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
    """A complete assistant message: text, thinking and tool calls."""

    type: Literal["assistant"]
    message: AssistantMessage
    parent_tool_use_id: str | None = None
    is_api_error_message: bool = False
    api_error_status: int | None = None
    api_error: str | None = None
    api_error_params: dict[str, Any] | None = None

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
    event: dict[str, Any]
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
    tool_name: str
    tool_use_id: str | None = None
    tool_input: dict[str, Any] = Field(default_factory=dict)


class ResultEvent(_Event):
    """The final `result` line. `subtype="success"` with `is_error=True` is a failure."""

    type: Literal["result"]
    subtype: str
    is_error: bool = False
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
        InitEvent, StatusEvent, ApiRetryEvent, PermissionDeniedEvent, ModelFallbackEvent
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


def parse_event(line: bytes | str) -> Event:
    """Parse one stream-json line into a typed event.

    Raises `InvalidLineError` when the line is not a JSON object; never for an
    unknown type, which gives an `UnknownEvent`.
    """
    try:
        return _adapter.validate_json(line)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        raise InvalidLineError(line, err["msg"]) from None
