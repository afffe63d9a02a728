"""`cc-execute doctor`: can this machine run tasks? One `Check` per requirement, rendered
from the probes in `_health` (which the MCP status tool renders too).

Each check says what it found and, when it fails, the fix. Secrets are never
read into the output: an API key is reported as set or not, a login as the
file that holds it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Literal

from ._command import INSTALL_CLI, describe_tested_clis, provider_name
from ._health import probe_auth, probe_cli, probe_state_store, probe_transcript_dir
from ._statestore import move_aside_command
from .config import CCExecutorConfig

__all__ = ["Check", "auth_source", "run_checks"]

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def run_checks(config: CCExecutorConfig, environ: dict[str, str] | None = None) -> list[Check]:
    env = dict(os.environ if environ is None else environ)
    return [
        check_cli(config, env),
        check_auth(env),
        check_transcript_dir(config),
        check_state_store(config),
        check_platform(),
    ]


def check_cli(config: CCExecutorConfig, env: dict[str, str]) -> Check:
    install = INSTALL_CLI
    probe = probe_cli(config, env)
    if probe.path is None:
        exc = probe.not_found
        assert exc is not None
        detail = "not found in " + "; ".join(exc.searched) if exc.searched else str(exc)
        return Check("claude CLI", "fail", detail, f"{exc.fix or install}, or set $CC_EXECUTOR_CLI")
    if probe.version is None:
        return Check("claude CLI", "fail", f"{probe.path}: `--version` {probe.error}", install)
    path, version = probe.path, probe.version
    tested = f"tested: {describe_tested_clis()}"
    if probe.tested == "tested":
        return Check("claude CLI", "ok", f"{path} · {version}, a tested version ({tested})")
    if probe.tested == "older":
        return Check(
            "claude CLI",
            "warn",
            f"{path} · {version}, older than every tested version ({tested})",
            install,
        )
    return Check(
        "claude CLI",
        "ok",
        f"{path} · {version}, not a tested version ({tested}); newer CLIs usually work",
    )


def auth_source(env: dict[str, str]) -> str | None:
    """Where the CLI would find credentials, in words; None when it would find none."""
    source = probe_auth(env)
    if source is None:
        return None
    if source.kind == "provider":
        return (
            f"{provider_name(source.name)} (${source.name}); its credentials are checked by the CLI"
        )
    if source.kind == "variable":
        return f"${source.name} is set"
    if source.kind == "login":
        return f"logged-in session ({source.name})"
    # Tasks load no settings file unless asked (setting_sources, docs/options.md).
    return (
        f"apiKeyHelper in {source.name}: tasks use it only with setting_sources=['user'] "
        "or settings={'apiKeyHelper': ...}"
    )


def check_auth(env: dict[str, str]) -> Check:
    source = auth_source(env)
    if source is not None:
        return Check("authentication", "ok", source)
    if sys.platform == "darwin":
        return Check(
            "authentication",
            "warn",
            "no API key set; a login may be in the macOS keychain (not checked)",
            "if tasks fail with AuthenticationError: run `claude` and /login",
        )
    return Check(
        "authentication",
        "fail",
        "no API key set and no logged-in session",
        "export ANTHROPIC_API_KEY=…, or run `claude` once and /login "
        "(to try without an account: `cc-execute demo`, or `cc-execute scripted-model`)",
    )


def check_transcript_dir(config: CCExecutorConfig) -> Check:
    probe = probe_transcript_dir(config, create=False)
    directory = probe.path
    fix = "set $CC_EXECUTOR_TRANSCRIPT_DIR (or transcript_dir=) to a writable folder"
    if probe.state == "disabled":
        return Check("transcripts", "ok", "disabled (save_transcript=False)")
    if probe.state == "writable":
        return Check("transcripts", "ok", f"{directory} is writable")
    if probe.state == "creatable":
        return Check("transcripts", "ok", f"{directory} will be created on the first run")
    if probe.state == "not_writable":
        return Check("transcripts", "fail", f"{directory} is not writable: {probe.error}", fix)
    return Check("transcripts", "fail", f"{directory} cannot be created in {probe.parent}", fix)


def check_state_store(config: CCExecutorConfig) -> Check:
    probe = probe_state_store(config, create=False)
    path = probe.path
    if probe.state == "disabled":
        return Check("state store", "ok", "disabled (state_dir=None): no journal, no history")
    fix = f"check the permissions of {path}, or move it away (a new one is created)"
    if probe.state == "creatable":
        return Check("state store", "ok", f"{path} will be created on the first run")
    if probe.state == "not_creatable":
        return Check("state store", "fail", f"{path} cannot be created in {probe.parent}", fix)
    if probe.error is not None:
        exc, cause = probe.error.__cause__, probe.error.cause
        if cause == "corrupt" and path is not None:
            fix = f"move it aside (a new one is created): {move_aside_command(path)}"
        return Check("state store", "fail", f"{path} cannot be read: {cause}: {exc}", fix)
    return Check(
        "state store",
        "ok",
        f"{path}: {probe.runs} task-list run(s), {probe.records} history record(s)",
    )


def check_platform() -> Check:
    if sys.platform.startswith("linux"):
        from ._contain import containment_mode

        mode = containment_mode()
        how = "a cgroup leaf + a subreaper" if mode == "cgroup+subreaper" else "a subreaper"
        return Check(
            "platform", "ok", f"Linux: every process a task starts is contained ({how}) and ended"
        )
    return Check(
        "platform",
        "warn",
        f"{sys.platform}: only the CLI's process group is ended when a task ends",
        "run on Linux for full process tracking (docs/processes.md)",
    )
