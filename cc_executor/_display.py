"""`stream_output=True`: a readable live view of a run on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

from .events import (
    ApiRetryEvent,
    AssistantEvent,
    Event,
    InitEvent,
    ModelFallbackEvent,
    PermissionDeniedEvent,
    RateLimitEvent,
    RetryEvent,
    StreamEvent,
    TaskNotificationEvent,
    TaskStartedEvent,
    UserEvent,
)

if TYPE_CHECKING:
    from .result import TaskResult

_MAX_INPUT_PREVIEW = 160
_RESULT_LINES = 3  # lines of each tool result shown


class LiveView:
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stderr
        self._mid_line = False

    def _line(self, text: str) -> None:
        if self._mid_line:
            self._out.write("\n")
            self._mid_line = False
        self._out.write(text + "\n")

    def show(self, events: Sequence[Event | RetryEvent]) -> None:
        for event in events:
            if isinstance(event, StreamEvent):
                delta = event.text_delta
                if delta:
                    self._out.write(delta)
                    self._mid_line = not delta.endswith("\n")
            elif isinstance(event, AssistantEvent):
                for tool in event.tool_uses:
                    preview = json.dumps(tool.input, ensure_ascii=False)
                    if len(preview) > _MAX_INPUT_PREVIEW:
                        preview = preview[:_MAX_INPUT_PREVIEW] + "…"
                    self._line(f"⏺ {tool.name} {preview}")
            elif isinstance(event, InitEvent):
                self._line(f"● session {event.session_id} · model {event.model} · cwd {event.cwd}")
            elif isinstance(event, ApiRetryEvent):
                delay = (event.retry_delay_ms or 0) / 1000
                self._line(
                    f"↻ API error {event.error_status} ({event.error}); CLI retry "
                    f"{event.attempt}/{event.max_retries} in {delay:.1f}s"
                )
            elif isinstance(event, RateLimitEvent) and event.rate_limit_info.status == "rejected":
                info = event.rate_limit_info
                when = f"resets {_clock(info.reset_at)}" if info.reset_at else "no reset time given"
                self._line(f"⏸ usage limit reached ({info.rate_limit_type or 'limit'}); {when}")
            elif isinstance(event, ModelFallbackEvent):
                self._line(
                    f"⇄ model {event.original_model} → {event.fallback_model} ({event.trigger})"
                )
            elif isinstance(event, RetryEvent):
                how = (
                    f"resuming session {event.session_id}" if event.session_id else "starting over"
                )
                why = (
                    "waiting for the limit to reset" if event.reason == "limit_reset" else "backoff"
                )
                self._line(
                    f"↻ attempt {event.attempt} failed: {event.error_type}; {why}, "
                    f"attempt {event.attempt + 1} at {_clock(event.resume_at)} "
                    f"(in {event.delay_s:.1f}s), {how}"
                )
            elif isinstance(event, PermissionDeniedEvent):
                self._line(f"✗ permission denied: {event.tool_name}")
            elif isinstance(event, TaskStartedEvent) and event.is_backgrounded:
                self._line(f"⏳ background task started: {event.description or event.task_id}")
            elif isinstance(event, TaskNotificationEvent):
                self._line(f"⏳ background task {event.status}: {event.summary or event.task_id}")
            elif isinstance(event, UserEvent):
                for output, is_error in _tool_outputs(event):
                    self._tool_result(output, is_error)
            # A ResultEvent prints nothing: the run's own closing line (`attempt_line`)
            # says how the attempt ended, with the error's message when it failed.
        self._out.flush()

    def _tool_result(self, output: str, is_error: bool) -> None:
        """The first lines of a tool's output, indented under its call."""
        lines = [line.rstrip() for line in output.strip().splitlines()]
        mark = "✗ " if is_error else ""
        for line in lines[:_RESULT_LINES] or [""]:
            if len(line) > _MAX_INPUT_PREVIEW:
                line = line[:_MAX_INPUT_PREVIEW] + "…"
            self._line(f"  ↳ {mark}{line}")
            mark = ""
        if len(lines) > _RESULT_LINES:
            self._line(f"  ↳ … ({len(lines) - _RESULT_LINES} more line(s))")

    def note(self, text: str) -> None:
        self._line(text)
        self._out.flush()


def _clock(when: datetime | None) -> str:
    """A time of day in UTC, with the date when it is not today."""
    if when is None:
        return "?"
    when = when.astimezone(timezone.utc)
    today = datetime.now(timezone.utc).date()
    fmt = "%H:%M:%S UTC" if when.date() == today else "%Y-%m-%d %H:%M:%S UTC"
    return when.strftime(fmt)


def attempt_line(result: TaskResult) -> str:
    """How one run of the CLI ended, in one line: ``✓ 2 turn(s) · 5.6s · $0.0009 ·
    transcript …``, or ``✗ OverloadedError: <first line of its message> · …``."""
    if result.error is None:
        head = "✓ "
    else:
        message = next((s for s in str(result.error).splitlines() if s.strip()), "")
        if len(message) > _MAX_INPUT_PREVIEW:
            message = message[:_MAX_INPUT_PREVIEW] + "…"
        head = f"✗ {result.error_type}: {message}".rstrip(": ") + " · "
    return (
        f"{head}{result.num_turns or 0} turn(s) · {result.duration_s:.1f}s · "
        f"${result.total_cost_usd or 0:.4f}"
        + (f" · transcript {result.transcript_path}" if result.transcript_path else "")
    )


def _tool_outputs(event: UserEvent) -> list[tuple[str, bool]]:
    """(text, is_error) of each tool result a user turn carries (the content of a
    `tool_result` block is a string or a list of text blocks)."""
    content = event.message.get("content")
    outputs = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            body = block.get("content")
            if isinstance(body, list):
                body = "\n".join(str(b.get("text", "")) for b in body if isinstance(b, dict))
            outputs.append(("" if body is None else str(body), bool(block.get("is_error"))))
    return outputs
