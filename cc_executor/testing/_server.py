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
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cc_executor.config import CCExecutorConfig

from ._http import Server
from ._requests import RecordedRequest
from ._turns import EXHAUSTED_TEXT, HangTurn, HttpErrorTurn, TextTurn, ToolUseTurn, Turn

__all__ = ["ScriptedModel"]

_EXHAUSTED_TURN = TextTurn(text=EXHAUSTED_TEXT)

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
        self._server: Server | None = None
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
            server = Server(self)
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

    def _next_turn(self, body: Any = None) -> tuple[Turn, bool]:
        """The turn that answers a main request (`body`: its parsed JSON, for subclasses)
        and whether the script had run out."""
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
