"""Config → command line + environment. Pure functions: no process is started here.

What the CLI cannot take is refused here, before anything starts (`ConfigError`): a blank
prompt or one holding lone surrogates, a `cwd` the process cannot enter, an argument or
variable over the kernel's 128 KiB per-string limit. Two kinds of value never go on argv
(readable by every user in ``/proc/<pid>/cmdline``, and limited in size): structured
config that can hold secrets (`mcp_servers` / `mcp_config`, `settings`, `agents`, and JSON
given to ``--mcp-config``, ``--settings`` or ``--agents`` in `extra_args`; the pinned CLI
reads each from a file under ``-p``), and system prompts too big for argv.
They are `FileArg` s: `arg_files` writes them to 0600 files for the run and removes them
after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
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
"""The CLI version the project installs and CI tests against (the Makefile reads it here)."""

TESTED_CLI_VERSIONS: tuple[str, ...] = (PINNED_CLI_VERSION, "2.1.332")
"""Every CLI version the whole real-CLI suite passed on: the pinned one, then the newest
known good (`make test-latest`). `cc-execute doctor` reports against this list."""

# The CLI's own API retries (it reports each as system/api_retry). Set from
# `cli_max_retries` unless `env` names it explicitly.
CLI_RETRIES_VAR = "CLAUDE_CODE_MAX_RETRIES"


def cli_tested_status(version: str) -> Literal["tested", "older", "untested"]:
    """Whether CLI `version` ("2.1.332") is one of `TESTED_CLI_VERSIONS`, older than all
    of them, or another (newer, or between two tested ones)."""
    if version in TESTED_CLI_VERSIONS:
        return "tested"
    if _version_key(version) < min(_version_key(v) for v in TESTED_CLI_VERSIONS):
        return "older"
    return "untested"


def describe_tested_clis() -> str:
    """`TESTED_CLI_VERSIONS` in words: "2.1.328 (pinned), 2.1.332"."""
    return ", ".join(f"{v} (pinned)" if v == PINNED_CLI_VERSION else v for v in TESTED_CLI_VERSIONS)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


# Linux's limit on one argv or environment string (MAX_ARG_STRLEN, 32 pages), NUL included.
ARG_STRLEN_MAX = 128 * 1024
# A system prompt bigger than this goes through the CLI's --*-system-prompt-file flag, so
# that a few big values together stay well inside the ~2 MB total of argv + environment.
_ARGV_VALUE_MAX = 32 * 1024
# Flags whose value, when too big for argv, the CLI also reads from a file.
_FILE_FORMS = {
    "--system-prompt": "--system-prompt-file",
    "--append-system-prompt": "--append-system-prompt-file",
}
# Flags that take a JSON string or a file path: JSON can hold secrets (an MCP server's
# `env`, an apiKeyHelper), so it always goes through a file.
_JSON_OR_FILE_FLAGS = ("--mcp-config", "--settings", "--agents")


@dataclass(frozen=True)
class FileArg:
    """An argument the CLI reads from a file: `content` is written to a 0600 file named
    `name` for the run (`arg_files`), and argv gets the file's path."""

    name: str
    content: str

    def __str__(self) -> str:
        return f"<temp file {self.name}, {len(self.content)} chars>"


