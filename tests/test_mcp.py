"""The MCP server (`python -m cc_executor.mcp`) driven by real clients.

1. The official MCP Python client over stdio: it spawns the server, lists and
   calls every tool; the execution tools run the pinned real CLI against the
   scripted model. Progress notifications and cancellation are checked on real
   processes.
2. The real `claude` CLI as the MCP client, configured with the docs'
   `.mcp.json` snippet: the scripted model calls the server's tool through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from cc_executor import CCExecutorConfig, ConfigError, cc_run, get_task_complexity
from cc_executor._command import MARKER_VAR, TESTED_CLI_VERSIONS
from cc_executor._process import find_marked_processes
from cc_executor.mcp import server_config
from cc_executor.mcp._checks import verify_execution
from cc_executor.prompts import orchestrator_prompt
from cc_executor.testing import ScriptedModel, hang, structured_output, text, tool_use

from .conftest import ROOT
from .docs_blocks import doc_block
from .test_process_faults import process_state

TOOLS = {
    "check_executor_status",
    "get_task_complexity",
    "suggest_execution_strategy",
    "execute_task",
    "execute_task_list",
    "get_execution_history",
    "verify_execution",
}


def _server_env(extra: dict[str, str]) -> dict[str, str]:
    """What the server process gets (the MCP client passes only a safe base environment)."""
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "CC_EXECUTOR_CLI": os.environ["CC_EXECUTOR_CLI"],
        # The test's records home (conftest), never the real per-user state directory.
        "CC_EXECUTOR_HOME": os.environ["CC_EXECUTOR_HOME"],
        **extra,
    }


@asynccontextmanager
async def mcp_server(
    tmp_path: Path,
    cwd: Path,
    env: dict[str, str],
    *args: str,
    entry: tuple[str, ...] = ("-m", "cc_executor.mcp"),
) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=[*entry, *args],
        env=_server_env(env),
        cwd=cwd,
    )
    # The server's stderr (its log) stays beside the test's files.
    with open(tmp_path / "server.stderr", "w") as errlog:  # noqa: ASYNC230
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def _text(result: CallToolResult) -> str:
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


def _report(result: CallToolResult) -> dict[str, Any]:
    """The JSON record of a tool result (after the headline of an error)."""
    body = _text(result)
    return json.loads(body[body.index("{") :])


async def _status(session: ClientSession) -> dict[str, Any]:
    result = await session.call_tool("check_executor_status", {})
    assert result.structured_content is not None, _text(result)
    return result.structured_content


class Progress:
    def __init__(self) -> None:
        self.notes: list[tuple[float, float | None, str | None]] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.notes.append((progress, total, message))

    @property
    def messages(self) -> list[str]:
        return [m or "" for _, _, m in self.notes]


# -- the official MCP client over stdio ----------------------------------------------


async def test_lists_every_tool_and_serves_the_orchestrator_prompt(
    tmp_path: Path, workdir: Path
) -> None:
    async with mcp_server(tmp_path, workdir, {}) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        prompts = [p.name for p in (await session.list_prompts()).prompts]
        prompt = await session.get_prompt("cc_execute")
    assert set(tools) == TOOLS
    assert set(tools["execute_task"].input_schema["properties"]) == {
        "task",
        "return_json",
        "timeout",
        "model",
        "cwd",
    }
    assert set(tools["execute_task_list"].input_schema["properties"]) == {
        "tasks",
        "run_id",
        "stop_on_failure",
    }
    assert tools["get_execution_history"].input_schema["properties"]["limit"]["default"] == 20
    assert prompts == ["cc_execute"]
    content = prompt.messages[0].content
    assert isinstance(content, TextContent) and content.text == orchestrator_prompt()


async def test_cc_execute_mcp_starts_the_same_server(tmp_path: Path, workdir: Path) -> None:
    """`cc-execute mcp ARGS` (its module) passes the server's own options through."""
    entry = ("-m", "cc_executor._cli", "mcp")
    async with mcp_server(tmp_path, workdir, {}, "--cwd", str(workdir), entry=entry) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        status = _report(await session.call_tool("check_executor_status", {}))
    assert tools == TOOLS
    assert status["cwd"] == str(workdir)


