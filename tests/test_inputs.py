"""Inputs the CLI cannot take are refused before anything starts; what must not be on argv
(secrets, values too big for it) reaches the CLI through 0600 files removed after the run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    CCExecutorConfig,
    CLINotFoundError,
    ConfigError,
    TaskSpec,
    TaskTimeoutError,
    cc_execute,
    cc_execute_list,
    cc_run,
    cc_stream,
)
from cc_executor._transcript import read_transcript
from cc_executor.testing import ScriptedModel, text

from .conftest import ROOT, read_pids
from .test_cli import cli_env

FakeCLI = Callable[..., CCExecutorConfig]


@pytest.fixture
def arg_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder the library writes argument files into, for this test only."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


async def _consume(task: str, config: CCExecutorConfig) -> None:
    async with cc_stream(task, config) as stream:
        async for _ in stream:
            pass


CALLS: dict[str, Callable[[str, CCExecutorConfig], Any]] = {
    "cc_execute": cc_execute,
    "cc_run": cc_run,
    "cc_stream": _consume,
}


# -------------------------------------------------------------------------- prompts


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("prompt", ["", "   \n\t "], ids=["empty", "blank"])
async def test_empty_or_blank_prompt_is_refused_before_the_cli_starts(
    call: str, prompt: str, fake_cli: FakeCLI, pidfile: Path, transcripts: Path
) -> None:
    with pytest.raises(ConfigError, match="needs a prompt") as info:
        await CALLS[call](prompt, fake_cli("ok"))
    assert info.value.field == "task"
    assert read_pids(pidfile) == [] and not transcripts.exists()


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_prompt_with_a_lone_surrogate_is_refused_naming_its_position(
    call: str, fake_cli: FakeCLI, pidfile: Path
) -> None:
    with pytest.raises(ConfigError, match=r"U\+D83D at character 4 ") as info:
        await CALLS[call]("fix \ud83d the bug", fake_cli("ok"))
    assert info.value.field == "task"
    assert "encode('utf-8', 'replace')" in str(info.value)
    assert read_pids(pidfile) == []


async def test_undecodable_bytes_smuggled_as_surrogates_are_refused(fake_cli: FakeCLI) -> None:
    prompt = b"caf\xe9 au lait".decode("utf-8", "surrogateescape")
    with pytest.raises(ConfigError, match=r"U\+DCE9 at character 3 "):
        await cc_run(prompt, fake_cli("ok"))


async def test_a_good_non_ascii_prompt_still_runs(fake_cli: FakeCLI) -> None:
    result = await cc_run("café 😀 — ok", fake_cli("ok"))
    assert result.success and result.output == "echo:café 😀 — ok"


@pytest.mark.parametrize("bad", ["  ", "half \udc00 pair"], ids=["blank", "surrogate"])
async def test_a_bad_step_prompt_stops_the_list_before_its_first_step(
    bad: Any, fake_cli: FakeCLI, pidfile: Path
) -> None:
    with pytest.raises(ConfigError, match="step 2: ") as info:
        await cc_execute_list(["first step", bad], fake_cli("ok"), state_dir=None)
    assert info.value.field == "prompt"
    assert read_pids(pidfile) == []


def test_task_spec_refuses_a_blank_prompt() -> None:
    with pytest.raises(ConfigError, match="prompt is blank"):
        TaskSpec("   ")


@pytest.mark.parametrize("field", ["system_prompt", "append_system_prompt"])
def test_system_prompts_with_lone_surrogates_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=r"U\+D800 at character 2 ") as info:
        CCExecutorConfig(**{field: "ab\ud800"})
    assert info.value.field == field


@pytest.mark.parametrize("task", ["  ", "x\ud83dy"], ids=["blank", "surrogate"])
def test_cc_execute_run_refuses_the_prompt_with_exit_2(
    task: str, fake_cli: FakeCLI, pidfile: Path, tmp_path: Path
) -> None:
    wrapper = fake_cli("ok").cli_path
    assert wrapper is not None
    env = cli_env(CC_EXECUTOR_CLI=str(wrapper), FAKE_CLI_PIDFILE=str(pidfile))
    # A prompt with a lone surrogate can only come in as bytes: stdin, not valid UTF-8.
    data = task.encode("utf-8", "surrogatepass")
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "run", "-"],
        cwd=tmp_path,
        env=env,
        input=data,
        capture_output=True,
        timeout=90,
    )
    assert proc.returncode == 2, proc.stderr
    assert b"needs a prompt" in proc.stderr or b"surrogate" in proc.stderr
    assert read_pids(pidfile) == []


# ------------------------------------------------------------------------------ cwd


@pytest.mark.parametrize("kind", ["missing", "file"])
async def test_a_cwd_that_is_not_a_directory_is_a_config_error(
    kind: str, fake_cli: FakeCLI, tmp_path: Path
) -> None:
    cwd = tmp_path / "nowhere"
    if kind == "file":
        cwd.write_text("")
    with pytest.raises(
        ConfigError, match="not a directory" if kind == "file" else "not exist"
    ) as info:
        await cc_run("x", fake_cli("ok").with_overrides(cwd=cwd))
    assert info.value.field == "cwd"


@pytest.fixture
def locked_dir() -> Iterator[Path]:
    """A directory an unprivileged user can see but not enter (mode 000)."""
    base = Path(tempfile.mkdtemp(prefix="cc-locked-", dir="/tmp"))
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        yield locked
    finally:
        locked.chmod(0o700)
        shutil.rmtree(base)


_AS_NOBODY = """
import asyncio, json, sys
from cc_executor import ConfigError, cc_run
try:
    asyncio.run(cc_run("x", cli_path="/bin/true", cwd=sys.argv[1], save_transcript=False,
                       state_dir=None, num_retries=0))
    print(json.dumps({"error": None}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "field": getattr(exc, "field", None),
                      "message": str(exc)}))
