"""`stream_output=True`: a readable live view of a run on stderr."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from .events import (
    ApiRetryEvent,
    AssistantEvent,
    Event,
    InitEvent,
    PermissionDeniedEvent,
    ResultEvent,
    StreamEvent,
)

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

    def show(self, events: list[Event]) -> None:
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
            elif isinstance(event, PermissionDeniedEvent):
                self._line(f"✗ permission denied: {event.tool_name}")
            elif isinstance(event, ResultEvent):
                cost = event.total_cost_usd or 0.0
                status = "error" if event.is_error or event.subtype != "success" else "done"
                self._line(
                    f"■ {status} ({event.subtype}) · {event.num_turns} turn(s) · "
                    f"{(event.duration_ms or 0) / 1000:.1f}s · ${cost:.4f}"
                )
        self._out.flush()

    def note(self, text: str) -> None:
        self._line(text)
        self._out.flush()
