"""`stream_output=True`: a readable live view of a run on stderr.

The view is a subscriber, never a step of the core path: the API layer (`cc_run`,
`cc_stream`, `cc_execute`, and `cc_execute_list` for its step lines) installs it with
`with_live_view` / `ListView`, and it sees only what any caller's hooks see —
`on_event`, the result callbacks and `on_step`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

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
    from .config import CCExecutorConfig
    from .pipeline import StepEvent
    from .result import TaskResult

__all__ = ["ListView", "LiveView", "chain_hooks", "with_live_view"]

_MAX_INPUT_PREVIEW = 160
_RESULT_LINES = 3  # lines of each tool result shown


def with_live_view(config: CCExecutorConfig, out: TextIO | None = None) -> CCExecutorConfig:
    """`config` with a `LiveView` subscribed when `stream_output` is on (else `config`):
    the view sees every event before the caller's `on_event`, and the final result
    before the caller's callbacks."""
    if not config.stream_output:
        return config
    view = LiveView(out)
    return config.with_overrides(
        on_event=chain_hooks(view.on_event, config.on_event),
        success_callback=(view.on_result, *config.success_callback),
        failure_callback=(view.on_result, *config.failure_callback),
    )


def chain_hooks(
    first: Callable[[Any], None], then: Callable[[Any], Any] | None
) -> Callable[[Any], Any]:
    """One hook calling `first` (a view: sync) then `then` (the caller's, sync or async)."""
    if then is None:
        return first

    def both(arg: Any) -> Any:
        first(arg)
        return then(arg)  # an awaitable is awaited by the caller of the hook

    return both


class LiveView:
    """What a run does, as readable lines: the answer's text as it streams, tool calls,
    retries and limits, then each attempt's outcome."""

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
                failure = _first_line(f"{event.error_type}: {event.error_message}")
                self._line(
                    f"↻ attempt {event.attempt} failed: {failure}; {why}, "
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
            # A ResultEvent prints nothing: the task's one closing line (`on_result`)
            # says how it ended; a failed attempt that is retried has its `RetryEvent` line.
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

    def on_event(self, event: Event | RetryEvent) -> None:
        """An `on_event` hook: show one event."""
        self.show([event])

    def on_result(self, result: TaskResult) -> None:
        """A result callback: the task's one closing line (each failed attempt that was
        retried had its own line when it failed)."""
        self.note(closing_line(result))


class ListView:
    """A task list's step lines (`on_step`): the list once, then a header per step."""

    def __init__(self, config: CCExecutorConfig, out: TextIO | None = None) -> None:
        self._out = out or sys.stderr
        self._journal = config.state_dir or "no journal"
        self._begun = False

    def on_step(self, event: StepEvent) -> None:
        if not self._begun:
            self._begun = True
            self._print(
                f"● task list {event.run_id} · {event.total} step(s) · journal {self._journal}"
            )
        if event.status == "started":
            self._print(f"\n━━ step {event.index + 1}/{event.total} · {event.label}")
        elif event.status == "skipped" and event.result is not None:
            self._print(
                f"\n⊘ step {event.index + 1}/{event.total} · {event.label} · skipped: "
                f"{event.result.error_message}"
            )

    def _print(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()


def closing_line(result: TaskResult) -> str:
    """How a task ended, in one line: ``✓ 2 turn(s) · 5.6s · $0.0009 · transcript …``, or
    ``✗ OverloadedError: <first line of its message> · …``; after retries ``2 attempts ·``
    follows the mark, and the time and cost are the whole task's."""
    if result.error is None:
        head = "✓ "
    else:
        head = f"✗ {_first_line(f'{result.error_type}: {result.error}')} · "
    if len(result.attempts) > 1:
        head += f"{len(result.attempts)} attempts · "
    return (
        f"{head}{result.num_turns or 0} turn(s) · {result.duration_s:.1f}s · "
        f"${result.total_cost_usd or 0:.4f}"
        + (f" · transcript {result.transcript_path}" if result.transcript_path else "")
    )


def _first_line(text: str) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= _MAX_INPUT_PREVIEW else line[:_MAX_INPUT_PREVIEW] + "…"


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


def _clock(when: datetime | None) -> str:
    """A time of day in UTC, with the date when it is not today."""
    if when is None:
        return "?"
    when = when.astimezone(timezone.utc)
    today = datetime.now(timezone.utc).date()
    fmt = "%H:%M:%S UTC" if when.date() == today else "%Y-%m-%d %H:%M:%S UTC"
    return when.strftime(fmt)
