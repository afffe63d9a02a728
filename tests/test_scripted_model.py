"""Tests of cc_executor.testing.ScriptedModel: unit tests over plain HTTP, and
end-to-end runs of the real pinned `claude` CLI through plain subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import (
    EXHAUSTED_TEXT,
    SIDE_REPLY_TEXT,
    ScriptedModel,
    big_text,
    extract_prompt,
    hang,
    http_error,
    is_main_request,
    structured_output,
    text,
    tool_use,
    tool_uses,
)

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def _post(
    url: str,
    body: Any,
    *,
    path: str = "/v1/messages?beta=true",
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _msg_body(prompt: str = "hi", *, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 32000,
        "stream": stream,
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


def _sse_events(raw: bytes) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for frame in raw.decode().split("\n\n"):
        if not frame.strip():
            continue
        lines = frame.split("\n")
        assert lines[0].startswith("event: ")
        assert lines[1].startswith("data: ")
        data = json.loads(lines[1][len("data: ") :])
        assert data["type"] == lines[0][len("event: ") :]
        events.append(data)
    return events


# ------------------------------------------------------------------- prompt extraction


def test_extract_prompt_skips_leading_system_reminders() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>\nattribution\n</system-reminder>\n",
                    },
                    {"type": "text", "text": "<system-reminder>more</system-reminder>"},
                    {"type": "text", "text": "  the prompt\n"},
                ],
            },
            {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
        ]
    }
    assert extract_prompt(body) == "  the prompt\n"


def test_extract_prompt_edge_cases() -> None:
    assert extract_prompt({"messages": [{"role": "user", "content": "plain"}]}) == "plain"
    # A prompt that itself looks like a reminder is still the prompt (last block).
    reminder_like = "<system-reminder>mine</system-reminder>"
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>cli</system-reminder>"},
                    {"type": "text", "text": reminder_like},
                ],
            }
        ]
    }
    assert extract_prompt(body) == reminder_like
    assert extract_prompt({"messages": [{"role": "assistant", "content": "x"}]}) is None
    assert extract_prompt({"nothing": 1}) is None


def test_is_main_request_classification() -> None:
    main = _msg_body()
    assert is_main_request("POST", "/v1/messages?beta=true", main)
    assert is_main_request("POST", "/v1/messages", {**main, "tools": [], "max_tokens": 8192})
    assert not is_main_request("POST", "/v1/messages/count_tokens", main)
    assert not is_main_request("GET", "/v1/messages", main)
    assert not is_main_request("POST", "/v1/messages", {**main, "max_tokens": 1})
    assert not is_main_request("POST", "/v1/messages", {**main, "tools": [], "max_tokens": 512})
    assert not is_main_request("POST", "/v1/messages", None)


# ---------------------------------------------------------------------- over plain HTTP


def test_error_times_then_next_turn() -> None:
    with ScriptedModel([http_error(429, "slow down", retry_after=2, times=2), text("ok")]) as m:
        for _ in range(2):
            status, headers, raw = _post(m.url, _msg_body())
            assert status == 429
            assert headers["retry-after"] == "2"
            payload = json.loads(raw)
            assert payload["type"] == "error"
            assert payload["error"] == {"type": "rate_limit_error", "message": "slow down"}
        status, _, raw = _post(m.url, _msg_body())
        assert status == 200
        assert json.loads(raw)["content"] == [{"type": "text", "text": "ok"}]
        assert not m.exhausted
        status, _, raw = _post(m.url, _msg_body())
        assert json.loads(raw)["content"][0]["text"] == EXHAUSTED_TEXT
        assert m.exhausted
        assert [r.exhausted for r in m.requests] == [False, False, False, True]


def test_sticky_error_and_default_error_types() -> None:
    with ScriptedModel([http_error(529, "busy", times=None), text("never")]) as m:
        for _ in range(5):
            status, headers, raw = _post(m.url, _msg_body())
            assert status == 529
            assert "retry-after" not in headers
            assert json.loads(raw)["error"]["type"] == "overloaded_error"
        assert len(m.remaining) == 2
        assert not m.exhausted
    expected = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
        503: "api_error",
    }
    for status, error_type in expected.items():
        assert http_error(status).error_type == error_type
    assert http_error(400, error_type="custom").error_type == "custom"
    with pytest.raises(ValueError):
        http_error(400, times=0)
    with pytest.raises(ValueError):
        http_error(200)


def test_side_requests_do_not_consume_turns() -> None:
    with ScriptedModel([text("main reply")]) as m:
        req = urllib.request.Request(m.url + "/api/hello", method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        status, _, raw = _post(m.url, _msg_body(), path="/v1/messages/count_tokens")
        assert status == 200 and json.loads(raw)["input_tokens"] > 0
        status, _, raw = _post(m.url, _msg_body(tools=[], max_tokens=100))
        assert json.loads(raw)["content"][0]["text"] == SIDE_REPLY_TEXT
        status, _, _ = _post(m.url, {}, path="/v1/unknown")
        assert status == 404
        status, _, raw = _post(m.url, _msg_body())
        assert json.loads(raw)["content"][0]["text"] == "main reply"
        assert [r.is_main for r in m.requests] == [False, False, False, False, True]
        assert m.requests[-1].consumed_turn
        assert m.requests[0].method == "HEAD" and m.requests[0].path == "/api/hello"
        assert len(m.main_requests) == 1
        assert not m.exhausted


def test_recorded_request_redacts_keys_and_parses_body() -> None:
    with ScriptedModel([text("a")]) as m:
        _post(
            m.url,
            _msg_body("héllo"),
            headers={"x-api-key": m.api_key, "Authorization": "Bearer t", "X-Other": "v"},
        )
        (r,) = m.requests
        assert r.headers["x-api-key"] == "[redacted]"
        assert r.headers["authorization"] == "[redacted]"
        assert r.headers["x-other"] == "v"
        assert m.api_key not in json.dumps(dict(r.headers))
        assert r.body["messages"][0]["content"] == "héllo"
        assert r.path == "/v1/messages?beta=true"
        assert r.received_at <= time.time()
        assert m.prompts == ["héllo"]


def test_sse_text_and_tool_use_shapes() -> None:
    with ScriptedModel(
        [
            text("one two three four", chunks=4),
            tool_uses(
                [("Bash", {"command": "echo 1"}), ("Write", {"file_path": "a", "content": "é"})]
            ),
        ]
    ) as m:
        status, headers, raw = _post(m.url, _msg_body(stream=True))
        assert status == 200 and headers["content-type"].startswith("text/event-stream")
        events = _sse_events(raw)
        assert [e["type"] for e in events] == [
            "message_start",
            "content_block_start",
            *["content_block_delta"] * 4,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        assert [e["delta"]["text"] for e in events[2:6]] == ["one t", "wo th", "ree f", "our"]
        assert events[0]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 1}
        assert events[0]["message"]["model"] == "claude-scripted-1"
        assert events[-2]["delta"]["stop_reason"] == "end_turn"

        _, _, raw = _post(m.url, _msg_body(stream=True))
        events = _sse_events(raw)
        starts = [e for e in events if e["type"] == "content_block_start"]
        assert [s["content_block"]["name"] for s in starts] == ["Bash", "Write"]
        assert all(s["content_block"]["id"].startswith("toolu_") for s in starts)
        for index, expected in enumerate(
            [{"command": "echo 1"}, {"file_path": "a", "content": "é"}]
        ):
            partial = "".join(
                e["delta"]["partial_json"]
                for e in events
                if e["type"] == "content_block_delta" and e["index"] == index
            )
            assert json.loads(partial) == expected
        assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_non_stream_request_gets_a_json_message() -> None:
    with ScriptedModel([tool_use("Read", {"file_path": "/x"}, id="toolu_fixed")], model="m-1") as m:
        status, _, raw = _post(m.url, _msg_body(stream=False))
        msg = json.loads(raw)
        assert status == 200
        assert msg["type"] == "message" and msg["model"] == "m-1"
        assert msg["stop_reason"] == "tool_use"
        assert msg["content"] == [
            {"type": "tool_use", "id": "toolu_fixed", "name": "Read", "input": {"file_path": "/x"}}
        ]


def test_text_delay_and_delay_before() -> None:
    with ScriptedModel([text("abcd", chunks=2, delay=0.3, delay_before=0.3)]) as m:
        t0 = time.monotonic()
        _, _, raw = _post(m.url, _msg_body(stream=True))
        assert time.monotonic() - t0 >= 0.55
        deltas = [
            e["delta"]["text"] for e in _sse_events(raw) if e["type"] == "content_block_delta"
        ]
        assert deltas == ["ab", "cd"]


def test_hang_does_not_block_close() -> None:
    m = ScriptedModel([hang()]).start()
    errors: list[BaseException] = []

    def client() -> None:
        try:
            _post(m.url, _msg_body(stream=True), timeout=30)
        except BaseException as e:  # the connection is cut on close
            errors.append(e)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while not m.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert m.requests and isinstance(m.requests[0].turn, type(hang()))
    t0 = time.monotonic()
    m.close()
    assert time.monotonic() - t0 < 1.0
    t.join(5)
    assert not t.is_alive()
    assert errors  # no response was ever sent


def test_hang_with_seconds_closes_without_response() -> None:
    with ScriptedModel([hang(0.3), text("after")]) as m:
        t0 = time.monotonic()
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _post(m.url, _msg_body(), timeout=5)
        assert 0.25 <= time.monotonic() - t0 < 3
        _, _, raw = _post(m.url, _msg_body())
        assert json.loads(raw)["content"][0]["text"] == "after"


def test_env_gives_fresh_homes_removed_on_close() -> None:
    m = ScriptedModel()
    env1, env2 = m.env(), m.env()
    assert env1["ANTHROPIC_BASE_URL"] == m.url and m.url.startswith("http://127.0.0.1:")
    assert env1["ANTHROPIC_API_KEY"] == m.api_key and m.api_key.startswith("sk-ant-scripted-")
    assert env1["HOME"] != env2["HOME"]
    assert env1["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    homes = [Path(env1["HOME"]), Path(env2["HOME"])]
    assert all(h.is_dir() and not any(h.iterdir()) for h in homes)
    m.close()
    assert not any(h.exists() for h in homes)
    m.close()  # idempotent
    with pytest.raises(RuntimeError):
        m.env()


def test_add_turns_after_start_and_validation() -> None:
    with ScriptedModel() as m:
        m.add(text("late 1"), text("late 2"))
        for expected in ("late 1", "late 2"):
            _, _, raw = _post(m.url, _msg_body())
            assert json.loads(raw)["content"][0]["text"] == expected
        with pytest.raises(TypeError):
            m.add("not a turn")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        text("x", chunks=0)


def test_big_text_size() -> None:
    turn = big_text(0.5)
    assert len(turn.text) == 500_000
    assert turn.chunks == 8


async def test_async_context_manager() -> None:
    async with ScriptedModel([text("async ok")]) as m:
        assert m.url.startswith("http://127.0.0.1:")
    assert repr(m).startswith("<ScriptedModel closed")


def test_config_uses_env() -> None:
    with ScriptedModel() as m:
        cfg = m.config(env={"EXTRA": "1"})
        assert cfg.env["ANTHROPIC_BASE_URL"] == m.url
        assert cfg.env["EXTRA"] == "1"


# ------------------------------------------------------------------ the real CLI


@pytest.fixture
def real_cli() -> str:
    path = os.environ.get("CC_EXECUTOR_CLI") or str(
        ROOT / ".claude-cli" / "node_modules" / ".bin" / "claude"
    )
    if not Path(path).exists():
        pytest.fail(f"the pinned Claude Code CLI is not installed at {path}")
    return path


class CLIRun:
    def __init__(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        self.returncode = returncode
        self.lines: list[dict[str, Any]] = [
            json.loads(line) for line in stdout.decode().splitlines() if line.strip()
        ]
        self.stderr = stderr.decode(errors="replace")

    @property
    def result(self) -> dict[str, Any]:
        results = [line for line in self.lines if line.get("type") == "result"]
        assert results, f"no result line; stderr: {self.stderr[-2000:]}"
        return results[-1]

    def of_type(self, type_: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("type") == type_ and (subtype is None or line.get("subtype") == subtype)
        ]


def _cli_env(model: ScriptedModel) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    env.update(model.env())
    return env


def _cli_args(cli: str, *extra: str) -> list[str]:
    return [
        cli,
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        *extra,
    ]


def run_cli(
    cli: str,
    model: ScriptedModel,
    cwd: Path,
    *extra: str,
    prompt: str = "say hi",
    timeout: float = 30,
) -> CLIRun:
    proc = subprocess.run(
        _cli_args(cli, *extra),
        input=prompt.encode(),
        capture_output=True,
        cwd=cwd,
        env=_cli_env(model),
        timeout=timeout,
        check=False,
    )
    return CLIRun(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "work"
    d.mkdir()
    yield d


def test_cli_plain_text_streams_chunks(real_cli: str, workdir: Path) -> None:
    with ScriptedModel([text("one two three four", chunks=4)]) as m:
        run = run_cli(real_cli, m, workdir, prompt="say hi")
        assert run.returncode == 0, run.stderr
        assert run.result["subtype"] == "success" and run.result["is_error"] is False
        assert run.result["result"] == "one two three four"
        deltas = [
            e["event"]["delta"]["text"]
            for e in run.of_type("stream_event")
            if e["event"]["type"] == "content_block_delta"
        ]
        assert deltas == ["one t", "wo th", "ree f", "our"]
        kinds = [e["event"]["type"] for e in run.of_type("stream_event")]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
        assert not m.exhausted
        assert m.prompts == ["say hi"]
        # With the env above the CLI makes no side requests at all.
        assert [(r.method, r.is_main) for r in m.requests] == [("POST", True)]
        assert m.requests[0].headers["x-api-key"] == "[redacted]"


def test_cli_write_tool_writes_file(real_cli: str, workdir: Path) -> None:
    target = workdir / "hello.py"
    with ScriptedModel(
        [
            tool_use("Write", {"file_path": str(target), "content": 'print("hello")\n'}),
            text("Created hello.py"),
        ]
    ) as m:
        run = run_cli(real_cli, m, workdir, "--permission-mode", "acceptEdits")
        assert run.returncode == 0, run.stderr
        assert run.result["result"] == "Created hello.py"
        assert target.read_text() == 'print("hello")\n'
        assert len(m.main_requests) == 2
        # The second request carries the tool result back.
        last_user = m.main_requests[1].body["messages"]
        assert any(
            block.get("type") == "tool_result"
            for msg in last_user
            if isinstance(msg.get("content"), list)
            for block in msg["content"]
        )
        assert not m.exhausted


def test_cli_bash_tool_runs(real_cli: str, workdir: Path) -> None:
    with ScriptedModel(
        [
            tool_use(
                "Bash",
                {"command": "echo hi > out.txt && python3 -c 'print(6*7)'", "description": "w"},
            ),
            text("done"),
        ]
    ) as m:
        run = run_cli(
            real_cli, m, workdir, "--permission-mode", "acceptEdits", "--allowedTools", "Bash"
        )
        assert run.returncode == 0, run.stderr
        assert (workdir / "out.txt").read_text() == "hi\n"
        results = [
            block
            for line in run.of_type("user")
            for block in line["message"]["content"]
            if block.get("type") == "tool_result"
        ]
        assert results and results[0]["content"] == "42"
        assert run.result["result"] == "done"


def test_cli_structured_output(real_cli: str, workdir: Path) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    with ScriptedModel([structured_output({"name": "Ada"})]) as m:
        run = run_cli(real_cli, m, workdir, "--json-schema", json.dumps(schema))
        assert run.returncode == 0, run.stderr
        assert run.result["structured_output"] == {"name": "Ada"}
        assert json.loads(run.result["result"]) == {"name": "Ada"}
        tools = [t["name"] for t in m.main_requests[0].body["tools"]]
        assert "StructuredOutput" in tools
        assert not m.exhausted


def test_cli_400_is_resent_then_fails(real_cli: str, workdir: Path) -> None:
    with ScriptedModel([http_error(400, "scripted bad request", times=None)]) as m:
        run = run_cli(real_cli, m, workdir)
        assert run.returncode == 1
        assert run.result["is_error"] is True
        assert run.result["api_error_status"] == 400
        assert run.result["result"] == "API Error: 400 scripted bad request"
        assert len(m.main_requests) == 6
        assert not run.of_type("system", "api_retry")


def test_cli_401_is_retried(real_cli: str, workdir: Path) -> None:
    with ScriptedModel([http_error(401, "invalid x-api-key", times=None)]) as m:
        proc = subprocess.Popen(
            _cli_args(real_cli),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=_cli_env(m),
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"hi")
        proc.stdin.close()
        retry: dict[str, Any] | None = None
        timer = threading.Timer(20, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                event = json.loads(line)
                if event.get("subtype") == "api_retry":
                    retry = event
                    break
        finally:
            timer.cancel()
            proc.send_signal(signal.SIGKILL)
            proc.stdout.close()
            proc.wait()
        assert retry is not None
        assert retry["error_status"] == 401 and retry["error"] == "authentication_failed"
        assert all(r.turn is not None and r.is_main for r in m.requests)


def test_cli_529_once_then_success(real_cli: str, workdir: Path) -> None:
    with ScriptedModel([http_error(529, "Overloaded"), text("recovered")]) as m:
        run = run_cli(real_cli, m, workdir)
        assert run.returncode == 0, run.stderr
        retries = run.of_type("system", "api_retry")
        assert [r["error_status"] for r in retries] == [529]
        assert run.result["result"] == "recovered" and run.result["is_error"] is False
        assert len(m.main_requests) == 2 and not m.exhausted


def test_cli_max_turns(real_cli: str, workdir: Path) -> None:
    with ScriptedModel([tool_use("Bash", {"command": "true", "description": "noop"})]) as m:
        run = run_cli(
            real_cli,
            m,
            workdir,
            "--max-turns",
            "1",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Bash",
        )
        assert run.returncode == 1
        assert run.result["subtype"] == "error_max_turns" and run.result["is_error"] is True
        assert not m.exhausted


def test_cli_big_text(real_cli: str, workdir: Path) -> None:
    turn = big_text(3)
    with ScriptedModel([turn]) as m:
        run = run_cli(real_cli, m, workdir)
        assert run.returncode == 0, run.stderr
        assert run.result["result"] == turn.text
        assert len(run.result["result"]) == 3_000_000


def test_cli_long_odd_prompt_recorded_verbatim(real_cli: str, workdir: Path) -> None:
    unit = "-x \"double\" 'single' \\back\\ $HOME `cmd` <tag>\n\ttab ünïcödé 日本語 🎉\r\n"
    prompt = ("-" + unit * (200_000 // len(unit) + 1))[:200_000] + "\n\n  "
    with ScriptedModel([text("ok")]) as m:
        run = run_cli(real_cli, m, workdir, prompt=prompt)
        assert run.returncode == 0, run.stderr
        assert m.prompts[0] == prompt
        assert m.main_requests[0].prompt == prompt


def test_cli_killed_during_hang_leaves_server_healthy(real_cli: str, workdir: Path) -> None:
    with ScriptedModel([hang(), text("still here")]) as m:
        proc = subprocess.Popen(
            _cli_args(real_cli),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=_cli_env(m),
        )
        assert proc.stdin is not None
        proc.stdin.write(b"hi")
        proc.stdin.close()
        deadline = time.monotonic() + 15
        while not m.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert m.requests, "the CLI never called the server"
        proc.kill()
        proc.wait()
        _, _, raw = _post(m.url, _msg_body())
        assert json.loads(raw)["content"][0]["text"] == "still here"
