"""A scripted Anthropic Messages API server for testing Claude Code pipelines offline.

`ScriptedModel` listens on ``127.0.0.1`` (a random free port) and answers the
real ``claude`` CLI's API calls from a *script*: a list of turns built with
`text`, `tool_use`, `tool_uses`, `structured_output`, `big_text`,
`http_error` and `hang`. Point a CLI run at it with `ScriptedModel.env` (or
`ScriptedModel.config` for cc_executor)::

    from cc_executor.testing import ScriptedModel, text, tool_use

    with ScriptedModel([
        tool_use("Write", {"file_path": "/tmp/w/hello.py", "content": "print(1)\\n"}),
        text("Created hello.py"),
    ]) as model:
        run_the_cli(env={**os.environ, **model.env()})
        assert model.prompts[0] == "write hello.py"
        assert not model.exhausted

Every *main* conversation request (``POST /v1/messages`` that carries the
conversation, see `is_main_request`) consumes the next turn of the script.
Requests the CLI may make on the side are answered without touching the
script: ``HEAD``/``GET /api/hello`` (200), ``POST /v1/messages/count_tokens``
(``{"input_tokens": N}``), small helper ``/v1/messages`` calls (a short text,
`SIDE_REPLY_TEXT`), anything else (404 ``not_found_error``). All requests are
recorded in `ScriptedModel.requests`, with ``is_main`` telling which kind.

Timing: `text` takes ``chunks`` and ``delay`` (seconds between deltas), and
every answering turn (`text`, `big_text`, `tool_use`, `tool_uses`,
`structured_output`) takes ``delay_before``: seconds to wait before the HTTP
response starts. `hang` never answers.

When the script runs out, main requests get the text turn
``"(scripted model: script exhausted)"`` and `ScriptedModel.exhausted`
becomes true, so a test can tell that the CLI asked for more than was scripted.

The server runs in a daemon thread and uses only the standard library, so it
works from synchronous and asynchronous tests alike (``with`` or
``async with``).
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import select
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from cc_executor.config import CCExecutorConfig

__all__ = [
    "EXHAUSTED_TEXT",
    "SIDE_REPLY_TEXT",
    "BigTextTurn",
    "HangTurn",
    "HttpErrorTurn",
    "RecordedRequest",
    "ScriptedModel",
    "TextTurn",
    "ToolCall",
    "ToolUseTurn",
    "Turn",
    "big_text",
    "extract_prompt",
    "hang",
    "http_error",
    "is_main_request",
    "structured_output",
    "text",
    "tool_use",
    "tool_uses",
]

EXHAUSTED_TEXT = "(scripted model: script exhausted)"
"""The text a main request gets once the script has no turns left."""

# Usage numbers reported on every streamed message (the same as the recorded
# fixtures, so cost and token totals are predictable in tests).
_INPUT_TOKENS = 12
_START_OUTPUT_TOKENS = 1
_OUTPUT_TOKENS = 20

_BIG_TEXT_CHUNK = 64 * 1024
_JSON_DELTA_PIECE = 16 * 1024

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

_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})
_REDACTED = "[redacted]"


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


def _new_id(prefix: str) -> str:
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
        call_id = ids[i] if ids is not None else _new_id("toolu")
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


_EXHAUSTED_TURN = TextTurn(text=EXHAUSTED_TEXT)


# ------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the server received.

    Attributes:
        method: ``"POST"``, ``"HEAD"``, ...
        path: the path with its query string, e.g. ``"/v1/messages?beta=true"``.
        headers: request headers with lower-case names; the values of
            ``x-api-key`` and ``authorization`` are replaced by ``"[redacted]"``.
        body: the parsed JSON body, or ``None`` (no body, or not JSON).
        raw_body: the body bytes as received.
        received_at: ``time.time()`` when the request was read.
        is_main: true for a main conversation request (it consumed a turn of
            the script, or got the "script exhausted" reply).
        turn: the turn that answered it (``None`` for side requests).
        exhausted: true if it was answered because the script had run out.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes = field(repr=False)
    received_at: float
    is_main: bool
    turn: Turn | None = None
    exhausted: bool = False

    @property
    def consumed_turn(self) -> bool:
        """Alias of `is_main`: whether the request was answered from the script."""
        return self.is_main

    @property
    def prompt(self) -> str | None:
        """The prompt in this request's first user message (see `extract_prompt`)."""
        if not isinstance(self.body, Mapping):
            return None
        return extract_prompt(self.body)


def _text_blocks(content: Any) -> list[str] | None:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return None
    out: list[str] = []
    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "text":
            value = block.get("text")
            if isinstance(value, str):
                out.append(value)
    return out


