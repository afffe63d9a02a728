"""Level 3: outcomes the real CLI produces on demand, classified truthfully.

No credentials at all, a flag the CLI does not know, and a background Bash job
that outlives the first result: each is run with the pinned CLI (and the
scripted model where a model is needed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor import (
    AuthenticationError,
    CCExecutorConfig,
    CLIArgumentError,
    cc_run,
)
from cc_executor.events import BackgroundTasksChangedEvent, ResultEvent, TaskStartedEvent
from cc_executor.testing import ScriptedModel, text, tool_use

from .conftest import ROOT

# Everything that could give the CLI credentials or send it elsewhere.
_AUTH_VARS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


@pytest.fixture
def no_credentials(
    claude_cli: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """An environment with an empty HOME, no key, no login, no base URL."""
    for name in _AUTH_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "empty-home"
    home.mkdir()
    return {
        "HOME": str(home),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }


async def test_no_credentials_is_an_authentication_error_at_once(
    no_credentials: dict[str, str], tmp_path: Path
) -> None:
    config = CCExecutorConfig(cwd=tmp_path, env=no_credentials, num_retries=2)
    result = await cc_run("hello", config)
    assert isinstance(result.error, AuthenticationError), repr(result.error)
    assert "Not logged in" in str(result.error)
    assert len(result.attempts) == 1


def test_cc_execute_run_without_credentials_exits_8(
    no_credentials: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _AUTH_VARS}
    env.update(no_credentials, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", "run", "hello", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 8, (proc.stdout, proc.stderr)
    assert '"AuthenticationError"' in proc.stdout


async def test_a_flag_the_cli_does_not_know_fails_once_with_its_stderr(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    result = await cc_run("hello", config, extra_args=["--no-such-flag"], num_retries=2)
    assert isinstance(result.error, CLIArgumentError), repr(result.error)
    assert "unknown option '--no-such-flag'" in str(result.error)
    assert len(result.attempts) == 1
    assert model.main_requests == []


async def test_a_background_bash_job_is_waited_for_and_its_answer_is_the_last(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    # The job outlives the first result by longer than the result-exit grace: the
    # CLI is silent while it runs and must not be ended. (The idle watchdog's pause
    # is shown with a replayed stream in test_field_streams: a tight idle_timeout
    # here would also time the CLI's cold start on a loaded machine.)
    job = "sleep 3; echo finished > job.txt"
    model.add(
        tool_use("Bash", {"command": job, "description": "job", "run_in_background": True}),
        text("Started the job"),
        text("The job finished"),
    )
    events: list[object] = []
    result = await cc_run(
        "run the job",
        config,
        allowed_tools=["Bash"],
        result_exit_grace=1.0,
        num_retries=0,
        on_event=events.append,
    )
    assert result.success, result.error
    assert result.output == "The job finished"
    assert (workdir / "job.txt").read_text() == "finished\n"
    assert result.stopped_by is None and result.exit_code == 0
    results = [e for e in events if isinstance(e, ResultEvent)]
    assert [r.result for r in results] == ["Started the job", "The job finished"]
    assert result.num_turns == sum(r.num_turns or 0 for r in results)
    assert result.total_cost_usd == results[-1].total_cost_usd
    assert any(isinstance(e, TaskStartedEvent) and e.is_backgrounded for e in events)
    assert any(isinstance(e, BackgroundTasksChangedEvent) and not e.tasks for e in events)
