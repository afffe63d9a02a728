"""The script's turns: what the scripted model answers to one main request (`TextTurn`,
`ToolUseTurn`, `HttpErrorTurn`, `HangTurn`, `BigTextTurn`) and the functions that build
them (`text`, `tool_use`, `tool_uses`, `structured_output`, `big_text`, `http_error`,
`hang`). Plain frozen data: the HTTP server (`_http`) encodes them."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "BigTextTurn",
    "EXHAUSTED_TEXT",
    "HangTurn",
    "HttpErrorTurn",
    "TextTurn",
    "ToolCall",
    "ToolUseTurn",
    "Turn",
    "big_text",
    "hang",
    "http_error",
    "structured_output",
    "text",
    "tool_use",
    "tool_uses",
]

EXHAUSTED_TEXT = "(scripted model: script exhausted)"
"""The text a main request gets once the script has no turns left."""

_BIG_TEXT_CHUNK = 64 * 1024

_DEFAULT_ERROR_TYPES: Mapping[int, str] = MappingProxyType(
    {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }
)


# --------------------------------------------------------------------------- turns


@dataclass(frozen=True)
class TextTurn:
    """An assistant reply made of one text block (``stop_reason: end_turn``).

    Build it with `text` or `big_text`.

    Attributes:
        text: the full reply.
        chunks: how many ``text_delta`` events the text is split into (at most).
        delay: seconds to wait between two deltas.
        delay_before: seconds to wait before the response starts (before the
            HTTP status line is sent).
    """

    text: str
    chunks: int = 1
    delay: float = 0.0
    delay_before: float = 0.0


@dataclass(frozen=True)
class ToolCall:
    """One ``tool_use`` content block: tool `name`, its `input`, and the block `id`."""

    name: str
    input: Mapping[str, Any]
    id: str


@dataclass(frozen=True)
class ToolUseTurn:
    """An assistant reply that calls one or more tools (``stop_reason: tool_use``).

    Build it with `tool_use`, `tool_uses` or `structured_output`. Each call's
    input is streamed as ``input_json_delta`` events.
    """

    calls: tuple[ToolCall, ...]
    delay_before: float = 0.0


@dataclass(frozen=True)
class HttpErrorTurn:
    """Answer with an HTTP error instead of a message. Build it with `http_error`.

    Attributes:
        status: the HTTP status code.
        message: ``error.message`` in the JSON body.
        error_type: ``error.type`` in the JSON body.
        retry_after: value of the ``Retry-After`` header (seconds), if any.
        times: how many consecutive main requests get this error; ``None``
            means every main request from now on (the script never moves past it).
        headers: more response headers, as given.
    """

    status: int
    message: str
    error_type: str
    retry_after: float | None = None
    times: int | None = 1
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HangTurn:
    """Accept the request and send nothing. Build it with `hang`.

    With ``seconds=None`` the connection stays open until the client goes away
    or the server is closed; otherwise it is closed (still without any
    response) after `seconds`.
    """

    seconds: float | None = None


# A `big_text` turn is a TextTurn: the subclass only marks where it came from.
@dataclass(frozen=True)
class BigTextTurn(TextTurn):
    """A large `TextTurn` built by `big_text` (streamed in 64 KiB deltas)."""


Turn = TextTurn | ToolUseTurn | HttpErrorTurn | HangTurn
"""Anything that can appear in a script."""


def text(text: str, *, chunks: int = 1, delay: float = 0.0, delay_before: float = 0.0) -> TextTurn:
    """An assistant text reply.

    Args:
        text: the reply.
        chunks: split the text into this many ``text_delta`` events (fewer if
            the text is shorter than `chunks` characters). ``"one two three
            four"`` in 4 chunks streams as ``"one t"``, ``"wo th"``, ``"ree f"``,
            ``"our"``.
        delay: seconds between two deltas (lets a test watch partial output
            arrive, or trip an idle watchdog).
        delay_before: seconds to wait before answering at all (the CLI sees no
            response headers during that time).
    """
    if chunks < 1:
        raise ValueError("chunks must be >= 1")
    if delay < 0 or delay_before < 0:
        raise ValueError("delays must be >= 0")
    return TextTurn(text=text, chunks=chunks, delay=delay, delay_before=delay_before)


def big_text(mb: float, *, delay_before: float = 0.0) -> BigTextTurn:
    """A text reply of about `mb` megabytes (``mb * 1_000_000`` characters, ASCII).

    The text is lines of printable ASCII, each line numbered, so a truncated or
    reordered copy is easy to spot. The exact text is on the returned turn's
    ``.text``. It is streamed in 64 KiB ``text_delta`` events.
    """
    size = int(mb * 1_000_000)
    if size < 1:
        raise ValueError("mb must give at least one character")
    lines: list[str] = []
    total = 0
    n = 0
    while total < size:
        line = f"line {n:08d} the quick brown fox jumps over the lazy dog 0123456789\n"
        lines.append(line)
        total += len(line)
        n += 1
    body = "".join(lines)[:size]
    return BigTextTurn(
        text=body,
        chunks=max(1, math.ceil(size / _BIG_TEXT_CHUNK)),
        delay=0.0,
        delay_before=delay_before,
    )


def new_id(prefix: str) -> str:
    """A random id in the API's style: `prefix` + "_" + 24 random characters."""
    return f"{prefix}_{secrets.token_hex(10)}"


