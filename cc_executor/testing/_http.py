"""The HTTP + server-sent-events side of the scripted model: a threading HTTP server on
loopback that asks its `ScriptedModel` for the next turn and writes it as the Messages
API does (JSON, or an SSE stream of `message_start` ... `message_stop`)."""

from __future__ import annotations

import contextlib
import json
import math
import select
import socket
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._requests import SIDE_REPLY_TEXT, RecordedRequest, is_main_request
from ._turns import HangTurn, HttpErrorTurn, TextTurn, ToolUseTurn, Turn, new_id

if TYPE_CHECKING:
    from ._server import ScriptedModel

__all__ = ["Server"]

# Usage numbers reported on every streamed message (the same as the recorded
# fixtures, so cost and token totals are predictable in tests).
_INPUT_TOKENS = 12
_START_OUTPUT_TOKENS = 1
_OUTPUT_TOKENS = 20

_JSON_DELTA_PIECE = 16 * 1024

_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization"})
_REDACTED = "[redacted]"

# -------------------------------------------------------------------------- server


_SIDE_TURN = TextTurn(text=SIDE_REPLY_TEXT)


class Server(ThreadingHTTPServer):
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
    server: Server

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
            turn, exhausted = owner._next_turn(body)
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
        self.send_header("request-id", new_id("req"))
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
            "request_id": new_id("req"),
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
        message_id = new_id("msg")
        if not stream:
            self._send_json(200, _message_json(turn, message_id, owner.model))
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("request-id", new_id("req"))
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
