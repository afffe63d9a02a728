"""The MCP server's command line: options → `CCExecutorConfig`, the `.mcp.json` entry,
and `main` (`python -m cc_executor.mcp`). See the package docstring for where options
come from."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from .._secrets import Secrets, find_secrets
from ..config import CCExecutorConfig, PermissionMode
from ..errors import ConfigError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = ["client_config", "create_server", "main", "server_config"]

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cc_executor.mcp",
        description=(
            "cc_executor's MCP server over stdio: run Claude Code tasks in fresh instances "
            "for an orchestrating agent. Options not given here keep the library's defaults."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="JSON or YAML mapping of CCExecutorConfig fields (the flags below override it)",
    )
    parser.add_argument(
        "--cwd",
        type=Path,
        metavar="DIR",
        help="where tasks run (default: the current directory); a tool call's cwd must be "
        "inside it",
    )
    parser.add_argument(
        "--transcript-dir",
        type=Path,
        metavar="DIR",
        help="transcripts (default: $CC_EXECUTOR_TRANSCRIPT_DIR, else the --cwd project's "
        "folder in $CC_EXECUTOR_HOME or the per-user state directory)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="task-list journal and execution history (default: the --cwd project's folder "
        "in $CC_EXECUTOR_HOME or the per-user state directory)",
    )
    parser.add_argument(
        "--permission-mode",
        choices=get_args(PermissionMode),
        help="the CLI's permission mode for every task (default: acceptEdits)",
    )
    parser.add_argument("--model", help="model for every task unless a call names one")
    parser.add_argument(
        "--prestart",
        type=int,
        metavar="N",
        dest="mcp_prestart_pool",
        help="keep N Claude Code CLIs pre-started for execute_task calls with the server's "
        "options (each ~120 MB while idle; default 0: none)",
    )
    parser.add_argument(
        "--timeout", metavar="SECONDS", help='default timeout per task, or "auto" (default: 3600)'
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the .mcp.json that starts this server with these options on this machine "
        "(stdout; the equivalent `claude mcp add-json` line on stderr) and exit",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="write cc_executor's log at this level to stderr, which MCP clients keep in "
        "their own log files (default: no log; secrets are masked in it either way)",
    )
    return parser


def server_config(argv: Sequence[str] | None = None) -> CCExecutorConfig:
    """The `CCExecutorConfig` the server runs with, from its command line (see module doc)."""
    return _config(_parser().parse_args(argv))


def _config(args: argparse.Namespace) -> CCExecutorConfig:
    fields: dict[str, Any] = _read_config_file(args.config) if args.config else {}
    for name in (
        "cwd",
        "transcript_dir",
        "state_dir",
        "permission_mode",
        "model",
        "timeout",
        "mcp_prestart_pool",
    ):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
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

    args = _parser().parse_args(argv)
    config = _config(args)
    server_args = ["-m", "cc_executor.mcp"]
    for action in _parser()._actions:
        name = action.dest
        if name in ("help", "print_config") or not action.option_strings:
            continue
        value = getattr(args, name)
        if value is None or value == action.default:
            continue
        if name in _PATH_OPTIONS:
            value = Path(value).expanduser().absolute()
        server_args += [action.option_strings[0], str(value)]
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
    args = _parser().parse_args(argv)
    if args.print_config:
        try:
            _print_config(sys.argv[1:] if argv is None else argv)
        except (ConfigError, ModuleNotFoundError) as exc:
            print(f"cc_executor.mcp: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    try:
        config = _config(args)
        server = create_server(config)
    except (ConfigError, ModuleNotFoundError) as exc:
        print(f"cc_executor.mcp: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.log_level is not None:
        _log_to_stderr(args.log_level, find_secrets(config))
    server.run("stdio")


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