def extract_prompt(body: Mapping[str, Any]) -> str | None:
    """The prompt, verbatim, from a Messages API request body the CLI sent.

    The CLI puts the prompt in the first ``user`` message: zero or more
    ``<system-reminder>`` text blocks it adds itself, then the prompt as its
    own text block, byte for byte as written to the CLI's stdin. This returns
    the text of the blocks after the leading system reminders (joined with
    nothing in between, in the unlikely case there are several), or ``None``
    if the body has no user message.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in messages:
        if isinstance(message, Mapping) and message.get("role") == "user":
            blocks = _text_blocks(message.get("content"))
            if blocks is None:
                return None
            start = 0
            # Skip the CLI's own reminders, but never the last block: that one is
            # the prompt even if the user's prompt itself starts like a reminder.
            while start < len(blocks) - 1 and blocks[start].startswith("<system-reminder>"):
                start += 1
            return "".join(blocks[start:])
    return None


_SIDE_MAX_TOKENS = 1024
SIDE_REPLY_TEXT = "(scripted model: side request)"
"""The text a side ``/v1/messages`` request (see `is_main_request`) gets."""


def is_main_request(method: str, path: str, body: Any) -> bool:
    """Whether a request belongs to the scripted conversation (consumes a turn).

    Main: ``POST /v1/messages`` (any query string) whose JSON body has a
    ``messages`` list, except helper calls the CLI may make on the side:

    - ``max_tokens <= 1`` (a quota or connectivity probe);
    - no ``tools`` offered and ``max_tokens <= 1024`` (small helper calls such
      as title or topic generation).

    CLI 2.1.328 with the environment from `ScriptedModel.env` makes no side
    calls at all: every request is a main one, including those of subagents
    (the ``Agent`` tool), which run concurrently with the main conversation.
    Real conversation requests offer tools or ask for thousands of output
    tokens (``--tools ""`` still sends ``max_tokens`` 8192 to 128000).
    """
    if method != "POST" or urlsplit(path).path.rstrip("/") != "/v1/messages":
        return False
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return False
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int):
        if max_tokens <= 1:
            return False
        if not body.get("tools") and max_tokens <= _SIDE_MAX_TOKENS:
            return False
    return True


# -------------------------------------------------------------------------- server


_SIDE_TURN = TextTurn(text=SIDE_REPLY_TEXT)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, owner: ScriptedModel) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-response is normal (killed CLI); stay quiet.
        return


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    # Every method goes through one dispatcher.
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    # ---------------------------------------------------------------- reading

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        raw = self._read_body()
        received_at = time.time()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            if key in _SECRET_HEADERS:
                value = _REDACTED
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

        method = self.command
        route = urlsplit(self.path).path.rstrip("/")
        is_main = is_main_request(method, self.path, body)
        turn: Turn | None = None
        exhausted = False
        if is_main:
            turn, exhausted = owner._next_turn()
        owner._record(
            RecordedRequest(
                method=method,
                path=self.path,
                headers=MappingProxyType(headers),
                body=body,
                raw_body=raw,
                received_at=received_at,
                is_main=is_main,
                turn=turn,
                exhausted=exhausted,
            )
        )
        try:
            if turn is not None:
                self._answer_turn(turn, body)
            elif route == "/api/hello":
                self._send_json(200, {})
            elif method == "POST" and route == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            elif method == "POST" and route == "/v1/messages":
                if isinstance(body, Mapping) and isinstance(body.get("messages"), list):
                    self._answer_turn(_SIDE_TURN, body)
                else:
                    self._send_error_json(400, "invalid_request_error", "messages: Field required")
            else:
                self._send_error_json(404, "not_found_error", f"Not found: {method} {self.path}")
        except (_ClientGone, OSError):
            self.close_connection = True

    # ---------------------------------------------------------------- writing

    def _send_json(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("request-id", _new_id("req"))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(
        self,
        status: int,
        error_type: str,
        message: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        payload = {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": _new_id("req"),
        }
        self._send_json(status, payload, extra)

    def _wait(self, seconds: float) -> None:
        """Sleep, but stop early (raising _ClientGone) on shutdown."""
        if seconds > 0 and self.server.owner._closing.wait(seconds):
            raise _ClientGone

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True

    def _hang(self, seconds: float | None) -> None:
        owner = self.server.owner
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            step = 0.05
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                step = min(step, left)
            if owner._closing.wait(step) or self._client_gone():
                break
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answer_turn(self, turn: Turn, body: Any) -> None:
        owner = self.server.owner
        if isinstance(turn, HangTurn):
            self._hang(turn.seconds)
            return
        if isinstance(turn, HttpErrorTurn):
            extra: dict[str, str] = dict(turn.headers)
            if turn.retry_after is not None:
                ra = turn.retry_after
                extra["retry-after"] = str(int(ra)) if float(ra).is_integer() else str(ra)
            self._send_error_json(turn.status, turn.error_type, turn.message, extra)
            return
        self._wait(turn.delay_before)
        stream = isinstance(body, Mapping) and bool(body.get("stream"))
        message_id = _new_id("msg")
        if not stream:
            self._send_json(200, _message_json(turn, message_id, owner.model))
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", _new_id("req"))
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for event in _sse_events(turn, message_id, owner.model):
            if isinstance(event, float):
                self._wait(event)
                continue
            self.wfile.write(event)
            self.wfile.flush()


def _content_blocks(turn: TextTurn | ToolUseTurn) -> list[dict[str, Any]]:
    if isinstance(turn, TextTurn):
        return [{"type": "text", "text": turn.text}]
    return [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.input)} for c in turn.calls
    ]


def _stop_reason(turn: TextTurn | ToolUseTurn) -> str:
    return "end_turn" if isinstance(turn, TextTurn) else "tool_use"


def _message_json(turn: TextTurn | ToolUseTurn, message_id: str, model: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content_blocks(turn),
        "stop_reason": _stop_reason(turn),
        "stop_sequence": None,
        "usage": {"input_tokens": _INPUT_TOKENS, "output_tokens": _OUTPUT_TOKENS},
    }


def _sse(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def _split(s: str, chunks: int) -> list[str]:
    if not s:
        return []
    size = max(1, math.ceil(len(s) / chunks))
    return [s[i : i + size] for i in range(0, len(s), size)]


def _sse_events(
    turn: TextTurn | ToolUseTurn, message_id: str, model: str
) -> Iterator[bytes | float]:
    """The SSE byte strings of one streamed message; a float means "wait that long"."""
    yield _sse(
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": _INPUT_TOKENS, "output_tokens": _START_OUTPUT_TOKENS},
            },
        }
    )
    if isinstance(turn, TextTurn):
        yield _sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        )
        for i, piece in enumerate(_split(turn.text, turn.chunks)):
            if i and turn.delay:
                yield turn.delay
            yield _sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                }
            )
        yield _sse({"type": "content_block_stop", "index": 0})
    else:
        for index, call in enumerate(turn.calls):
            yield _sse(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": {},
                    },
                }
            )
            encoded = json.dumps(dict(call.input))
            pieces = [""] + [
                encoded[i : i + _JSON_DELTA_PIECE]
                for i in range(0, len(encoded), _JSON_DELTA_PIECE)
            ]
            for piece in pieces:
                yield _sse(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    }
                )
            yield _sse({"type": "content_block_stop", "index": index})
    yield _sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(turn), "stop_sequence": None},
            "usage": {"output_tokens": _OUTPUT_TOKENS},
        }
    )
    yield _sse({"type": "message_stop"})


# ---------------------------------------------------------------------- the model


class ScriptedModel:
    """Scripted Messages API on 127.0.0.1 (random free port).

    Use as ``with ScriptedModel([...]) as model:`` (also ``async with``), or
    call `start` and `close` yourself. The constructor does not start the
    server; entering the context (or `start`) does. `url`, `env` and `config`
    start it on first use if needed.

    Args:
        turns: the script; more can be appended later with `add`.
        model: the model name reported in responses (``message.model``). The
            CLI's own request names whatever model it was told to use.

    Attributes:
        requests: every request received, in order (`RecordedRequest`), main
            and side requests alike.
        api_key: the fake API key `env` hands out (``sk-ant-scripted-...``).
        model: the model name reported in responses.
    """

    def __init__(self, turns: Sequence[Turn] = (), *, model: str = "claude-scripted-1") -> None:
        self.model = model
        self.api_key = "sk-ant-scripted-" + secrets.token_hex(16)
        self.requests: list[RecordedRequest] = []
        self._turns: list[Turn] = []
        self._pos = 0
        self._served_current = 0
        self._exhausted = False
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp_root: str | None = None
        self._closed = False
        self.add(*turns)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> ScriptedModel:
        """Start listening (idempotent). Returns self."""
        with self._lock:
            if self._closed:
                raise RuntimeError("ScriptedModel is closed")
            if self._server is not None:
                return self
            server = _Server(self)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ScriptedModel:{server.server_address[1]}",
                daemon=True,
            )
            self._server = server
            self._thread = thread
        thread.start()
        return self

    def close(self) -> None:
        """Stop the server and delete every HOME handed out by `env`.

        Returns promptly even while requests hang or stream: open connections
        are cut. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            server, thread = self._server, self._thread
            connections = list(self._connections)
            tmp_root, self._tmp_root = self._tmp_root, None
        self._closing.set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> ScriptedModel:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ the script

    def add(self, *turns: Turn) -> None:
        """Append turns to the script (also after the server started)."""
        for turn in turns:
            if not isinstance(turn, (TextTurn, ToolUseTurn, HttpErrorTurn, HangTurn)):
                raise TypeError(f"not a scripted turn: {turn!r}")
        with self._lock:
            self._turns.extend(turns)

    def _next_turn(self) -> tuple[Turn, bool]:
        with self._lock:
            while self._pos < len(self._turns):
                turn = self._turns[self._pos]
                if isinstance(turn, HttpErrorTurn):
                    if turn.times is None:
                        return turn, False
                    self._served_current += 1
                    if self._served_current >= turn.times:
                        self._pos += 1
                        self._served_current = 0
                    return turn, False
                self._pos += 1
                return turn, False
            self._exhausted = True
            return _EXHAUSTED_TURN, True

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    @property
    def exhausted(self) -> bool:
        """True once a main request arrived after the script had run out.

        It stays true even if turns are added afterwards.
        """
        return self._exhausted

    @property
    def remaining(self) -> list[Turn]:
        """The turns not yet used (a sticky error stays here)."""
        with self._lock:
            return list(self._turns[self._pos :])

    @property
    def main_requests(self) -> list[RecordedRequest]:
        """The main conversation requests (those that consumed a turn), in order."""
        return [r for r in list(self.requests) if r.is_main]

    @property
    def prompts(self) -> list[str]:
        """The prompt of each main request, in order (see `extract_prompt`).

        One entry per main request: a conversation with a tool call sends the
        same first user message again with the tool result, and a retried
        request repeats it too, so ``prompts[0]`` is the prompt of the first call.
        """
        out: list[str] = []
        for r in self.main_requests:
            p = r.prompt
            if p is not None:
                out.append(p)
        return out

    # ------------------------------------------------------------ pointing a CLI here

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (starts the server if needed)."""
        server = self.start()._server
        assert server is not None
        return f"http://127.0.0.1:{server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment variables that point one CLI run at this server.

        Merge them over the inherited environment. Each call creates a fresh,
        empty HOME (removed by `close`) so runs don't share or touch real
        configuration:

        - ``ANTHROPIC_BASE_URL``: this server.
        - ``ANTHROPIC_API_KEY``: `api_key` (fake; the CLI only needs one to be set).
        - ``HOME``: a new temporary directory; ``CLAUDE_CONFIG_DIR`` is set to
          its ``.claude`` so an inherited ``CLAUDE_CONFIG_DIR`` can't leak in.
        - ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``: without it the CLI
          resolves ``api.anthropic.com`` for telemetry, preconnects with
          ``HEAD /api/hello`` and leaves telemetry files in HOME; with it a run
          makes no connection but to this server.
        - ``DISABLE_AUTOUPDATER``, ``DISABLE_TELEMETRY``,
          ``DISABLE_ERROR_REPORTING`` (``=1``): the same, one by one, in case a
          CLI version stops honouring the umbrella switch.
        - ``CLAUDE_CODE_USE_BEDROCK``, ``CLAUDE_CODE_USE_VERTEX``,
          ``CLAUDE_CODE_USE_FOUNDRY`` (``=0``): an inherited cloud-provider
          switch would send requests elsewhere.
        """
        base = self.url
        with self._lock:
            if self._closed:
                raise RuntimeError("ScriptedModel is closed")
            if self._tmp_root is None:
                self._tmp_root = tempfile.mkdtemp(prefix="cc-scripted-")
            home = tempfile.mkdtemp(prefix="home-", dir=self._tmp_root)
        return {
            "ANTHROPIC_BASE_URL": base,
            "ANTHROPIC_API_KEY": self.api_key,
            "HOME": home,
            "CLAUDE_CONFIG_DIR": f"{home}/.claude",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_USE_BEDROCK": "0",
            "CLAUDE_CODE_USE_VERTEX": "0",
            "CLAUDE_CODE_USE_FOUNDRY": "0",
        }

    def config(self, **overrides: Any) -> CCExecutorConfig:
        """A `cc_executor.config.CCExecutorConfig` whose runs use this server.

        ``env`` comes from `env` (a fresh HOME), updated with
        ``overrides["env"]`` if given; every other keyword goes to the config
        as is.
        """
        from cc_executor.config import CCExecutorConfig

        extra_env = overrides.pop("env", None) or {}
        return CCExecutorConfig(env={**self.env(), **dict(extra_env)}, **overrides)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._server else "not started")
        return (
            f"<ScriptedModel {state} turns={len(self._turns)} used={self._pos} "
            f"requests={len(self.requests)}>"
        )
