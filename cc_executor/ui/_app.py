"""The dashboard's ASGI app (Starlette): pages rendered on the server, the same data as
JSON under ``/api/``, live updates as server-sent events, and the access guard.

Routes (each page's JSON at ``/api`` + its path):

- ``/``: runs (task lists of the journal, single tasks of the history); query
  ``status=`` and ``metadata=name=value`` (repeatable) filter, ``chart=NAME`` picks the
  metadata name the cost chart groups by.
- ``/runs/{run_id}``: one list: steps, timeline, graph, charts, the resume command.
- ``/runs/{run_id}/steps/{n}``: step `n` (from 1), its transcript as a conversation
  (``?attempt=K`` for an earlier attempt's).
- ``/tasks/{execution_uuid}``: a single task of the history and its transcript.
- ``/transcripts/{path}``: any transcript under the transcript root, by its path there.
- ``/diffs/{path}``: a step's whole diff file under the transcript root, as text.
- ``/events/...``: the server-sent events of each page (``text/event-stream``).

Read-only: GET and HEAD only; `state.db` is opened ``mode=ro``, transcripts only under
the root (`Sources.transcript_file`). The access guard (`Guard`): bound to loopback,
only requests whose Host is a loopback name are served (a web page elsewhere cannot
reach the dashboard through DNS rebinding); bound elsewhere, every request needs the
access token (``?token=`` once, then a cookie), compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import anyio
import anyio.to_thread
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._statestore import store_error
from ._charts import bars, cost_lines, gantt, graph
from ._conversation import Conversation, conversation_of
from ._store import RunView, Sources, StepView, TranscriptTail, read_whole, resume_command

__all__ = ["Guard", "POLL_S", "create_app"]

POLL_S = 0.25
"""How often a live page's stream looks at the journal and the transcript (seconds)."""
_REFRESH_S = 1.0
"""How often a page showing a running step is rendered again when the journal did not
change (its current tool comes from the transcript). Elapsed times tick in the page."""
_GANTT_S = 5
"""The live timeline of a running list is drawn again at most this often (seconds)."""
_HERE = Path(__file__).parent
_COOKIE = "cc_executor_ui_token"
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# -- rendering ---------------------------------------------------------------------------


