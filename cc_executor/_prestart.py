"""Pre-started CLIs: a task list spawns step N+1's CLI while step N runs.

The CLI spends ~0.25-0.4 s starting (Node, settings, MCP configuration) before it
reads its prompt from stdin. A CLI spawned early and left waiting on stdin answers
that much sooner once the prompt is written, and it still answers correctly after
waiting minutes. What it read at start must still hold when the prompt is written,
so a pre-started CLI is used only if, when its step begins:

- it is still waiting (it did not exit);
- the step's command is the same: argv, environment and cwd, rebuilt from the
  step's final config with the pre-started CLI's execution id;
- no file it may have read at start changed (`watched_paths`: ``.claude/`` and
  ``.mcp.json`` of cwd and of every folder above it, the user settings when
  `setting_sources` has ``user``, the managed settings, files named on argv):
  compared by content (size and SHA-256; mtime for files over 1 MiB), and by the
  previous step's verified file changes;

otherwise it is ended and the step starts a fresh CLI. ``CLAUDE.md`` is read only
after the prompt arrives, so it needs no check.

A pre-started CLI belongs to the step it is for: it runs under that step's
execution id (its marker, its supervisor and cgroup leaf), its transcript header
says when it was spawned (`TaskResult.prestarted_at`), and whoever holds it ends it
(`Prestarted.aclose`) unless the step's run took it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ._command import Command, arg_files, build_command
from ._log import logger
from ._process import CLIProcess
from .config import CCExecutorConfig

__all__ = [
    "PrestartPool",
    "Prestarted",
    "Prestarter",
    "fingerprint",
    "prestart",
    "watched_paths",
]

# A CLI pre-started without knowing its prompt (a pool) reads it as one stream-json user
# message: in that input mode the CLI waits for its first message however long it takes.
STREAM_JSON_INPUT = ("--input-format", "stream-json")

# Folders of the CLI's own state inside a config folder (~/.claude): it writes them on
# every run, and never reads them as configuration at start.
_CLI_STATE_DIRS = frozenset(
    {
        "projects",
        "todos",
        "shell-snapshots",
        "statsig",
        "session-env",
        "file-history",
        "debug",
        "plans",
        "ide",
        "logs",
        "cache",
        "telemetry",
    }
)
_MANAGED = {
    "linux": ("/etc/claude-code/managed-settings.json", "/etc/claude-code/managed-mcp.json"),
    "darwin": (
        "/Library/Application Support/ClaudeCode/managed-settings.json",
        "/Library/Application Support/ClaudeCode/managed-mcp.json",
    ),
}
# Flags whose value is a file (or folder) the CLI reads at start.
_FILE_FLAGS = frozenset(
    {
        "--settings",
        "--mcp-config",
        "--agents",
        "--system-prompt-file",
        "--append-system-prompt-file",
        "--plugin-dir",
    }
)
_HASH_MAX = 1 << 20
_TREE_MAX = 2000  # files per watched folder; beyond it the folder counts as changed

FileState = tuple[int, int, str] | None
"""(size, mtime_ns or 0, SHA-256 or "") of a file; None when it does not exist."""


def config_dir(env: dict[str, str]) -> Path:
    """The CLI's config folder for `env`: $CLAUDE_CONFIG_DIR, else $HOME/.claude."""
    if env.get("CLAUDE_CONFIG_DIR"):
        return Path(env["CLAUDE_CONFIG_DIR"]).expanduser()
    return Path(env.get("HOME") or "~", ".claude").expanduser()


def watched_paths(command: Command, config: CCExecutorConfig) -> tuple[list[Path], list[Path]]:
    """What a CLI started with `command` may read as configuration at start:
    (files, folders). Folders are watched whole, bar the CLI's own state folders."""
    files: list[Path] = []
    folders: list[Path] = []
    user_dir = config_dir(command.env).absolute()
    if "user" in config.setting_sources:
        files += [user_dir / "settings.json", user_dir / "settings.local.json"]
    files += [Path(p) for p in _MANAGED.get(sys.platform, ())]
    for folder in (command.cwd, *command.cwd.parents):
        files.append(folder / ".mcp.json")
        dot_claude = folder / ".claude"
        if dot_claude == user_dir:
            files += [dot_claude / "settings.json", dot_claude / "settings.local.json"]
        elif folder == command.cwd:
            folders.append(dot_claude)
        else:
            files += [dot_claude / "settings.json", dot_claude / "settings.local.json"]
    placeholders = {index for index, _ in command.files}
    for i, arg in enumerate(command.argv[:-1]):
        if arg in _FILE_FLAGS and i + 1 not in placeholders:
            path = Path(command.argv[i + 1])
            if not command.argv[i + 1].lstrip().startswith(("{", "[")):
                path = path if path.is_absolute() else command.cwd / path
                (folders if path.is_dir() else files).append(path)
    return files, folders


