"""The process layer: spawn the CLI, read its output, watch it, end it and everything it started.

How a task's processes are contained
------------------------------------
The CLI runs each Bash tool command in a session of its own, and a command
left in the background stops being the CLI's descendant once its shell exits.
On Linux the CLI is therefore started under a supervisor (`_contain`,
`_supervisor`): a small process that is a child subreaper for this task only,
so every orphan of the task is re-parented to it, not to pid 1, whatever it
renames itself to, whichever session it moves to and whether or not its
environment can be read. Where the host's cgroup v2 tree is writable the task
also gets a cgroup leaf, and ``cgroup.kill`` ends it atomically. The host
Python process never becomes a subreaper.

Every task's environment also carries a marker,
``CC_EXECUTOR_EXECUTION=<execution_uuid>``: a second net found by reading
every process's environment with psutil (with the CLI's descendants, the only
nets off Linux besides the CLI's process group), and what diagnostics
(`find_marked_processes`) look for. Scans run in a worker thread.

Ending a task: SIGTERM to the CLI (it ends its own tool processes), `kill_grace`
seconds, then the supervisor SIGKILLs everything under the task in a loop until
nothing is left and reaps it; marked processes get SIGKILL too. After a normal
exit, what the task left running gets SIGTERM, a short grace and the same kill
loop, unless ``keep_background_processes``.

If the Python process dies, even by SIGKILL, the supervisor sees its control
socket close (and gets ``PR_SET_PDEATHSIG``) and ends the task's whole tree
within about a second, whatever `kill_grace` is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from ._command import MARKER_VAR, Command
from ._contain import Child, spawn
from ._lines import LineSplitter
from ._log import logger
from .result import StopReason

__all__ = ["CLIProcess", "find_marked_processes", "process_alive"]

_CHUNK = 1 << 20
_STREAM_LIMIT = 1 << 20
MAX_LINE_BYTES = 256 << 20
STDERR_TAIL_BYTES = 64 << 10
_EOF_GRACE = 2.0  # seconds to wait for stdout EOF once the CLI has exited
_SWEEP_GRACE = 1.0  # SIGTERM → SIGKILL for leftovers after a normal exit
_GONE_TIMEOUT = 5.0


class CLIProcess:
    """One running CLI process with its watchdog. Created by `start`."""

    def __init__(self, proc: Child, command: Command, marker: str, *, kill_grace: float) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.containment = proc.containment
        self._command = command
        self._marker = f"{MARKER_VAR}={marker}".encode()
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        # The watch knobs are set by `send`: a pre-started CLI waits without a deadline.
        self._deadline = float("inf")
        self._idle_timeout: float | None = None
        self._kill_grace = kill_grace
        self._result_exit_grace = float("inf")
        self._keep_background = False
        self.last_output = now
        self._with_consumer = False
        self._idle_paused = False
        self._background = False
        self._result_at: float | None = None
        self.stopped_by: StopReason | None = None  # set once, by whoever ends the CLI
        self._stderr = bytearray()
        self._wake: asyncio.Future[None] = self._loop.create_future()
        self._known_pids: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr_reader: asyncio.Task[None] | None = None
        self._sent = False
        self._terminating: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        command: Command,
        stdin: bytes,
        marker: str,
        *,
        timeout: float,
        idle_timeout: float | None,
        kill_grace: float,
        result_exit_grace: float,
        keep_background: bool,
    ) -> CLIProcess:
        """Spawn the CLI and write `stdin` (the prompt) to it at once."""
        self = await cls.spawn(command, marker, kill_grace=kill_grace)
        self.send(
            stdin,
            timeout=timeout,
            idle_timeout=idle_timeout,
            result_exit_grace=result_exit_grace,
            keep_background=keep_background,
        )
        return self

    @classmethod
    async def spawn(cls, command: Command, marker: str, *, kill_grace: float) -> CLIProcess:
        """Spawn the CLI and leave it waiting for its prompt on stdin (a pre-started CLI).

        Its stderr is read from now on; nothing watches it until `send`. OSError if it
        cannot be executed.
        """
        proc = await spawn(command, marker, limit=_STREAM_LIMIT)
        logger.debug("started CLI pid {} in {} ({})", proc.pid, command.cwd, proc.containment)
        self = cls(proc, command, marker, kill_grace=kill_grace)
        self._stderr_reader = asyncio.create_task(self._read_stderr())
        self._tasks = [self._stderr_reader]
        return self

    def write_early(self, data: bytes) -> None:
        """Write the start of the prompt now and keep stdin open (a pre-started CLI
        given no stdin data within 3 s proceeds without a prompt and exits 1; once some
        data came it reads to the end of stdin before it acts on any of it)."""
        stdin = self._proc.stdin
        assert stdin is not None and not self._sent
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(data)

    def send(
        self,
        stdin: bytes,
        *,
        timeout: float,
        idle_timeout: float | None,
        result_exit_grace: float,
        keep_background: bool,
    ) -> None:
        """Write `stdin` (the prompt) and close it; the watchdog and `timeout` (seconds)
        count from now. Once per process."""
        if self._sent:
            raise RuntimeError("the CLI already got its prompt")
        self._sent = True
        now = self._loop.time()
        self._deadline = now + timeout
        self._idle_timeout = idle_timeout
        self._result_exit_grace = result_exit_grace
        self._keep_background = keep_background
        self.last_output = now
        self._tasks += [
            asyncio.create_task(self._write_stdin(stdin)),
            asyncio.create_task(self._watch()),
        ]

    # -- reading ---------------------------------------------------------------

    async def blocks(self) -> AsyncIterator[tuple[bytes, bool]]:
        """Yield `(block, parse)`: `block` is one or more complete lines ending in b"\\n".

        `parse` is False for pieces of a line longer than MAX_LINE_BYTES, which
        are passed on (for the transcript) but not parsed. A line longer than a
        chunk comes alone, a block of its own (see `_lines.LineSplitter`).
        """
        stdout = self._proc.stdout
        assert stdout is not None
        splitter = LineSplitter(MAX_LINE_BYTES)
        warned = False  # about the line over the limit being passed on
        loop_time = self._loop.time
        while True:
            data = await stdout.read(_CHUNK)
            if not data:
                break
            self.last_output = loop_time()
            blocks = splitter.feed(data)
            del data
            if not blocks:
                continue
            # While the consumer handles the block, the CLI may be printing into the
            # pipe unread: that is a slow consumer, not an idle CLI.
            self._with_consumer = True
            while blocks:
                block, parse = blocks.pop(0)  # no reference left here to a long line
                if not parse and not warned:
                    logger.warning("a stdout line exceeds {} bytes; not parsing it", MAX_LINE_BYTES)
                warned = not parse
                yield block, parse
                del block
            self._with_consumer = False
            self.last_output = loop_time()
            if self._idle_paused:
                self._idle_paused = False
                self._poke()
        for block, parse in splitter.end():
            yield block, parse

    async def _read_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        tail = self._stderr
        while data := await stderr.read(_CHUNK):
            tail += data
            if len(tail) > 2 * STDERR_TAIL_BYTES:
                del tail[: len(tail) - STDERR_TAIL_BYTES]

    @property
    def stderr_tail(self) -> str:
        return bytes(self._stderr[-STDERR_TAIL_BYTES:]).decode("utf-8", "replace")

    async def _write_stdin(self, data: bytes) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            stdin.write(data)
            await stdin.drain()
            stdin.close()
            await stdin.wait_closed()
        except (BrokenPipeError, ConnectionResetError) as exc:
            logger.debug("CLI closed stdin early: {}", exc)

    # -- watching --------------------------------------------------------------

    def result_seen(self) -> None:
        """The CLI printed a result: it now has `result_exit_grace` s of silence to exit.

        The grace restarts with every later line, because a CLI with background
        agents prints a second result when they finish; it does not run at all while
        the CLI reports background work pending (`set_background_pending`).
        """
        if self._result_at is None:
            self._result_at = self._loop.time()
            self._poke()

    def set_background_pending(self, pending: bool) -> None:
        """The CLI reports background work pending (True) or none left (False).

        While it is pending the CLI prints nothing on purpose: the idle watchdog and
        the result-exit grace wait; the total timeout still ends the run. Both count
        again from the moment the work ends.
        """
        if pending != self._background:
            self._background = pending
            self.last_output = self._loop.time()
            self._poke()

    def request_stop(self, reason: StopReason) -> None:
        """End the CLI as soon as possible (from the reading side, e.g. on a 401)."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self._poke()

    def _poke(self) -> None:
        if not self._wake.done():
            self._wake.set_result(None)

    async def _watch(self) -> None:
        exited = asyncio.ensure_future(self._proc.wait())
        exited_at: float | None = None
        try:
            while self.stopped_by is None:
                now = self._loop.time()
                checks: list[tuple[float, StopReason | None]] = [(self._deadline, "timeout")]
                if exited_at is None and self._background:
                    pass  # background work pending: only the total timeout applies
                elif exited_at is None:
                    if self._idle_timeout is not None and self._with_consumer:
                        self._idle_paused = True  # re-armed by blocks() when it reads again
                    elif self._idle_timeout is not None:
                        checks.append((self.last_output + self._idle_timeout, "idle_timeout"))
                    if self._result_at is not None:
                        quiet_since = max(self._result_at, self.last_output)
                        checks.append((quiet_since + self._result_exit_grace, "result_no_exit"))
                else:
                    checks.append((exited_at + _EOF_GRACE, None))  # stdout EOF overdue
                when, reason = min(checks, key=lambda check: check[0])
                if now >= when:
                    if reason is None:
                        # The CLI is gone but something still holds its stdout open.
                        logger.warning("stdout still open {}s after the CLI exited", _EOF_GRACE)
                        self._feed_eof()
                        return
                    self.stopped_by = reason
                    break
                if self._wake.done():
                    self._wake = self._loop.create_future()
                waiters: set[asyncio.Future[Any]] = {self._wake}
                if exited_at is None:
                    waiters.add(exited)
                await asyncio.wait(
                    waiters,
                    timeout=when - now,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if exited.done() and exited_at is None:
                    exited_at = self._loop.time()
            logger.info("ending CLI pid {}: {}", self.pid, self.stopped_by)
            await self.terminate()
        finally:
            exited.cancel()

    def _feed_eof(self) -> None:
        if self._proc.stdout is not None:
            self._proc.stdout.feed_eof()

    # -- ending ----------------------------------------------------------------

    def terminate(self) -> asyncio.Task[None]:
        """End the CLI and every process of the task. Idempotent; returns the one task doing it."""
        if self._terminating is None:
            self._terminating = asyncio.ensure_future(self._terminate())
        return self._terminating

    async def _terminate(self) -> None:
        self._known_pids |= await self._scan()
        if self._proc.returncode is None:
            self._proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._proc.wait()), self._kill_grace)
        await self._proc.end_all()
        # The marker is the second net: anything found by it is SIGKILLed too.
        pids = self._known_pids | await self._scan()
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        await self._proc.wait()
        await _wait_gone(pids, _GONE_TIMEOUT)
        self._feed_eof()

    async def wait(self) -> int:
        """Wait for the CLI to exit, end what it left behind, and return its exit code."""
        code = await self._proc.wait()
        if self._terminating is not None or self.stopped_by is not None:
            await self.terminate()
        else:
            await self._sweep_leftovers()
        await self._close_tasks()
        return code

    async def _sweep_leftovers(self) -> None:
        if self._keep_background:
            await self._proc.release()
            kept = await self._scan()
            if kept:
                logger.info("keeping {} background process(es) of the task: {}", len(kept), kept)
            return
        await self._proc.sweep(_SWEEP_GRACE)
        leftovers = await self._scan()  # the marker, for what escaped the supervisor
        if not leftovers:
            return
        logger.info("ending {} process(es) the task left running: {}", len(leftovers), leftovers)
        for pid in leftovers:
            _signal(pid, signal.SIGTERM)
        remaining = await _wait_gone(leftovers, _SWEEP_GRACE)
        remaining |= await self._scan()
        for pid in remaining:
            _signal(pid, signal.SIGKILL)
        await _wait_gone(remaining, _GONE_TIMEOUT)

    async def _close_tasks(self) -> None:
        # The stderr reader gets a moment to take the last bytes after exit.
        if self._stderr_reader is not None:
            await asyncio.wait({self._stderr_reader}, timeout=_EOF_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel-path cleanup: end everything, then close the helper tasks."""
        if self.stopped_by is None:
            self.stopped_by = "cancelled"
        await self.terminate()
        await self._close_tasks()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def _scan(self) -> set[int]:
        """The task's processes other than the CLI, read in a worker thread."""
        return await asyncio.to_thread(self._task_pids)

    def _task_pids(self) -> set[int]:
        pids = find_marked_processes(self._marker)
        if self._proc.returncode is None:
            pids |= _descendants(self.pid)
        pids.discard(self.pid)
        pids.discard(os.getpid())
        return pids - self._proc.own_pids


# -- process table (psutil) -----------------------------------------------------------


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


# psutil reads the process table on every platform it supports (Linux's /proc, macOS's
# sysctl/libproc), so the marker and descendant nets work off Linux too. It is imported
# on first use, never by `import cc_executor`, and every scan runs in a worker thread.


def find_marked_processes(marker: bytes) -> set[int]:
    """Pids of live processes whose environment holds `marker` (b"NAME=value").

    Blocking (it reads every process's environment): call it from a thread in async
    code. Processes of other users, or non-dumpable ones, cannot be read unless root:
    they are not found.
    """
    import psutil

    name, _, value = marker.decode("utf-8", "surrogateescape").partition("=")
    found = set()
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(name) == value and proc.status() not in _GONE:
                found.add(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _descendants(root: int) -> set[int]:
    """Pids of every live descendant of `root` (none if it is gone). Blocking."""
    import psutil

    try:
        return {p.pid for p in psutil.Process(root).children(recursive=True)}
    except (psutil.Error, OSError):
        return set()


def process_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie. Blocking, but one small read."""
    import psutil

    try:
        return psutil.Process(pid).status() not in _GONE
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True  # it exists, we may not read it


_GONE = frozenset({"zombie", "dead"})  # psutil.STATUS_ZOMBIE, STATUS_DEAD


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if process_alive(p)}


async def _wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of `pids` is alive; return those still alive at `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.005
    alive = await asyncio.to_thread(_alive, pids)
    while alive and loop.time() < deadline:
        await asyncio.sleep(delay)  # polling: a non-child's exit cannot be awaited
        delay = min(delay * 2, 0.1)
        alive = await asyncio.to_thread(_alive, alive)
    if alive:
        logger.warning("processes still alive after {}s: {}", timeout, sorted(alive))
    return alive
