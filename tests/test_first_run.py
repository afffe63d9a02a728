"""A newcomer's first run: the CLI is found where `make install` and Claude Code's
installers put it, `make demo` needs neither Redis nor root, and the commands fail
before printing anything that looks finished when the CLI is missing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, CLINotFoundError
from cc_executor._command import find_cli
from cc_executor.testing import ScriptedModel, text

from .conftest import ROOT
from .docs_blocks import doc_block
from .test_cli import cc, cli_env


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def _bare_env(home: Path, path: str) -> dict[str, str]:
    """No CC_EXECUTOR_CLI, no npm prefix variable: only what the test sets."""
    return {"HOME": str(home), "PATH": path}


# --------------------------------------------------------------------------- lookup


def test_cli_beside_the_interpreter_is_found_through_a_symlinked_python(tmp_path: Path) -> None:
    """A venv's python is a symlink to the base interpreter: the CLI linked beside the
    link is found (the link is not resolved), with PATH holding no claude."""
    base = _exe(tmp_path / "base" / "bin" / "python3")
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(base)
    linked = venv_bin / "claude"
    linked.symlink_to(_exe(tmp_path / "pinned" / "claude"))
    env = _bare_env(tmp_path / "home", str(tmp_path / "empty"))
    found = find_cli(CCExecutorConfig(), env, executable=str(venv_bin / "python"))
    assert found == str(linked)
    # PATH still wins over the venv (the order is documented).
    on_path = _exe(tmp_path / "onpath" / "claude")
    env["PATH"] = str(on_path.parent)
    assert find_cli(CCExecutorConfig(), env, executable=str(venv_bin / "python")) == str(on_path)


@pytest.mark.parametrize("place", [".claude/local/claude", ".local/bin/claude"])
def test_claude_code_installer_places_are_found(tmp_path: Path, place: str) -> None:
    home = tmp_path / "home"
    installed = _exe(home / place)
    env = _bare_env(home, str(tmp_path / "empty"))
    assert find_cli(CCExecutorConfig(), env, executable=str(tmp_path / "py")) == str(installed)


def test_npm_global_prefix_is_read_without_running_npm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    from_var = _exe(tmp_path / "prefix-var" / "bin" / "claude")
    from_rc = _exe(tmp_path / "prefix-rc" / "bin" / "claude")
    from_node = _exe(tmp_path / "nodeprefix" / "bin" / "claude")
    _exe(tmp_path / "nodeprefix" / "bin" / "node")
    # node is found on PATH through a folder of its own that holds no claude.
    (tmp_path / "nodelink").mkdir()
    (tmp_path / "nodelink" / "node").symlink_to(tmp_path / "nodeprefix" / "bin" / "node")
    env = _bare_env(home, str(tmp_path / "nodelink"))
    exe = str(tmp_path / "py")
    assert find_cli(CCExecutorConfig(), env, executable=exe) == str(from_node)
    (home / ".npmrc").write_text(f"fund=false\nprefix = {from_rc.parent.parent}\n")
    assert find_cli(CCExecutorConfig(), env, executable=exe) == str(from_rc)
    env["npm_config_prefix"] = str(from_var.parent.parent)
    assert find_cli(CCExecutorConfig(), env, executable=exe) == str(from_var)


def test_not_found_lists_every_place_and_the_one_fix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _bare_env(home, str(tmp_path / "empty"))
    with pytest.raises(CLINotFoundError) as caught:
        find_cli(CCExecutorConfig(), env, executable=str(tmp_path / "venv" / "bin" / "python"))
    message = str(caught.value)
    for place in (
        "cli_path",
        "$CC_EXECUTOR_CLI",
        f"$PATH: {tmp_path / 'empty'}",
        str(tmp_path / "venv" / "bin" / "claude"),
        str(home / ".claude/local/claude"),
        str(home / ".local/bin/claude"),
        "npm's global prefix",
    ):
        assert place in message, place
    assert len(caught.value.searched) == 7
    fix = caught.value.fix
    assert fix == "npm install -g --prefix ~/.local @anthropic-ai/claude-code@2.1.328"
    assert message.count(fix) == 1
    # The fix puts the CLI where the lookup finds it.
    _exe(home / ".local" / "bin" / "claude")
    assert find_cli(CCExecutorConfig(), env, executable=str(tmp_path / "py")).startswith(str(home))


# ------------------------------------------------------------------ fail fast


def _no_cli_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(CC_EXECUTOR_CLI=str(tmp_path / "no-such-claude"), HOME=str(tmp_path))


@pytest.mark.parametrize(
    "args",
    [("run", "say hi"), ("list", "plan.md"), ("demo",), ("demo", "--live")],
    ids=["run", "list", "demo", "demo-live"],
)
def test_a_missing_cli_fails_before_any_finished_looking_output(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "plan.md").write_text("1. Say hi\n")
    before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("cc-execute-demo-*"))
    proc = cc(*args, cwd=tmp_path, env=_no_cli_env(tmp_path))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout == ""  # no file list, no "0 transcripts", no "everything else was real"
    assert proc.stderr.startswith("✗ CLINotFoundError") and "npm install" in proc.stderr
    assert "transcript" not in proc.stderr.lower() and "real" not in proc.stderr
    assert not (tmp_path / ".cc_executor").exists()
    assert set(Path(os.environ.get("TMPDIR", "/tmp")).glob("cc-execute-demo-*")) == before


# ------------------------------------------------------------------- make demo


def test_make_demo_with_its_prerequisites_mentions_neither_redis_nor_apt_get() -> None:
    make = shutil.which("make")
    assert make is not None, "make is needed: apt-get install -y make"
    proc = subprocess.run(
        [make, "-n", "-B", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "cc-execute demo" in proc.stdout and "npm install" in proc.stdout  # the whole path
    assert not re.search(r"redis|apt-get", proc.stdout + proc.stderr, re.IGNORECASE)
    test_plan = subprocess.run(
        [make, "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "redis-server" in test_plan.stdout  # Redis is the tests' dependency


# ------------------------------------------------------------------ list --run-id


def test_list_run_id_resumes_only_a_run_that_exists(
    model: ScriptedModel, workdir: Path, tmp_path: Path
) -> None:
    (tmp_path / "plan.md").write_text("1. Say hi\n")
    model.add(text("hi"))
    env = cli_env(**model.env())
    first = cc(
        "list", "plan.md", "--cwd", str(workdir), "--new-run-id", "nightly-1", cwd=tmp_path, env=env
    )
    assert first.returncode == 0, first.stderr
    assert len(model.main_requests) == 1

    typo = cc(
        "list", "plan.md", "--cwd", str(workdir), "--run-id", "nightyl-1", cwd=tmp_path, env=env
    )
    assert typo.returncode == 2 and typo.stdout == ""
    assert "--run-id nightyl-1: no such run" in typo.stderr
    assert "nightly-1" in typo.stderr and "--new-run-id nightyl-1" in typo.stderr
    again = cc(
        "list", "plan.md", "--cwd", str(workdir), "--new-run-id", "nightly-1", cwd=tmp_path, env=env
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    both = cc("list", "plan.md", "--run-id", "a", "--new-run-id", "b", cwd=tmp_path, env=env)
    assert both.returncode == 2 and "not both" in both.stderr
    assert len(model.main_requests) == 1  # no CLI started for any of them

    resumed = cc(
        "list", "plan.md", "--cwd", str(workdir), "--run-id", "nightly-1", cwd=tmp_path, env=env
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "restored from the journal" in resumed.stdout
    assert len(model.main_requests) == 1  # the finished step was not asked again


async def test_cc_execute_list_still_starts_a_run_under_a_new_run_id(
    config: CCExecutorConfig, model: ScriptedModel, tmp_path: Path
) -> None:
    """Only the command checks run ids: the API starts or resumes, as documented."""
    from cc_executor import TaskSpec, cc_execute_list

    model.add(text("hi"))
    results = await cc_execute_list(
        [TaskSpec("Say hi")], config.with_overrides(state_dir=tmp_path / "s"), run_id="fresh"
    )
    assert results.success and results.run_id == "fresh"


# ----------------------------------------------------------- README and docs blocks


@pytest.mark.parametrize(
    "section", ["The pytest plugin: `scripted_model`", "Testing your own pipelines"]
)
def test_the_docs_test_snippets_run_as_written(
    section: str, tmp_path: Path, claude_cli: str
) -> None:
    """In a project of its own (no asyncio_mode setting: pytest-asyncio's strict default)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_snippet.py").write_text(doc_block("docs/testing.md", section, "python"))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_snippet.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_try_it_without_an_account_block_runs_as_written(
    page: str, tmp_path: Path, claude_cli: str
) -> None:
    """From a clone after `make demo`: `cc-execute` is not on PATH until the block's first
    line activates `.venv` (here: the venv running the tests, linked in)."""
    script = doc_block(page, "Try it without an account", "bash")
    assert (Path(sys.prefix) / "bin" / "activate").is_file(), "the tests run from a venv"
    (tmp_path / ".venv").symlink_to(sys.prefix)
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)
    env = cli_env(HOME=str(tmp_path / "home"), PATH=path)
    env.pop("VIRTUAL_ENV", None)
    assert shutil.which("cc-execute", path=path) is None
    proc = subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script + 'wait\necho "after: ${ANTHROPIC_BASE_URL-unset}"',
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The shell no longer points at the stopped model (runs failed: Connection refused).
    assert proc.stdout.endswith("after: unset\n")
    assert "Hello from the scripted model (answer 1)" in proc.stdout  # run
    assert "2/2 ok" in proc.stdout  # list
    assert "scripted model stopped (SIGTERM); 3 main request(s) answered" in proc.stderr


