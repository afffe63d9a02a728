"""Secrets never leave memory, records stay out of the agent's reach, a full transcript
disk ends the transcript and not the run (issue 14).

Secrets are checked the way a leak would be found: every file the run created (its
transcript, state.db and its WAL, the history) and the captured log are grepped for
every encoded form of each secret — raw, lower-cased, JSON-escaped with and without
`ensure_ascii`, and as Python's bytes repr.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from cc_executor import CCExecutorConfig, cc_execute_list, cc_run
from cc_executor._secrets import MASK, Secrets
from cc_executor._transcript import read_transcript
from cc_executor.config import project_folder_name
from cc_executor.mcp._checks import verify_execution
from cc_executor.testing import ScriptedModel, big_text, http_error, text

from .conftest import ROOT
from .test_mcp import _text, mcp_server

Factory = Callable[..., CCExecutorConfig]

# `"` and `\` are escaped in JSON; upper case is lowered by the history's normalising;
# no digits, which the normalising would replace.
SECRET_QUOTE = 'Pa"ss\\Word-Quux-Zeta'
# Non-ASCII: `\u00e9` in JSON written with ensure_ascii (Python's default).
SECRET_UNICODE = "Clé-Sécrète-Überall"
SECRETS = (SECRET_QUOTE, SECRET_UNICODE)


def encoded_forms(secret: str) -> dict[str, bytes]:
    forms: dict[str, bytes] = {}
    for case, value in (("raw", secret), ("lower-cased", secret.lower())):
        forms[case] = value.encode()
        forms[f"{case}, JSON-escaped"] = json.dumps(value)[1:-1].encode()
        forms[f"{case}, JSON-escaped, non-ASCII kept"] = json.dumps(value, ensure_ascii=False)[
            1:-1
        ].encode()
        forms[f"{case}, bytes repr"] = repr(value.encode())[2:-1].encode()
    return forms


def leaks_in(data: bytes, where: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    return [
        f"{where}: {form_name} form of {secret!r}"
        for secret in secrets
        for form_name, form in encoded_forms(secret).items()
        if form in data
    ]


def leaks_in_files(*roots: Path, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    found: list[str] = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                found += leaks_in(path.read_bytes(), str(path), secrets)
    return found


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def cc_show(transcript: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "show", str(transcript)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def log() -> Iterator[list[str]]:
    """The library's log, every level, as formatted lines."""
    lines: list[str] = []
    logger.enable("cc_executor")
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("cc_executor")


# -- the one masking function ------------------------------------------------------------


@pytest.mark.parametrize("secret", SECRETS)
def test_every_encoded_form_of_a_secret_is_masked(secret: str) -> None:
    secrets = Secrets([secret])
    inner = json.dumps({"env": {"TOKEN": secret}})  # a config's JSON text ...
    for form in (
        secret,
        json.dumps(secret),
        json.dumps(secret, ensure_ascii=False),
        re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m[1].upper(), json.dumps(secret)),
        json.dumps([inner]),  # ... inside a JSON string
        json.dumps({"argv": json.dumps([inner])}, ensure_ascii=False),  # ... inside a line
    ):
        masked = secrets.mask(form)
        assert MASK in masked and not leaks_in(masked.encode(), form, (secret,))
        assert secrets.mask_bytes(form.encode()) == masked.encode()


def test_masked_json_stays_valid_json() -> None:
    secrets = Secrets(['", "x": "'])  # a secret that looks like JSON structure
    text = json.dumps({"output": 'a ", "x": " b', "n": 1})
    assert json.loads(secrets.mask_json(text)) == {"output": f"a {MASK} b", "n": 1}