@dataclass(frozen=True)
class Command:
    """What `_process` runs. `argv[i]` for each `i` in `files` is a placeholder until
    `arg_files` gives the command with the files written."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    secrets: Secrets
    files: tuple[tuple[int, FileArg], ...] = ()

    def masked_argv(self) -> list[str]:
        return [self.secrets.mask(arg) for arg in self.argv]


# The CLI's own temporary folder (default $TMPDIR): it leaves `claude-<uid>/` (probe
# and per-project folders) and `cc-socks/` there after every run.
CLI_TMPDIR_VAR = "CLAUDE_CODE_TMPDIR"


@contextlib.contextmanager
def arg_files(command: Command) -> Iterator[Command]:
    """`command` with each `FileArg` written to a 0600 file in a new 0700 directory
    (``$TMPDIR/cc_executor-*``), which is also the CLI's own temporary folder
    (``CLAUDE_CODE_TMPDIR``, unless the environment names one), so nothing the run
    wrote there outlives it: the directory is removed when the block exits, however it
    exits. When no directory can be made and there are no file arguments, `command`
    itself."""
    try:
        directory = tempfile.mkdtemp(prefix="cc_executor-")
    except OSError as exc:
        if not command.files:
            yield command
            return
        raise _temp_error(exc) from exc
    try:
        env = command.env
        if CLI_TMPDIR_VAR not in env:
            env = {**env, CLI_TMPDIR_VAR: directory}
        argv = list(command.argv)
        for index, file in command.files:
            path = os.path.join(directory, file.name)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with open(fd, "w", encoding="utf-8") as f:
                    f.write(file.content)
            except OSError as exc:
                raise _temp_error(exc) from exc
            argv[index] = path
        yield dataclasses.replace(command, argv=argv, env=env, files=())
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _temp_error(exc: OSError) -> ConfigError:
    return ConfigError(
        f"Cannot write the CLI's argument files (0600, removed after the run) in "
        f"{tempfile.gettempdir()!r}: {exc}. Point $TMPDIR at a writable folder."
    )


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
    check_cwd(cwd)
    env = {k: v for k, v in environ.items() if k != "CLAUDECODE"}
    if config.cli_max_retries is not None and CLI_RETRIES_VAR not in config.env:
        env[CLI_RETRIES_VAR] = str(config.cli_max_retries)
    env.update(config.env)
    env[MARKER_VAR] = execution_uuid
    _check_root_bypass(config, env, os.geteuid() if euid is None else euid)
    args = build_args(config)
    argv = [cli, *(str(arg) for arg in args)]
    _check_sizes(argv, env, config.env)
    return Command(
        argv=argv,
        env=env,
        cwd=cwd,
        secrets=find_secrets(config, environ),
        files=tuple((i + 1, arg) for i, arg in enumerate(args) if isinstance(arg, FileArg)),
    )


def check_cwd(cwd: Path) -> None:
    """Raise `ConfigError(field="cwd")` unless the CLI can run in `cwd`: an existing
    directory this process may enter."""
    if not cwd.is_dir():
        what = "does not exist" if not cwd.exists() else "is not a directory"
        raise ConfigError(f"cwd {str(cwd)!r} {what}; create it or pass another cwd", field="cwd")
    effective = os.access in os.supports_effective_ids
    if not os.access(cwd, os.X_OK, effective_ids=effective):
        raise ConfigError(
            f"cwd {str(cwd)!r} cannot be entered by this user (no search permission on it); "
            "fix its permissions (chmod u+rx) or pass another cwd",
            field="cwd",
        )


def spawn_error(exc: OSError, command: Command) -> Exception:
    """The typed error for a CLI that could not be started: `ConfigError` when the
    command line or environment is too big for the kernel (E2BIG) or `cwd` cannot be
    entered, `CLINotFoundError` when the executable cannot run, else `exc` itself."""
    if exc.errno == errno.E2BIG:
        sizes = [
            (len(_os_bytes(arg)) + 1, f"argument {_describe(command.argv, i)}")
            for i, arg in enumerate(command.argv)
        ]
        sizes += [(len(_os_bytes(f"{k}={v}")) + 1, f"${k}") for k, v in command.env.items()]
        sizes.sort(reverse=True)
        biggest = ", ".join(f"{what} ({size} bytes)" for size, what in sizes[:3])
        return ConfigError(
            f"The CLI's command line and environment are too big for the OS to start it "
            f"(E2BIG: {sum(size for size, _ in sizes)} bytes in all; Linux allows 128 KiB "
            f"per string and about a quarter of the stack limit in total). Largest: "
            f"{biggest}. Make them smaller: long text belongs in the prompt (sent on "
            "stdin), not in env or extra_args.",
            field="env" if sizes[0][1].startswith("$") else "extra_args",
        )
    if exc.filename is not None and os.fspath(exc.filename) == str(command.cwd):
        return ConfigError(
            f"cwd {str(command.cwd)!r} cannot be entered: {exc.strerror}; create it, fix its "
            "permissions, or pass another cwd",
            field="cwd",
        )
    if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP):
        return CLINotFoundError(
            f"Could not start the Claude Code CLI {command.argv[0]!r}: {exc}. Check that it "
            "is an executable `claude` (cli_path / $CC_EXECUTOR_CLI)."
        )
    return exc


def _os_bytes(text: str) -> bytes:
    return text.encode(sys.getfilesystemencoding(), "surrogateescape")


def _describe(argv: Sequence[str], index: int) -> str:
    if index == 0:
        return "0 (the CLI's path)"
    if argv[index - 1].startswith("-"):
        return f"of {argv[index - 1]}"
    return repr(argv[index][:40])


# The config field behind each flag build_args sets from one (for errors that name it).
_FLAG_FIELDS = {"--json-schema": "json_schema", "--resume": "resume", "--model": "model"}


def _check_sizes(argv: Sequence[str], env: Mapping[str, str], own_env: Mapping[str, str]) -> None:
    """Refuse a string the kernel would refuse (E2BIG): one argument or variable over
    128 KiB. The total is left to the kernel (`spawn_error` names the largest parts)."""
    if not sys.platform.startswith("linux"):  # the per-string limit is Linux's
        return
    for i, arg in enumerate(argv):
        size = len(_os_bytes(arg)) + 1
        if size > ARG_STRLEN_MAX:
            before = argv[i - 1] if i > 0 else ""
            flag = before if before.startswith("-") else arg.split("=", 1)[0][:40]
            raise ConfigError(
                f"The value of {flag} is {size} bytes: over the 128 KiB the OS allows for one "
                "command-line argument (E2BIG). Make it smaller, or put long text in the "
                "prompt (sent on stdin).",
                field=_FLAG_FIELDS.get(flag, "extra_args"),
            )
    for name, value in env.items():
        size = len(_os_bytes(f"{name}={value}")) + 1
        if size > ARG_STRLEN_MAX:
            where = "in env=" if name in own_env else "inherited from this process"
            raise ConfigError(
                f"The environment variable ${name} ({where}) is {size} bytes: over the "
                "128 KiB the OS allows for one variable (E2BIG). Make it smaller or leave it "
                "out (env={..}); pass long text in the prompt.",
                field="env",
            )


def build_args(config: CCExecutorConfig) -> list[str | FileArg]:
    """The CLI's arguments after its path. Values that must not be on argv are `FileArg`.

    Each option becomes the flag `docs/options.md` lists. An id is one ``--flag=<id>``
    token, so a value starting with ``-`` can never be read as a flag.
    """
    args: list[str] = ["-p", "--output-format", "stream-json", "--verbose"]
    args += ["--include-partial-messages", "--permission-mode", config.permission_mode]
    # Always given: () loads no settings file, so the run does not depend on ~/.claude.
    args.append(f"--setting-sources={','.join(config.setting_sources)}")
    optional: list[tuple[str, object]] = [
        ("--model", config.model),
        ("--fallback-model", config.fallback_model_arg()),
        ("--max-turns", config.max_turns),
        ("--max-budget-usd", config.max_budget_usd),
        ("--system-prompt", config.system_prompt),
        ("--append-system-prompt", config.append_system_prompt),
        ("--mcp-config", config.mcp_config_arg()),
        ("--settings", _json_or_path(config.settings)),
        ("--agents", json.dumps(config.agents) if config.agents is not None else None),
        ("--effort", config.effort),
        ("--max-thinking-tokens", config.max_thinking_tokens),
        ("--json-schema", schema_arg(config)),
    ]
    for flag, value in optional:
        if value is not None:
            args += [flag, str(value)]
    if config.resume is not None:
        args.append(f"--resume={config.resume}")
    # A retry resuming the session this config named is that session already.
    if config.session_id is not None and config.session_id != config.resume:
        args.append(f"--session-id={config.session_id}")
    switches = [
        ("--continue", config.continue_conversation),
        ("--fork-session", config.fork_session),
        ("--strict-mcp-config", config.strict_mcp_config),
    ]
    args += [flag for flag, on in switches if on]
    if config.tools is not None:
        names = config.tools if isinstance(config.tools, tuple) else (config.tools,)
        args.append(f"--tools={','.join(names)}")
    # Variadic flags take one value each time, so a tool name can never be
    # mistaken for the prompt or the next flag.
    for tool in config.allowed_tools or ():
        args += ["--allowedTools", tool]
    for tool in config.disallowed_tools or ():
        args += ["--disallowedTools", tool]
    for directory in config.add_dirs:
        args += ["--add-dir", str(Path(directory).absolute())]
    for plugin in config.plugins:
        args += ["--plugin-dir", str(plugin)]
    args += config.extra_args
    return _to_files(args)


def _json_or_path(value: str | Path | dict[str, object] | None) -> str | None:
    """A dict as JSON text; a JSON text or a file's path as given."""
    if value is None:
        return None
    return json.dumps(value) if isinstance(value, dict) else str(value)


def _to_files(args: list[str]) -> list[str | FileArg]:
    """Move into `FileArg` s the values that must not be on argv: JSON for a flag that also
    takes a file (it can hold secrets), a system prompt too big for argv."""
    out: list[str | FileArg] = []
    flag: str | None = None
    for arg in args:
        if flag is None and arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
            if name in _JSON_OR_FILE_FLAGS or name in _FILE_FORMS:
                out.append(name)
                arg, flag = value, name
        if flag in _JSON_OR_FILE_FLAGS and arg.lstrip().startswith(("{", "[")):
            out.append(FileArg(f"{flag.lstrip('-')}.json", arg))
        elif flag in _FILE_FORMS and len(arg.encode("utf-8", "surrogatepass")) > _ARGV_VALUE_MAX:
            out[-1] = _FILE_FORMS[flag]
            out.append(FileArg(f"{flag.lstrip('-')}.txt", arg))
        else:
            out.append(arg)
        flag = arg if flag is None and (arg in _JSON_OR_FILE_FLAGS or arg in _FILE_FORMS) else None
    return out


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
