"""`cc-execute scripted-model`: the offline model from the command line, serving the
real CLI (raw `claude -p`) and `cc-execute run` started with the lines it prints."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import sigint_as_ctrl_c
from .test_cli import cc, cli_env


class Served:
    def __init__(self, proc: subprocess.Popen[str], env_file: Path, banner: str) -> None:
        self.proc = proc
        self.banner = banner
        self.lines = env_file.read_text().splitlines()
        self.exports = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in self.lines
        )


def serve(tmp_path: Path, *args: str) -> Served:
    env_file = tmp_path / "model.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cc_executor._cli", "scripted-model", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=env_file.open("w"),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_as_ctrl_c,
    )
    assert proc.stderr is not None
    banner = proc.stderr.readline()  # written after the exports were flushed
    assert banner.startswith("scripted model on http://127.0.0.1:"), banner
    return Served(proc, env_file, banner)


@pytest.fixture
def served(tmp_path: Path, claude_cli: str) -> Iterator[Served]:
    s = serve(tmp_path)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


def stop(s: Served, sig: signal.Signals) -> str:
    s.proc.send_signal(sig)
    assert s.proc.wait(timeout=30) == 0
    assert s.proc.stderr is not None
    return s.proc.stderr.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: terminal closed
def test_prints_only_export_lines_and_stops_cleanly_on_sigterm(
    served: Served, tmp_path: Path, sig: signal.Signals
) -> None:
    assert all(line.startswith("export ") for line in served.lines)
    env = served.exports
    assert env["ANTHROPIC_BASE_URL"] in served.banner
    assert "HOME" not in env  # the shell keeps its own HOME
    config_dir = Path(env["CLAUDE_CONFIG_DIR"])
    assert config_dir.is_dir()
    said = stop(served, sig)
    assert f"stopped ({sig.name})" in said
    assert not config_dir.exists()


def test_serves_a_raw_claude_p_and_cc_execute_run(
    served: Served, tmp_path: Path, claude_cli: str
) -> None:
    env = cli_env(HOME=str(tmp_path / "home"), **served.exports)
    raw = subprocess.run(
        [claude_cli, "-p", "Say hi"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert raw.returncode == 0, raw.stderr
    assert (
        raw.stdout.strip() == "Hello from the scripted model (answer 1); no real model was asked."
    )
    run = cc("run", "Say hi", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert "Hello from the scripted model (answer 2)" in run.stdout
    assert "✓ 1 turn(s)" in run.stderr
    said = stop(served, signal.SIGINT)  # Ctrl-C is a clean stop too
    assert "stopped (SIGINT); 2 main request(s) answered" in said


def test_without_a_script_json_and_schema_runs_get_a_structured_answer(
    served: Served, tmp_path: Path
) -> None:
    """`cc-execute run --json` / `--schema` offline failed with StructuredOutputError (exit
    15): the default model answered text even when the CLI offered StructuredOutput."""
    env = cli_env(HOME=str(tmp_path / "home"), **served.exports)
    hello = "Hello from the scripted model (answer 1); no real model was asked."
    as_json = cc("run", "--json", "Summarise", cwd=tmp_path, env=env)
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    answer = json.loads(as_json.stdout)
    assert (answer["result"], answer["summary"], answer["files_created"]) == (hello, hello, [])
    schema = {
        "type": "object",
        "properties": {
            "files": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}, "minItems": 1},
            "kind": {"enum": ["report", "fix"]},
            "note": {"type": ["string", "null"]},
        },
        "required": ["files", "tags", "kind"],
        "$defs": {"tag": {"type": "string"}},
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    checked = cc("run", "--schema", "schema.json", "Count", cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout) == {
        "files": 1,
        "tags": [hello.replace("answer 1", "answer 2")],
        "kind": "report",
    }
    plain = cc("run", "Say hi", cwd=tmp_path, env=env)
    assert plain.stdout == hello.replace("answer 1", "answer 3") + "\n"


def test_a_script_file_drives_real_tools_through_cc_execute(
    tmp_path: Path, claude_cli: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "script.yaml"
    script.write_text(
        "turns:\n"
        f"  - tool_use: {{name: Write, input: {{file_path: {work / 'hello.py'}, "
        "content: \"print('hi')\\n\"}}\n"
        "  - text: {text: Created hello.py, chunks: 2}\n"
    )
    s = serve(tmp_path, str(script))
    try:
        env = cli_env(HOME=str(tmp_path / "home"), **s.exports)
        run = cc("run", "Write hello.py", "--cwd", str(work), cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "Created hello.py"
        assert (work / "hello.py").read_text() == "print('hi')\n"
        assert "2 main request(s)" in stop(s, signal.SIGTERM)
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("- txt: hello\n", "turn 1: unknown turn 'txt'; the turns are text, tool_use"),
        ("- text: ok\n- tool_use: {name: Write}\n", "turn 2 (tool_use)"),
        ("text: hello\n", "a script is a list of turns"),
        ("- [unclosed\n", "not a readable YAML/JSON script"),
    ],
)
def test_a_bad_script_is_a_usage_error_before_anything_listens(
    tmp_path: Path, content: str, says: str
) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text(content)
    proc = cc("scripted-model", str(script), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert says in proc.stderr