def test_cc_execute_prompt_prints_the_orchestrator_prompt() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "prompt"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == orchestrator_prompt()
    assert "mcp__cc_executor__execute_task" in proc.stdout


async def test_status_reports_cli_auth_stores_and_keeps_the_key_secret(
    tmp_path: Path, workdir: Path, model: ScriptedModel, cli_version: str
) -> None:
    env = model.env()
    state, transcripts = tmp_path / "state", tmp_path / "transcripts"
    args = ("--state-dir", str(state), "--transcript-dir", str(transcripts))
    async with mcp_server(tmp_path, workdir, env, *args) as session:
        result = await session.call_tool("check_executor_status", {})
    assert not result.is_error, _text(result)
    status = result.structured_content
    assert status is not None
    assert status["ready"] is True and status["problems"] == []
    assert status["cli"]["version"].startswith(f"{cli_version} ")
    assert status["cli"]["tested"] is (cli_version in TESTED_CLI_VERSIONS)
    assert status["cli"]["tested_versions"] == list(TESTED_CLI_VERSIONS)
    assert status["auth"] == {
        "configured": True,
        "method": "ANTHROPIC_API_KEY",
        "detail": "ANTHROPIC_API_KEY is set",
    }
    assert status["state_store"] == {
        "location": str(state / "state.db"),
        "usable": True,
        "error": None,
    }
    assert (state / "state.db").exists()
    assert status["transcript_dir"]["usable"] and transcripts.is_dir()
    assert status["running_tasks"] == 0 and status["cwd"] == str(workdir)
    assert status["permission_mode"] == "acceptEdits"
    assert env["ANTHROPIC_API_KEY"] not in _text(result)


