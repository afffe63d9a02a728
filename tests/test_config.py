"""Level 1: configuration, CLI lookup and the command line. No processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cc_executor import (
    CCExecutorConfig,
    CLINotFoundError,
    ConfigError,
    cc_run,
    cc_stream,
    load_task_list,
)
from cc_executor._command import FileArg, build_args, build_command, find_cli


def test_seed_form_works_as_written() -> None:
    config = CCExecutorConfig(
        timeout=7200,
        stream_output=True,
        save_transcript=True,
        transcript_dir=Path("/tmp/cc_executor_transcripts"),
    )
    assert config.timeout == 7200 and config.stream_output


def test_defaults_are_safe() -> None:
    config = CCExecutorConfig()
    assert config.timeout == 3600
    assert config.idle_timeout == 900
    assert config.permission_mode == "acceptEdits"
    assert config.on_permission_denied == "fail"
    assert config.save_transcript and not config.stream_output
    assert not config.keep_background_processes


def test_config_is_frozen() -> None:
    config = CCExecutorConfig()
    with pytest.raises(Exception, match="frozen"):
        config.timeout = 5  # type: ignore[misc]


def test_unknown_option_names_the_field_and_the_valid_choices() -> None:
    with pytest.raises(ConfigError) as info:
        CCExecutorConfig(timout=5)
    assert info.value.field == "timout"
    assert str(info.value) == (
        "Unknown option 'timout'. Did you mean 'timeout', 'idle_timeout' or 'auto_timeout_min'?"
    )


def test_a_step_typo_names_the_3_closest_options_a_step_accepts(tmp_path: Path) -> None:
    """Not the 47 names of the whole config: only what is valid in a step, 3 of them."""
    from cc_executor import TaskSpec, load_task_list
    from cc_executor._models import _LIST_FIELDS

    plan = tmp_path / "plan.yaml"
    plan.write_text("tasks:\n  - prompt: hi\n    nmae: first\n")
    with pytest.raises(ConfigError) as info:
        load_task_list(plan)
    assert str(info.value) == (
        f"{plan}: task 1: Unknown option 'nmae'. Did you mean 'name', 'model' or 'num_retries'?"
    )
    assert info.value.field == "nmae"
    with pytest.raises(ConfigError) as info:
        TaskSpec("hi", max_total_cost=5)
    named = [w.strip("'?,") for w in str(info.value).split("Did you mean ", 1)[1].split()]
    named = [w for w in named if w != "or"]
    assert len(named) == 3 and not set(named) & _LIST_FIELDS, named


def test_a_misspelt_prompt_key_is_named_as_the_typo(tmp_path: Path) -> None:
    """`promt:` said "Invalid value for 'prompt': Field required (got {'promt': …})"."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("tasks:\n  - promt: Add database models\n")
    with pytest.raises(ConfigError) as info:
        load_task_list(plan)
    assert str(info.value).startswith(
        f"{plan}: task 1: Unknown option 'promt'. Did you mean 'prompt', "
    )
    assert info.value.field == "promt"


