"""The `cc-execute` command: every subcommand through the real entry point in a
subprocess (`python -m cc_executor._cli`, the module the console script runs),
against the real CLI and a scripted model; the progress view on a virtual terminal."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import cc_executor
import cc_executor.errors
from cc_executor import CCExecutorConfig, cc_execute_list, load_task_list
from cc_executor._cli import EXIT_CODES, exit_code_for, main
from cc_executor._command import PINNED_CLI_VERSION, TESTED_CLI_VERSIONS, describe_tested_clis
from cc_executor._doctor import check_cli
from cc_executor._process import find_marked_processes
from cc_executor._progress import ListProgress
from cc_executor.testing import (
    ScriptedModel,
    hang,
    http_error,
    structured_output,
    text,
    tool_use,
)

from .conftest import ROOT, sigint_as_ctrl_c

# Variables that would make doctor (or the CLI) find credentials of the machine.
_AUTH_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _AUTH_VARS}
    return {**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **extra}


def cc(*args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", *args],
        cwd=cwd,
        env=env or cli_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def work(workdir: Path) -> Path:
    return workdir


# ----------------------------------------------------------------------- exit codes


def test_every_error_class_has_its_own_exit_code() -> None:
    classes = [
        getattr(cc_executor.errors, name)
        for name in cc_executor.errors.__all__
        if name != "CCExecutorError"
    ]
    codes = {cls: exit_code_for(cls.__new__(cls)) for cls in classes}
    assert len(set(codes.values())) == len(classes), codes
    assert 0 not in codes.values() and 130 not in codes.values()
    assert exit_code_for(None) == 0
    assert exit_code_for(KeyboardInterrupt()) == 130
    # A subclass the table does not name gets its nearest base class's code.
    assert exit_code_for(type("Custom", (cc_executor.MaxTurnsError,), {})("x")) == 12
    assert exit_code_for(cc_executor.IdleTimeoutError("x", timeout_s=1)) == 5
    assert exit_code_for(cc_executor.TaskTimeoutError("x", timeout_s=1)) == 4


def test_docs_and_help_document_every_exit_code(tmp_path: Path) -> None:
    readme = (ROOT / "docs" / "cli.md").read_text()
    helptext = cc("--help", cwd=tmp_path).stdout
    for code, cls, _ in EXIT_CODES:
        name = cls.__name__ if cls else "-"
        assert re.search(rf"^\| {code} \| `?{re.escape(name)}`? \|", readme, re.MULTILINE), name
        assert re.search(rf"{code}\s+{re.escape(name)}", helptext), name


def test_help_placeholders_are_words_not_python_types(tmp_path: Path) -> None:
    commands = ["run", "list", "doctor", "history", "show", "demo", "scripted-model", "worker"]
    for command in [*commands, "mcp"]:
        proc = cc(command, "--help", cwd=tmp_path, env=cli_env(COLUMNS="120"))
        assert proc.returncode == 0, proc.stderr
        assert re.findall(r"<[a-z][\w\[\] ]*>", proc.stdout) == [], (command, proc.stdout)
        assert "[x>=" not in proc.stdout, command
    run_help = cc("run", "--help", cwd=tmp_path, env=cli_env(COLUMNS="120")).stdout
    for placeholder in ("TASK", "SECONDS", "TOOL", "N", "USD", "DIR"):
        assert re.search(rf"\s{placeholder}\s", run_help), placeholder
    assert cc("history", "--limit", "0", cwd=tmp_path).returncode == 2


def test_module_entry_points_share_the_commands_help_style(tmp_path: Path) -> None:
    """`cc-execute mcp --help` and `python -m cc_executor.mcp --help` print one help, in
    the style of every other subcommand (Rich panels, placeholders in words), each with
    its own program name; a typo is a usage error (exit 2) suggesting the option."""
    env = cli_env(COLUMNS="120")
    run_help = cc("run", "--help", cwd=tmp_path, env=env).stdout
    mcp_help = cc("mcp", "--help", cwd=tmp_path, env=env)
    module = subprocess.run(
        [sys.executable, "-m", "cc_executor.mcp", "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert mcp_help.returncode == 0 and module.returncode == 0, (mcp_help.stderr, module.stderr)
    assert "Usage: cc-execute mcp [OPTIONS]" in mcp_help.stdout
    assert "Usage: python -m cc_executor.mcp [OPTIONS]" in module.stdout
    assert "usage:" not in mcp_help.stdout + module.stdout  # argparse's style

    def body(text: str) -> list[str]:
        return [line.rstrip() for line in text.split("[OPTIONS]", 1)[1].strip().splitlines()]

    assert body(mcp_help.stdout) == body(module.stdout)
    assert "╭─ Options ─" in run_help and "╭─ Options ─" in mcp_help.stdout
    for placeholder in ("FILE", "DIR", "MODE", "SECONDS", "LEVEL"):
        assert re.search(rf"\s{placeholder}\s", mcp_help.stdout), placeholder
    temporal = subprocess.run(
        [sys.executable, "-m", "cc_executor.temporal", "worker", "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Usage: python -m cc_executor.temporal worker [OPTIONS]" in temporal.stdout
    assert "╭─ Options ─" in temporal.stdout and "HOST:PORT" in temporal.stdout
    typo = cc("mcp", "--timout", "5", cwd=tmp_path, env=env)
    assert typo.returncode == 2 and "--timeout" in typo.stderr


def test_the_console_script_is_cc_executor_cli_main() -> None:
    """pyproject's [project.scripts] names cc_executor._cli:main (the module the other
    tests run with -m); where the package is installed, the script says the same."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib

        scripts = tomllib.loads(pyproject)["project"]["scripts"]
    except ImportError:  # Python 3.10
        section = pyproject.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
        scripts = dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', section, re.MULTILINE))
    assert scripts == {"cc-execute": "cc_executor._cli:main"}
    module, _, attr = scripts["cc-execute"].partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is main


