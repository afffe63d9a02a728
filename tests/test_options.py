"""The Agent SDK's options reach the CLI as their flags (issue 17, "Options").

Argv is what a fake CLI read from its own ``/proc/self/cmdline``; the real CLI shows
that the flags do what they say (settings isolation, agents read from a file, tools).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, ConfigError, cc_run
from cc_executor._command import build_args
from cc_executor._secrets import find_secrets
from cc_executor.testing import ScriptedModel, text

FakeCLI = Callable[..., CCExecutorConfig]


def _main_bodies(model: ScriptedModel) -> list[dict[str, Any]]:
    return [r.body for r in model.requests if r.is_main and isinstance(r.body, dict)]


async def _recorded(fake_cli: FakeCLI, tmp_path: Path, **options: Any) -> dict[str, Any]:
    record = tmp_path / "record.json"
    config = fake_cli("record_cmdline", env={"FAKE_CLI_RECORD": str(record)}, **options)
    result = await cc_run("x", config)
    assert result.success, result.error
    seen: dict[str, Any] = json.loads(record.read_text())
    return seen


def _value_after(cmdline: list[str], flag: str) -> str:
    return cmdline[cmdline.index(flag) + 1]


async def test_every_new_option_reaches_the_cli_as_its_flag(
    fake_cli: FakeCLI, tmp_path: Path
) -> None:
    plugin = tmp_path / "my-plugin"
    plugin.mkdir()
    token = "tok-" + os.urandom(8).hex()
    helper = "helper-" + os.urandom(8).hex()
    session = str(uuid.uuid4())
    servers = {"db": {"command": "db-mcp", "env": {"DB_TOKEN": token}}}
    settings = {"apiKeyHelper": f"echo {helper}", "permissions": {"deny": ["WebFetch"]}}
    agents = {"reviewer": {"description": "Reviews code", "prompt": "You review code."}}
    seen = await _recorded(
        fake_cli,
        tmp_path,
        setting_sources=["user", "project"],
        settings=settings,
        agents=agents,
        tools=["Read", "Edit"],
        effort="high",
        max_thinking_tokens=4096,
        continue_conversation=True,
        fork_session=True,
        session_id=session,
        plugins=[plugin, {"type": "local", "path": str(plugin)}],
        strict_mcp_config=True,
        mcp_servers=servers,
    )
    cmdline, files = seen["cmdline"], seen["files"]
    for token_ in (
        "--setting-sources=user,project",
        "--tools=Read,Edit",
        "--continue",
        "--fork-session",
        f"--session-id={session}",
        "--strict-mcp-config",
    ):
        assert token_ in cmdline
    assert _value_after(cmdline, "--effort") == "high"
    assert _value_after(cmdline, "--max-thinking-tokens") == "4096"
    plugin_dirs = [cmdline[i + 1] for i, a in enumerate(cmdline) if a == "--plugin-dir"]
    assert plugin_dirs == [str(plugin), str(plugin)]
    # Structured values go through 0600 files, gone after the run; the secrets are masked.
    by_flag = {flag: _value_after(cmdline, flag) for flag in ("--mcp-config", "--settings")}
    by_flag["--agents"] = _value_after(cmdline, "--agents")
    assert json.loads(files[by_flag["--mcp-config"]]["content"]) == {"mcpServers": servers}
    assert json.loads(files[by_flag["--settings"]]["content"]) == settings
    assert json.loads(files[by_flag["--agents"]]["content"]) == agents
    assert {files[p]["mode"] for p in by_flag.values()} == {0o600}
    assert not any(os.path.exists(p) for p in by_flag.values())
    joined = "\0".join(cmdline)
    assert token not in joined and helper not in joined
    secrets = find_secrets(fake_cli("ok", mcp_servers=servers, settings=settings))
    assert secrets.mask(f"{token} {json.dumps(settings)}").count("[REDACTED]") == 2


async def test_ids_are_one_token_so_a_dash_cannot_become_a_flag(
    fake_cli: FakeCLI, tmp_path: Path
) -> None:
    seen = await _recorded(fake_cli, tmp_path, resume="--dangerously-skip-permissions")
    cmdline = seen["cmdline"]
    assert "--resume=--dangerously-skip-permissions" in cmdline
    assert "--dangerously-skip-permissions" not in cmdline and "--resume" not in cmdline


async def test_by_default_no_settings_file_is_loaded_and_settings_files_are_paths(
    fake_cli: FakeCLI, tmp_path: Path
) -> None:
    given = tmp_path / "settings.json"
    given.write_text("{}")
    seen = await _recorded(fake_cli, tmp_path, settings=given, tools=[], mcp_servers=given)
    cmdline = seen["cmdline"]
    assert "--setting-sources=" in cmdline and "--tools=" in cmdline
    assert _value_after(cmdline, "--settings") == str(given)
    assert _value_after(cmdline, "--mcp-config") == str(given)
    assert "--continue" not in cmdline and "--strict-mcp-config" not in cmdline
    assert "--tools=default" in build_args(CCExecutorConfig(tools="default"))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"fork_session": True}, "fork_session"),
        ({"session_id": "not-a-uuid"}, "session_id"),
        ({"session_id": str(uuid.uuid4()), "retry_strategy": "restart"}, "session_id"),
        ({"setting_sources": ["global"]}, "setting_sources"),
        ({"agents": {"r": {"prompt": "no description"}}}, "agents"),
        ({"tools": "Read"}, "tools"),
        ({"effort": "huge"}, "effort"),
        ({"plugins": ["/no/such/plugin"]}, "plugins"),
        ({"mcp_servers": {}, "mcp_config": {}}, "mcp_servers"),
        ({"max_thinking_tokens": -1}, "max_thinking_tokens"),
    ],
)
def test_bad_option_values_are_refused_naming_the_field(
    options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        CCExecutorConfig(**options)
    assert caught.value.field == field


def _user_settings(config: CCExecutorConfig) -> None:
    """A user whose ~/.claude denies Bash and whose CLAUDE.md says a marker word."""
    home = Path(config.env["HOME"]) / ".claude"
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.json").write_text(json.dumps({"permissions": {"deny": ["Bash"]}}))
    (home / "CLAUDE.md").write_text("ZEBRA-USER-MEMORY\n")


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in body.get("tools") or ()]


async def test_the_users_settings_do_not_change_an_unattended_run(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    """Default: ~/.claude's deny rule and CLAUDE.md are not applied; asked for, they are."""
    _user_settings(config)
    model.add(text("isolated"), text("with user settings"))
    assert (await cc_run("x", config)).success
    assert (await cc_run("x", config, setting_sources=["user"])).success
    isolated, loaded = _main_bodies(model)
    assert "Bash" in _tool_names(isolated) and "ZEBRA-USER-MEMORY" not in json.dumps(isolated)
    assert "Bash" not in _tool_names(loaded) and "ZEBRA-USER-MEMORY" in json.dumps(loaded)


async def test_agents_tools_effort_and_thinking_budget_reach_the_model(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    agents = {"zebra-reviewer": {"description": "Reviews zebras", "prompt": "You review."}}
    model.add(text("one"), text("two"), text("three"))
    assert (await cc_run("x", config, agents=agents, effort="low")).success
    assert (await cc_run("x", config, tools=["Read"])).success
    # A model with budgeted (not adaptive) thinking takes the budget as given.
    budget = {"model": "claude-sonnet-4-5", "max_thinking_tokens": 2048}
    assert (await cc_run("x", config, **budget)).success
    with_agents, with_tools, with_budget = _main_bodies(model)
    assert with_budget["thinking"]["budget_tokens"] == 2048
    assert "zebra-reviewer" in json.dumps(with_agents)  # read from the 0600 file
    assert with_agents.get("output_config", {}).get("effort") == "low"
    assert "Read" in _tool_names(with_tools)
    assert not {"Bash", "Write", "Edit"} & set(_tool_names(with_tools))
