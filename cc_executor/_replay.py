"""`cc-execute show TRANSCRIPT`: a transcript replayed as readable lines.

A transcript (see `_transcript.py`) is a header record, the CLI's stdout lines
as received, and a footer record. The replay shows the task, then each
assistant turn's text and tool calls, each tool result's first lines, retries
and denials, and the result (turns, time, tokens, cost), then how the run ended.
Partial-message lines (`stream_event`) are skipped: the complete assistant
messages that follow them hold the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rich.text import Text

from ._progress import describe_tool, token_counts, tool_results
from ._transcript import read_transcript
from .events import (
    ApiRetryEvent,
    AssistantEvent,
    InitEvent,
    InvalidLineError,
    PermissionDeniedEvent,
    ResultEvent,
    UserEvent,
    parse_event,
)
from .result import result_failed

__all__ = ["replay"]

_RESULT_LINES = 6


def replay(path: Path) -> Iterator[Text]:
    """The readable lines of the transcript at `path`."""
    header, lines, footer = read_transcript(path)
    cwd: Path | None = None
    if header is not None:
        yield Text(f"task       {_indent(str(header.get('task', '')))}", style="bold")
        cwd = Path(header["cwd"]) if header.get("cwd") else None
        attempt = f" · attempt {header['attempt']}" if header.get("attempt") else ""
        yield Text(f"started    {header.get('started_at')}{attempt} · cwd {cwd}")
        yield Text(f"execution  {header.get('execution_uuid')}", style="dim")
    turns: list[str] = []
    for raw in lines:
        try:
            event = parse_event(raw)
        except InvalidLineError:
            yield Text(f"? not JSON: {raw[:120]!r}", style="yellow")
            continue
        if isinstance(event, InitEvent):
            yield Text(
                f"session    {event.session_id} · model {event.model} · "
                f"CLI {event.claude_code_version}",
                style="dim",
            )
        elif isinstance(event, AssistantEvent):
            message_id = event.message.id or str(len(turns))
            if message_id not in turns:
                turns.append(message_id)
                yield Text(f"── turn {len(turns)} ──", style="bold blue")
            if event.text.strip():
                yield Text(f"assistant  {_indent(event.text.strip())}")
            for tool in event.tool_uses:
                yield Text(f"⏺ {describe_tool(tool.name, tool.input, cwd)}", style="magenta")
        elif isinstance(event, UserEvent):
            for _, text, is_error in tool_results(event):
                shown = text.strip().splitlines() or [""]
                more = len(shown) - _RESULT_LINES
                body = "\n  ".join(shown[:_RESULT_LINES]) + (
                    f"\n  … {more} more line(s)" if more > 0 else ""
                )
                yield Text(f"↳ {'error: ' if is_error else ''}{body}", style="dim")
        elif isinstance(event, ApiRetryEvent):
            yield Text(
                f"↻ API error {event.error_status} ({event.error}); CLI retry "
                f"{event.attempt}/{event.max_retries}",
                style="yellow",
            )
        elif isinstance(event, PermissionDeniedEvent):
            yield Text(f"✗ permission denied: {event.tool_name}", style="red")
        elif isinstance(event, ResultEvent):
            tin, tout = token_counts(event.usage)
            status = "error" if result_failed(event) else "success"
            # The CLI's subtype only where it says more than the status (error_max_turns);
            # an is_error result can carry subtype "success", which would contradict it.
            detail = f" ({event.subtype})" if event.subtype not in (None, "success") else ""
            yield Text(
                f"■ {status}{detail} · {event.num_turns} turn(s) · "
                f"{(event.duration_ms or 0) / 1000:.1f}s · {tin:,} in / {tout:,} out tokens · "
                f"${event.total_cost_usd or 0:.4f}",
                style="green" if status == "success" else "red",
            )
            if event.result:
                yield Text(f"answer     {_indent(event.result.strip())}")
    if footer is None:
        yield Text("(no footer: the run never ended, or is still running)", style="yellow")
        return
    ended = f"ended      {footer.get('status')} · exit code {footer.get('exit_code')}"
    if footer.get("error_type"):
        ended += f" · {footer['error_type']}"
    if footer.get("stopped_by"):
        ended += f" · stopped by the library: {footer['stopped_by']}"
    yield Text(ended, style="bold")


def _indent(text: str) -> str:
    return text.replace("\n", "\n           ")