"""


def test_a_cwd_the_user_cannot_enter_is_a_config_error(locked_dir: Path) -> None:
    """Run as an unprivileged user (root enters any directory)."""
    if os.geteuid() != 0:
        command = [sys.executable, "-c", _AS_NOBODY, str(locked_dir)]
    else:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        command += [sys.executable, "-c", _AS_NOBODY, str(locked_dir)]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": "/nonexistent"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    assert outcome["error"] == "ConfigError", outcome
    assert outcome["field"] == "cwd" and "cannot be entered" in outcome["message"]


async def test_a_cwd_removed_before_the_spawn_is_a_config_error_not_cli_not_found(
    fake_cli: FakeCLI, tmp_path: Path
) -> None:
    cwd = tmp_path / "gone-soon"
    cwd.mkdir()
    stream = cc_stream("x", fake_cli("ok").with_overrides(cwd=cwd))  # the command is built here
    cwd.rmdir()
    with pytest.raises(ConfigError, match="cannot be entered") as info:
        async with stream:
            async for _ in stream:
                pass
    assert info.value.field == "cwd"
    assert not isinstance(info.value, CLINotFoundError)


# ---------------------------------------------------------------- too big for argv


async def test_a_variable_over_128_kib_is_refused_naming_it(
    fake_cli: FakeCLI, pidfile: Path, transcripts: Path
) -> None:
    config = fake_cli("ok", env={"FAKE_CLI_PIDFILE": str(pidfile), "BIG_NOTES": "x" * 200_000})
    with pytest.raises(ConfigError, match=r"\$BIG_NOTES \(in env=\) is 200011 bytes") as info:
        await cc_run("x", config)
    assert info.value.field == "env"
    assert read_pids(pidfile) == [] and not transcripts.exists()


async def test_an_extra_argument_over_128_kib_is_refused_naming_its_flag(
    fake_cli: FakeCLI, pidfile: Path
) -> None:
    with pytest.raises(ConfigError, match="value of --effort is 200001 bytes") as info:
        await cc_run("x", fake_cli("ok", extra_args=["--effort", "x" * 200_000]))
    assert info.value.field == "extra_args"
    assert read_pids(pidfile) == []


async def test_e2big_at_spawn_is_a_config_error_not_cli_not_found(
    fake_cli: FakeCLI, pidfile: Path
) -> None:
    """Each variable fits, together they pass the kernel's total (E2BIG from execve)."""
    many = {f"FILLER_{i}": "y" * 120_000 for i in range(60)}  # 7.2 MB > any ARG_MAX here
    with pytest.raises(ConfigError, match="E2BIG") as info:
        await cc_run("x", fake_cli("ok", env={"FAKE_CLI_PIDFILE": str(pidfile), **many}))
    assert not isinstance(info.value, CLINotFoundError)
    assert "$FILLER_" in str(info.value) and info.value.field == "env"
    assert read_pids(pidfile) == []