def fingerprint(files: Iterable[Path], folders: Iterable[Path]) -> dict[str, FileState]:
    """The state of each file, and of every file under each folder (blocking: run it
    in a thread). Equal fingerprints: the CLI would read the same configuration."""
    state: dict[str, FileState] = {}
    for path in files:
        state[str(path)] = _file_state(path)
    for folder in folders:
        count = 0
        state[str(folder)] = (0, 0, "folder") if folder.is_dir() else None
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in _CLI_STATE_DIRS)
            for name in sorted(names):
                count += 1
                if count > _TREE_MAX:
                    state[str(folder)] = (count, 0, "too many files")  # never equal twice
                    state[str(folder) + "#nonce"] = (0, 0, uuid.uuid4().hex)
                    break
                path = Path(root, name)
                state[str(path)] = _file_state(path)
            if count > _TREE_MAX:
                break
    return state


def _file_state(path: Path) -> FileState:
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size > _HASH_MAX or not os.path.isfile(path):
        return (st.st_size, st.st_mtime_ns, "")
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return (st.st_size, st.st_mtime_ns, "")
    return (st.st_size, 0, digest)


@dataclass
class Prestarted:
    """A CLI spawned ahead of its prompt, for one task (its execution id)."""

    execution_uuid: str
    command: Command
    """As `build_command` made it (file arguments not yet written)."""
    spawned_at: datetime
    watched: tuple[list[Path], list[Path]]
    before: dict[str, FileState]
    head: bytes
    """What the CLI got on stdin already: the first character of its prompt (b"" in
    stream-json input mode)."""
    stream_json: bool = False
    """Started with `STREAM_JSON_INPUT`: the prompt goes as one user message."""
    process: CLIProcess | None = None
    files: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """The CLI's argument files: they live as long as the process."""
    discarded: str | None = None
    """Why it was not used (then `process` is ended), or None."""
    taken: bool = False
    """The step's run took it over: it ends the process, not the holder."""

    def fits(self, prompt: str) -> bool:
        """Whether `prompt` starts with what the CLI got already (`head`)."""
        return encode_prompt(prompt).startswith(self.head)

    def rest(self, prompt: str) -> bytes:
        """What is left to write to the CLI's stdin for `prompt` (then stdin is closed)."""
        if self.stream_json:
            message = {"type": "user", "message": {"role": "user", "content": prompt}}
            return encode_prompt(json.dumps(message, ensure_ascii=False) + "\n")
        return encode_prompt(prompt)[len(self.head) :]

    def same_command(self, config: CCExecutorConfig) -> str | None:
        """Which part of the command a task with `config` would run differs, or None."""
        command = _with_input_mode(build_command(config, self.execution_uuid), self.stream_json)
        for what, now, then in (
            ("cwd", command.cwd, self.command.cwd),
            ("argv", command.argv, self.command.argv),
            ("argument files", command.files, self.command.files),
            ("environment", command.env, self.command.env),
        ):
            if now != then:
                return f"the step's {what} changed"
        return None

    async def check(
        self, config: CCExecutorConfig, prompt: str, changed: Sequence[Path] = ()
    ) -> str | None:
        """Why this CLI cannot run `prompt` with `config` now, or None if it can.

        `changed`: absolute paths the step before changed (its verified file changes).
        """
        if not self.fits(prompt):
            return "the step's prompt changed"
        differs = self.same_command(config)
        if differs is not None:
            return differs
        return await self.stale(changed)

    async def stale(self, changed: Sequence[Path] = ()) -> str | None:
        """Why what the CLI read at start may have changed since (or it exited), or None."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            code = proc.returncode if proc is not None else None
            return f"the pre-started CLI exited while waiting (exit code {code})"
        files, folders = self.watched
        for path in changed:
            if path in files or any(path == d or d in path.parents for d in folders):
                return f"the step before changed {path}"
        after = await asyncio.to_thread(fingerprint, files, folders)
        if after != self.before:
            names = sorted(
                k for k in after.keys() | self.before.keys() if after.get(k) != self.before.get(k)
            )
            return f"{names[0].removesuffix('#nonce')} changed since the CLI was started"
        return None

    async def aclose(self) -> None:
        """End the CLI (and everything of its task) unless a run took it over. Idempotent."""
        if self.taken:
            return
        self.taken = True
        try:
            if self.process is not None:
                await self.process.aclose()
        finally:
            self.files.close()


def encode_prompt(prompt: str) -> bytes:
    """The bytes of `prompt` on the CLI's stdin."""
    return prompt.encode("utf-8", "surrogateescape")


def _with_input_mode(command: Command, stream_json: bool) -> Command:
    if not stream_json:
        return command
    return dataclasses.replace(command, argv=[*command.argv, *STREAM_JSON_INPUT])