def test_the_scripted_answers_example_runs_as_written(tmp_path: Path, claude_cli: str) -> None:
    """The documented script with the documented commands, in the default permission mode
    (a script writing outside the working directory was denied: PermissionDeniedError)."""
    page, section = "docs/getting-started.md", "Scripted answers"
    (tmp_path / "script.yaml").write_text(doc_block(page, section, "yaml"))
    bin_dir = Path(sys.executable).parent
    env = cli_env(HOME=str(tmp_path / "home"), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", doc_block(page, section, "bash") + "wait\n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "hello.py").read_text() == "print('hi')\n"
    first, second = proc.stdout.split("\n", 1)
    assert first == "Created hello.py"
    assert json.loads(second) == {"language": "python"}


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_try_it_block_ends_when_the_model_cannot_start(page: str, tmp_path: Path) -> None:
    """A venv without cc_executor: the server never writes model.env, and the wait for
    it must end (the old `until [ -s model.env ]` waited forever) with the shell's error
    in view."""
    script = doc_block(page, "Try it without an account", "bash")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "activate").write_text("")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        ["bash", "-c", script + "wait\n"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang guard, not a speed check
    )
    assert "cc-execute: command not found" in proc.stderr


# ------------------------------------------------------------------ costs in JSON


def test_costs_are_rounded_to_6_decimals_in_json_output(tmp_path: Path) -> None:
    import asyncio
    import json
    from datetime import datetime, timezone

    from cc_executor._history import HistoryRecord, _sqlite_add, get_execution_history
    from cc_executor._statestore import db_path
    from cc_executor.mcp._server import _task_report
    from cc_executor.result import TaskResult

    noisy = 0.0008960000000000001
    record = HistoryRecord(
        execution_uuid="u",
        prompt_hash="p",
        prompt_class="c",
        normalized_prompt="say hi",
        duration_s=1.0,
        success=True,
        cost_usd=noisy,
        started_at=datetime.now(timezone.utc),
    )
    state = tmp_path / "state"
    state.mkdir()
    _sqlite_add(db_path(state), record, 100)
    proc = cc("history", "--json", "--state-dir", str(state), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '"cost_usd": 0.000896,' in proc.stdout
    assert json.loads(proc.stdout)[0]["cost_usd"] == 0.000896
    # The store keeps the exact value; only the output is rounded.
    [stored] = asyncio.run(get_execution_history(1, state_dir=state))
    assert stored.cost_usd == noisy

    result = TaskResult.model_construct(
        success=True,
        output="hi",
        error=None,
        total_cost_usd=noisy,
        duration_s=1.0,
        num_turns=1,
        session_id=None,
        execution_uuid="u",
        transcript_path=None,
    )
    assert repr(_task_report(result, 1000)["total_cost_usd"]) == "0.000896"


# ------------------------------------------------------------ installing an extra


def test_a_missing_extra_names_the_install_for_this_checkout(tmp_path: Path) -> None:
    """From a clone, `pip install 'cc_executor[mcp]'` would fetch a released copy over the
    editable one (or nothing, unreleased): the hint installs the extra from the checkout,
    into the interpreter that runs."""
    code = (
        "import sys; sys.modules['mcp'] = None; from cc_executor._cli import main; "
        "sys.argv = ['cc-execute', 'mcp', '--print-config']; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    expected = f"{sys.executable} -m pip install -e '{ROOT}[mcp]'"
    assert f"The MCP server needs the `mcp` package: {expected}" in proc.stderr


def test_an_installed_package_names_the_released_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cc_executor._extras as extras

    monkeypatch.setattr(extras, "__file__", str(tmp_path / "site-packages/cc_executor/x.py"))
    assert extras.install_command("temporal") == (
        f"{sys.executable} -m pip install 'cc_executor[temporal]'"
    )