async def test_a_200_kb_system_prompt_reaches_the_model_through_a_file(
    model: ScriptedModel, config: CCExecutorConfig, arg_tmp: Path
) -> None:
    system = "You are terse. " + "".join(f"Rule {i}: keep it short. " for i in range(9000))
    append = "Always end with DONE. " * 8000  # ~176 KB
    assert len(system) > 200_000
    model.add(text("ok DONE"))
    result = await cc_run("hi", config, system_prompt=system, append_system_prompt=append)
    assert result.success, (result.error, result.stderr_tail)
    sent = json.dumps(model.main_requests[0].body["system"])
    assert json.dumps(system)[1:-1] in sent and json.dumps(append.strip())[1:-1] in sent
    header = read_transcript(Path(str(result.transcript_path)))[0]
    assert header is not None
    argv = header["argv"]
    assert "--system-prompt-file" in argv and "--append-system-prompt-file" in argv
    assert "--system-prompt" not in argv and system not in json.dumps(header)
    assert list(arg_tmp.iterdir()) == []


async def test_a_small_system_prompt_stays_on_argv(fake_cli: FakeCLI, tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    config = fake_cli("record_cmdline", env={"FAKE_CLI_RECORD": str(record)})
    await cc_run("x", config, system_prompt="be brief")
    cmdline = json.loads(record.read_text())["cmdline"]
    assert cmdline[cmdline.index("--system-prompt") + 1] == "be brief"


# ------------------------------------------------------------- secrets never on argv


def _token() -> str:
    return "tok-" + os.urandom(12).hex()


@pytest.mark.parametrize("then", ["result", "crash", "hang"])
async def test_mcp_config_and_settings_secrets_never_go_on_argv(
    then: str, fake_cli: FakeCLI, tmp_path: Path, arg_tmp: Path
) -> None:
    token, helper = _token(), _token()
    record = tmp_path / "record.json"
    mcp = {"mcpServers": {"db": {"command": "db-mcp", "env": {"DB_TOKEN": token}}}}
    settings = json.dumps({"apiKeyHelper": f"echo {helper}"})
    config = fake_cli(
        "record_cmdline",
        env={"FAKE_CLI_RECORD": str(record), "FAKE_CLI_THEN": then},
        mcp_config=mcp,
        extra_args=[f"--settings={settings}"],
        timeout=3 if then == "hang" else 60,
        kill_grace=0.5,
    )
    if then == "hang":
        with pytest.raises(TaskTimeoutError):
            await cc_execute("x", config)
        result = None
    else:
        result = await cc_run("x", config)
    seen = json.loads(record.read_text())
    cmdline = "\0".join(seen["cmdline"])
    assert token not in cmdline and helper not in cmdline
    files = seen["files"]
    by_flag = {
        flag: seen["cmdline"][seen["cmdline"].index(flag) + 1]
        for flag in ("--mcp-config", "--settings")
    }
    assert json.loads(files[by_flag["--mcp-config"]]["content"]) == mcp
    assert files[by_flag["--settings"]]["content"] == settings
    assert {f["mode"] for f in files.values()} == {0o600}
    assert all(Path(p).parent.parent == arg_tmp for p in files)
    for path in files:
        assert not os.path.exists(path)
    assert list(arg_tmp.iterdir()) == []
    for transcript in (tmp_path / "transcripts").iterdir():
        data = transcript.read_text()
        assert token not in data and helper not in data
    if result is not None:
        assert result.success == (then == "result")


async def test_a_config_file_path_is_passed_as_it_is(
    fake_cli: FakeCLI, tmp_path: Path, arg_tmp: Path
) -> None:
    record = tmp_path / "record.json"
    mcp_file = tmp_path / "mcp.json"
    mcp_file.write_text('{"mcpServers": {}}')
    await cc_run(
        "x", fake_cli("record_cmdline", env={"FAKE_CLI_RECORD": str(record)}), mcp_config=mcp_file
    )
    cmdline = json.loads(record.read_text())["cmdline"]
    assert cmdline[cmdline.index("--mcp-config") + 1] == str(mcp_file)
    assert list(arg_tmp.iterdir()) == []


async def test_argument_files_are_removed_when_the_caller_cancels(
    fake_cli: FakeCLI, tmp_path: Path, arg_tmp: Path
) -> None:
    record = tmp_path / "record.json"
    config = fake_cli(
        "record_cmdline",
        env={"FAKE_CLI_RECORD": str(record), "FAKE_CLI_THEN": "hang"},
        mcp_config={"mcpServers": {}},
        kill_grace=0.5,
    )
    task = asyncio.create_task(cc_run("x", config))
    while not record.exists():
        await asyncio.sleep(0.05)
    assert len(list(arg_tmp.iterdir())) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(arg_tmp.iterdir()) == []