# ---------------------------------------------------------------------------- run


def test_run_prints_the_answer_and_history_and_show_read_it_back(
    model: ScriptedModel, work: Path, tmp_path: Path, records_home: Path
) -> None:
    model.add(
        tool_use("Write", {"file_path": str(work / "hello.py"), "content": "print(1)\n"}),
        text("Created hello.py"),
    )
    proc = cc(
        "run",
        "Create hello.py for issue 42",
        "--cwd",
        str(work),
        cwd=tmp_path,
        env=cli_env(**model.env()),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Created hello.py\n"  # only the answer on stdout
    assert re.search(r"✓ 2 turn\(s\) · [\d.]+s · \$0\.\d{4} · transcript ", proc.stderr)
    assert (work / "hello.py").read_text() == "print(1)\n"
    assert model.prompts[0] == "Create hello.py for issue 42"

    # The records are the project's (--cwd work), kept in the per-user records folder.
    assert list(work.iterdir()) == [work / "hello.py"]
    assert not (tmp_path / "transcripts").exists()
    table = cc("history", cwd=work)  # piped: tab-separated rows, every column
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split("\t") == [
        "started", "status", "time_s", "cost_usd", "tokens_in", "tokens_out", "turns", "model",
        "task",
    ]  # fmt: skip
    cells = row.split("\t")
    assert len(cells) == 9 and cells[1] == "ok" and cells[6] == "2"
    assert cells[-1] == "Create hello.py for issue 42"  # the task, not its normalized form
    records = json.loads(cc("history", "--json", cwd=work).stdout)
    assert [(r["normalized_prompt"], r["task"], r["success"]) for r in records] == [
        ("create hello.py for issue <n>", "Create hello.py for issue 42", True)
    ]

    (transcript,) = (records_home / "projects").glob("*/transcripts/*.jsonl")
    shown = cc("show", str(transcript), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(line.startswith("task       Create hello.py for issue 42") for line in lines)
    expected = ["── turn 1 ──", "⏺ Write hello.py", "── turn 2 ──", "assistant  Created hello.py"]
    assert [line for line in lines if line in expected] == expected
    assert any(re.match(r"■ success · 2 turn\(s\) · .* · \$0\.\d{4}$", x) for x in lines)
    assert lines[-1] == "ended      success · exit code 0"
    newest = cc("show", cwd=work).stdout.splitlines()  # default: the project's newest
    assert newest[1:] == lines[1:]


def test_run_stream_shows_tool_results_errors_and_one_final_line(
    model: ScriptedModel, work: Path, tmp_path: Path
) -> None:
    model.add(
        tool_use("Bash", {"command": "printf 'one\\ntwo\\nthree\\nfour\\n'"}),
        text("Printed four lines"),
        http_error(400, times=None),
    )
    env = cli_env(**model.env())
    args = ("--stream", "--allow-tool", "Bash", "--cwd", str(work))
    proc = cc("run", "Print four lines", *args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Printed four lines\n"
    lines = proc.stderr.splitlines()
    # The tool's output, first lines under its call.
    call = next(i for i, line in enumerate(lines) if line.startswith("⏺ Bash "))
    assert lines[call + 1 : call + 5] == [
        "  ↳ one",
        "  ↳ two",
        "  ↳ three",
        "  ↳ … (1 more line(s))",
    ]
    # One final line, not a result-event line and the command's record line both.
    ends = [line for line in lines if " turn(s) · " in line]
    assert len(ends) == 1 and ends[0].startswith("✓ 2 turn(s) · ") and lines[-1] == ends[0]
    assert "(success)" not in proc.stderr

    proc = cc("run", "Fail", *args, cwd=tmp_path, env=env)
    assert proc.returncode == 11, proc.stderr
    ends = [line for line in proc.stderr.splitlines() if " turn(s) · " in line]
    assert len(ends) == 1 and ends[0].startswith("✗ BadRequestError: "), proc.stderr
    assert "error (success)" not in proc.stderr


def test_history_shows_the_task_with_secrets_masked(
    model: ScriptedModel, work: Path, tmp_path: Path
) -> None:
    secret = "tok-3f9a7c1e5b2d4068"
    model.add(text("Deployed"))
    env = cli_env(**model.env(), DEPLOY_API_TOKEN=secret)
    proc = cc("run", f"Deploy with {secret} now", "--cwd", str(work), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    piped = cc("history", cwd=work, env=env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1].split("\t")[-1] == "Deploy with [REDACTED] now"
    as_json = cc("history", "--json", cwd=work, env=env).stdout
    assert secret not in as_json and "Deploy with [REDACTED] now" in as_json


def test_run_json_and_schema_print_parsable_json(
    model: ScriptedModel, work: Path, tmp_path: Path
) -> None:
    model.add(
        tool_use("Write", {"file_path": str(work / "a.txt"), "content": "a"}),
        structured_output({"result": "done", "summary": "wrote a.txt"}),
        structured_output({"n": 3}),
    )
    env = cli_env(**model.env())
    proc = cc("run", "write a.txt", "--json", "--cwd", str(work), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["files_created"] == ["a.txt"] and answer["summary"] == "wrote a.txt"

    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}}))
    proc = cc("run", "count", "--schema", str(schema), "--cwd", str(work), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 3}


@pytest.mark.parametrize(
    ("turns", "args", "error", "code"),
    [
        (
            [tool_use("Bash", {"command": "true"})],
            ["--max-turns", "1", "--allow-tool", "Bash"],
            "MaxTurnsError",
            12,
        ),
        ([http_error(400, times=None)], [], "BadRequestError", 11),
        (
            [tool_use("Bash", {"command": "curl -s example.org"}), text("done")],
            [],
            "PermissionDeniedError",
            14,
        ),
    ],
)
def test_run_failure_exits_with_the_code_of_its_error_class(
    model: ScriptedModel,
    work: Path,
    tmp_path: Path,
    turns: list[Any],
    args: list[str],
    error: str,
    code: int,
) -> None:
    model.add(*turns)
    proc = cc(
        "run", "task", "--json", "--cwd", str(work), *args, cwd=tmp_path, env=cli_env(**model.env())
    )
    assert proc.returncode == code, proc.stderr
    record = json.loads(proc.stdout)
    assert record["error"] == error and record["exit_code"] == code
    assert Path(record["transcript_path"]).exists()


def test_run_bad_option_exits_2_naming_the_choices(tmp_path: Path) -> None:
    proc = cc("run", "x", "--permission-mode", "yolo", cwd=tmp_path)
    assert proc.returncode == 2
    assert "permission_mode" in proc.stderr and "acceptEdits" in proc.stderr
    assert proc.stdout == ""


def test_run_without_the_cli_exits_3_saying_how_to_install_it(tmp_path: Path) -> None:
    proc = cc("run", "x", cwd=tmp_path, env=cli_env(CC_EXECUTOR_CLI=str(tmp_path / "nope")))
    assert proc.returncode == 3
    assert "CLINotFoundError" in proc.stderr and "npm install" in proc.stderr


def test_run_json_when_nothing_started_prints_the_whole_failure_record(tmp_path: Path) -> None:
    env = cli_env(CC_EXECUTOR_CLI=str(tmp_path / "nope"))
    proc = cc("run", "x", "--json", cwd=tmp_path, env=env)
    assert proc.returncode == 3
    record = json.loads(proc.stdout)
    assert record["error"] == "CLINotFoundError" and record["exit_code"] == 3
    assert record["session_id"] is None and record["transcript_path"] is None


# --------------------------------------------------------------------------- list

PLAN = """\
tasks:
  - prompt: Write a.txt
    name: write
  - prompt: Check a.txt
    name: check
    max_turns: 1
    allowed_tools: [Bash]
"""


def test_list_without_a_terminal_prints_a_line_per_event_then_resumes_by_run_id(
    model: ScriptedModel, work: Path, tmp_path: Path
) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN)
    model.add(
        tool_use("Write", {"file_path": str(work / "a.txt"), "content": "a"}),
        text("wrote it"),
        tool_use("Bash", {"command": "cat a.txt"}),  # then max_turns=1 ends step 2
    )
    env = cli_env(**model.env())
    proc = cc("list", "plan.yaml", "--cwd", str(work), cwd=tmp_path, env=env)
    assert proc.returncode == 12, proc.stderr  # MaxTurnsError
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"● task list plan\.yaml · 2 step\(s\) · run \S+", lines[0])
    events = [re.sub(r" · .*", "", line) for line in lines[1:8]]
    events[2] = events[2][: len("  ↳ File created successfully at: ") + 40]
    assert events == [
        "▶ 1/2 write",
        "  ⏺ Write a.txt",
        "  ↳ File created successfully at: " + str(work / "a.txt")[:40],
        "✓ 1/2 write",
        "▶ 2/2 check",
        "  ⏺ Bash cat a.txt",
        "  ↳ a",
    ]
    assert re.match(r"✗ 2/2 check · MaxTurnsError: ", lines[8])
    assert "1/2 ok" in proc.stdout  # the summary table
    hint = re.search(r"resume with: (cc-execute list plan\.yaml --run-id (\S+))", proc.stderr)
    assert hint, proc.stderr

    model.add(text("a.txt holds 'a'"))
    again = cc("list", "plan.yaml", "--cwd", str(work), "--run-id", hint[2], cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert re.search(r"^↺ 1/2 write · restored from the journal", again.stdout, re.MULTILINE)
    assert re.search(r"^✓ 2/2 check · 1 turn\(s\)", again.stdout, re.MULTILINE)
    assert model.prompts[-1] == "Check a.txt"  # step 1 was not asked again


def test_list_runs_a_yaml_task_graph_and_shows_the_skipped_step(
    model: ScriptedModel, work: Path, tmp_path: Path
) -> None:
    (tmp_path / "graph.yaml").write_text(
        "tasks:\n"
        "  - {name: build, prompt: Build it, max_turns: 1, allowed_tools: [Bash]}\n"
        "  - {name: ship, prompt: Ship it, depends_on: [build]}\n"
    )
    model.add(tool_use("Bash", {"command": "true"}))  # then max_turns=1 ends step 1
    env = cli_env(**model.env())
    proc = cc(
        "list", "graph.yaml", "--cwd", str(work), "--max-concurrency", "1", cwd=tmp_path, env=env
    )
    assert proc.returncode == 12, proc.stderr  # MaxTurnsError, the failed step's
    assert re.search(
        r"^⊘ 2/2 ship · DependencyFailedError: step 2 \(ship\) was skipped: its dependency "
        r"'build' \(step 1\) failed",
        proc.stdout,
        re.MULTILINE,
    ), proc.stdout
    assert re.search(r"^\s*2\s+skipped", proc.stdout, re.MULTILINE)  # the summary table
    assert model.prompts == ["Build it"]
    assert cc("list", "graph.yaml", "--max-concurrency", "0", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_list_ctrl_c_ends_every_process_and_prints_how_to_resume(
    model: ScriptedModel, work: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM (a service manager stopping cc-execute) is handled exactly as Ctrl-C."""
    (tmp_path / "plan.md").write_text("1. Wait forever\n2. Never reached\n")
    model.add(hang())
    marker = f"CC_TEST_MARK={uuid.uuid4().hex}"
    name, value = marker.split("=")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cc_executor._cli", "list", "plan.md", "--cwd", str(work)],
        cwd=tmp_path,
        env=cli_env(**model.env(), **{name: value}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_ctrl_c,
    )
    try:
        deadline = time.monotonic() + 30
        while not model.main_requests:  # the CLI is waiting for the scripted model
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        assert len(find_marked_processes(marker.encode())) >= 2  # cc-execute + the CLI
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted during step 1/2 (Wait forever)" in stderr
    assert re.search(r"Resume with: cc-execute list plan\.md --run-id \S+", stderr)
    assert "▶ 1/2 Wait forever" in stdout
    assert find_marked_processes(marker.encode()) == set()


class VirtualTerminal:
    """A minimal VT100 screen for the control sequences Rich's `Live` writes (carriage
    return, newline, cursor up, erase line; colours ignored). Keeps every frame."""

    _TOKEN = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)")

    def __init__(self) -> None:
        self.lines = [""]
        self.row = self.col = 0
        self.frames: list[list[str]] = []

    def write(self, data: str) -> int:
        for token in filter(None, self._TOKEN.split(data)):
            if token == "\n":
                self.row, self.col = self.row + 1, 0
                if self.row == len(self.lines):
                    self.lines.append("")
            elif token == "\r":
                self.col = 0
            elif token.startswith("\x1b["):
                if token[-1] == "A":
                    self.row = max(0, self.row - int(token[2:-1] or 1))
                elif token[-1] == "K":
                    self.lines[self.row] = ""
            else:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[: self.col] + token + line[self.col + len(token) :]
                self.col += len(token)
        self.frames.append(self.screen())
        return len(data)

    def flush(self) -> None:
        pass

    def screen(self) -> list[str]:
        lines = [line.rstrip() for line in self.lines]
        while lines and not lines[-1]:
            lines.pop()
        return lines


def test_progress_view_on_a_virtual_terminal(model: ScriptedModel, work: Path) -> None:
    """The live view of a real list run, rendered into a 100-column virtual terminal."""
    (work / "plan.md").write_text("1. Write a.txt\n2. Say done\n")
    model.add(
        tool_use("Write", {"file_path": str(work / "a.txt"), "content": "a"}),
        text("wrote a.txt"),
        text("done"),
    )
    terminal = VirtualTerminal()
    console = Console(file=terminal, width=100, height=30, force_terminal=True)  # type: ignore[arg-type]
    view = ListProgress(console, total=2, run_id="r1", title="task list plan.md", cwd=work)
    config = model.config(
        cwd=work, transcript_dir=work.parent / "transcripts", on_event=view.on_event
    )
    with view:
        result = run_list(load_task_list(work / "plan.md"), config, view)
    assert result.success

    # While step 1 ran: its line, its tool call and result, the totals, under the header.
    frame = r"\n".join(
        [
            r"● task list plan\.md · 2 step\(s\) · run r1",
            r". step 1/2 · Write a\.txt · \d+\.\ds",
            r"  ⏺ Write a\.txt",
            r"  ↳ File created successfully at: .*…",
            r"  \d+ in / \d+ out tokens · \$0\.\d{4} so far · \d+\.\ds total",
        ]
    )
    assert any(re.fullmatch(frame, "\n".join(f)) for f in terminal.frames)
    # While step 2 ran: step 1's line stays above the live region.
    assert any(
        len(f) == 4 and f[1].startswith("✓ 1/2 Write a.txt") and " step 2/2 · Say done · " in f[2]
        for f in terminal.frames
    )
    # At the end the live region is gone: the header and a line per finished step.
    final = terminal.screen()
    assert len(final) == 3 and final[0] == "● task list plan.md · 2 step(s) · run r1"
    assert re.fullmatch(
        r"✓ 1/2 Write a\.txt · 2 turn\(s\) · [\d.]+s · 24 in / 40 out tokens · \$0\.\d{4}",
        final[1],
    )
    assert re.fullmatch(
        r"✓ 2/2 Say done · 1 turn\(s\) · [\d.]+s · 12 in / 20 out tokens · \$0\.\d{4}",
        final[2],
    )
    assert view.tokens() == (36, 60)


def run_list(specs: Any, config: Any, view: ListProgress) -> Any:
    return asyncio.run(cc_execute_list(specs, config, run_id="r1", on_step=view.on_step))


# ------------------------------------------------------------------------- doctor


def test_doctor_passes_with_cli_and_api_key_and_never_prints_the_key(
    claude_cli: str, cli_version: str, tmp_path: Path
) -> None:
    secret = "sk-ant-test-" + uuid.uuid4().hex
    env = cli_env(CC_EXECUTOR_CLI=claude_cli, ANTHROPIC_API_KEY=secret, HOME=str(tmp_path))
    proc = cc("doctor", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["✓"] * 4
    # The CLI under test (pinned, or the newest with `make test-latest`), against the list.
    assert f"{claude_cli} · {cli_version}, " in lines[0]
    assert f"(tested: {describe_tested_clis()})" in lines[0]
    assert "$ANTHROPIC_API_KEY is set" in lines[1]
    assert secret not in proc.stdout + proc.stderr
    report = json.loads(cc("doctor", "--json", cwd=tmp_path, env=env).stdout)
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]][:4] == [
        "claude CLI",
        "authentication",
        "transcripts",
        "state store",
    ]


def test_doctor_fails_without_cli_or_credentials_and_says_the_fix(tmp_path: Path) -> None:
    env = cli_env(CC_EXECUTOR_CLI=str(tmp_path / "missing"), HOME=str(tmp_path))
    proc = cc("doctor", cwd=tmp_path, env=env)
    assert proc.returncode == 1
    out = proc.stdout
    assert re.search(
        r"^✗ claude CLI .*\n\s+fix: npm install -g --prefix ~/\.local "
        r"@anthropic-ai/claude-code@" + re.escape(PINNED_CLI_VERSION),
        out,
        re.MULTILINE,
    )
    assert re.search(r"^✗ authentication .*\n\s+fix: export ANTHROPIC_API_KEY", out, re.MULTILINE)

    # A logged-in session counts; its token is never shown.
    token = "oauth-" + uuid.uuid4().hex
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / ".credentials.json").write_text(
        json.dumps({"claudeAiOauth": {"accessToken": token}})
    )
    proc = cc("doctor", cwd=tmp_path, env=env)
    assert re.search(r"^✓ authentication +logged-in session", proc.stdout, re.MULTILINE)
    assert token not in proc.stdout


@pytest.mark.parametrize(
    ("printed", "status", "says"),
    [
        (f"{TESTED_CLI_VERSIONS[-1]} (Claude Code)", "ok", "a tested version"),
        (f"{PINNED_CLI_VERSION} (Claude Code)", "ok", "a tested version"),
        ("9.0.1 (Claude Code)", "ok", "not a tested version"),
        ("1.0.3 (Claude Code)", "warn", "older than every tested version"),
    ],
)
def test_doctor_says_which_cli_versions_were_tested_and_whether_this_is_one(
    printed: str, status: str, says: str, tmp_path: Path
) -> None:
    cli = tmp_path / "claude"
    cli.write_text(f"#!/bin/sh\necho '{printed}'\n")
    cli.chmod(0o755)
    check = check_cli(CCExecutorConfig(cli_path=cli), {"PATH": os.environ["PATH"]})
    assert check.status == status, check
    assert f"{printed.split()[0]}, {says} (tested: " in check.detail
    assert all(v in check.detail for v in TESTED_CLI_VERSIONS)
    assert f"{PINNED_CLI_VERSION} (pinned)" in check.detail


def test_history_without_a_store_says_so(tmp_path: Path) -> None:
    proc = cc("history", cwd=tmp_path)
    assert proc.returncode == 0
    assert "No history yet" in proc.stdout
    assert not (tmp_path / ".cc_executor").exists()  # reading created nothing


# --------------------------------------------------------------------------- demo


def test_demo_runs_the_real_cli_offline_and_leaves_real_files(
    claude_cli: str, tmp_path: Path
) -> None:
    env = cli_env(CC_EXECUTOR_CLI=claude_cli)
    proc = cc("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("Model: SCRIPTED")
    assert "The model was SCRIPTED" in out
    finished = re.findall(r"^✓ (\d)/3 ([\w ]+) · ", out, re.MULTILINE)
    assert finished == [("1", "write the project"), ("2", "run it"), ("3", "document and report")]
    project = tmp_path / "demo" / "project"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "sample.txt", "wordcount.py"]
    # The program really ran, through the CLI's Bash tool.
    assert re.search(
        r"Bash ran `\S*python3?\S* wordcount\.py sample\.txt`, which printed: "
        r"sample\.txt: 19 words, 3 lines",
        out,
    )
    report = json.loads(re.search(r"Report \(return_json\):\n(\{.*?\n\})", out, re.DOTALL)[1])  # type: ignore[index]
    assert report["files_created"] == ["README.md"]
    transcripts = list((tmp_path / "demo" / "transcripts").glob("*.jsonl"))
    assert len(transcripts) == 3
    assert f"Transcripts: {tmp_path / 'demo' / 'transcripts'} (3 file(s))" in out


def test_demo_refuses_a_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    proc = cc("demo", "--dir", str(tmp_path / "full"), cwd=tmp_path)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["x"]


def test_importing_the_library_does_not_load_the_command_line(tmp_path: Path) -> None:
    code = (
        "import sys, cc_executor; "
        "print([m for m in ('typer', 'rich', 'click') if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=cli_env(), capture_output=True, text=True
    )
    assert proc.stdout.strip() == "[]", proc.stderr