def test_several_bad_values_are_each_named_once_without_pydantic_noise(tmp_path: Path) -> None:
    """The other problems were pydantic's whole text: the first again, types, and a URL."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("- prompt: x\n  allowed_tools: Bash\n  timeout: 10m\n")
    with pytest.raises(ConfigError) as info:
        load_task_list(plan)
    assert str(info.value) == (
        f"{plan}: task 1: Invalid value for 'timeout': must be a number of seconds > 0 or "
        "\"auto\" (got '10m'). Also 'allowed_tools': Input should be a list (got 'Bash')."
    )


async def test_unknown_override_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="Unknown option 'modle'"):
        await cc_run("x", modle="sonnet")


def test_bad_value_names_field_and_choices() -> None:
    with pytest.raises(ConfigError) as info:
        CCExecutorConfig().with_overrides(permission_mode="yolo")
    assert info.value.field == "permission_mode"
    assert "'acceptEdits'" in str(info.value) and "'plan'" in str(info.value)
    with pytest.raises(ConfigError, match="timeout"):
        CCExecutorConfig(timeout=-1)


def test_stream_is_the_seed_name_for_stream_output() -> None:
    assert CCExecutorConfig().with_overrides(stream=True).stream_output
    assert CCExecutorConfig(stream=True).stream_output


def test_overrides_keep_the_base_config() -> None:
    base = CCExecutorConfig(model="opus", timeout=10)
    merged = base.with_overrides(timeout=20)
    assert merged.model == "opus" and merged.timeout == 20
    assert base.timeout == 10


def test_reserved_flags_in_extra_args_are_refused() -> None:
    with pytest.raises(ConfigError, match="--output-format"):
        CCExecutorConfig(extra_args=["--output-format=text"])


def test_args_map_every_option() -> None:
    config = CCExecutorConfig(
        model="sonnet",
        fallback_model="haiku",
        permission_mode="plan",
        allowed_tools=["Bash(git:*)", "Read"],
        disallowed_tools=["WebFetch"],
        max_turns=3,
        max_budget_usd=1.5,
        system_prompt="sys",
        append_system_prompt="more",
        mcp_config={"mcpServers": {}},
        add_dirs=[Path("/tmp")],
        resume="sess-1",
        extra_args=["--effort", "high"],
    )
    args = build_args(config)
    assert args[:5] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
    ]
    pairs = list(zip(args, args[1:], strict=False))
    for pair in [
        ("--permission-mode", "plan"),
        ("--model", "sonnet"),
        ("--fallback-model", "haiku"),
        ("--max-turns", "3"),
        ("--max-budget-usd", "1.5"),
        ("--system-prompt", "sys"),
        ("--append-system-prompt", "more"),
        ("--mcp-config", FileArg("mcp-config.json", '{"mcpServers": {}}')),
        ("--allowedTools", "Bash(git:*)"),
        ("--allowedTools", "Read"),
        ("--disallowedTools", "WebFetch"),
        ("--add-dir", "/tmp"),
        ("--effort", "high"),
    ]:
        assert pair in pairs
    # One token, so an id that starts with "-" is never read as a flag (the SDK's form).
    assert "--resume=sess-1" in args and "--resume" not in args


def test_cli_lookup_order(tmp_path: Path) -> None:
    def exe(name: str) -> Path:
        path = tmp_path / name / "claude"
        path.parent.mkdir()
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        return path

    explicit, from_env, on_path = exe("a"), exe("b"), exe("c")
    environ = {"CC_EXECUTOR_CLI": str(from_env), "PATH": str(on_path.parent)}
    assert find_cli(CCExecutorConfig(cli_path=explicit), environ) == str(explicit)
    assert find_cli(CCExecutorConfig(), environ) == str(from_env)
    assert find_cli(CCExecutorConfig(), {"PATH": str(on_path.parent)}) == str(on_path)


def test_missing_cli_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(CLINotFoundError, match="npm install"):
        find_cli(CCExecutorConfig(), {"PATH": str(tmp_path)}, executable=str(tmp_path / "python"))
    with pytest.raises(CLINotFoundError, match="cli_path"):
        find_cli(CCExecutorConfig(cli_path=tmp_path / "nope"), {"PATH": ""})


async def test_cc_run_raises_cli_not_found_before_starting(tmp_path: Path) -> None:
    with pytest.raises(CLINotFoundError):
        await cc_run("x", cli_path=tmp_path / "missing", transcript_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_missing_cwd_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cwd"):
        cc_stream("x", cwd=tmp_path / "missing", cli_path="/bin/true")


def test_root_with_bypass_permissions_explains_the_choices() -> None:
    config = CCExecutorConfig(permission_mode="bypassPermissions", cli_path="/bin/true")
    with pytest.raises(ConfigError) as info:
        build_command(config, "u", environ=dict(os.environ), euid=0)
    assert "IS_SANDBOX" in str(info.value) and "normal user" in str(info.value)
    sandboxed = config.with_overrides(env={"IS_SANDBOX": "1"})
    assert build_command(sandboxed, "u", environ=dict(os.environ), euid=0).argv
    assert build_command(config, "u", environ=dict(os.environ), euid=1000).argv


def test_environment_drops_claudecode_and_masks_secrets() -> None:
    config = CCExecutorConfig(cli_path="/bin/true", env={"MY_TOKEN": "tok-123", "PLAIN": "visible"})
    environ = {"CLAUDECODE": "1", "ANTHROPIC_API_KEY": "sk-ant-xyz", "PATH": "/bin", "KEY": "1"}
    command = build_command(config, "uuid-1", environ=environ, euid=1000)
    assert "CLAUDECODE" not in command.env
    assert command.env["PLAIN"] == "visible"
    assert command.env["CC_EXECUTOR_EXECUTION"] == "uuid-1"
    assert set(command.secrets) == {"tok-123", "sk-ant-xyz"}


async def test_a_file_that_cannot_be_executed_is_cli_not_found(tmp_path: Path) -> None:
    bogus = tmp_path / "claude"
    bogus.write_bytes(b"\x00\x01 not a program")
    bogus.chmod(0o755)
    with pytest.raises(CLINotFoundError, match="Could not start"):
        await cc_run("x", cli_path=bogus, transcript_dir=tmp_path / "t", cwd=tmp_path)


async def test_unwritable_transcript_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="transcript_dir"):
        await cc_run("x", cli_path="/bin/true", transcript_dir=blocker / "sub", cwd=tmp_path)