def test_secrets_inside_nested_config_are_found(tmp_path: Path) -> None:
    mcp_file = tmp_path / "mcp.json"
    mcp_file.write_text(json.dumps({"mcpServers": {"db": {"env": {"DB_PASSWORD": "from-file"}}}}))
    config = CCExecutorConfig(
        mcp_config={
            "mcpServers": {
                "gh": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": "ghp-in-env"}},
                "web": {"url": "http://127.0.0.1:1/", "headers": {"Authorization": "Bearer x1"}},
                "cli": {"command": "srv", "args": ["--api-key", "in-args"]},
            }
        },
        extra_args=(
            "--settings",
            json.dumps({"env": {"SERVICE_SECRET": "in-settings"}}),
            f"--mcp-config={mcp_file}",
        ),
    )
    from cc_executor._secrets import find_secrets

    found = set(find_secrets(config, environ={}))
    assert found == {"ghp-in-env", "Bearer x1", "in-args", "in-settings", "from-file"}


# -- every file and the log, through the real CLI ------------------------------------------


async def test_secrets_reach_no_created_file_in_any_form(
    model: ScriptedModel, workdir: Path, tmp_path: Path, records_home: Path, log: list[str]
) -> None:
    """The task, the answer (the model echoes the secrets) and the transcript header hold
    them: the transcript, state.db (journal result, history) and the log must not."""
    answer = f"I logged in with {SECRET_QUOTE} and {SECRET_UNICODE}."
    model.add(text(answer))
    config = model.config(
        cwd=workdir,
        env={"MY_API_KEY": SECRET_QUOTE, "DB_PASSWORD": SECRET_UNICODE},
        mcp_config={"mcpServers": {}},
    )
    task = f"Log in with {SECRET_QUOTE} then {SECRET_UNICODE}"
    outcome = await cc_execute_list([task], config, run_id="secrets")

    (result,) = outcome
    assert result.success, result.error
    assert result.output == answer  # in memory, the answer is whole
    assert model.prompts[0] == task
    # The records exist, masked.
    assert (
        result.transcript_path is not None and MASK.encode() in result.transcript_path.read_bytes()
    )
    assert config.state_dir is not None
    with sqlite3.connect(config.state_dir / "state.db") as db:
        (stored,) = db.execute("SELECT result_json FROM steps").fetchone()
        (normalized,) = db.execute("SELECT normalized_prompt FROM history").fetchone()
    assert json.loads(stored)["output"] == f"I logged in with {MASK} and {MASK}."
    assert json.loads(stored)["task"] == f"Log in with {MASK} then {MASK}"
    assert normalized == "log in with [redacted] then [redacted]"

    created = files_under(tmp_path) + files_under(records_home)
    assert any(p.name == "state.db" for p in created) and any(p.suffix == ".jsonl" for p in created)
    assert leaks_in_files(tmp_path, records_home) == []
    assert leaks_in("\n".join(log).encode(), "log") == []

    shown = await asyncio.to_thread(cc_show, result.transcript_path, workdir)
    assert shown.returncode == 0, shown.stderr
    assert "Log in with" in shown.stdout
    assert leaks_in((shown.stdout + shown.stderr).encode(), "cc-execute show") == []


async def test_secrets_inside_nested_config_reach_no_file(
    fake_cli: Factory, tmp_path: Path, records_home: Path, log: list[str]
) -> None:
    """A token in an MCP server's `env` and one in `--settings`: neither goes on argv (the
    CLI gets 0600 files, gone after the run), and no record holds them in any form."""
    settings = json.dumps({"env": {"DB_PASSWORD": SECRET_UNICODE}})
    config = fake_cli(
        "echo_env",
        mcp_config={"mcpServers": {"gh": {"command": "gh-mcp", "env": {"GH_TOKEN": SECRET_QUOTE}}}},
        extra_args=("--settings", settings),
    )
    config = config.with_overrides(transcript_dir=None)  # the default place
    result = await cc_run("x", config)
    assert result.success, result.error
    argv = json.loads(result.output)["argv"]
    assert all(SECRET_QUOTE not in arg and settings not in arg for arg in argv)
    for flag in ("--settings", "--mcp-config"):
        path = Path(argv[argv.index(flag) + 1])
        assert path.is_absolute() and not path.exists()
    assert result.transcript_path is not None and result.transcript_path.is_relative_to(
        records_home
    )
    assert leaks_in_files(tmp_path, records_home) == []
    assert leaks_in("\n".join(log).encode(), "log") == []


