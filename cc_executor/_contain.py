"""Containment: start the CLI so that every process of the task can be ended, and end them.

On Linux the CLI runs under a supervisor process (``_supervisor.py``, forked for
each task by a fork server started once per process) that is a child subreaper
for that task only, and, where the host's cgroup v2 tree is
writable (as root, usually), also puts the task in a cgroup leaf of its own with
``cgroup.kill``. The host Python process itself never becomes a subreaper.
Elsewhere (macOS) the CLI is started directly and ended with its process group.

Both shapes give `CLIProcess` the same view (`Child`): the CLI's pid, its pipes
(read directly by the library: the supervisor only passes them on), its exit
code, and three ways to end the task: `end_all`, `sweep`, `release`.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import marshal
import os
import signal
import socket
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Protocol

from ._command import Command
from ._log import logger

__all__ = ["Child", "containment_mode", "spawn"]

_IS_LINUX = sys.platform.startswith("linux")
# Imported from cached bytecode, not run as a script (compiled each time); the
# package directory goes last on the path so nothing in it shadows the stdlib.
_SUPERVISOR = (
    f"import sys; sys.path.append({str(Path(__file__).parent)!r}); "
    "import _supervisor; _supervisor.run()"
)
_SUPERVISOR_LIMIT = 15.0  # s; the supervisor gives up on unkillable processes after 10


class Child(Protocol):
    """The CLI as `CLIProcess` sees it, whatever runs between them."""

    pid: int
    containment: str
    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader

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
        if relative.startswith(".."):  # our cgroup is not under this mount
            continue
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


# The fds of this process's channels to the fork server and to each task's supervisor.
# A child made by os.fork() (multiprocessing's default start method) must not hold
# them: the supervisors watch for their EOF to learn that this process died.
_our_sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()


def _disconnect_in_child() -> None:
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for sock in list(_our_sockets):
        fd = sock.fileno()  # -1 once closed
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.dup2(null, fd)  # the number stays valid for the objects that own it
    os.close(null)
    _our_sockets.clear()
    _ForkServer._current = None


if _IS_LINUX:
    os.register_at_fork(after_in_child=_disconnect_in_child)


class _ForkServer:
    """The one `_supervisor` fork server of this process, started at its first task.

    Not a child of any event loop (each `asyncio.run` has its own): a plain
    `subprocess.Popen`, shared by every loop and thread of the process, and
    started again after `os.fork` or if it died. It exits when this process's
    end of its channel closes, i.e. when this process dies.
    """

    _lock = threading.Lock()
    _current: _ForkServer | None = None

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _SUPERVISOR,
                    "fork-server",
                    str(theirs.fileno()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the tasks
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._owner = os.getpid()
        _our_sockets.add(ours)
        atexit.register(self._stop)

    def _stop(self) -> None:
        """At exit: close the channel (it exits on EOF) and reap it."""
        if self._owner == os.getpid():
            self._sock.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)

    @classmethod
    def request(cls, payload: bytes, fds: list[int]) -> None:
        """Ask for one supervisor; OSError if no fork server can be reached."""
        with cls._lock:
            server = cls._current
            alive = server is not None and server._proc.poll() is None
            if server is None or server._owner != os.getpid() or not alive:
                if server is not None and server._owner == os.getpid():
                    server._sock.close()
                cls._current = server = cls()
            try:
                socket.send_fds(server._sock, [len(payload).to_bytes(8, "big")], fds)
                server._sock.sendall(payload)
            except OSError:  # it died since the check: once more with a new one
                cls._current = server = cls()
                socket.send_fds(server._sock, [len(payload).to_bytes(8, "big")], fds)
                server._sock.sendall(payload)


class _Supervised:
    """The CLI under a supervisor; exit codes and orders travel on a socketpair."""

    def __init__(
        self,
        pipes: tuple[asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamReader],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        started: list[str],
        leaf: str,
    ) -> None:
        self.stdin, self.stdout, self.stderr = pipes
        self._leaf = leaf
        self._reader = reader
        self._writer = writer
        self.pid = int(started[1])
        self.containment = started[2]
        self._sup_pid = int(started[3])
        self._returncode: int | None = None
        self._exited = asyncio.Event()
        self._done = asyncio.Event()
        self._listener = asyncio.create_task(self._listen())

    @classmethod
    async def start(cls, command: Command, marker: str, *, limit: int) -> _Supervised:
        cgroup = _cgroup_dir()
        leaf = os.path.join(cgroup, f"cc-executor-{marker}") if cgroup else ""
        payload = marshal.dumps((list(command.argv), dict(command.env), str(command.cwd), leaf))
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        ours, theirs = socket.socketpair()
        try:
            _ForkServer.request(payload, [stdin_r, stdout_w, stderr_w, theirs.fileno()])
        except BaseException:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            ours.close()
            raise
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
            theirs.close()
        _our_sockets.add(ours)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            pipes = await _connect_pipes(stdin_w, stdout_r, stderr_r, limit)
            started = (await reader.readline()).decode().split()
        except BaseException:
            writer.close()  # EOF: the supervisor ends whatever it started
            raise
        if len(started) == 4 and started[0] == "started":
            return cls(pipes, reader, writer, started, leaf)
        writer.close()
        pipes[0].close()
        if len(started) in (2, 3) and started[0] == "error":
            errno = int(started[1])
            failed = str(command.cwd) if started[2:] == ["cwd"] else command.argv[0]
            raise OSError(errno, os.strerror(errno), failed)
        raise OSError("the task supervisor failed to start")

    async def _listen(self) -> None:
        try:
            while line := await self._reader.readline():
                words = line.decode().split()
                if words[:1] == ["exit"]:
                    self._returncode = int(words[1])
                    self._exited.set()
                elif words[:1] == ["nocgroup"]:
                    self.containment = "subreaper"
                    errno = int(words[1])
                    logger.warning(
                        "task pid {}: no cgroup leaf ({}); the subreaper alone contains it",
                        self.pid,
                        os.strerror(errno),
                    )
                elif words[:1] == ["done"]:
                    if words[1] != "0":
                        logger.warning("{} process(es) of the task could not be ended", words[1])
                    self._done.set()  # it exits now; no need to wait for that
        finally:
            # EOF: the supervisor is done, or was killed (then the CLI got SIGKILL).
            if self._returncode is None:
                self._returncode = -signal.SIGKILL
            self._exited.set()
            self._done.set()

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def own_pids(self) -> set[int]:
        return {self._sup_pid}

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
            logger.warning("the task supervisor pid {} did not finish; killing it", self._sup_pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._sup_pid, signal.SIGKILL)
            await self._done.wait()
        self._writer.close()  # the listener then reads EOF and ends
        await asyncio.wait({self._listener}, timeout=1)
        self._listener.cancel()
        if self._leaf:  # normally gone already; the supervisor may have been killed
            try:
                os.rmdir(self._leaf)
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("cannot remove the task's cgroup {}: {}", self._leaf, exc)

    async def end_all(self) -> None:
        """SIGKILL the CLI and everything under it until nothing is left."""
        await self._finish("kill")

    async def sweep(self, grace: float) -> None:
        """After the CLI exited: SIGTERM what it left, `grace` s, then `end_all`."""
        await self._finish(f"sweep {grace}")

    async def release(self) -> None:
        """Leave what the task left running (keep_background_processes)."""
        await self._finish("keep")


async def _connect_pipes(
    stdin_w: int, stdout_r: int, stderr_r: int, limit: int
) -> tuple[asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamReader]:
    """Asyncio streams over our ends of the CLI's pipes (what create_subprocess_exec makes)."""
    loop = asyncio.get_running_loop()

    async def read_end(fd: int) -> asyncio.StreamReader:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", buffering=0))
        return reader

    stdout, stderr = await read_end(stdout_r), await read_end(stderr_r)
    # A StreamReaderProtocol, as asyncio's own subprocess streams use: it gives the
    # writer drain() and wait_closed().
    protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop)
    transport, _ = await loop.connect_write_pipe(
        lambda: protocol, os.fdopen(stdin_w, "wb", buffering=0)
    )
    return asyncio.StreamWriter(transport, protocol, None, loop), stdout, stderr


class _Direct:
    """The CLI started directly (no /proc, no subreaper): ended with its process group."""

    containment = "process-group"

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin and proc.stdout and proc.stderr
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
