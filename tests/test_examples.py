"""The examples run in CI, or they rot: each one runs offline (real CLI, scripted model)
as a subprocess, and its output and effects are checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

EXAMPLES = ROOT / "examples"


def run_example(name: str, cwd: Path, claude_cli: str, *args: str) -> str:
    """Run an example as a user would after `make install`: the venv's python as invoked,
    no $CC_EXECUTOR_CLI, no `claude` on PATH; the library finds the CLI linked beside
    the interpreter."""
    linked = Path(sys.executable).parent / "claude"
    if not linked.exists():
        pytest.fail(f"{linked} is missing: `make install` links the pinned CLI there")
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if not (Path(d) / "claude").exists()
    )
    env = {k: v for k, v in os.environ.items() if k != "CC_EXECUTOR_CLI"}
    tmp = cwd / "tmp"
    tmp.mkdir()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env={**env, "PATH": path, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SCRIPTED" in proc.stdout  # it says so: the model was not real
    prefix = re.search(r'mkdtemp\(prefix="([\w-]+)"', (EXAMPLES / name).read_text())
    assert prefix is not None
    # Nothing is left in $TMPDIR unless --keep: neither the example's folders nor the
    # CLI's own (`claude-<uid>/`, `cc-socks/`, which every run used to leave).
    left = sorted(p.name for p in tmp.iterdir())
    if "--keep" in args:
        assert left and all(name.startswith(prefix[1]) for name in left), left
    else:
        assert left == [], left
    return proc.stdout


def test_every_example_has_a_test() -> None:
    tested = set(re.findall(r'run_example\("(\w+\.py)"', Path(__file__).read_text()))
    assert tested == {p.name for p in EXAMPLES.glob("*.py")}


def test_quickstart_runs_offline_and_writes_the_file(claude_cli: str, tmp_path: Path) -> None:
    out = run_example("quickstart.py", tmp_path, claude_cli)
    assert "hello.py on disk: \"print('Hello from cc_executor')\"" in out
    assert "Second run: success=True" in out
    transcripts = list((tmp_path / "transcripts").iterdir())
    assert len(transcripts) == 2


def test_return_json_lists_the_files_really_written(claude_cli: str, tmp_path: Path) -> None:
    out = run_example("return_json.py", tmp_path, claude_cli)
    # README.md was only claimed by the model: it is not listed.
    assert "'files_created': ['notes.md', 'util.py'], 'files_modified': []" in out
    assert "json_schema=dict: {'language': 'python', 'files': 3}" in out


def test_pydantic_schema_enforces_the_validator(claude_cli: str, tmp_path: Path) -> None:
    out = run_example("pydantic_schema.py", tmp_path, claude_cli)
    assert "attempt 1: rejected: ['/version: Value error, must look like 1.2.3']" in out
    assert "attempt 2: Release(version='1.4.0', changes=['Faster startup', 'A CLI'])" in out
    assert "an instance of Release: True" in out


def test_task_list_runs_three_steps_in_order(claude_cli: str, tmp_path: Path) -> None:
    out = run_example("task_list.py", tmp_path, claude_cli)
    statuses = re.findall(r"step (\d)/3 (\w+)", out)
    assert statuses == [(k, s) for k in "123" for s in ("started", "success")]
    assert "3/3 ok · run greeter" in out
    assert "(run id 'greeter'; removed at exit; --keep keeps it)" in out  # not a dead path
    assert "greet.py on disk: \"print('Hello, task lists!')\"" in out


def test_streaming_shows_deltas_as_they_arrive(claude_cli: str, tmp_path: Path) -> None:
    out = run_example("streaming.py", tmp_path, claude_cli)
    deltas = re.findall(r"^\[delta\] '(.*)'$|^\[delta\] \"(.*)\"$", out, re.MULTILINE)
    assert len(deltas) == 5
    lines = out.splitlines()
    assert lines.index(next(x for x in lines if x.startswith("[tool call] Write"))) < lines.index(
        next(x for x in lines if x.startswith("[delta]"))
    )
    assert "[result] success, 2 turns" in out
    assert "poem.txt on disk: True" in out


def test_resume_pipeline_restores_the_finished_step(claude_cli: str, tmp_path: Path) -> None:
    out = run_example("resume_pipeline.py", tmp_path, claude_cli)
    first, second = out.split("Second run, same run_id:")
    assert "OverloadedError" in first and "1/3 ok · run nightly-docs" in first
    assert (
        re.search(r"^ +1  restored", second, re.MULTILINE) and "3/3 ok · run nightly-docs" in second
    )
    # Step 1 was not sent to the model again.
    assert "prompts the model saw in the second run: ['Write guide.md" in second
    assert "Write outline.md" not in second.split("prompts the model saw")[1]
    assert "restored steps: [1], success: True" in out  # 1-based, as in the table


def test_concurrent_competition_merges_the_solution_that_passes(
    claude_cli: str, tmp_path: Path
) -> None:
    out = run_example("concurrent_competition.py", tmp_path, claude_cli, "--keep")
    assert "instance A: too slow: fib(10000) recursed too deep" in out
    assert re.search(r"instance B: correct +on cc-executor/fib/2-B", out)
    assert "instance C: wrong: fib(1) = 0, expected 1" in out
    assert "winner: instance B (passed the test), merged into main" in out
    repo = Path(re.search(r"repository in (\S+)", out)[1])  # type: ignore[index]
    assert "range(n):" in (repo / "fib.py").read_text()
    # Every attempt ran in its own worktree: all removed, only main left.
    assert "branches left: ['main']" in out
    worktrees = subprocess.run(
        ["git", "worktree", "list", "--porcelain"], cwd=repo, capture_output=True, text=True
    ).stdout
    assert worktrees.count("worktree ") == 1
