"""A transcript as a conversation: what the dashboard's step page shows.

`Conversation.feed(line)` takes the CLI's stdout lines one at a time (a whole
transcript, or the lines a growing one gained since the last read) and keeps a list
of `Item`s in order: the assistant's text, its tool calls with their inputs (each
call's result attached to it when it arrives), permission denials, the CLI's API
retries, the result line, and lines that are not JSON. `end(footer)` adds how the
run ended. Partial-message lines (`stream_event`) are skipped: the complete
assistant message that follows holds the same text.

Nothing here reads files or knows about HTML: `_app` renders the items, and the
live view feeds the lines a transcript gained (`Conversation.changed` lists the items
that are new or got a result since the last call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._progress import describe_tool, token_counts, tool_results
from ..events import (
    ApiRetryEvent,
    AssistantEvent,
    InitEvent,
    InvalidLineError,
    PermissionDeniedEvent,
    ResultEvent,
    TextBlock,
    ThinkingBlock,
    UserEvent,
    parse_event,
)
from ..result import result_failed

__all__ = [
    "Conversation",
    "Item",
    "RESULT_PREVIEW_CHARS",
    "RESULT_PREVIEW_LINES",
    "ToolResult",
    "conversation_of",
]

RESULT_PREVIEW_LINES = 3
"""Lines of a tool result shown before it is folded (`<details>`)."""
RESULT_PREVIEW_CHARS = 400
"""Characters of those lines shown at most."""
_RESULT_MAX_CHARS = 20_000
"""A tool result longer than this is cut (the transcript file holds all of it)."""
_INPUT_MAX_CHARS = 20_000

ItemKind = Literal[
    "init",
    "text",
    "thinking",
    "tool_call",
    "tool_result",
    "denied",
    "retry",
    "result",
    "invalid",
    "ended",
]


@dataclass
class ToolResult:
    """What a tool call returned: its first lines, and the rest folded."""

    text: str
    is_error: bool
    line_count: int

    @property
    def preview(self) -> str:
        """The first `RESULT_PREVIEW_LINES` lines, at most `RESULT_PREVIEW_CHARS` of them
        (a minified JSON answer is one long line)."""
        head = "\n".join(self.text.splitlines()[:RESULT_PREVIEW_LINES])
        return head if len(head) <= RESULT_PREVIEW_CHARS else head[:RESULT_PREVIEW_CHARS] + "…"

    @property
    def folded(self) -> bool:
        """Whether the preview leaves something out (then the page folds the rest)."""
        return self.line_count > RESULT_PREVIEW_LINES or len(self.text) > RESULT_PREVIEW_CHARS

    @property
    def rest(self) -> str:
        """What the preview leaves out, in words: "12 more line(s)" / "3,400 more characters"."""
        if self.line_count > RESULT_PREVIEW_LINES:
            return f"{self.line_count - RESULT_PREVIEW_LINES:,} more line(s)"
        return f"{len(self.text) - RESULT_PREVIEW_CHARS:,} more characters"


@dataclass
class Item:
    """One thing that happened in the run, in the order it was printed.

    `kind` says which fields are set: ``text``/``thinking`` (`text`, `turn`),
    ``tool_call`` (`tool_name`, `summary`, `tool_input` as indented JSON, `tool_id`,
    `result` once it came), ``tool_result`` (a result whose call is not in the
    transcript), ``denied`` (`tool_name`, `text`), ``retry`` (`text`), ``result``
    (`status`, `text` the answer, `figures`), ``invalid`` (a line that is not JSON),
    ``init`` (`text`: session, model, CLI version), ``ended`` (`status`, `text`).
    `subagent` is True for what a `Task` sub-agent did.
    """

    kind: ItemKind
    number: int
    """Position in the conversation (0-based): the id the live view updates by."""
    text: str = ""
    turn: int | None = None
    tool_name: str | None = None
    tool_id: str | None = None
    summary: str = ""
    tool_input: str = ""
    result: ToolResult | None = None
    status: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    subagent: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The item as JSON-ready data (the `/api/` form)."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "number": self.number,
            "text": self.text,
        }
        for name in ("turn", "tool_name", "tool_id", "status"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.kind == "tool_call":
            data["summary"] = self.summary
            data["input"] = self.tool_input
        if self.result is not None:
            data["result"] = {
                "text": self.result.text,
                "is_error": self.result.is_error,
                "lines": self.result.line_count,
            }
        if self.figures:
            data["figures"] = self.figures
        if self.subagent:
            data["subagent"] = True
        return data


class Conversation:
    """The items of one transcript, built line by line (`feed`), ended by `end`."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.items: list[Item] = []
        self.cwd = cwd
        self.ended = False
        self._calls: dict[str, Item] = {}
        self._turns: list[str] = []
        self._changed: set[int] = set()
        self._denied: set[str] = set()

    # -- building --------------------------------------------------------------------

    def _add(self, kind: ItemKind, **fields: Any) -> Item:
        item = Item(kind=kind, number=len(self.items), **fields)
        self.items.append(item)
        self._changed.add(item.number)
        return item

    def feed(self, line: bytes) -> None:
        """Take in one stdout line of the CLI (without its newline)."""
        if not line.strip():
            return
        try:
            event = parse_event(line)
        except InvalidLineError:
            self._add("invalid", text=line[:500].decode("utf-8", "replace"))
            return
        if isinstance(event, InitEvent):
            self._add(
                "init",
                text=f"session {event.session_id} · model {event.model} · "
                f"CLI {event.claude_code_version}",
            )
        elif isinstance(event, AssistantEvent):
            self._assistant(event)
        elif isinstance(event, UserEvent):
            for tool_id, text, is_error in tool_results(event):
                self._tool_result(tool_id, text, is_error, event.parent_tool_use_id is not None)
        elif isinstance(event, ApiRetryEvent):
            delay = (
                f", next try in {event.retry_delay_ms / 1000:.1f}s" if event.retry_delay_ms else ""
            )
            self._add(
                "retry",
                text=f"API error {event.error_status} ({event.error}); the CLI retries "
                f"({event.attempt}/{event.max_retries}){delay}",
            )
        elif isinstance(event, PermissionDeniedEvent):
            self._deny(event.tool_name or "?", event.tool_use_id, event.message or "")
        elif isinstance(event, ResultEvent):
            self._result(event)

    def _assistant(self, event: AssistantEvent) -> None:
        sub = event.parent_tool_use_id is not None
        message_id = event.message.id or f"#{len(self._turns)}"
        if message_id not in self._turns:
            self._turns.append(message_id)
        turn = self._turns.index(message_id) + 1
        for block in event.message.content:
            if isinstance(block, TextBlock) and block.text.strip():
                self._add("text", text=block.text.strip(), turn=turn, subagent=sub)
            elif isinstance(block, ThinkingBlock) and block.thinking.strip():
                self._add("thinking", text=block.thinking.strip(), turn=turn, subagent=sub)
        for tool in event.tool_uses:
            if tool.id in self._calls:
                continue  # the same message printed again (partial then complete)
            shown = json.dumps(tool.input, indent=2, ensure_ascii=False, default=str)
            if len(shown) > _INPUT_MAX_CHARS:
                shown = shown[:_INPUT_MAX_CHARS] + "\n… (cut: the transcript holds all of it)"
            self._calls[tool.id] = self._add(
                "tool_call",
                turn=turn,
                tool_name=tool.name,
                tool_id=tool.id,
                summary=describe_tool(tool.name, tool.input, self.cwd),
                tool_input=shown,
                subagent=sub,
            )

    def _tool_result(self, tool_id: str, text: str, is_error: bool, sub: bool) -> None:
        lines = text.splitlines()
        if len(text) > _RESULT_MAX_CHARS:
            text = text[:_RESULT_MAX_CHARS] + "\n… (cut: the transcript holds all of it)"
        result = ToolResult(text=text, is_error=is_error, line_count=len(lines))
        call = self._calls.get(tool_id)
        if call is not None and call.result is None:
            call.result = result
            self._changed.add(call.number)
        else:
            self._add("tool_result", tool_id=tool_id, result=result, subagent=sub)

    def _deny(self, tool_name: str, tool_id: str | None, message: str) -> None:
        key = tool_id or f"{tool_name}#{len(self._denied)}"
        if key in self._denied:
            return  # the result line repeats the denials the stream already showed
        self._denied.add(key)
        self._add("denied", tool_name=tool_name, tool_id=tool_id, text=message)

    def _result(self, event: ResultEvent) -> None:
        for denial in event.permission_denials:
            self._deny(denial.tool_name, denial.tool_use_id, "")
        tokens_in, tokens_out = token_counts(event.usage)
        failed = result_failed(event)
        errors = "; ".join(str(e) for e in event.errors if e is not None)
        self._add(
            "result",
            status="error" if failed else "success",
            text=(event.result or errors or "").strip(),
            figures={
                "subtype": event.subtype,
                "turns": event.num_turns,
                "duration_s": round((event.duration_ms or 0) / 1000, 3),
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "cost_usd": event.total_cost_usd,
                "terminal_reason": event.terminal_reason,
            },
        )

    def end(self, footer: dict[str, Any] | None) -> None:
        """Add how the run ended, from the transcript's footer (None: it has none)."""
        if self.ended:
            return
        self.ended = footer is not None
        if footer is None:
            return
        text = f"{footer.get('status')} · exit code {footer.get('exit_code')}"
        if footer.get("error_type"):
            text += f" · {footer['error_type']}"
        if footer.get("stopped_by"):
            text += f" · stopped by the library: {footer['stopped_by']}"
        self._add("ended", status=str(footer.get("status")), text=text)

    # -- reading -----------------------------------------------------------------------

    def changed(self) -> list[Item]:
        """The items added or given a result since the last call, in order."""
        numbers, self._changed = sorted(self._changed), set()
        return [self.items[n] for n in numbers]

    @property
    def current_tool(self) -> Item | None:
        """The last tool call that has no result yet (what the agent is doing now)."""
        for item in reversed(self.items):
            if item.kind == "tool_call" and item.result is None:
                return item
            if item.kind in ("result", "ended"):
                return None
        return None

    @property
    def tool_calls(self) -> list[Item]:
        return [item for item in self.items if item.kind == "tool_call"]


def conversation_of(
    header: dict[str, Any] | None, lines: list[bytes], footer: dict[str, Any] | None
) -> Conversation:
    """The conversation of a whole transcript (`_transcript.read_transcript`'s three parts)."""
    cwd = header.get("cwd") if header else None
    conv = Conversation(Path(cwd) if isinstance(cwd, str) and cwd else None)
    for line in lines:
        conv.feed(line)
    conv.end(footer)
    conv.changed()
    return conv
