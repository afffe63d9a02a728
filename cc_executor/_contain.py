"""Containment: start the CLI so that every process of the task can be ended, and end them.

On Linux the CLI runs under a supervisor process (``_supervisor.py``) that is a
child subreaper for that task only, and, where the host's cgroup v2 tree is
writable (as root, usually), also puts the task in a cgroup leaf of its own with
``cgroup.kill``. The host Python process itself never becomes a subreaper.
Elsewhere (macOS) the CLI is started directly and ended with its process group.

Both shapes give `CLIProcess` the same view (`Child`): the CLI's pid, its pipes
(read directly by the library: the supervisor only passes them on), its exit
code, and three ways to end the task: `end_all`, `sweep`, `release`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Protocol

from ._command import Command
from ._log import logger

__all__ = ["Child", "containment_mode", "spawn"]

_IS_LINUX = sys.platform.startswith("linux")
# Imported (so from cached bytecode), not run as a script (compiled every time).
_SUPERVISOR = (
    f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}]; "
    "import _supervisor; _supervisor.run()"
)
_SUPERVISOR_LIMIT = 15.0  # s; the supervisor gives up on unkillable processes after 10


class Child(Protocol):
    """The CLI as `CLIProcess` sees it, whatever runs between them."""

    pid: int
    containment: str
    stdin: asyncio.StreamWriter | None
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    @property
    def returncode(self) -> int | None: ...

    @property
    def own_pids(self) -> set[int]: ...

    async def wait(self) -> int: ...

    def terminate(self) -> None: ...

    async def end_all(self) -> None: ...

    async def sweep(self, grace: float) -> None: ...

    async def release(self) -> None: ...


@functools.lru_cache(maxsize=1)
def _cgroup_dir() -> str | None:
    """This process's cgroup v2 directory if a leaf with cgroup.kill can be made in it."""
    if not _IS_LINUX:
        return None
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line[3:].strip() for line in f if line.startswith("0::"))
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except (OSError, StopIteration):
        return None
    for fields in mounts:
        sep = fields.index("-")
        if fields[sep + 1] != "cgroup2":
            continue
        root, mount_point = fields[3], fields[4]
        relative = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
        directory = os.path.normpath(os.path.join(mount_point, relative))
        probe = os.path.join(directory, f"cc-executor-probe-{os.getpid()}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        try:
            usable = os.path.exists(os.path.join(probe, "cgroup.kill"))
        finally:
            os.rmdir(probe)
        if usable:
            return directory
    return None


def containment_mode() -> str:
    """What will hold the next task: "cgroup+subreaper", "subreaper" or "process-group"."""
    if not _IS_LINUX:
        return "process-group"
    return "cgroup+subreaper" if _cgroup_dir() is not None else "subreaper"


async def spawn(command: Command, marker: str, *, limit: int) -> Child:
    """Start the CLI for one task; OSError if it cannot be executed."""
    if not _IS_LINUX:
        return await _Direct.start(command, limit=limit)
    return await _Supervised.start(command, marker, limit=limit)


class _Supervised:
    """The CLI under `_supervisor.py`; exit codes and orders travel on a socketpair."""

    def __init__(
        self,
        sup: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pid: int,
        containment: str,
    ) -> None:
        self._sup = sup
        self._reader = reader
        self._writer = writer
        self.pid = pid
        self.containment = containment
        self.stdin = sup.stdin
        self.stdout = sup.stdout
        self.stderr = sup.stderr
        self._returncode: int | None = None
        self._exited = asyncio.Event()
        self._done = asyncio.Event()
        self._listener = asyncio.create_task(self._listen())

    @classmethod
    async def start(cls, command: Command, marker: str, *, limit: int) -> _Supervised:
        ours, theirs = socket.socketpair()
        cgroup = _cgroup_dir()
        leaf = os.path.join(cgroup, f"cc-executor-{marker}") if cgroup else "-"
        try:
            sup = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                "-c",
                _SUPERVISOR,
                str(os.getpid()),
                str(theirs.fileno()),
                leaf,
                "--",
                *command.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=command.cwd,
                env=command.env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the task
                pass_fds=(theirs.fileno(),),
                limit=limit,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            first = (await reader.readline()).decode().split()
        except BaseException:
            writer.close()  # EOF: the supervisor ends whatever it started
            raise
        if len(first) == 3 and first[0] == "started":
            return cls(sup, reader, writer, int(first[1]), first[2])
        writer.close()
        await sup.wait()
        if len(first) == 2 and first[0] == "error":
            errno = int(first[1])
            raise OSError(errno, os.strerror(errno), command.argv[0])
        raise OSError(f"the task supervisor failed to start (exit {sup.returncode})")

    async def _listen(self) -> None:
        try:
            while line := await self._reader.readline():
                words = line.decode().split()
                if words[:1] == ["exit"]:
                    self._returncode = int(words[1])
                    self._exited.set()
                elif words[:1] == ["done"]:
                    if words[1] != "0":
                        logger.warning("{} process(es) of the task could not be ended", words[1])
        finally:
            # EOF: the supervisor is done, or was killed (then the CLI got SIGKILL).
            code = await self._sup.wait()
            if self._returncode is None:
                self._returncode = code
            self._exited.set()
            self._done.set()

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def own_pids(self) -> set[int]:
        return {self._sup.pid}

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._returncode is not None
        return self._returncode

    def _order(self, line: str) -> None:
        if not self._writer.is_closing():
            with contextlib.suppress(OSError):
                self._writer.write(line.encode() + b"\n")

    def terminate(self) -> None:
        self._order("term")

    async def _finish(self, line: str) -> None:
        self._order(line)
        try:
            await asyncio.wait_for(asyncio.shield(self._done.wait()), _SUPERVISOR_LIMIT)
        except asyncio.TimeoutError:
            logger.warning("the task supervisor pid {} did not finish; killing it", self._sup.pid)
            with contextlib.suppress(ProcessLookupError):
                self._sup.kill()
            await self._done.wait()
        self._writer.close()

    async def end_all(self) -> None:
        """SIGKILL the CLI and everything under it until nothing is left."""
        await self._finish("kill")

    async def sweep(self, grace: float) -> None:
        """After the CLI exited: SIGTERM what it left, `grace` s, then `end_all`."""
        await self._finish(f"sweep {grace}")

    async def release(self) -> None:
        """Leave what the task left running (keep_background_processes)."""
        await self._finish("keep")


class _Direct:
    """The CLI started directly (no /proc, no subreaper): ended with its process group."""

    containment = "process-group"

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @classmethod
    async def start(cls, command: Command, *, limit: int) -> _Direct:
        proc = await asyncio.create_subprocess_exec(
            *command.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=command.cwd,
            env=command.env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the CLI
            limit=limit,
        )
        return cls(proc)

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    @property
    def own_pids(self) -> set[int]:
        return set()

    async def wait(self) -> int:
        return await self._proc.wait()

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()

    async def end_all(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
                self._proc.kill()
        await self._proc.wait()

    async def sweep(self, grace: float) -> None:
        pass  # CLIProcess's marker sweep is all there is here

    async def release(self) -> None:
        pass