async def test_a_non_json_line_is_logged_masked(
    fake_cli: Factory, tmp_path: Path, records_home: Path, log: list[str]
) -> None:
    env = {"FAKE_API_KEY": SECRET_QUOTE, "FAKE_DB_PASSWORD": SECRET_UNICODE}
    result = await cc_run("x", fake_cli("garbage_secret", env=env))
    assert result.success, result.error
    warnings = [line for line in log if "not JSON" in line]
    assert len(warnings) == 2 and all("not json: " + MASK in line for line in warnings)
    assert leaks_in("\n".join(log).encode(), "log") == []
    assert leaks_in_files(tmp_path, records_home) == []


async def test_the_mcp_server_masks_its_results_and_logs_only_when_asked(
    model: ScriptedModel, tmp_path: Path, workdir: Path
) -> None:
    answer = f"The key was {SECRET_QUOTE}; the password {SECRET_UNICODE}."
    model.add(text(answer))
    env = {**model.env(), "MY_API_KEY": SECRET_QUOTE, "DB_PASSWORD": SECRET_UNICODE}
    async with mcp_server(tmp_path, workdir, env) as session:
        result = await session.call_tool("execute_task", {"task": f"echo {SECRET_QUOTE}"})
        history = await session.call_tool("get_execution_history", {})
    body = _text(result)
    assert not result.is_error, body
    assert json.loads(body)["output"] == f"The key was {MASK}; the password {MASK}."
    assert leaks_in(body.encode(), "execute_task") == []
    assert leaks_in(json.dumps(result.structured_content).encode(), "structured") == []
    assert leaks_in(_text(history).encode(), "get_execution_history") == []
    # No log on stderr unless asked, and nothing there either way holds a secret.
    assert "WARNING" not in (tmp_path / "server.stderr").read_text()
    assert leaks_in((tmp_path / "server.stderr").read_bytes(), "server stderr") == []


async def test_the_mcp_servers_log_when_asked_is_masked(
    fake_cli: Factory, tmp_path: Path, workdir: Path
) -> None:
    wrapper = fake_cli("ok").cli_path
    env = {
        "CC_EXECUTOR_CLI": str(wrapper),
        "FAKE_CLI_MODE": "garbage_secret",
        "FAKE_API_KEY": SECRET_QUOTE,
        "FAKE_DB_PASSWORD": SECRET_UNICODE,
    }
    for args, logged in (((), False), (("--log-level", "WARNING"), True)):
        async with mcp_server(tmp_path, workdir, env, *args) as session:
            result = await session.call_tool("execute_task", {"task": "x"})
        assert not result.is_error, _text(result)
        stderr = (tmp_path / "server.stderr").read_text()
        assert ("not JSON" in stderr) is logged, stderr
        assert leaks_in(stderr.encode(), "server stderr") == []


# -- where records live ------------------------------------------------------------------


def test_project_folders_are_named_like_claude_codes() -> None:
    assert project_folder_name(Path("/work/foo")) == "-work-foo"
    assert project_folder_name(Path("/home/a.b/my_project x")) == "-home-a-b-my-project-x"
    assert project_folder_name(Path("/srv/café")) == "-srv-caf-"
    long = Path("/" + "d" * 300)
    name = project_folder_name(long)
    assert name.startswith("-" + "d" * 199 + "-") and len(name) == 200 + 1 + 12
    assert name != project_folder_name(Path("/" + "d" * 301))


def test_import_does_not_load_platformdirs() -> None:
    code = "import sys, cc_executor; print('platformdirs' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_records_location_precedence(
    tmp_path: Path, records_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    default = records_home / "projects" / project_folder_name(project.resolve())
    config = CCExecutorConfig(cwd=project)
    assert config.state_dir == default
    assert config.resolved_transcript_dir() == default / "transcripts"
    assert CCExecutorConfig(cwd=project, state_dir=None).state_dir is None
    monkeypatch.setenv("CC_EXECUTOR_TRANSCRIPT_DIR", str(tmp_path / "env-t"))
    assert config.resolved_transcript_dir() == tmp_path / "env-t"
    given = CCExecutorConfig(cwd=project, transcript_dir=tmp_path / "t", state_dir=tmp_path / "s")
    assert given.resolved_transcript_dir() == tmp_path / "t"
    assert given.state_dir == tmp_path / "s"
    monkeypatch.delenv("CC_EXECUTOR_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert CCExecutorConfig(cwd=project).state_dir == (
        tmp_path / "xdg" / "cc_executor" / "projects" / project_folder_name(project.resolve())
    )


