"""The dashboard (`cc-execute ui`) without a browser: the transcript-to-conversation
rendering on the field corpus, the read-only store, the path guard, the access guard,
escaping, and the command line. State dirs are written by the real journal and
transcript writers (`Journal`, `Transcript`); the browser tests (test_ui_browser.py)
use a real list run by the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from cc_executor._journal import Journal
from cc_executor._secrets import Secrets
from cc_executor._transcript import Transcript
from cc_executor.result import Attempt, TaskResult
from cc_executor.ui import create_app, is_loopback
from cc_executor.ui._conversation import Conversation, conversation_of

from .conftest import FIXTURES, ROOT

FIELD = FIXTURES / "field"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIELD / "EXPECTED.json").read_text())
LOOPBACK = "http://127.0.0.1"


def _lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line.strip()]


# ------------------------------------------------------------------ the conversation


def _tool_uses(lines: list[bytes]) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, name, input) of every tool_use block of the assistant lines, first sighting,
    read straight from the JSON (not through the parser under test)."""
    seen: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if data.get("type") != "assistant":
            continue
        for block in (data.get("message") or {}).get("content") or []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                seen.setdefault(block["id"], (block["id"], block["name"], block.get("input", {})))
    return list(seen.values())


def _results(lines: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if data.get("type") == "result":
            out.append(data)
    return out


@pytest.mark.parametrize("sample", sorted(EXPECTED), ids=str)
def test_field_stream_becomes_a_conversation_with_every_tool_call_and_the_answer(
    sample: str,
) -> None:
    expected = EXPECTED[sample]
    lines = _lines(FIELD / expected["file"])
    conv = conversation_of(None, lines, None)

    calls = conv.tool_calls
    assert [(c.tool_id, c.tool_name) for c in calls] == [(i, n) for i, n, _ in _tool_uses(lines)]
    for call, (_, _, given) in zip(calls, _tool_uses(lines), strict=True):
        assert json.loads(call.tool_input) == given  # the input, whole, as JSON
    results = _results(lines)
    shown = [i for i in conv.items if i.kind == "result"]
    assert len(shown) == len(results)
    # A stream may print a result after the one that counts (S-15's noise): every one
    # printed is shown, the one that counts among them.
    if expected.get("success") and "output" in expected:
        assert (expected["output"].strip(), "success") in [(r.text, r.status) for r in shown]
    if "output_startswith" in expected:
        assert any(r.text.startswith(expected["output_startswith"]) for r in shown)
    if "total_cost_usd" in expected:
        costs = [r.figures["cost_usd"] for r in shown]
        assert any(c == pytest.approx(expected["total_cost_usd"]) for c in costs)
    if "num_turns" in expected and shown:
        turns = [r.figures["turns"] or 0 for r in shown]  # several results: the run's is the sum
        assert expected["num_turns"] in [*turns, sum(turns)]
    # Every line that is not JSON is shown as such, never dropped.
    invalid = sum(1 for line in lines if not _is_json(line))
    assert sum(1 for i in conv.items if i.kind == "invalid") == invalid


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def test_tool_results_attach_to_their_calls_and_fold_after_three_lines() -> None:
    short = conversation_of(None, _lines(FIELD / EXPECTED["S-02"]["file"]), None).tool_calls[0]
    assert short.tool_name == "Bash" and short.result is not None
    assert short.result.line_count == 3 and not short.result.folded
    assert short.result.text.startswith("total 1976\n")
    calls = conversation_of(None, _lines(FIELD / EXPECTED["S-05"]["file"]), None).tool_calls
    long = next(c for c in calls if c.result is not None and c.result.line_count > 3)
    assert long.result is not None and long.result.folded
    assert long.result.preview == "\n".join(long.result.text.splitlines()[:3])
    # One long line (a minified JSON answer) folds too, after 400 characters.
    wide = next(
        c
        for c in calls
        if c.result is not None and c.result.line_count == 1 and len(c.result.text) > 1000
    )
    assert wide.result is not None and wide.result.folded
    assert wide.result.preview == wide.result.text[:400] + "…"
    assert wide.result.rest == f"{len(wide.result.text) - 400:,} more characters"


def test_subagent_calls_are_marked() -> None:
    conv = conversation_of(None, _lines(FIELD / EXPECTED["S-05"]["file"]), None)
    assert any(c.subagent for c in conv.tool_calls)
    assert any(not c.subagent and c.tool_name == "Task" for c in conv.tool_calls)


def test_permission_denials_and_api_retries_are_shown() -> None:
    denied = conversation_of(None, _lines(FIXTURES / "permission_denied_default_mode.jsonl"), None)
    assert [i.tool_name for i in denied.items if i.kind == "denied"]
    retried = conversation_of(None, _lines(FIXTURES / "api_error_500_then_ok.jsonl"), None)
    retries = [i for i in retried.items if i.kind == "retry"]
    assert retries and "500" in retries[0].text


def test_feeding_line_by_line_gives_the_same_conversation_and_reports_every_change() -> None:
    lines = _lines(FIELD / EXPECTED["S-05"]["file"])
    whole = conversation_of(None, lines, {"status": "success", "exit_code": 0})
    live = Conversation()
    reported: dict[int, str] = {}
    for line in lines:
        live.feed(line)
        for item in live.changed():
            reported[item.number] = json.dumps(item.as_dict())
    live.end({"status": "success", "exit_code": 0})
    for item in live.changed():
        reported[item.number] = json.dumps(item.as_dict())
    assert [i.as_dict() for i in live.items] == [i.as_dict() for i in whole.items]
    # The last report of each item is its final form: a live page ends up identical.
    assert reported == {i.number: json.dumps(i.as_dict()) for i in whole.items}
    assert whole.items[-1].kind == "ended"


def test_the_current_tool_is_the_last_call_without_a_result() -> None:
    lines = _lines(FIELD / EXPECTED["S-02"]["file"])
    conv = Conversation()
    for line in lines:
        conv.feed(line)
        if b'"tool_use"' in line and b'"assistant"' in line:
            assert conv.current_tool is not None
            assert conv.current_tool.tool_name == "Bash"
    assert conv.current_tool is None  # the result line ended it


# ---------------------------------------------------------- state dirs, really written


def _transcript(directory: Path, execution: str, started: datetime, lines: list[bytes]) -> Path:
    t = Transcript.create(directory, execution, started, Secrets())
    t.record(
        "header",
        {
            "task": "t",
            "execution_uuid": execution,
            "attempt": 1,
            "cwd": "/w",
            "started_at": started.isoformat(),
        },
    )
    t.write(b"\n".join(lines) + b"\n")
    t.record("footer", {"status": "success", "exit_code": 0})
    t.close()
    return t.path


async def _write_run(
    state: Path,
    transcripts: Path,
    run_id: str,
    steps: list[dict[str, Any]],
    *,
    lines: list[bytes] | None = None,
) -> list[TaskResult]:
    """A run in `state` written by the real journal; each step a transcript of `lines`."""
    journal = await Journal.open(state)
    t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    out = []
    try:
        for i, spec in enumerate(steps):
            started = t0 + timedelta(seconds=10 * i)
            ended = started + timedelta(seconds=spec.get("duration", 3.0))
            execution = str(uuid.uuid4())
            path = _transcript(transcripts, execution, started, lines or [])
            result = TaskResult(
                task=spec.get("task", f"task {i + 1}"),
                success=spec.get("success", True),
                output=spec.get("output", f"answer {i + 1}"),
                execution_uuid=execution,
                started_at=started,
                ended_at=ended,
                duration_s=(ended - started).total_seconds(),
                total_cost_usd=spec.get("cost", 0.01),
                num_turns=2,
                transcript_path=spec.get("transcript_path", path),
                metadata=spec.get("metadata", {}),
                error_type=None if spec.get("success", True) else "MaxTurnsError",
                error_message=None if spec.get("success", True) else "max turns",
                files_created=spec.get("files_created", []),
                attempts=[
                    Attempt(
                        number=1,
                        success=spec.get("success", True),
                        started_at=started,
                        ended_at=ended,
                        duration_s=(ended - started).total_seconds(),
                        execution_uuid=execution,
                        transcript_path=path,
                    )
                ],
            )
            await journal.start(run_id, i, spec.get("name"), "h" * 64, drop_later=False)
            if spec.get("status") != "started":
                await journal.finish(run_id, i, result)
            out.append(result)
    finally:
        await journal.close()
    return out


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _client(state: Path, transcripts: Path, **options: Any) -> TestClient:
    return TestClient(create_app(state, transcripts, **options), base_url=LOOPBACK)


def _snapshot(*folders: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under `folders`: (size, mtime, sha256)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                st = path.stat()
                out[str(path)] = (
                    st.st_size,
                    st.st_mtime_ns,
                    hashlib.sha256(path.read_bytes()).hexdigest(),
                )
    return out


async def test_pages_and_their_json_show_a_run_its_steps_and_a_steps_transcript(
    state: Path, transcripts: Path
) -> None:
    lines = _lines(FIELD / EXPECTED["S-02"]["file"])
    await _write_run(
        state,
        transcripts,
        "r-1",
        [
            {"name": "lint", "metadata": {"team": "ml"}, "files_created": ["a.py"]},
            {"name": "fix", "success": False, "metadata": {"team": "ml"}},
        ],
        lines=lines,
    )
    client = _client(state, transcripts)
    runs = client.get("/api/").json()["runs"]
    assert [(r["run_id"], r["status"], r["steps_done"], r["steps_total"]) for r in runs] == [
        ("r-1", "failed", 1, 2)
    ]
    assert runs[0]["cost_usd"] == pytest.approx(0.02) and runs[0]["metadata"] == {"team": "ml"}
    page = client.get("/").text
    assert "r-1" in page and 'href="/runs/r-1"' in page

    run = client.get("/api/runs/r-1").json()
    assert [(s["n"], s["name"], s["status"]) for s in run["steps"]] == [
        (1, "lint", "success"),
        (2, "fix", "failed"),
    ]
    assert run["resume_command"].startswith("cc-execute list TASKLIST_FILE --run-id r-1 ")
    html = client.get("/runs/r-1").text
    assert "--run-id r-1" in html and "<svg" in html and "MaxTurnsError" in html

    step = client.get("/api/runs/r-1/steps/1").json()
    assert step["files_created"] == ["a.py"]
    calls = [i for i in step["conversation"] if i["kind"] == "tool_call"]
    assert calls and calls[0]["tool_name"] == "Bash" and "ls -la" in calls[0]["input"]
    html = client.get("/runs/r-1/steps/1").text
    assert "ls -la" in html and "<details" in html and "ended: success" in html
    assert client.get("/runs/r-1/steps/3").status_code == 404
    assert client.get("/runs/nope").status_code == 404


async def test_filters_by_status_and_metadata(state: Path, transcripts: Path) -> None:
    await _write_run(state, transcripts, "ok-run", [{"metadata": {"team": "ml", "n": 1}}])
    await _write_run(
        state, transcripts, "bad-run", [{"success": False, "metadata": {"team": "web"}}]
    )
    client = _client(state, transcripts)

    def ids(query: str) -> list[str]:
        return [r["run_id"] for r in client.get(f"/api/?{query}").json()["runs"]]

    assert sorted(ids("")) == ["bad-run", "ok-run"]
    assert ids("status=failed") == ["bad-run"]
    assert ids("metadata=team%3Dml") == ["ok-run"]
    assert ids("metadata=team%3Dml,n%3D1") == ["ok-run"]
    assert ids("metadata=team%3Dweb&status=success") == []
    assert "bad-run" not in client.get("/?status=success").text


async def test_text_from_a_run_is_escaped_everywhere(state: Path, transcripts: Path) -> None:
    evil = "<script>alert(1)</script>"
    line = json.dumps(
        {
            "type": "assistant",
            "message": {
                "id": "m1",
                "content": [
                    {"type": "text", "text": evil},
                    {"type": "tool_use", "id": "t1", "name": evil, "input": {"command": evil}},
                ],
            },
        }
    )
    await _write_run(
        state,
        transcripts,
        "r-x",
        [{"name": evil, "output": evil, "metadata": {"k": evil}}],
        lines=[line.encode()],
    )
    client = _client(state, transcripts)
    for path in ("/", "/runs/r-x", "/runs/r-x/steps/1"):
        html = client.get(path).text
        assert "<script>alert" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


async def test_transcripts_outside_the_transcript_dir_are_never_served(
    state: Path, transcripts: Path, tmp_path: Path
) -> None:
    lines = _lines(FIELD / EXPECTED["S-02"]["file"])
    outside = _transcript(
        tmp_path / "elsewhere", str(uuid.uuid4()), datetime.now(timezone.utc), lines
    )
    await _write_run(state, transcripts, "r-out", [{"transcript_path": outside}], lines=lines)
    (transcripts / "link.jsonl").symlink_to(outside)
    (transcripts / "notes.txt").write_text("not a transcript")
    inside = next(transcripts.glob("2026*.jsonl"))
    client = _client(state, transcripts)

    assert client.get(f"/transcripts/{inside.name}").status_code == 200
    assert "ls -la" in client.get(f"/api/transcripts/{inside.name}").text
    refused = [
        "..%2Felsewhere%2F" + outside.name,
        "%2E%2E/elsewhere/" + outside.name,
        "sub/..%2F..%2Felsewhere%2F" + outside.name,
        "%2F" + str(outside).lstrip("/").replace("/", "%2F"),
        "link.jsonl",  # a symlink out of the folder
        "notes.txt",
        "missing.jsonl",
    ]
    for path in refused:
        for prefix in ("/transcripts/", "/api/transcripts/"):
            response = client.get(prefix + path)
            assert response.status_code == 404, (prefix, path)
            assert "ls -la" not in response.text
    # A journal row naming a transcript outside the folder: the step page says so.
    html = client.get("/runs/r-out/steps/1").text
    assert "outside the transcript dir" in html and "ls -la" not in html
    assert client.get("/api/runs/r-out/steps/1").json()["conversation"] == []


def test_a_missing_state_dir_is_an_empty_page_with_a_hint_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    state = tmp_path / "no" / "state"
    client = _client(state, tmp_path / "no-transcripts")
    html = client.get("/").text
    assert "No state store at" in html and "cc-execute list" in html
    assert client.get("/api/").json()["runs"] == []
    assert client.get("/runs/x").status_code == 404
    assert not (tmp_path / "no").exists() and not (tmp_path / "no-transcripts").exists()


async def test_browsing_writes_nothing(state: Path, transcripts: Path) -> None:
    lines = _lines(FIELD / EXPECTED["S-05"]["file"])
    await _write_run(state, transcripts, "r-ro", [{"name": "a"}, {"name": "b"}], lines=lines)
    # The writer is gone: as after a finished list, no -wal is left beside state.db.
    for extra in ("state.db-wal", "state.db-shm"):
        (state / extra).unlink(missing_ok=True)
    before = _snapshot(state, transcripts)
    client = _client(state, transcripts)
    name = next(transcripts.glob("*.jsonl")).name
    for path in (
        "/",
        "/api/",
        "/runs/r-ro",
        "/api/runs/r-ro",
        "/runs/r-ro/steps/1",
        "/api/runs/r-ro/steps/2",
        f"/transcripts/{name}",
        "/runs/r-ro/steps/2?attempt=1",
    ):
        assert client.get(path).status_code == 200, path
    assert _snapshot(state, transcripts) == before


def test_the_access_guard(tmp_path: Path) -> None:
    app = create_app(tmp_path / "s", tmp_path / "t", token="s3cret", loopback=False)
    client = TestClient(app, base_url="http://dash.example:8765")
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/api/?token=s3cret").status_code == 200
    assert client.get("/").status_code == 200  # the cookie from the first visit
    assert client.post("/").status_code == 405
    loop = TestClient(create_app(tmp_path / "s", tmp_path / "t"), base_url="http://127.0.0.1:1")
    page = loop.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    # A page elsewhere reaching 127.0.0.1 through a name it controls (DNS rebinding).
    rebound = TestClient(create_app(tmp_path / "s", tmp_path / "t"), base_url="http://evil.test")
    assert rebound.get("/").status_code == 403
    assert [h for h in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2") if is_loopback(h)]
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


# ------------------------------------------------------------------- the command line


def _cli(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_cli_without_the_extra_names_the_install_command(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.argv = ['cc-execute', 'ui']; "
        "from cc_executor._cli import main; main()"
    )
    proc = _cli("-c", code, cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    # The command that installs the extra into this interpreter (this checkout: -e).
    assert f"{sys.executable} -m pip install -e " in err and "[ui]" in err and "starlette" in err


async def test_cli_serves_the_dashboard_on_loopback_until_stopped(
    state: Path, transcripts: Path, tmp_path: Path
) -> None:
    await _write_run(state, transcripts, "cli-run", [{"name": "only"}])
    proc = _cli(
        "-m",
        "cc_executor._cli",
        "ui",
        "--state-dir",
        str(state),
        "--transcript-dir",
        str(transcripts),
        "--port",
        "0",
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url and "token" not in line, line
        with urllib.request.urlopen(url[0] + "api/runs/cli-run", timeout=30) as response:  # noqa: ASYNC210
            assert json.load(response)["steps"][0]["name"] == "only"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode in (0, -15)


def test_cli_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _cli(
            "-m",
            "cc_executor._cli",
            "ui",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "s"),
            cwd=tmp_path,
        )
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def test_cli_help_names_the_options_and_the_extra(tmp_path: Path) -> None:
    proc = _cli("-m", "cc_executor._cli", "ui", "--help", cwd=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    for word in ("--state-dir", "--transcript-dir", "--host", "--port", "cc_executor[ui]"):
        assert word in out, word
    assert re.findall(r"<[a-z][\w\[\] ]*>", out) == []


# ------------------------------------------------- single tasks, running steps, graphs


async def test_single_tasks_of_the_history_are_listed_with_their_transcript(
    state: Path, transcripts: Path
) -> None:
    from cc_executor._history import record_history
    from cc_executor.config import CCExecutorConfig

    listed = await _write_run(state, transcripts, "r-1", [{"name": "in-a-list"}])
    config = CCExecutorConfig(state_dir=state, transcript_dir=transcripts)
    await record_history(listed[0], config)  # a list step is in the history too: not a task
    execution = str(uuid.uuid4())
    started = datetime(2026, 1, 3, tzinfo=timezone.utc)
    lines = _lines(FIELD / EXPECTED["S-02"]["file"])
    _transcript(transcripts, execution, started, lines)
    single = TaskResult(
        task="List the files",
        success=True,
        output="Here they are",
        execution_uuid=execution,
        started_at=started,
        ended_at=started + timedelta(seconds=4),
        duration_s=4.0,
        total_cost_usd=0.05,
        metadata={"team": "ops"},
    )
    await record_history(single, config)
    client = _client(state, transcripts)
    runs = client.get("/api/").json()["runs"]
    assert [(r["run_id"], r["kind"]) for r in runs] == [(execution, "task"), ("r-1", "list")]
    assert runs[0]["metadata"] == {"team": "ops"} and runs[0]["cost_usd"] == 0.05
    assert f'href="/tasks/{execution}"' in client.get("/").text
    task = client.get(f"/api/tasks/{execution}").json()
    assert task["success"] and [i["tool_name"] for i in task["conversation"] if i.get("tool_name")]
    assert "ls -la" in client.get(f"/tasks/{execution}").text
    assert client.get(f"/tasks/{uuid.uuid4()}").status_code == 404


async def test_a_running_step_shows_its_current_tool_and_a_dead_one_is_interrupted(
    state: Path, transcripts: Path
) -> None:
    """A step row left `started`: running while its holder lives (its transcript found
    by the prompt hash, its last call without a result the current tool), interrupted
    once the holder is gone."""
    import hashlib as h

    prompt = "Deploy the thing"
    journal = await Journal.open(state)
    try:
        await journal.start(
            "r-live", 0, "deploy", h.sha256(prompt.encode()).hexdigest(), drop_later=False
        )
        journal.claim("r-live")  # this process holds the run
    finally:
        await journal.close()
    call = {
        "type": "assistant",
        "message": {
            "id": "m1",
            "content": [
                {
                    "type": "tool_use",
                    "id": "t1",
                    "name": "Bash",
                    "input": {"command": "make deploy"},
                }
            ],
        },
    }
    t = Transcript.create(transcripts, str(uuid.uuid4()), datetime.now(timezone.utc), Secrets())
    t.record("header", {"task": prompt, "attempt": 1, "cwd": "/w"})
    t.write(json.dumps(call).encode() + b"\n")  # no footer: still running
    client = _client(state, transcripts)

    run = client.get("/api/runs/r-live").json()
    assert run["status"] == "running" and run["steps"][0]["status"] == "running"
    assert run["current_tools"] == {"1": "Bash make deploy"}
    html = client.get("/runs/r-live").text
    assert "Bash make deploy" in html and "data-since=" in html
    step = client.get("/runs/r-live/steps/1").text
    assert "make deploy" in step and 'data-events="/events/runs/r-live/steps/1"' in step
    t.close()

    import sqlite3

    db = sqlite3.connect(state / "state.db")
    db.execute("UPDATE holders SET pid = ?", (_dead_pid(),))
    db.commit()
    db.close()
    assert client.get("/api/runs/r-live").json()["status"] == "interrupted"
    # An interrupted step's page shows its transcript as far as it got.
    interrupted = client.get("/api/runs/r-live/steps/1").json()
    assert interrupted["status"] == "interrupted"
    assert [i["summary"] for i in interrupted["conversation"] if i["kind"] == "tool_call"] == [
        "Bash make deploy"
    ]
    assert "--run-id r-live" in client.get("/runs/r-live").text


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_the_graph_is_drawn_when_the_journal_rows_carry_dependencies(
    state: Path, transcripts: Path
) -> None:
    """The journal's `depends_on` column (a JSON list of step names; NULL outside graphs)."""
    import sqlite3

    await _write_run(
        state, transcripts, "g", [{"name": "a"}, {"name": "b"}, {"name": "c<x>"}, {"name": "d"}]
    )
    client = _client(state, transcripts)
    assert "dependency graph" not in client.get("/runs/g").text
    db = sqlite3.connect(state / "state.db")
    for step, needs in ((1, ["a"]), (2, ["a"]), (3, ["b", "c<x>"])):
        db.execute("UPDATE steps SET depends_on = ? WHERE step = ?", (json.dumps(needs), step))
    db.commit()
    db.close()
    html = client.get("/runs/g").text
    assert "dependency graph" in html and html.count('class="edge"') == 4
    assert "c&lt;x&gt;" in html and "<x>" not in html
    assert client.get("/api/runs/g").json()["steps"][3]["depends_on"] == ["b", "c<x>"]


async def test_a_corrupt_state_store_is_named_with_the_fix_and_left_alone(
    state: Path, transcripts: Path
) -> None:
    await _write_run(state, transcripts, "r-1", [{"name": "a"}])
    for extra in ("state.db-wal", "state.db-shm"):
        (state / extra).unlink(missing_ok=True)
    db = state / "state.db"
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, overwritten
    db.write_bytes(bytes(data))
    before = _snapshot(state)
    client = _client(state, transcripts)
    page = client.get("/runs/r-1")
    assert page.status_code == 503
    assert "corrupt" in page.text and "mv " in page.text  # the command that moves it aside
    api = client.get("/api/")
    assert api.status_code == 503 and api.json()["error"] == "StateStoreError"
    assert _snapshot(state) == before


async def test_a_steps_diff_is_shown_coloured_and_escaped(state: Path, transcripts: Path) -> None:
    """A result that carries its unified diff (`TaskResult.diff`, git mode)."""
    import sqlite3

    await _write_run(state, transcripts, "d", [{"name": "edit", "files_created": ["a.py"]}])
    diff = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n-old = 1\n"
        "+new = '<b>2</b>'\n"
    )
    whole = transcripts / "20260102T030405_x.diff"
    whole.write_text(diff + "+more\n")
    outside = transcripts.parent / "elsewhere.diff"
    outside.write_text("secret diff")
    (transcripts / "link.diff").symlink_to(outside)
    db = sqlite3.connect(state / "state.db")
    db.execute(
        "UPDATE steps SET result_json = json_set(result_json, '$.diff', ?, '$.diff_path', ?)",
        (diff, str(whole)),
    )
    db.commit()
    db.close()
    client = _client(state, transcripts)
    html = client.get("/runs/d/steps/1").text
    assert f'href="/diffs/{whole.name}"' in html
    assert client.get(f"/diffs/{whole.name}").text == diff + "+more\n"
    for refused in ("link.diff", "..%2Felsewhere.diff", "20260102T030405_x.jsonl"):
        response = client.get(f"/diffs/{refused}")
        assert response.status_code == 404 and "secret diff" not in response.text
    assert '<span class="del">-old = 1</span>' in html
    assert '<span class="add">+new = &#39;&lt;b&gt;2&lt;/b&gt;&#39;</span>' in html
    assert '<span class="hunk">@@ -1 +1,2 @@</span>' in html
    assert client.get("/api/runs/d/steps/1").json()["diff"] == diff


async def test_a_running_graph_step_shows_its_current_tool(
    model: Any, workdir: Path, state: Path, transcripts: Path
) -> None:
    """A graph step's prompt hash covers its name and dependencies, so its transcript is
    found as the open one started after it (a real graph list, the real CLI)."""
    import asyncio

    from cc_executor import TaskSpec, cc_execute_list
    from cc_executor.testing import text, tool_use

    gate = workdir / "gate"
    model.add(
        text("a done"),
        tool_use("Bash", {"command": f"while [ ! -e {gate} ]; do sleep 0.05; done; echo b-ran"}),
        text("b done"),
    )
    specs = [
        TaskSpec(prompt="Step a", name="a"),
        TaskSpec(prompt="Step b", name="b", depends_on=["a"], allowed_tools=["Bash"]),
    ]
    config = model.config(cwd=workdir, transcript_dir=transcripts, state_dir=state)
    run = asyncio.create_task(cc_execute_list(specs, config, run_id="graph-run"))
    client = _client(state, transcripts)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # poll the page's JSON until the step shows its tool (a ceiling, no timing)
            response = await asyncio.to_thread(client.get, "/api/runs/graph-run")
            data = response.json() if response.status_code == 200 else {}  # 404: not begun
            if data.get("current_tools", {}).get("2"):
                break
            assert not run.done() and asyncio.get_running_loop().time() < deadline, data
            await asyncio.sleep(0.1)
        assert data["current_tools"]["2"].startswith("Bash while [ ! -e")
        assert [s["status"] for s in data["steps"]] == ["success", "running"]
    finally:
        gate.touch()
        result = await run
    assert result.success
    steps = client.get("/api/runs/graph-run").json()["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("a", "success"), ("b", "success")]


async def test_a_graph_steps_skipped_after_a_failure_are_shown_with_the_reason(
    model: Any, workdir: Path, state: Path, transcripts: Path
) -> None:
    from cc_executor import TaskSpec, cc_execute_list
    from cc_executor.testing import tool_use

    model.add(tool_use("Bash", {"command": "echo a"}))  # then max_turns=1 ends step a
    specs = [
        TaskSpec(prompt="Step a", name="a", max_turns=1, allowed_tools=["Bash"]),
        TaskSpec(prompt="Step b", name="b", depends_on=["a"]),
    ]
    config = model.config(cwd=workdir, transcript_dir=transcripts, state_dir=state)
    result = await cc_execute_list(specs, config, run_id="skips")
    assert not result.success
    client = _client(state, transcripts)
    run = client.get("/api/runs/skips").json()
    assert run["status"] == "failed"
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("a", "failed"), ("b", "skipped")]
    html = client.get("/runs/skips/steps/2").text
    assert "skipped" in html and run["steps"][1]["error_type"] in html
    assert "MaxTurnsError" in client.get("/runs/skips").text
    # The journal keeps each step's dependencies: the run page draws the real graph.
    assert run["steps"][1]["depends_on"] == ["a"] and run["steps"][0]["depends_on"] == []
    page = client.get("/runs/skips").text
    assert "dependency graph" in page and page.count('class="edge"') == 1
