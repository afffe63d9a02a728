"""Logging a library user controls: silent by default, CC_EXECUTOR_LOG, the stdlib bridge,
and -v / -q / --log-level on cc-execute."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cc_executor import CCExecutorConfig

ROOT = Path(__file__).resolve().parent.parent

# A run whose CLI prints lines that are not JSON: the library logs a WARNING per line.
_RUN = (
    "import sys, cc_executor\n"
    "config = cc_executor.CCExecutorConfig.model_validate_json(sys.argv[1])\n"
    "result = cc_executor.cc_run_sync('x', config)\n"
    "assert result.success and result.output == 'survived', result\n"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CC_EXECUTOR_LOG", "LOGURU_LEVEL")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _python(code: str, config: CCExecutorConfig, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", code, config.model_dump_json()],
        capture_output=True,
        env=_env(**env),
        timeout=90,
        check=True,
    )


def test_unset_nothing_reaches_stderr(fake_cli: Callable[..., CCExecutorConfig]) -> None:
    """fd 2 of a process that ran a task which logs warnings holds nothing at all."""
    done = _python(_RUN, fake_cli("garbage_lines"))
    assert done.stderr == b""


def test_cc_executor_log_turns_the_log_on_at_its_level(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    config = fake_cli("garbage_lines")
    warning = _python(_RUN, config, CC_EXECUTOR_LOG="warning").stderr.decode()
    assert warning.count("skipping a stdout line of the CLI, not JSON") == 3
    assert "DEBUG" not in warning and "INFO" not in warning
    # Above the records' level: nothing.
    assert _python(_RUN, config, CC_EXECUTOR_LOG="ERROR").stderr == b""
    assert _python(_RUN, config, CC_EXECUTOR_LOG="0").stderr == b""


def test_cc_executor_log_keeps_the_applications_own_loguru_output_once(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    code = _RUN + "from loguru import logger\nlogger.info('the app speaks')\n"
    err = _python(code, fake_cli("garbage_lines"), CC_EXECUTOR_LOG="WARNING").stderr.decode()
    assert err.count("the app speaks") == 1
    # Through the library's own sink only, not also through loguru's default handler.
    assert err.count("skipping a stdout line of the CLI, not JSON") == 3


def test_an_unknown_level_says_so_and_logs_at_info(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    err = _python(_RUN, fake_cli("garbage_lines"), CC_EXECUTOR_LOG="loud").stderr.decode()
    assert "CC_EXECUTOR_LOG=loud" in err and "not a log level" in err
    assert "skipping a stdout line" in err


def test_log_to_stdlib_hands_records_to_logging_with_levels_mapped(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    code = (
        "import logging, sys, cc_executor\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.WARNING,"
        " format='%(levelname)s|%(name)s|%(message)s')\n"
        "cc_executor.log_to_stdlib()\n" + _RUN
    )
    done = _python(code, fake_cli("garbage_lines"))
    lines = done.stdout.decode().splitlines()
    warnings = [line for line in lines if "skipping a stdout line" in line]
    assert len(warnings) == 3
    assert all(line.startswith("WARNING|cc_executor._run|") for line in warnings)
    # logging's level applies: no INFO records, and nothing went to stderr.
    assert not any(line.startswith(("INFO", "DEBUG")) for line in lines)
    assert done.stderr == b""


def test_log_to_stdlib_debug_level_reaches_a_debug_logger(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    code = (
        "import logging, sys, cc_executor\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.DEBUG,"
        " format='%(levelname)s|%(name)s|%(message)s')\n"
        "cc_executor.log_to_stdlib()\n" + _RUN
    )
    lines = _python(code, fake_cli("garbage_lines")).stdout.decode().splitlines()
    assert any(line.startswith(("INFO|cc_executor", "DEBUG|cc_executor")) for line in lines)


def _cc(*args: str, wrapper: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cc_executor._cli", *args],
        cwd=cwd,
        env=_env(CC_EXECUTOR_CLI=str(wrapper), FAKE_CLI_MODE="garbage_lines", COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_cc_execute_verbose_quiet_and_log_level_on_a_subcommand(
    fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    wrapper = fake_cli("garbage_lines").cli_path
    assert wrapper is not None
    message = "skipping a stdout line of the CLI, not JSON"
    plain = _cc("run", "x", wrapper=wrapper, cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert message not in plain.stderr
    for flags in (["-v"], ["--log-level", "warning"], ["--verbose"]):
        done = _cc("run", *flags, "x", wrapper=wrapper, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stderr.count(message) == 3, (flags, done.stderr)
    # Before the subcommand's name too.
    assert _cc("-v", "run", "x", wrapper=wrapper, cwd=tmp_path).stderr.count(message) == 3
    quiet = _cc("run", "-q", "x", wrapper=wrapper, cwd=tmp_path)
    assert quiet.returncode == 0 and message not in quiet.stderr
    bad = _cc("run", "--log-level", "loud", "x", wrapper=wrapper, cwd=tmp_path)
    assert bad.returncode == 2 and "not a log level" in bad.stderr


def test_every_subcommand_takes_the_logging_options(tmp_path: Path) -> None:
    import typer

    from cc_executor._cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    for name, command in group.commands.items():
        if name == "mcp":
            continue  # its own --log-level, passed to the server
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert {"-v", "-q", "--log-level"} <= opts, name