def tool_use(
    name: str,
    input: Mapping[str, Any],
    *,
    id: str | None = None,
    delay_before: float = 0.0,
) -> ToolUseTurn:
    """A reply that calls one tool, e.g. ``tool_use("Bash", {"command": "ls"})``.

    The CLI really runs the tool (subject to its permission mode) and sends the
    ``tool_result`` back in its next request, which consumes the next turn.

    Args:
        name: the tool name as the CLI offers it (``Write``, ``Bash``, ``Read``,
            ``Edit``, ``StructuredOutput``, an MCP tool's ``mcp__server__tool``...).
        input: the tool input (must be JSON-serialisable).
        id: the ``tool_use`` block id; a random ``toolu_...`` id by default.
        delay_before: seconds to wait before answering.
    """
    return tool_uses([(name, input)], ids=None if id is None else [id], delay_before=delay_before)


def tool_uses(
    calls: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    ids: Sequence[str] | None = None,
    delay_before: float = 0.0,
) -> ToolUseTurn:
    """A reply that calls several tools at once: ``tool_uses([(name, input), ...])``.

    The CLI runs them (possibly in parallel) and answers all results in one
    next request.
    """
    if not calls:
        raise ValueError("tool_uses needs at least one call")
    if ids is not None and len(ids) != len(calls):
        raise ValueError("ids must have one entry per call")
    if delay_before < 0:
        raise ValueError("delay_before must be >= 0")
    built: list[ToolCall] = []
    for i, (name, tool_input) in enumerate(calls):
        json.dumps(tool_input)  # fail early on non-serialisable input
        call_id = ids[i] if ids is not None else new_id("toolu")
        built.append(ToolCall(name=name, input=MappingProxyType(dict(tool_input)), id=call_id))
    return ToolUseTurn(calls=tuple(built), delay_before=delay_before)


def structured_output(data: Mapping[str, Any], *, delay_before: float = 0.0) -> ToolUseTurn:
    """Shorthand for ``tool_use("StructuredOutput", data)``.

    With ``--json-schema`` the CLI offers the model a ``StructuredOutput`` tool;
    calling it ends the task with ``result.structured_output == data`` (and
    ``result.result`` its JSON text). CLI 2.1.328 sends no further request
    after it, so no turn needs to follow.
    """
    return tool_use("StructuredOutput", data, delay_before=delay_before)


def http_error(
    status: int,
    message: str = "scripted error",
    *,
    error_type: str | None = None,
    retry_after: float | None = None,
    times: int | None = 1,
    headers: Mapping[str, str] | None = None,
) -> HttpErrorTurn:
    """Answer main requests with an HTTP error.

    The body is the Messages API error shape
    ``{"type": "error", "error": {"type": error_type, "message": message}}``.

    Args:
        status: HTTP status (400, 401, 403, 429, 500, 529, ...).
        message: the error message (the CLI shows it as ``API Error: 400 <message>``).
        error_type: defaults by status: 400 ``invalid_request_error``, 401
            ``authentication_error``, 403 ``permission_error``, 404
            ``not_found_error``, 429 ``rate_limit_error``, 500 ``api_error``,
            529 ``overloaded_error``; other 5xx ``api_error``, other 4xx
            ``invalid_request_error``.
        retry_after: send a ``Retry-After`` header with this many seconds.
        times: how many consecutive main requests get the error before the
            script moves on (default 1); ``None`` makes it sticky: every main
            request from now on gets it. Note the CLI retries some errors
            itself (5xx, 429, 401) and re-sends a 400 request several times, so
            each of those attempts uses one of the `times`.
        headers: more response headers, e.g. the ``anthropic-ratelimit-unified-*``
            headers with which the API tells a plan's usage limit and its reset.
    """
    if times is not None and times < 1:
        raise ValueError("times must be >= 1 or None")
    if not 400 <= status <= 599:
        raise ValueError("status must be an HTTP error status (400-599)")
    if error_type is None:
        error_type = _DEFAULT_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
    return HttpErrorTurn(
        status=status,
        message=message,
        error_type=error_type,
        retry_after=retry_after,
        times=times,
        headers=MappingProxyType(dict(headers or {})),
    )


def hang(seconds: float | None = None) -> HangTurn:
    """Accept the request and never answer (for timeout and watchdog tests).

    With `seconds` the connection is closed without a response after that
    long (the CLI then usually retries, taking the next turn). A hang never
    blocks `ScriptedModel.close`, and it ends early when the client
    disconnects (e.g. the CLI was killed).
    """
    if seconds is not None and seconds < 0:
        raise ValueError("seconds must be >= 0 or None")
    return HangTurn(seconds=seconds)