async def prestart(config: CCExecutorConfig, prompt: str | None) -> Prestarted:
    """Spawn the CLI for a task with `config`, waiting for `prompt` on stdin: it gets
    the prompt's first character now (so that it waits), the rest when the task starts.
    `prompt=None` (not known yet): the CLI reads it in stream-json input mode.

    Raises what `build_command` raises (ConfigError, CLINotFoundError) and OSError
    when the CLI cannot be executed; nothing is left running then.
    """
    execution_uuid = str(uuid.uuid4())
    command = _with_input_mode(build_command(config, execution_uuid), prompt is None)
    watched = watched_paths(command, config)
    # Taken before the spawn: whatever changes after it, the CLI may have read.
    before = await asyncio.to_thread(fingerprint, *watched)
    pre = Prestarted(
        execution_uuid=execution_uuid,
        command=command,
        spawned_at=datetime.now(timezone.utc),
        watched=watched,
        before=before,
        head=encode_prompt(prompt[:1]) if prompt is not None else b"",
        stream_json=prompt is None,
    )
    try:
        resolved = pre.files.enter_context(arg_files(command))
        pre.spawned_at = datetime.now(timezone.utc)
        pre.process = await CLIProcess.spawn(resolved, execution_uuid, kill_grace=config.kill_grace)
    except BaseException:
        pre.files.close()
        raise
    if pre.head:
        pre.process.write_early(pre.head)
    logger.debug("pre-started CLI pid {} for execution {}", pre.process.pid, execution_uuid)
    return pre


class Prestarter:
    """The one CLI a task list keeps pre-started: for the step after the running one.

    `begin(index, config)` spawns it in the background; `take(index, config, changed)`
    hands it to step `index` when it may be used (else ends it and returns the
    discarded one, for the transcript, or None when none was started); `aclose` ends
    whatever is still held. Every path out of the list calls `aclose`.
    """

    def __init__(self) -> None:
        self._index: int | None = None
        self._spawning: asyncio.Task[Prestarted] | None = None

    def begin(self, index: int, config: CCExecutorConfig, prompt: str) -> None:
        if self._spawning is not None:
            raise RuntimeError("a pre-started CLI is held already")
        self._index = index
        self._spawning = asyncio.ensure_future(prestart(config, prompt))

    async def take(
        self, index: int, config: CCExecutorConfig, prompt: str, changed: Sequence[Path] = ()
    ) -> Prestarted | None:
        """The pre-started CLI for step `index`: usable (`discarded` None: the caller's run
        takes it over, and the caller still calls its `aclose` afterwards, a no-op then),
        discarded (ended; `discarded` says why), or None."""
        spawning, self._spawning = self._spawning, None
        if spawning is None or self._index != index:
            if spawning is not None:
                await _end(spawning)
            return None
        try:
            pre = await spawning
        except Exception as exc:  # a fresh start will meet the same error and report it
            logger.info("pre-starting the CLI of step {} failed: {}", index + 1, exc)
            return None
        try:
            reason = await pre.check(config, prompt, changed)
        except BaseException:
            await pre.aclose()
            raise
        if reason is not None:
            logger.info("step {}: not using its pre-started CLI: {}", index + 1, reason)
            await pre.aclose()
            pre.discarded = reason
        return pre

    async def aclose(self) -> None:
        """End the pre-started CLI not handed out, if any. Safe to call on every path."""
        spawning, self._spawning = self._spawning, None
        if spawning is not None:
            await _end(spawning)


class PrestartPool:
    """Up to `size` CLIs pre-started with one config, for single tasks run with it (the
    MCP server's `execute_task`). Their prompt is not known in advance, so they read it in
    stream-json input mode. `take(config)` hands out one whose command is the task's and
    whose start-up reads still hold (stale ones are ended), and starts a replacement;
    `aclose` ends them all.
    """

    def __init__(self, config: CCExecutorConfig, size: int) -> None:
        self.config = config
        self.size = size
        self._members: list[asyncio.Task[Prestarted]] = []
        self._closed = False

    def fill(self) -> None:
        """Start spawning members until there are `size`."""
        self._members = [m for m in self._members if not _failed(m)]
        while not self._closed and len(self._members) < self.size:
            self._members.append(asyncio.ensure_future(prestart(self.config, None)))

    async def take(self, config: CCExecutorConfig) -> Prestarted | None:
        """A ready member for a task with `config`, or None (the task starts its own CLI)."""
        for member in list(self._members):
            if not member.done() or _failed(member):
                continue
            pre = member.result()
            if pre.same_command(config) is not None:
                return None  # another command: the members stay for tasks that fit
            self._members.remove(member)
            reason = await pre.stale()
            if reason is None:
                self.fill()
                return pre
            logger.info("ending a pooled pre-started CLI: {}", reason)
            await pre.aclose()
        self.fill()
        return None

    async def aclose(self) -> None:
        self._closed = True
        members, self._members = self._members, []
        for member in members:
            await _end(member)


def _failed(member: asyncio.Task[Prestarted]) -> bool:
    if not member.done():
        return False
    if member.cancelled() or member.exception() is not None:
        return True
    return False


async def _end(spawning: asyncio.Task[Prestarted]) -> None:
    """End a pre-start, finished or not: cancel the spawn, then end what it started.
    Callers that may be cancelled wrap it in `_run.uncancellable`."""
    spawning.cancel()  # nothing if it finished
    (outcome,) = await asyncio.gather(spawning, return_exceptions=True)
    if isinstance(outcome, Prestarted):
        await outcome.aclose()
