"""Containment with the real CLI: no process a task started survives it.

Each test has the Bash tool start one kind of process that the environment
marker alone did not end, with a number unique to the test in its argv, and
counts the processes whose command line holds that number in /proc after the
call (or after the orchestrating process died).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, TaskTimeoutError, cc_run
from cc_executor._transcript import read_transcript
from cc_executor.testing import ScriptedModel, text, tool_use

from .conftest import ROOT, sigint_as_ctrl_c


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


def _token() -> str:
    """A number no other process on the machine has in its argv."""
    return str(random.randrange(10**8, 10**9))


def survivors(token: str) -> dict[int, str]:
    """Live (not zombie) processes whose command line contains `token`, but this one."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if token in cmdline and stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X"):
            found[int(name)] = cmdline
    return found


def _wait_started(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"the tool never wrote {path.name}"
        time.sleep(0.05)


def _wait_no_survivors(token: str, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := survivors(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _kill_all(token: str) -> None:
    for pid in survivors(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def token() -> Iterator[str]:
    value = _token()
    yield value
    _kill_all(value)  # whatever a failed test left behind


def _renamed(token: str) -> str:
    # perl's $0 rewrites the argv and environ area: the marker is gone from /proc.
    script = f"open(F, q(>started.{token})); close F; $0 = q(renamed-{token}); sleep 600"
    return f"perl -e '{script}' >/dev/null 2>&1 &"


# The Bash tool refuses a standalone `sleep N` (FACTS.md); a hanging tool call is this:
_HANG = "python3 -c 'import time; time.sleep(600)'"


def _wait_for(name: str) -> str:
    return f"for i in $(seq 200); do [ -e {name} ] && break; sleep 0.05; done"


async def test_a_renamed_background_process_is_ended_after_a_normal_exit(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, token: str
) -> None:
    model.add(_bash(f"{_renamed(token)} {_wait_for(f'started.{token}')}"), text("started"))
    result = await cc_run("x", config, allowed_tools=["Bash"])
    assert result.success, result.error
    assert (workdir / f"started.{token}").exists()
    assert survivors(token) == {}


async def test_a_renamed_background_process_is_ended_on_timeout(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, token: str
) -> None:
    model.add(
        _bash(f"{_renamed(token)} {_wait_for(f'started.{token}')}"),  # its shell exits: orphaned
        _bash(_HANG),
        text("never"),
    )
    result = await cc_run("x", config, allowed_tools=["Bash"], timeout=10, kill_grace=1)
    assert isinstance(result.error, TaskTimeoutError)
    assert (workdir / f"started.{token}").exists()
    assert survivors(token) == {}


async def test_a_fork_loop_ignoring_sigterm_cannot_outrun_the_end_of_the_task(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    """A race in the old /proc scan (1-3 survivors in 10 of 22 runs): repeated here."""
    for _ in range(4):
        token = _token()
        try:
            body = f"sleep {token} & touch loop.{token}; sleep 0.02"
            loop = f"( trap '' TERM; while true; do {body}; done ) &"
            model.add(_bash(f"{loop} {_wait_for(f'loop.{token}')}; sleep 0.3"), text("looping"))
            result = await cc_run("x", config, allowed_tools=["Bash"])
            assert result.success, result.error
            assert (workdir / f"loop.{token}").exists()
            assert survivors(token) == {}
        finally:
            _kill_all(token)


_ORCHESTRATOR = """
import json, sys
from cc_executor import cc_execute_sync
args = json.loads(sys.argv[1])
cc_execute_sync("x", allowed_tools=["Bash"], kill_grace=60, timeout=600, num_retries=0, **args)
"""


def _as_user(user: int) -> list[str]:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to run an unprivileged orchestrator"
    return [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups"]


def _python_for(user: int) -> tuple[str, dict[str, str]]:
    """An interpreter of this Python version that `user` may run, and the env that finds
    cc_executor and its dependencies (this venv's python may live under a 0700 home)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*site.getsitepackages(), str(ROOT)])
    version = (
        f"import os, sys; assert sys.version_info[:2] == {tuple(sys.version_info[:2])}; "
        "assert os.access(sys.executable, os.X_OK)"  # the supervisor is started with it
    )
    candidates = [sys.executable, sys._base_executable, shutil.which("python3")]
    for candidate in [*candidates, "/usr/local/bin/python3", "/usr/bin/python3"]:
        check = [*_as_user(user), candidate or "", "-c", version]
        if candidate and subprocess.run(check, env=env, capture_output=True).returncode == 0:
            return candidate, env
    pytest.fail(f"no python {sys.version_info[:2]} that uid {user} may run")


def _start_orchestrator(
    args: dict[str, Any], *, user: int | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    python, env = (sys.executable, None) if user is None else _python_for(user)
    argv = [python, "-c", _ORCHESTRATOR, json.dumps(args)]
    if user is not None:
        argv = [*_as_user(user), *argv]
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=sigint_as_ctrl_c,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_orchestrator_ends_the_whole_task_within_5_s(
    model: ScriptedModel,
    claude_cli: str,
    workdir: Path,
    transcripts: Path,
    token: str,
    sig: signal.Signals,
) -> None:
    """The background process is orphaned first (its shell exits), then the task hangs in a
    second tool call. kill_grace is 60 s: ending the tree must not wait for it."""
    background = f"nohup sleep 7{token} >/dev/null 2>&1 & touch started.{token}"
    model.add(_bash(background), _bash(f"{_HANG} {token}"), text("never"))
    args = {"cli_path": claude_cli, "cwd": str(workdir), "env": model.env()}
    args["transcript_dir"] = str(transcripts)
    proc = _start_orchestrator(args, cwd=workdir)
    try:
        _wait_started(workdir / f"started.{token}")
        deadline = time.monotonic() + 20
        while len(survivors(token)) < 3:  # `nohup sleep`, the second tool's shell, python
            assert time.monotonic() < deadline, survivors(token)
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(timeout=20)
        assert _wait_no_survivors(token, 5) == {}
    finally:
        proc.kill()
        proc.wait()


def test_an_unprivileged_orchestrator_ends_a_non_dumpable_process(
    model: ScriptedModel, claude_cli: str, token: str
) -> None:
    """As an ordinary user /proc/<pid>/environ of a non-dumpable process is unreadable."""
    nobody = 65534
    base = Path(tempfile.mkdtemp(prefix="cc-unprivileged-"))
    try:
        home, work, transcripts = base / "home", base / "work", base / "transcripts"
        for d in (home, work, transcripts):
            d.mkdir()
        for d in (base, home, work, transcripts):
            os.chown(d, nobody, nobody)
        script = "import ctypes,time; ctypes.CDLL(None).prctl(4, 0); time.sleep(600)"
        command = f"python3 -c '{script}' {token} >/dev/null 2>&1 & touch started.{token}"
        model.add(_bash(f"{command}; sleep 0.5"), text("started"))
        env = {**model.env(), "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")}
        args = {"cli_path": claude_cli, "cwd": str(work), "env": env}
        args["transcript_dir"] = str(transcripts)
        proc = _start_orchestrator(args, user=nobody, cwd=work)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        assert (work / f"started.{token}").exists()
        assert survivors(token) == {}
        (path,) = transcripts.iterdir()
        header, _, _ = read_transcript(path)
        assert header is not None and header["containment"] == "subreaper"
    finally:
        _kill_all(token)
        shutil.rmtree(base, ignore_errors=True)


async def test_the_transcript_header_says_what_contained_the_task(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    """ "cgroup+subreaper" exactly when the tool really ran in the task's own cgroup leaf."""
    model.add(_bash("cat /proc/self/cgroup > cgroup.txt"), text("ok"))
    result = await cc_run("x", config, allowed_tools=["Bash"])
    assert result.success, result.error
    assert result.transcript_path is not None
    header, _, _ = read_transcript(result.transcript_path)
    assert header is not None
    v2 = [line for line in (workdir / "cgroup.txt").read_text().splitlines() if line[:3] == "0::"]
    in_leaf = bool(v2) and v2[0].endswith(f"/cc-executor-{result.execution_uuid}")
    assert header["containment"] == ("cgroup+subreaper" if in_leaf else "subreaper")
