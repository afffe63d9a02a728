"""The MCP server's command line: options → `CCExecutorConfig`, the `.mcp.json` entry,
and `main` (`python -m cc_executor.mcp`). See the package docstring for where options
come from."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, Optional, get_args

import typer

from .._help import placeholders_in_words
from .._secrets import Secrets, find_secrets
from ..config import CCExecutorConfig, PermissionMode
from ..errors import ConfigError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["client_config", "create_server", "main", "serve", "server_config"]

_MISSING_SDK = "The MCP server needs the `mcp` package: pip install 'cc_executor[mcp]'"


def create_server(config: CCExecutorConfig | None = None) -> MCPServer[Any]:
    """The MCP server bound to `config` (not started): `create_server(cfg).run("stdio")`."""
    try:
        from ._server import create_server as build
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "mcp":
            raise ModuleNotFoundError(_MISSING_SDK, name="mcp") from exc
        raise
    return build(config)


_HELP = (
    "cc_executor's MCP server over stdio: run Claude Code tasks in fresh instances for an "
    "orchestrating agent. Options not given here keep the library's defaults."
)
_PERMISSION_MODES = ", ".join(get_args(PermissionMode))


def serve(
    config: Annotated[
        Optional[Path],  # noqa: UP045 - Typer reads the annotation at run time (Python 3.10)
        typer.Option(
            "--config",
            metavar="FILE",
            help="JSON or YAML mapping of CCExecutorConfig fields (the options below override it).",
        ),
    ] = None,
    cwd: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--cwd",
            metavar="DIR",
            help="Where tasks run (default: the current directory); a tool call's cwd must "
            "be inside it.",
        ),
    ] = None,
    transcript_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--transcript-dir",
            metavar="DIR",
            help="Transcripts (default: $CC_EXECUTOR_TRANSCRIPT_DIR, else the --cwd "
            "project's folder in $CC_EXECUTOR_HOME or the per-user state directory).",
        ),
    ] = None,
    state_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--state-dir",
            metavar="DIR",
            help="Task-list journal and execution history (default: the --cwd project's "
            "folder in $CC_EXECUTOR_HOME or the per-user state directory).",
        ),
    ] = None,
    permission_mode: Annotated[
        Optional[PermissionMode],  # noqa: UP045
        typer.Option(
            "--permission-mode",
            metavar="MODE",
            help=f"The CLI's permission mode for every task: {_PERMISSION_MODES} "
            "(default: acceptEdits).",
        ),
    ] = None,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model", metavar="MODEL", help="Model for every task unless a call names one."
        ),
    ] = None,
    timeout: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help='Default timeout per task in seconds, or "auto" (default: 3600).',
        ),
    ] = None,
    prestart: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--prestart",
            metavar="N",
            help="Keep N Claude Code CLIs pre-started for execute_task calls with the "
            "server's options (0 to 8; each ~120 MB while idle; default 0: none).",
        ),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config",
            help="Print the .mcp.json that starts this server with these options on this "
            "machine (stdout; the equivalent `claude mcp add-json` line on stderr) and exit.",
        ),
    ] = False,
    log_level: Annotated[
        Optional[Literal["DEBUG", "INFO", "WARNING", "ERROR"]],  # noqa: UP045
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="Write cc_executor's log at this level (DEBUG, INFO, WARNING, ERROR) to "
            "stderr, which MCP clients keep in their own log files (default: no log; "
            "secrets are masked in it either way).",
        ),
    ] = None,
) -> None:
    """The MCP server for orchestrators, over stdio: run Claude Code tasks in fresh
    instances for an orchestrating agent. Options not given keep the library's defaults.

    Needs the extra: pip install 'cc_executor\\[mcp]'.
    """
    options = dict(locals())
    if print_config:
        try:
            _print_config(_argv(options))
        except (ConfigError, ModuleNotFoundError) as exc:
            _exit_usage(exc)
        return
    try:
        server = create_server(_config(options))
    except (ConfigError, ModuleNotFoundError) as exc:
        _exit_usage(exc)
    if log_level is not None:
        _log_to_stderr(log_level, find_secrets(_config(options)))
    server.run("stdio")


def _exit_usage(exc: Exception) -> NoReturn:
    print(f"cc_executor.mcp: {exc}", file=sys.stderr)
    raise SystemExit(2) from None


def _command() -> Any:
    """`serve` as a command: `cc-execute mcp` and `python -m cc_executor.mcp` share it."""
    app = typer.Typer(
        add_completion=False,
        rich_markup_mode="rich",
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command(name="mcp")(serve)
    placeholders_in_words()
    return typer.main.get_command(app)


def _parse(argv: Sequence[str]) -> dict[str, Any]:
    """The options in `argv` by name (None or False: not given). Raises `ConfigError`
    for options the command line would refuse."""
    command = _command()
    try:
        with command.make_context("mcp", list(argv), resilient_parsing=False) as ctx:
            return dict(ctx.params)
    except typer.Exit:  # --help
        raise ConfigError("--help is not an option of the server's configuration") from None
    except typer.TyperException as exc:  # a usage error: unknown option, refused value
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise ConfigError(message, field="argv") from None


def _argv(options: dict[str, Any]) -> list[str]:
    """`options` (by name, as `serve` receives them) back as command-line arguments."""
    argv: list[str] = []
    for param in _command().params:
        value = options.get(param.name or "")
        if value is None or value is False or not param.opts[0].startswith("--"):
            continue
        argv += [param.opts[0]] if value is True else [param.opts[0], str(value)]
    return argv


def server_config(argv: Sequence[str] | None = None) -> CCExecutorConfig:
    """The `CCExecutorConfig` the server runs with, from its command line (see module doc).

    Raises `ConfigError` for an unknown option or a value the option refuses."""
    return _config(_parse(sys.argv[1:] if argv is None else argv))


def _config(options: dict[str, Any]) -> CCExecutorConfig:
    fields: dict[str, Any] = _read_config_file(options["config"]) if options["config"] else {}
    for name in ("cwd", "transcript_dir", "state_dir", "permission_mode", "model", "timeout"):
        value = options[name]
        if value is not None:
            fields[name] = value
    if options.get("prestart") is not None:
        fields["mcp_prestart_pool"] = options["prestart"]
    return CCExecutorConfig(**fields)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it: {exc}", field="config") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"--config {path}: not valid: {exc}", field="config") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--config {path}: must hold a mapping of CCExecutorConfig fields, e.g. "
            '{"permission_mode": "acceptEdits", "max_budget_usd": 5}',
            field="config",
        )
    return data


_PATH_OPTIONS = ("config", "cwd", "transcript_dir", "state_dir")


def client_config(argv: Sequence[str] = ()) -> dict[str, Any]:
    """The ``.mcp.json`` document that starts this server, with the options `argv`,
    from any directory of this machine.

    ``command`` is this interpreter as invoked (absolute, not symlink-resolved, so a
    virtualenv's packages are used); path options are made absolute; ``timeout``
    (milliseconds, Claude Code's limit on one tool call) covers one task's
    `timeout` on every attempt (`num_retries` + 1) and the longest backoffs between
    them, plus a minute. Raises `ConfigError` for options the server would refuse.
    """
    import math

    options = _parse(argv)
    config = _config(options)
    server_args = ["-m", "cc_executor.mcp"]
    for param in _command().params:
        value = options.get(param.name or "")
        if param.name in ("print_config", "help") or value is None or value is False:
            continue
        if param.name in _PATH_OPTIONS:
            value = Path(value).expanduser().absolute()
        server_args += [param.opts[0], str(value)]
    per_attempt = config.timeout if config.timeout != "auto" else config.auto_timeout_max
    attempts = config.num_retries + 1
    seconds = per_attempt * attempts + config.retry_backoff.max * config.num_retries + 60
    entry = {
        "command": str(Path(sys.executable).absolute()),
        "args": server_args,
        "timeout": int(math.ceil(seconds)) * 1000,
    }
    return {"mcpServers": {"cc_executor": entry}}


def _print_config(argv: Sequence[str]) -> None:
    import importlib.util
    import shlex

    if importlib.util.find_spec("mcp") is None:
        raise ModuleNotFoundError(_MISSING_SDK + f" (into {sys.executable})", name="mcp")
    document = client_config(argv)
    entry = document["mcpServers"]["cc_executor"]
    print(json.dumps(document, indent=2), flush=True)
    add = shlex.join(["claude", "mcp", "add-json", "--scope", "project", "cc_executor"])
    print(
        "# Save the JSON above as .mcp.json in your project (or pass it to claude "
        "--mcp-config), or add the same entry with:\n"
        f"{add} {shlex.quote(json.dumps(entry))}\n"
        f"# timeout: {entry['timeout'] // 1000} s for one tool call (a task's timeout on "
        "every attempt, with the waits between them); raise it for long task lists.",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the MCP server over stdio until the client closes it (`python -m cc_executor.mcp`).

    `argv`: the server's options (default: `sys.argv[1:]`); `--help` lists them.
    A bad option or a missing `mcp` package exits with status 2 and a message.
    """
    _command().main(
        args=sys.argv[1:] if argv is None else list(argv), prog_name="python -m cc_executor.mcp"
    )


def _log_to_stderr(level: str, secrets: Secrets) -> None:
    """The library's log (off unless --log-level) on stderr: stdout carries the MCP
    protocol. Every message has `secrets` masked, whatever logged it. The SDK's own
    log (stdlib logging, errors only by default) follows the same level."""
    import logging

    from loguru import logger

    logging.getLogger().setLevel(level)

    def masked(record: Any) -> bool:
        record["message"] = secrets.mask(record["message"])
        return True

    logger.remove()
    logger.add(sys.stderr, level=level, filter=masked)
    logger.enable("cc_executor")
