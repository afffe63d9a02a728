"""Config → command line + environment. Pure functions: no process is started here."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._secrets import ALWAYS_SECRET, Secrets, find_secrets
from ._structured import schema_arg
from .config import CCExecutorConfig
from .errors import CLINotFoundError, ConfigError

# Every process a task starts inherits this variable; it is how the process layer
# finds them again, wherever they were re-parented to (see _process.py).
MARKER_VAR = "CC_EXECUTOR_EXECUTION"

PINNED_CLI_VERSION = "2.1.328"

# The CLI's own API retries (it reports each as system/api_retry). Set from
# `cli_max_retries` unless `env` names it explicitly.
CLI_RETRIES_VAR = "CLAUDE_CODE_MAX_RETRIES"


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    secrets: Secrets

    def masked_argv(self) -> list[str]:
        return [self.secrets.mask(arg) for arg in self.argv]


def find_cli(config: CCExecutorConfig, environ: Mapping[str, str] | None = None) -> str:
    """`cli_path`, then $CC_EXECUTOR_CLI, then `claude` on PATH."""
    environ = os.environ if environ is None else environ
    for source, candidate in (
        ("cli_path", str(config.cli_path) if config.cli_path else None),
        ("CC_EXECUTOR_CLI", environ.get("CC_EXECUTOR_CLI")),
    ):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            found = shutil.which(candidate, path=environ.get("PATH"))
            if found:
                return found
            raise CLINotFoundError(
                f"The Claude Code CLI given by {source} ({candidate}) does not exist or is not "
                f"executable. Fix the path, or install the CLI: "
                f"npm install -g @anthropic-ai/claude-code@{PINNED_CLI_VERSION}"
            )
    found = shutil.which("claude", path=environ.get("PATH"))
    if found:
        return found
    raise CLINotFoundError(
        "The Claude Code CLI (`claude`) was not found on PATH. Install it with "
        f"`npm install -g @anthropic-ai/claude-code@{PINNED_CLI_VERSION}`, or point "
        "cli_path= or $CC_EXECUTOR_CLI at the executable."
    )


def build_command(
    config: CCExecutorConfig,
    execution_uuid: str,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
) -> Command:
    environ = os.environ if environ is None else environ
    cli = find_cli(config, environ)
    cwd = (config.cwd or Path.cwd()).absolute()
    if not cwd.is_dir():
        raise ConfigError(
            f"cwd {str(cwd)!r} is not an existing directory; create it or pass another cwd",
            field="cwd",
        )
    env = {k: v for k, v in environ.items() if k != "CLAUDECODE"}
    if config.cli_max_retries is not None and CLI_RETRIES_VAR not in config.env:
        env[CLI_RETRIES_VAR] = str(config.cli_max_retries)
    env.update(config.env)
    env[MARKER_VAR] = execution_uuid
    _check_root_bypass(config, env, os.geteuid() if euid is None else euid)
    return Command(
        argv=[cli, *build_args(config)],
        env=env,
        cwd=cwd,
        secrets=find_secrets(config, environ),
    )


def build_args(config: CCExecutorConfig) -> list[str]:
    args = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
    args += ["--permission-mode", config.permission_mode]
    optional: list[tuple[str, object]] = [
        ("--model", config.model),
        ("--fallback-model", config.fallback_model_arg()),
        ("--max-turns", config.max_turns),
        ("--max-budget-usd", config.max_budget_usd),
        ("--system-prompt", config.system_prompt),
        ("--append-system-prompt", config.append_system_prompt),
        ("--mcp-config", config.mcp_config_arg()),
        ("--resume", config.resume),
        ("--json-schema", schema_arg(config)),
    ]
    for flag, value in optional:
        if value is not None:
            args += [flag, str(value)]
    # Variadic flags take one value each time, so a tool name can never be
    # mistaken for the prompt or the next flag.
    for tool in config.allowed_tools or ():
        args += ["--allowedTools", tool]
    for tool in config.disallowed_tools or ():
        args += ["--disallowedTools", tool]
    for directory in config.add_dirs:
        args += ["--add-dir", str(Path(directory).absolute())]
    args += config.extra_args
    return args


def _check_root_bypass(config: CCExecutorConfig, env: Mapping[str, str], euid: int) -> None:
    bypass = config.permission_mode == "bypassPermissions" or (
        "--dangerously-skip-permissions" in config.extra_args
    )
    if bypass and euid == 0 and env.get("IS_SANDBOX") != "1":
        raise ConfigError(
            "permission_mode='bypassPermissions' is refused by the CLI when running as root. "
            "Run as a normal user, or — only inside a sandbox you trust — opt in with "
            "env={'IS_SANDBOX': '1'}, or use a narrower mode such as 'acceptEdits' with "
            "allowed_tools.",
            field="permission_mode",
        )


def session_saved(session_id: str, config: CCExecutorConfig) -> bool:
    """Whether the CLI keeps session `session_id` on this machine, so `--resume` can work:
    its transcript ``<config dir>/projects/<project>/<session id>.jsonl``. A CLI that died
    before saving the session named in its init line leaves none."""
    env = {**os.environ, **config.env}
    root = env.get("CLAUDE_CONFIG_DIR") or os.path.join(env.get("HOME") or "~", ".claude")
    projects = Path(root).expanduser() / "projects"
    return any(projects.glob(f"*/{session_id}.jsonl"))


@dataclass(frozen=True)
class AuthSource:
    """Where the CLI will find credentials; never their value."""

    kind: Literal["provider", "variable", "login", "api_key_helper"]
    name: str
    """The provider switch's or variable's name, or the path of the file that holds it."""


_PROVIDERS = {
    "CLAUDE_CODE_USE_BEDROCK": "Amazon Bedrock",
    "CLAUDE_CODE_USE_VERTEX": "Google Vertex AI",
    "CLAUDE_CODE_USE_FOUNDRY": "Microsoft Foundry",
}


def provider_name(switch: str) -> str:
    return _PROVIDERS[switch]


def find_auth(env: Mapping[str, str]) -> AuthSource | None:
    """The credentials the CLI would use with `env`, in its own order: a cloud provider
    switch, then a key or token variable, then a logged-in session, then an apiKeyHelper."""
    for switch in _PROVIDERS:
        if env.get(switch, "").strip().lower() not in ("", "0", "false", "no", "off"):
            return AuthSource("provider", switch)
    for name in ALWAYS_SECRET:
        if env.get(name, "").strip():
            return AuthSource("variable", name)
    config_dir = Path(env.get("CLAUDE_CONFIG_DIR") or Path(env.get("HOME", "~"), ".claude"))
    config_dir = config_dir.expanduser()
    if _has_key(config_dir / ".credentials.json", "claudeAiOauth"):
        return AuthSource("login", str(config_dir / ".credentials.json"))
    if _has_key(config_dir / "settings.json", "apiKeyHelper"):
        return AuthSource("api_key_helper", str(config_dir / "settings.json"))
    return None


def _has_key(path: Path, key: str) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get(key))
