"""Config → command line + environment. Pure functions: no process is started here."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
_ALWAYS_SECRET = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
# Inherited variables are masked only when long enough to be a credential, so a
# stray KEY=1 in the environment does not blank every "1" of a transcript.
_MIN_INHERITED_SECRET_LEN = 8


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    secrets: tuple[str, ...]

    def masked_argv(self) -> list[str]:
        return [mask(arg, self.secrets) for arg in self.argv]


# The one command that installs the pinned CLI where `find_cli` looks, without root.
INSTALL_CLI = f"npm install -g --prefix ~/.local @anthropic-ai/claude-code@{PINNED_CLI_VERSION}"


def find_cli(
    config: CCExecutorConfig,
    environ: Mapping[str, str] | None = None,
    *,
    executable: str | None = None,
) -> str:
    """The `claude` executable to run, as an absolute path.

    Looked up in this order; the first hit wins:

    1. `cli_path`, then ``$CC_EXECUTOR_CLI``: when one is set it must be an
       executable (a path, or a name on PATH), else `CLINotFoundError` at once;
    2. ``claude`` on ``$PATH``;
    3. ``claude`` beside the Python interpreter as invoked (``sys.executable``,
       not symlink-resolved), so a CLI linked into a virtualenv's ``bin/`` is
       found without activating it (``make install`` links it there);
    4. the places Claude Code's installers use: ``~/.claude/local/claude``,
       ``~/.local/bin/claude``, and ``bin/claude`` under npm's global prefix
       (``$NPM_CONFIG_PREFIX``, ``prefix=`` in ``~/.npmrc``, else the folder
       above ``node``'s; read from files, npm is never run).

    `environ` (default `os.environ`) gives ``PATH``, ``HOME`` and the
    variables above; `executable` defaults to `sys.executable`.

    Raises:
        CLINotFoundError: nothing found; its message and `searched` list every
            place looked at, and `fix` is the command that installs the CLI.
    """
    environ = os.environ if environ is None else environ
    for source, candidate in (
        ("cli_path", str(config.cli_path) if config.cli_path else None),
        ("CC_EXECUTOR_CLI", environ.get("CC_EXECUTOR_CLI")),
    ):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path.absolute())
            found = shutil.which(candidate, path=environ.get("PATH"))
            if found:
                return str(Path(found).absolute())
            raise CLINotFoundError(
                f"The Claude Code CLI given by {source} ({candidate}) does not exist or is not "
                f"executable. Fix the path, or unset it and install the CLI: {INSTALL_CLI}",
                searched=(f"{source}: {candidate}",),
                fix=INSTALL_CLI,
            )
    searched = ["cli_path: not set", "$CC_EXECUTOR_CLI: not set"]
    path_var = environ.get("PATH", "")
    found = shutil.which("claude", path=path_var)
    if found:
        return str(Path(found).absolute())
    searched.append(f"$PATH: {path_var or '(empty)'}")
    for where, place in _install_places(environ, executable or sys.executable):
        if place is not None and place.is_file() and os.access(place, os.X_OK):
            return str(place.absolute())
        searched.append(f"{where}: {place if place is not None else 'unknown'}")
    listing = "".join(f"\n  - {place}" for place in searched)
    raise CLINotFoundError(
        f"The Claude Code CLI (`claude`) was not found. Looked in:{listing}\n"
        f"Install it with: {INSTALL_CLI}\n"
        "(or point cli_path= / $CC_EXECUTOR_CLI at an installed `claude`)",
        searched=tuple(searched),
        fix=INSTALL_CLI,
    )


def _install_places(environ: Mapping[str, str], executable: str) -> list[tuple[str, Path | None]]:
    """Where the CLI is found when it is not on PATH: (what the place is, the file)."""
    home = Path(environ["HOME"]) if environ.get("HOME") else None
    places: list[tuple[str, Path | None]] = []
    if executable:
        # Not resolved: `.venv/bin/python` is a symlink to the base interpreter, and
        # the CLI linked into the venv sits beside the link.
        places.append(
            ("beside the Python interpreter", Path(executable).absolute().parent / "claude")
        )
    places.append(("Claude Code's local install", home / ".claude/local/claude" if home else None))
    places.append(("~/.local/bin", home / ".local/bin/claude" if home else None))
    prefix = _npm_global_prefix(environ, home)
    places.append(("npm's global prefix", prefix / "bin/claude" if prefix else None))
    return places


def _npm_global_prefix(environ: Mapping[str, str], home: Path | None) -> Path | None:
    """npm's global prefix as npm itself would choose it, read without running npm.

    ``$npm_config_prefix`` (any case), else ``prefix=`` in ``~/.npmrc``, else the
    folder above the one holding ``node`` (npm's built-in default on POSIX).
    """
    for name, value in environ.items():
        if name.lower() == "npm_config_prefix" and value:
            return Path(value).expanduser()
    if home is not None:
        try:
            npmrc = (home / ".npmrc").read_text(encoding="utf-8", errors="replace")
        except OSError:
            npmrc = ""
        for line in npmrc.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "prefix" and value.strip():
                return Path(value.strip().strip("\"'").replace("${HOME}", str(home))).expanduser()
    node = shutil.which("node", path=environ.get("PATH"))
    return Path(node).resolve().parent.parent if node else None


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
        secrets=secret_values(config.env, environ),
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


def secret_values(extra_env: Mapping[str, str], environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values that must never reach a transcript, longest first."""
    found: set[str] = set()
    for name, value in extra_env.items():
        if value and (name in _ALWAYS_SECRET or _SECRET_NAME.search(name)):
            found.add(value)
    for name, value in environ.items():
        if not value:
            continue
        if name in _ALWAYS_SECRET or (
            _SECRET_NAME.search(name) and len(value) >= _MIN_INHERITED_SECRET_LEN
        ):
            found.add(value)
    return tuple(sorted(found, key=len, reverse=True))


MASK = "[REDACTED]"


def mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_bytes(data: bytes, secrets: tuple[bytes, ...]) -> bytes:
    for secret in secrets:
        if secret in data:
            data = data.replace(secret, MASK.encode())
    return data


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
    for name in _ALWAYS_SECRET:
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