def _usd(value: float | None) -> str:
    return f"${value:.4f}" if value is not None else "–"


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _when(value: datetime | None) -> str:
    if value is None:
        return "–"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _diffclass(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every value is escaped; only our own SVG is marked safe
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(usd=_usd, secs=_secs, when=_when, diffclass=_diffclass)
    env.filters["urlencode"] = lambda v: quote(str(v), safe="")
    env.filters["pathquote"] = lambda v: quote(str(v), safe="/")
    return env


class _Views:
    """The pages and their data, over one `Sources`."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.env = _environment()

    def render(self, name: str, **context: Any) -> str:
        context.setdefault("events", None)
        context.setdefault("live", False)  # a fragment for the event stream
        return self.env.get_template(name).render(sources=self.sources, **context)

    # -- runs ---------------------------------------------------------------------------

    def runs_data(self, conn: sqlite3.Connection | None, query: str) -> dict[str, Any]:
        params = parse_qs(query)
        status = (params.get("status") or [""])[0]
        wanted: dict[str, str] = {}
        for item in params.get("metadata", []):
            for part in item.split(","):
                name, sep, value = part.strip().partition("=")
                if sep and name:
                    wanted[name.strip()] = value.strip()
        runs = self.sources.runs(conn, status=status or None, metadata=wanted)
        return {"runs": runs, "status": status, "metadata": wanted, "params": params}

    def runs_rows(self, data: dict[str, Any]) -> str:
        return self.render(
            "_runs_rows.html",
            runs=data["runs"],
            filtered=bool(data["status"] or data["metadata"]),
            live=True,
        )

    def runs_page(self, conn: sqlite3.Connection | None, query: str) -> str:
        data = self.runs_data(conn, query)
        runs: list[RunView] = data["runs"]
        hint = None
        if conn is None:
            hint = (
                f"No state store at {self.sources.db}: nothing has run with this state dir yet. "
                "Run a task list (cc-execute list FILE) or a task, or start the dashboard "
                "with --state-dir DIR."
            )
        keys = sorted({k for r in runs for k in r.metadata})
        chosen = (data["params"].get("chart") or [""])[0]
        key = chosen if chosen in keys else (keys[0] if keys else None)
        series: dict[str, list[tuple[datetime, float]]] = {}
        points = self.sources.cost_points(conn, runs)
        for when, cost, meta in points:
            label = str(meta.get(key, "(none)")) if key else "all runs"
            series.setdefault(label, []).append((when, cost))
        rest = {k: v for k, v in data["params"].items() if k != "chart"}
        return self.render(
            "runs.html",
            runs=runs,
            hint=hint,
            status=data["status"],
            metadata_text=", ".join(f"{k}={v}" for k, v in data["metadata"].items()),
            filtered=bool(data["status"] or data["metadata"]),
            cost_chart=cost_lines(series, "cumulative cost") if len(points) > 1 else "",
            chart_key=key,
            metadata_keys=keys,
            query_without_chart=urlencode(rest, doseq=True) + "&" if rest else "",
            events="/events/runs" + (f"?{query}" if query else ""),
        )

    # -- one run ------------------------------------------------------------------------

    def run_view(self, conn: sqlite3.Connection | None, run_id: str) -> RunView | None:
        return self.sources.run(conn, run_id)

    def current_tools(self, steps: list[StepView]) -> dict[int, str]:
        """The current tool call of each running step (from its growing transcript)."""
        found = _Tails(self.sources).current(steps)
        return {n: tool for n, tool in found.items() if tool is not None}

    def run_live(self, run: RunView, steps: list[StepView], current: dict[int, str]) -> str:
        return self.render("_run_live.html", run=run, steps=steps, current=current, live=True)

    def run_page(self, run: RunView, steps: list[StepView]) -> str:
        current = self.current_tools(steps)
        return self.render(
            "run.html",
            run=run,
            steps=steps,
            current=current,
            gantt=gantt(steps),
            graph=graph(steps, run.run_id),
            resume=resume_command(run.run_id, self.sources.state_dir),
            cost_chart=bars(
                [(f"{s.n}. {s.label}", s.cost_usd) for s in steps], "usd", "cost per step (USD)"
            ),
            time_chart=bars(
                [(f"{s.n}. {s.label}", s.duration_s) for s in steps], "s", "time per step"
            ),
            events=f"/events/runs/{quote(run.run_id, safe='')}",
        )

    # -- a step, a task, a transcript ------------------------------------------------------

    def step_transcript(
        self, step: StepView, attempt: int | None
    ) -> tuple[Path | None, str | None]:
        """The transcript to show for `step` and why none is shown, if none is."""
        if attempt is not None:
            chosen = next((a for a in step.attempt_list if a.number == attempt), None)
            if chosen is None or chosen.transcript is None:
                return None, f"Attempt {attempt} has no transcript under the transcript dir."
            return self.sources.transcript_file(chosen.transcript), None
        if step.transcript_outside:
            return None, (
                "The journal names a transcript outside the transcript dir "
                f"({self.sources.transcript_root}); it is not shown. Start the dashboard "
                "with --transcript-dir pointing at the folder the list wrote to."
            )
        if step.transcript is not None:
            return self.sources.transcript_file(step.transcript), None
        if step.status in ("running", "interrupted"):  # the journal names it at the end
            path = self.sources.running_transcript(step)
            if path is None:
                return None, "The step's transcript has not been found (yet)."
            return path, None
        return None, "No transcript recorded for this step."

    def conversation_context(self, path: Path | None) -> dict[str, Any]:
        if path is None:
            return {"conversation": None, "header": None, "transcript": None}
        header, lines, footer = read_whole(path)
        return {
            "conversation": conversation_of(header, lines, footer),
            "header": header,
            "transcript": self.sources.relative(path),
        }


# -- the app -----------------------------------------------------------------------------


def create_app(sources: Sources, *, token: str | None = None, loopback: bool = True) -> Starlette:
    """The dashboard over `sources`. `token`: every request must carry it (``?token=``,
    then a cookie); `loopback`: only loopback Host headers are served."""
    views = _Views(sources)

    def opened() -> sqlite3.Connection | None:
        return sources.open()

    def with_conn(fn: Callable[[sqlite3.Connection | None], Response]) -> Response:
        conn = opened()
        try:
            return fn(conn)
        finally:
            if conn is not None:
                conn.close()

    def runs_page(request: Request) -> Response:
        query = request.url.query
        if request.url.path.startswith("/api"):
            return with_conn(
                lambda c: JSONResponse(
                    {
                        "state_dir": str(sources.state_dir),
                        "state_store": str(sources.db) if c is not None else None,
                        "runs": [r.as_dict() for r in views.runs_data(c, query)["runs"]],
                    }
                )
            )
        return with_conn(lambda c: HTMLResponse(views.runs_page(c, query)))

    def run_page(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def answer(conn: sqlite3.Connection | None) -> Response:
            run = views.run_view(conn, run_id)
            if run is None:
                return _not_found(views, f"No run {run_id!r} in {sources.db}.")
            steps = sources.steps(conn, run_id)
            if request.url.path.startswith("/api"):
                return JSONResponse(
                    {
                        **run.as_dict(),
                        "resume_command": resume_command(run_id, sources.state_dir),
                        "current_tools": {str(k): v for k, v in views.current_tools(steps).items()},
                        "steps": [s.as_dict() for s in steps],
                    }
                )
            return HTMLResponse(views.run_page(run, steps))

        return with_conn(answer)

    def step_page(request: Request) -> Response:
        run_id, n = request.path_params["run_id"], request.path_params["n"]
        attempt_text = request.query_params.get("attempt")
        attempt = int(attempt_text) if attempt_text and attempt_text.isdigit() else None

        def answer(conn: sqlite3.Connection | None) -> Response:
            step = next(iter(sources.steps(conn, run_id, only=n)), None)
            if step is None:
                return _not_found(views, f"Run {run_id!r} has no step {n} in {sources.db}.")
            path, notice = views.step_transcript(step, attempt)
            context = views.conversation_context(path)
            conv: Conversation | None = context["conversation"]
            if request.url.path.startswith("/api"):
                return JSONResponse(
                    {
                        "run_id": run_id,
                        **step.as_dict(),
                        "transcript_shown": context["transcript"],
                        "notice": notice,
                        "conversation": [i.as_dict() for i in conv.items] if conv else [],
                    }
                )
            tool = conv.current_tool if conv else None
            live = step.status == "running"
            return HTMLResponse(
                views.render(
                    "step.html",
                    title=f"Step {step.n}: {step.label}",
                    run_id=run_id,
                    step=step,
                    record=None,
                    notice=notice,
                    attempt=attempt
                    or (step.attempt_list[-1].number if step.attempt_list else None),
                    current=tool.summary if tool else None,
                    events=f"/events/runs/{quote(run_id, safe='')}/steps/{n}" if live else None,
                    **context,
                )
            )

        return with_conn(answer)

    def task_page(request: Request) -> Response:
        uuid = request.path_params["uuid"]

        def answer(conn: sqlite3.Connection | None) -> Response:
            task = sources.task(conn, uuid)
            if task is None:
                return _not_found(views, f"No task {uuid!r} in the history of {sources.db}.")
            path = sources.transcript_file(task.transcripts[-1]) if task.transcripts else None
            context = views.conversation_context(path)
            if request.url.path.startswith("/api"):
                conv = context["conversation"]
                return JSONResponse(
                    {
                        **task.as_dict(),
                        "conversation": [i.as_dict() for i in conv.items] if conv else [],
                    }
                )
            return HTMLResponse(
                views.render(
                    "step.html",
                    title=f"Task {uuid}",
                    run_id=None,
                    step=None,
                    record=task.record,
                    notice=None if path else "No transcript of this task under the transcript dir.",
                    **context,
                )
            )

        return with_conn(answer)

    def transcript_page(request: Request) -> Response:
        relative = request.path_params["path"]
        path = sources.transcript_file(relative)
        if path is None:
            # Outside the root (.., absolute, a symlink out) or absent: never served.
            return _not_found(views, "No such transcript under the transcript dir.")
        context = views.conversation_context(path)
        if request.url.path.startswith("/api"):
            conv = context["conversation"]
            return JSONResponse(
                {
                    "transcript": context["transcript"],
                    "header": context["header"],
                    "conversation": [i.as_dict() for i in conv.items],
                }
            )
        return HTMLResponse(
            views.render(
                "step.html",
                title=f"Transcript {path.name}",
                run_id=None,
                step=None,
                record=None,
                notice=None,
                **context,
            )
        )

    def diff_file(request: Request) -> Response:
        """A step's whole diff (`TaskResult.diff_path`), as text, if under the root."""
        path = sources.transcript_file(request.path_params["path"], suffix=".diff")
        if path is None:
            return _not_found(views, "No such diff under the transcript dir.")
        return PlainTextResponse(path.read_text(encoding="utf-8", errors="replace"))

    # -- live ----------------------------------------------------------------------------

    async def runs_events(request: Request) -> Response:
        query = request.url.query

        def render(conn: sqlite3.Connection | None) -> list[tuple[str, dict[str, Any]]]:
            data = views.runs_data(conn, query)
            out = [("replace", {"id": "runs-rows", "html": views.runs_rows(data)})]
            if any(r.status == "running" for r in data["runs"]):
                out.append(("running", {}))
            return out

        return _stream(request, sources, render)

    async def run_events(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        tails = _Tails(sources)
        state: dict[str, Any] = {"seen": None, "run": None, "steps": []}

        def render(conn: sqlite3.Connection | None) -> list[tuple[str, dict[str, Any]]]:
            out: list[tuple[str, dict[str, Any]]] = []
            seen = sources.signature()
            if seen != state["seen"]:  # the journal changed: the whole table again
                run = views.run_view(conn, run_id)
                if run is None:
                    return []
                state.update(seen=seen, run=run, steps=sources.steps(conn, run_id))
                current = tails.current(state["steps"])
                shown = {n: tool for n, tool in current.items() if tool is not None}
                html = views.run_live(run, state["steps"], shown)
                out.append(("replace", {"id": "run-live", "html": html}))
            else:  # only the running steps' transcripts moved on
                current = tails.current(state["steps"])
            # The timeline's "now" moves in steps of _GANTT_S: a long running list's
            # timeline is not sent again every second.
            now = datetime.fromtimestamp(time.time() // _GANTT_S * _GANTT_S, timezone.utc)
            out.append(("replace", {"id": "run-gantt", "html": gantt(state["steps"], now)}))
            out += [("current", {"n": n, "tool": tool}) for n, tool in current.items()]
            if state["run"] is not None and state["run"].status == "running":
                out.append(("running", {}))
            return out

        return _stream(request, sources, render)

    async def step_events(request: Request) -> Response:
        run_id, n = request.path_params["run_id"], request.path_params["n"]
        state: dict[str, Any] = {"tail": None, "conv": None, "status": None, "seen": None}

        def render(conn: sqlite3.Connection | None) -> list[tuple[str, dict[str, Any]]]:
            seen = sources.signature()
            if seen != state["seen"]:  # the journal changed: read the step again
                state["seen"] = seen
                state["step"] = next(iter(sources.steps(conn, run_id, only=n)), None)
            step: StepView | None = state["step"]
            if step is None:
                return []
            if state["status"] is None:
                state["status"] = step.status
            if step.status != state["status"]:
                return [("reload", {})]
            out: list[tuple[str, dict[str, Any]]] = []
            if state["tail"] is None and step.status == "running":
                path = sources.running_transcript(step)
                if path is not None:
                    state["tail"] = TranscriptTail(path)
            tail: TranscriptTail | None = state["tail"]
            if tail is not None:
                lines = tail.read()
                conv: Conversation | None = state["conv"]
                if conv is None:
                    cwd = (tail.header or {}).get("cwd")
                    conv = state["conv"] = Conversation(Path(cwd) if cwd else None)
                for line in lines:
                    conv.feed(line)
                if tail.footer is not None:
                    conv.end(tail.footer)
                changed = conv.changed()
                if changed:
                    items = [
                        {"number": i.number, "html": views.render("_item.html", it=i)}
                        for i in changed
                    ]
                    out.append(("items", {"items": items}))
                    tool = conv.current_tool
                    out.append(("current", {"n": n, "tool": tool.summary if tool else None}))
            return out

        return _stream(request, sources, render, always=True)

    routes = [
        Route("/", runs_page, methods=["GET"]),
        Route("/api/", runs_page, methods=["GET"]),
        Route("/api", runs_page, methods=["GET"]),
        Route("/runs/{run_id}", run_page, methods=["GET"]),
        Route("/api/runs/{run_id}", run_page, methods=["GET"]),
        Route("/runs/{run_id}/steps/{n:int}", step_page, methods=["GET"]),
        Route("/api/runs/{run_id}/steps/{n:int}", step_page, methods=["GET"]),
        Route("/tasks/{uuid}", task_page, methods=["GET"]),
        Route("/api/tasks/{uuid}", task_page, methods=["GET"]),
        Route("/transcripts/{path:path}", transcript_page, methods=["GET"]),
        Route("/api/transcripts/{path:path}", transcript_page, methods=["GET"]),
        Route("/diffs/{path:path}", diff_file, methods=["GET"]),
        Route("/events/runs", runs_events, methods=["GET"]),
        Route("/events/runs/{run_id}", run_events, methods=["GET"]),
        Route("/events/runs/{run_id}/steps/{n:int}", step_events, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]

    def store_failed(request: Request, exc: Exception) -> Response:
        """`state.db` could not be read (corrupt, unreadable): say which and what to do."""
        message = str(store_error(exc, sources.db, "reading it for the dashboard"))
        if request.url.path.startswith("/api"):
            return JSONResponse({"error": "StateStoreError", "message": message}, 503)
        return HTMLResponse(_page(views, "State store unreadable", message), status_code=503)

    app = Starlette(routes=routes, exception_handlers={sqlite3.Error: store_failed})
    app.add_middleware(Guard, token=token, loopback=loopback)
    return app


class _Tails:
    """The transcripts of running steps, each read from where it was left (one per
    event stream): the current tool of each running step."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.open: dict[int, tuple[TranscriptTail, Conversation]] = {}

    def current(self, steps: list[StepView]) -> dict[int, str | None]:
        """{step n: the summary of its tool call without a result yet, or None} for each
        running step whose transcript is found."""
        found: dict[int, str | None] = {}
        for step in steps:
            if step.status != "running":
                self.open.pop(step.n, None)
                continue
            entry = self.open.get(step.n)
            if entry is None:
                taken = frozenset(tail.path for tail, _ in self.open.values())
                path = self.sources.running_transcript(step, taken)
                if path is None:
                    continue
                entry = self.open[step.n] = (TranscriptTail(path), Conversation())
            tail, conv = entry
            lines = tail.read()
            cwd = (tail.header or {}).get("cwd")
            if conv.cwd is None and isinstance(cwd, str) and cwd:
                conv.cwd = Path(cwd)  # tool paths shown relative to it, as on the step page
            for line in lines:
                conv.feed(line)
            conv.changed()
            tool = conv.current_tool
            found[step.n] = tool.summary if tool is not None else None
            if tail.footer is not None:  # that attempt ended: a retry writes a new one
                del self.open[step.n]
        return found


def _page(views: _Views, title: str, message: str) -> str:
    return views.render(
        "step.html",
        title=title,
        run_id=None,
        step=None,
        record=None,
        notice=message,
        conversation=None,
        header=None,
        transcript=None,
    )


def _not_found(views: _Views, message: str) -> Response:
    return HTMLResponse(_page(views, "Not found", message), status_code=404)


def _stream(
    request: Request,
    sources: Sources,
    render: Callable[[sqlite3.Connection | None], list[tuple[str, dict[str, Any]]]],
    *,
    always: bool = False,
) -> StreamingResponse:
    """A server-sent event stream: `render` runs (in a worker thread, over a fresh
    read-only connection) when `state.db` or its -wal changed, every `_REFRESH_S` while
    what it rendered shows a running step, and every `POLL_S` when `always`; each event
    is sent unless it is what was sent last under its name."""

    def once() -> list[tuple[str, dict[str, Any]]]:
        conn = sources.open()
        try:
            return render(conn)
        except sqlite3.DatabaseError:
            return []  # read while the writer checkpointed: the next poll reads again
        finally:
            if conn is not None:
                conn.close()

    async def events() -> AsyncIterator[str]:
        sent: dict[str, str] = {}
        version: Any = None
        last = 0.0
        running = False
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            now = anyio.current_time()
            seen = sources.signature()
            if always or seen != version or (running and now - last >= _REFRESH_S):
                version, last = seen, now
                out = await anyio.to_thread.run_sync(once)
                running = any(kind == "running" for kind, _ in out)
                for kind, data in out:
                    if kind == "running":
                        continue
                    text = json.dumps(data)
                    key = f"{kind}:{data.get('id', data.get('n', ''))}"
                    if kind == "items" or sent.get(key) != text:
                        sent[key] = text
                        yield f"event: {kind}\ndata: {text}\n\n"
                    if kind == "reload":
                        return
            await anyio.sleep(POLL_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


class Guard:
    """ASGI middleware: read-only methods, the Host check on loopback, the token
    elsewhere, and headers that keep the pages to themselves (no framing, no referrer,
    scripts and styles from this server only)."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback: bool) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, text = refusal
            await _plain(send, status, text)
            return
        set_cookie = None
        if self.token is not None and self._given(scope) == self.token:
            set_cookie = f"{_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"content-security-policy", _CSP),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if set_cookie:
                    extra.append((b"set-cookie", set_cookie.encode("latin-1")))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _given(self, scope: Scope) -> str | None:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        return values[0] if values else None

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        if scope["method"] not in ("GET", "HEAD"):
            return 405, "read-only: GET only"
        if self.loopback:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in _LOOPBACK_NAMES:
                return 403, "this dashboard answers only to loopback host names"
        if self.token is not None:
            given = self._given(scope) or _cookie(headers.get("cookie", ""), _COOKIE) or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return 401, "this dashboard needs its access token: open the URL it printed"
        return None


_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