async def test_status_without_credentials_says_how_to_fix_it_and_a_login_counts(
    tmp_path: Path, workdir: Path
) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    env = {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")}
    async with mcp_server(tmp_path, workdir, env) as session:
        missing = (await session.call_tool("check_executor_status", {})).structured_content
        token = "sk-ant-oat01-secret-" + "x" * 20
        (home / ".claude" / ".credentials.json").write_text(
            json.dumps({"claudeAiOauth": {"accessToken": token}})  # the CLI's own format
        )
        result = await session.call_tool("check_executor_status", {})
    assert missing is not None
    assert missing["ready"] is False and missing["auth"]["configured"] is False
    assert any("set ANTHROPIC_API_KEY" in p for p in missing["problems"])
    logged_in = result.structured_content
    assert logged_in is not None and logged_in["ready"] is True
    assert logged_in["auth"]["method"] == str(home / ".claude" / ".credentials.json")
    assert token not in _text(result)


async def test_complexity_strategy_and_history_tools(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    async with mcp_server(tmp_path, workdir, model.env()) as session:
        small = await session.call_tool("get_task_complexity", {"task": "say hi"})
        big = await session.call_tool(
            "get_task_complexity",
            {"task": "Implement a REST API in api.py, then refactor models.py and write tests"},
        )
        plan = await session.call_tool(
            "suggest_execution_strategy",
            {"tasks": ["Create models.py", "Then write tests for models.py", "Write README.md"]},
        )
        history = await session.call_tool("get_execution_history", {"limit": 5})
        bad_limit = await session.call_tool("get_execution_history", {"limit": 0})
    assert small.structured_content and small.structured_content["level"] == "simple"
    assert big.structured_content and big.structured_content["level"] == "complex"
    assert plan.structured_content is not None
    assert plan.structured_content["concurrent_groups"] == [[0, 2], [1]]
    assert [t["depends_on"] for t in plan.structured_content["tasks"]] == [[], [0], []]
    assert history.structured_content == {"result": []}
    assert bad_limit.is_error and "limit" in _text(bad_limit)


async def test_execute_task_runs_the_cli_reports_each_tool_call_and_is_verifiable(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    target = workdir / "sub" / "hello.txt"
    (workdir / "sub").mkdir()
    model.add(
        tool_use("Write", {"file_path": str(target), "content": "hi\n"}),
        tool_use("Read", {"file_path": str(target)}),
        text("Wrote hello.txt"),
    )
    transcripts = tmp_path / "transcripts"
    progress = Progress()
    args = ("--transcript-dir", str(transcripts), "--state-dir", str(tmp_path / "state"))
    async with mcp_server(tmp_path, workdir, model.env(), *args) as session:
        result = await session.call_tool(
            "execute_task",
            {"task": "write hello.txt", "cwd": "sub", "timeout": 120},
            progress_callback=progress,
        )
        report = _report(result)
        verified = await session.call_tool(
            "verify_execution", {"execution_uuid": report["execution_uuid"]}
        )
        history = await session.call_tool("get_execution_history", {})
        model.add(
            tool_use("Bash", {"command": "echo more >> hello.txt", "description": "append"}),
            structured_output({"result": "appended", "summary": "Appended to hello.txt"}),
        )
        as_json = await session.call_tool(
            "execute_task", {"task": "append to hello.txt", "cwd": "sub", "return_json": True}
        )
    assert not result.is_error, _text(result)
    assert result.structured_content == report
    assert model.prompts[0] == "write hello.txt"
    assert report["success"] is True and report["output"] == "Wrote hello.txt"
    assert report["session_id"] and report["total_cost_usd"] > 0 and report["num_turns"] == 3
    transcript = Path(report["transcript_path"])
    assert transcript.parent == transcripts and report["execution_uuid"] in transcript.name
    # One notification per tool call, in order, after the start and the session.
    uuid = report["execution_uuid"]
    assert progress.messages == [
        f"started · execution {uuid}",
        f"session {report['session_id']}",
        f"tool: Write {target}",
        f"tool: Read {target}",
    ]
    assert [p for p, _, _ in progress.notes] == [1, 2, 3, 4]
    check = verified.structured_content
    assert check is not None
    assert (check["found"], check["ended"], check["status"], check["success"]) == (
        True,
        True,
        "success",
        True,
    )
    assert check["exit_code"] == 0 and check["total_cost_usd"] == report["total_cost_usd"]
    assert check["task"] == "write hello.txt" and check["cwd"] == str(workdir / "sub")
    assert check["cli_result"]["result"] == "Wrote hello.txt"
    assert "succeeded" in check["summary"]
    assert history.structured_content is not None
    assert [r["execution_uuid"] for r in history.structured_content["result"]] == [uuid]
    # Files changed come from the disk, relative to the task's cwd; return_json adds the
    # checked structured answer.
    assert (report["files_created"], report["files_modified"]) == (["hello.txt"], [])
    second = _report(as_json)
    assert not as_json.is_error and target.read_text() == "hi\nmore\n"
    assert second["files_modified"] == ["hello.txt"]
    assert second["structured"] == {
        "result": "appended",
        "summary": "Appended to hello.txt",
        "files_created": [],
        "files_modified": ["hello.txt"],
        "execution_uuid": second["execution_uuid"],
    }


async def test_failures_are_tool_errors_with_the_typed_message_and_the_server_stays_up(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    model.add(tool_use("Bash", {"command": "true", "description": "x"}), text("never"))
    async with mcp_server(tmp_path, workdir, model.env()) as session:
        # max_turns is not a tool argument: the list form carries it.
        failed = await session.call_tool(
            "execute_task_list", {"tasks": [{"prompt": "x", "max_turns": 1}]}
        )
        outside = await session.call_tool("execute_task", {"task": "x", "cwd": "../.."})
        wider = await session.call_tool(
            "execute_task_list",
            {"tasks": [{"prompt": "x", "permission_mode": "bypassPermissions"}]},
        )
        bad_uuid = await session.call_tool("verify_execution", {"execution_uuid": "*"})
        unknown = await session.call_tool(
            "verify_execution", {"execution_uuid": "3f2b8c1e-5d4a-4c2e-9f7b-0a1b2c3d4e5f"}
        )
        alive = await session.call_tool("check_executor_status", {})
    assert failed.is_error
    assert _text(failed).startswith("MaxTurnsError (step 1/1: x): The task reached max_turns")
    assert _report(failed)["steps"][0]["error_type"] == "MaxTurnsError"
    assert outside.is_error and _text(outside).startswith("ConfigError: cwd '../..' is outside")
    assert wider.is_error and "permission_mode" in _text(wider)
    assert len(model.main_requests) == 1  # neither of those two started a CLI
    assert bad_uuid.is_error and _text(bad_uuid).startswith("ConfigError: execution_uuid must")
    assert unknown.structured_content is not None
    assert unknown.structured_content["found"] is False
    assert "No transcript of execution" in unknown.structured_content["summary"]
    assert not alive.is_error


async def test_cancelling_execute_task_ends_the_cli_and_the_server_goes_on(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    model.add(hang())
    progress = Progress()
    args = ("--transcript-dir", str(tmp_path / "transcripts"))
    async with mcp_server(tmp_path, workdir, model.env(), *args) as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: session.call_tool(
                    "execute_task", {"task": "hang"}, progress_callback=progress
                )
            )
            deadline = time.monotonic() + 30
            while not model.main_requests:  # the CLI is now waiting on the model
                assert time.monotonic() < deadline, "the CLI never asked the model"
                await anyio.sleep(0.05)
            uuid = progress.messages[0].removeprefix("started · execution ")
            pids = find_marked_processes(f"{MARKER_VAR}={uuid}".encode())
            assert pids, "no process of the execution found"
            tg.cancel_scope.cancel()
        # A cancelled request gets no answer: ask the server until the call is over.
        deadline = time.monotonic() + 30
        while (await _status(session))["running_tasks"]:
            assert time.monotonic() < deadline, "the cancelled task is still running"
            await anyio.sleep(0.05)
        assert {p: process_state(p) for p in pids} == {p: "gone" for p in pids}
        verified = await session.call_tool("verify_execution", {"execution_uuid": uuid})
    assert verified.structured_content is not None
    assert verified.structured_content["status"] == "cancelled"
    assert verified.structured_content["still_running"] is False


async def test_execute_task_list_reports_each_step_and_resumes_by_run_id(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    model.add(text("one"), tool_use("Bash", {"command": "true", "description": "x"}))
    steps: list[Any] = ["first step", {"prompt": "second step", "name": "two", "max_turns": 1}]
    first, again = Progress(), Progress()
    args = ("--state-dir", str(tmp_path / "state"))
    async with mcp_server(tmp_path, workdir, model.env(), *args) as session:
        failed = await session.call_tool(
            "execute_task_list", {"tasks": steps, "run_id": "plan-1"}, progress_callback=first
        )
        model.add(text("two"))
        steps[1] = {"prompt": "second step", "name": "two"}
        resumed = await session.call_tool(
            "execute_task_list", {"tasks": steps, "run_id": "plan-1"}, progress_callback=again
        )
    assert failed.is_error
    headline = _text(failed).splitlines()
    assert headline[0].startswith("MaxTurnsError (step 2/2: two):")
    assert headline[1] == "Resume with execute_task_list(same tasks, run_id='plan-1')."
    assert [s["status"] for s in _report(failed)["steps"]] == ["success", "failed"]
    assert first.notes == [
        (0, 4, "task list plan-1: 2 step(s); call again with run_id='plan-1' to resume"),
        (1, 4, "step 1/2 started: first step"),
        (2, 4, "step 1/2 success: first step"),
        (3, 4, "step 2/2 started: two"),
        (4, 4, "step 2/2 failed: two (MaxTurnsError)"),
    ]
    assert not resumed.is_error, _text(resumed)
    report = resumed.structured_content
    assert report is not None
    assert report["success"] and report["restored"] == [0] and report["run_id"] == "plan-1"
    assert [(s["status"], s["output"]) for s in report["steps"]] == [
        ("restored", "one"),
        ("success", "two"),
    ]
    assert again.messages[1:] == [
        "step 1/2 restored: first step",
        "step 2/2 started: two",
        "step 2/2 success: two",
    ]
    assert model.prompts == ["first step", "second step", "second step"]


# -- the real claude CLI as the MCP client -------------------------------------------


def readme_mcp_json() -> dict[str, Any]:
    """The `.mcp.json` snippet of the docs' "Use from an orchestrator" page."""
    data: dict[str, Any] = json.loads(
        doc_block("docs/orchestrators.md", "Use from an orchestrator", "json")
    )
    return data


def printed_mcp_json(cwd: Path) -> dict[str, Any]:
    """What `cc-execute mcp --print-config` prints on stdout, run as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "mcp", "--print-config"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "claude mcp add-json --scope project cc_executor '{" in proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_the_readme_snippet_is_what_print_config_prints_with_an_absolute_path(
    tmp_path: Path,
) -> None:
    readme = readme_mcp_json()["mcpServers"]["cc_executor"]
    printed = printed_mcp_json(tmp_path)["mcpServers"]["cc_executor"]
    assert Path(readme["command"]).is_absolute()
    assert printed["command"] == str(Path(sys.executable).absolute())  # not resolved: the venv
    assert {**readme, "command": printed["command"]} == printed


async def test_claude_cli_connects_with_the_printed_config(
    workdir: Path, model: ScriptedModel, tmp_path: Path
) -> None:
    """The entry `mcp --print-config` prints, copied as is: no PATH, no PYTHONPATH help."""
    mcp_json = workdir / ".mcp.json"
    mcp_json.write_text(json.dumps(printed_mcp_json(tmp_path)))
    tool = "mcp__cc_executor__get_task_complexity"
    task = "Implement a parser in parser.py and write tests"
    model.add(
        tool_use(tool, {"task": task}),
        text("It is complex."),
    )
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    result = await cc_run(
        "How complex is writing a parser?",
        model.config(
            cwd=workdir,
            transcript_dir=tmp_path / "transcripts",
            mcp_config=mcp_json,
            allowed_tools=[tool],
            env={"PATH": path, "PYTHONPATH": ""},
        ),
    )
    assert result.success, (result.error, result.stderr_tail)
    assert [t.name for t in result.tool_uses] == [tool]
    # The init event lists the tool under the name the CLI gives it.
    init = next(
        json.loads(line)
        for line in Path(str(result.transcript_path)).read_text().splitlines()
        if '"subtype":"init"' in line
    )
    assert tool in init["tools"]
    servers = {s["name"]: s["status"] for s in init["mcp_servers"]}
    assert servers == {"cc_executor": "connected"}
    # The tool's answer went back to the model in its next request.
    blocks = model.main_requests[1].body["messages"][-1]["content"]
    tool_result = next(b for b in blocks if b.get("type") == "tool_result")
    answer = json.loads(
        "".join(c["text"] for c in tool_result["content"] if c.get("type") == "text")
        if isinstance(tool_result["content"], list)
        else tool_result["content"]
    )
    assert answer == get_task_complexity(task).model_dump(mode="json")
    assert answer["level"] == "moderate"
    assert not tool_result.get("is_error")


# -- no server needed ------------------------------------------------------------------


def test_the_orchestrator_prompt_names_every_tool_as_claude_code_exposes_it() -> None:
    prompt = orchestrator_prompt()
    for name in TOOLS:
        assert f"mcp__cc_executor__{name}" in prompt, name


def test_server_options_come_from_flags_over_a_config_file(tmp_path: Path) -> None:
    file = tmp_path / "server.yaml"
    file.write_text("model: sonnet\nmax_budget_usd: 2\npermission_mode: plan\n")
    config = server_config(["--config", str(file), "--permission-mode", "default"])
    assert (config.model, config.max_budget_usd, config.permission_mode) == (
        "sonnet",
        2,
        "default",
    )
    defaults = server_config([])
    assert defaults.permission_mode == "acceptEdits" and defaults.allowed_tools is None
    with pytest.raises(ConfigError, match="--timeout"):
        server_config(["--timout", "5"])
    with pytest.raises(ConfigError, match="'nope' is not one of"):
        server_config(["--permission-mode", "nope"])


def test_bad_server_options_exit_2_with_the_problem(tmp_path: Path) -> None:
    import subprocess

    bad = tmp_path / "bad.json"
    bad.write_text('{"timout": 5}')
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor.mcp", "--config", str(bad)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Unknown option 'timout'. Did you mean 'timeout'" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor.mcp", "--cwd", str(tmp_path / "missing")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "missing' is not an existing directory" in proc.stderr


async def test_verify_says_so_when_the_transcript_has_no_footer(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    """A caller killed mid-run leaves a transcript without its footer."""
    model.add(text("done"))
    config = model.config(cwd=workdir, transcript_dir=tmp_path / "transcripts")
    result = await cc_run("x", config)
    path = Path(str(result.transcript_path))
    lines = path.read_text().splitlines(keepends=True)
    assert '"cc_executor.footer"' in lines[-1]
    path.write_text("".join(lines[:-1]))
    check = await verify_execution(result.execution_uuid, config)
    assert check.found and not check.ended and check.status is None
    assert check.cli_result is not None and check.cli_result["result"] == "done"
    assert "has no footer" in check.summary and "killed or crashed" in check.summary


async def test_closing_the_server_mid_task_leaves_no_process(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    """The orchestrator goes away (stdin closed) while a task runs."""
    model.add(hang())
    progress = Progress()

    async def call(session: ClientSession) -> None:
        with contextlib.suppress(Exception):
            await session.call_tool("execute_task", {"task": "hang"}, progress_callback=progress)

    async with anyio.create_task_group() as tg:
        async with mcp_server(tmp_path, workdir, model.env()) as session:
            tg.start_soon(call, session)
            deadline = time.monotonic() + 30
            while not model.main_requests:
                assert time.monotonic() < deadline, "the CLI never asked the model"
                await anyio.sleep(0.05)
            uuid = progress.messages[0].removeprefix("started · execution ")
            pids = find_marked_processes(f"{MARKER_VAR}={uuid}".encode())
            assert pids
    # Once the connection is closed (the client waits for the server to exit), nothing of
    # the task is left, and its transcript says it was cancelled: the server shut down
    # cleanly instead of being killed.
    assert {p: process_state(p) for p in pids} == {p: "gone" for p in pids}
    check = await verify_execution(uuid, CCExecutorConfig(cwd=workdir))  # the default dir
    assert (check.found, check.status) == (True, "cancelled")


async def test_execute_task_list_runs_a_task_graph_and_reports_skipped_steps(
    tmp_path: Path, workdir: Path, model: ScriptedModel
) -> None:
    model.add(tool_use("Bash", {"command": "true", "description": "x"}))
    steps: list[Any] = [
        {"prompt": "fails", "name": "A", "max_turns": 1},
        {"prompt": "needs A", "name": "B", "depends_on": ["A"]},
    ]
    async with mcp_server(tmp_path, workdir, model.env()) as session:
        out = await session.call_tool(
            "execute_task_list", {"tasks": steps, "stop_on_failure": False}
        )
        cycle = await session.call_tool(
            "execute_task_list",
            {"tasks": [{"prompt": "x", "name": "X", "depends_on": ["X"]}]},
        )
    assert out.is_error
    report = _report(out)
    assert [s["status"] for s in report["steps"]] == ["failed", "skipped"]
    assert report["steps"][1]["error_type"] == "DependencyFailedError"
    assert report["skipped"] == [1]
    assert model.prompts == ["fails"]
    assert cycle.is_error and _text(cycle).startswith("ConfigError: step 1 ('X') depends on itself")