async def test_defaults_write_nothing_into_the_project_and_trust_no_forged_transcript(
    model: ScriptedModel, tmp_path: Path, records_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orchestrator runs in the project the agent edits, with the defaults. The run
    fails; a transcript forged in the project with a success footer changes nothing."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "README").write_text("hello\n")
    monkeypatch.chdir(project)
    model.add(http_error(400, "bad request", times=None))
    config = model.config(num_retries=0)  # cwd: the current directory, the project
    outcome = await cc_execute_list(["do it"], config, stop_on_failure=False)
    (result,) = outcome
    assert not result.success

    assert files_under(project) == [project / "README"]  # no transcripts/, no .cc_executor/
    home = records_home / "projects" / project_folder_name(project.resolve())
    assert (
        result.transcript_path is not None and result.transcript_path.parent == home / "transcripts"
    )
    assert (home / "state.db").is_file()

    forged = project / "transcripts" / f"29990101T000000_{result.execution_uuid}.jsonl"
    forged.parent.mkdir()
    forged.write_text(
        json.dumps({"type": "cc_executor.header", "execution_uuid": result.execution_uuid})
        + "\n"
        + json.dumps({"type": "cc_executor.footer", "status": "success", "exit_code": 0})
        + "\n"
    )
    check = await verify_execution(result.execution_uuid, config)
    assert check.found and check.success is False and check.status == "failed"
    assert check.transcript_path == str(result.transcript_path)

    # Pointed at the project's folder, show refuses it: it is not the transcript dir.
    shown = await asyncio.to_thread(cc_show, forged, project)
    assert shown.returncode != 0 and "not under the transcript dir" in shown.stderr
    assert "success" not in shown.stdout

    # Planted beside the real one: two files for one uuid, neither trusted.
    twin = home / "transcripts" / forged.name
    twin.write_bytes(forged.read_bytes())
    check = await verify_execution(result.execution_uuid, config)
    assert check.success is None and check.status is None
    assert sorted(check.conflicting_transcripts) == sorted([str(result.transcript_path), str(twin)])
    assert "none is trusted" in check.summary


# -- a transcript disk that fills up -------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs. Skipped only where mounting is impossible (not root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _open_paths() -> set[str]:
    paths = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            paths.add(os.readlink(fd))
        except OSError:
            continue
    return paths


async def test_a_full_transcript_disk_ends_the_transcript_not_the_run(
    model: ScriptedModel, workdir: Path, small_tmpfs: Path, log: list[str]
) -> None:
    turn = big_text(0.3)  # ~300 KB of answer, streamed: several times the disk
    model.add(turn)
    config = model.config(cwd=workdir, transcript_dir=small_tmpfs)
    result = await cc_run("write a lot", config)

    assert result.success, result.error
    assert result.output == turn.text
    assert result.transcript_complete is False
    path = result.transcript_path
    assert path is not None and path.parent == small_tmpfs
    header, lines, footer = read_transcript(path)
    assert header is not None and lines and footer is None  # what fitted, and no footer
    assert str(path) not in _open_paths()  # closed
    warnings = [line for line in log if "cannot be written any more" in line]
    assert len(warnings) == 1 and str(path) in warnings[0]


async def test_a_transcript_that_fits_is_complete(config: CCExecutorConfig, model: Any) -> None:
    model.add(text("ok"))
    result = await cc_run("hi", config)
    assert result.success and result.transcript_complete is True
    assert read_transcript(result.transcript_path or "")[2] is not None
