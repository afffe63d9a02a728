"""`stream_output=True`: a readable live view of a run on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TextIO

from .events import (
    ApiRetryEvent,
    AssistantEvent,
    Event,
    InitEvent,
    ModelFallbackEvent,
    PermissionDeniedEvent,
    RateLimitEvent,
    ResultEvent,
    RetryEvent,
    StreamEvent,
    TaskNotificationEvent,
    TaskStartedEvent,
)
from .result import result_failed

_MAX_INPUT_PREVIEW = 160


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
            elif isinstance(event, ResultEvent):
                cost = event.total_cost_usd or 0.0
                status = "error" if result_failed(event) else "done"
                self._line(
                    f"■ {status} ({event.subtype}) · {event.num_turns} turn(s) · "
                    f"{(event.duration_ms or 0) / 1000:.1f}s · ${cost:.4f}"
                )
        self._out.flush()

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
