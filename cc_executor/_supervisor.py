"""The task supervisor: a small process between the library and the CLI (Linux only).

``_contain.py`` starts this module once per library process as a fork server
(``python -I -S -c <import it; run()> fork-server CHANNEL_FD``: standard library
only, nothing imported from the package). For each task the library sends it
the CLI's argv, env, cwd and four fds; it forks one supervisor, which costs
~1 ms where starting an interpreter per task would cost ~15 ms.

What it does:
- becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): every process the task
  starts stays under it, whatever it renames itself to, however it detaches
  (new session, double fork, ``nohup``) and whether or not its environment is
  readable;
- optionally makes the cgroup v2 leaf the library names and puts the CLI in
  it, so ``cgroup.kill`` ends the whole task in one atomic write;
- forks and execs the CLI with its own stdin/stdout/stderr (the library's
  pipes, inherited: no byte passes through here) and then points its own
  0/1/2 at /dev/null so the library sees EOF when the CLI's side closes;
- talks to the library over its control socket (one end of a socketpair the
  library made for the task), lines of ASCII:

  ==================  =====================================================
  to the library      ``started <cli_pid> <mode> <own_pid>`` | ``error <errno> [cwd]`` |
                      ``nocgroup <errno>`` (the CLI could not join the leaf) |
                      ``exit <code>`` (negative: killed by that signal) |
                      ``done <stuck_count>`` (then it exits)
  from the library    ``term`` (SIGTERM to the CLI) | ``kill`` (end
                      everything now) | ``sweep <grace_s>`` (SIGTERM what is
                      left, `grace_s`, then end everything) | ``keep``
                      (leave what is left running, exit)
  ==================  =====================================================

- when the library goes away (EOF on the control socket; or the fork server,
  which exits on the library's EOF, dies: ``PR_SET_PDEATHSIG`` delivers SIGTERM
  here) it ends the CLI and everything
  under it at once: SIGTERM to the CLI, at most ``_ORPHAN_GRACE`` s, then the kill loop.

Ending is a loop, not a pass: SIGKILL every descendant (and ``cgroup.kill``),
reap, rescan, until it has no child left. A process forked after a scan is
still a descendant (its parent's death hands it to us), so a fork loop
cannot outrun it.
"""

from __future__ import annotations

import ctypes
import errno
import marshal
import os
import select
import signal
import socket
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_ORPHAN_GRACE = 1.0  # s the CLI gets to end its own tools when the library is gone
_KILL_LOOP_LIMIT = 10.0  # s; past this, unkillable processes (other uid, D state) are left
_TICK = 0.02


def _prctl(option: int, value: int) -> int:
    return int(ctypes.CDLL(None).prctl(option, value, 0, 0, 0))


class Supervisor:
    def __init__(self, parent: int, ctrl: int, cgroup: str | None) -> None:
        self.parent = parent
        self.ctrl = ctrl
        self.cgroup = cgroup
        self.cli_pid = 0
        self.cli_code: int | None = None
        self.me = os.getpid()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake = wake_r
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)  # PR_SET_PDEATHSIG, or a kill
        signal.signal(signal.SIGHUP, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    # -- talking ---------------------------------------------------------------

    def send(self, line: str) -> None:
        try:
            os.write(self.ctrl, line.encode() + b"\n")
        except OSError:
            pass  # the library is gone; EOF on read tells the main loop

    # -- starting --------------------------------------------------------------

    def start(self, argv: list[str], env: dict[str, str]) -> bool:
        if self.cgroup is not None:
            try:
                os.mkdir(self.cgroup, 0o755)
            except OSError:
                self.cgroup = None
            else:
                if not os.path.exists(os.path.join(self.cgroup, "cgroup.kill")):  # Linux < 5.14
                    os.rmdir(self.cgroup)
                    self.cgroup = None
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the CLI-to-be
            try:
                os.close(err_r)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != self.me:  # the supervisor died before that took effect
                    os._exit(127)
                os.execvpe(argv[0], argv, env)
            except OSError as exc:
                os.write(err_w, f"errno {exc.errno or 0}\n".encode())
            finally:
                os._exit(127)
        os.close(err_w)
        report = b""
        while chunk := os.read(err_r, 256):
            report += chunk
        os.close(err_r)
        self.cli_pid = pid
        if b"errno" in report:
            code = int(report.split(b"errno ")[1].split()[0])
            os.waitpid(pid, 0)
            if self.cgroup is not None:
                _rmdir(self.cgroup)
            self.cli_code = 127
            self.send(f"error {code}")
            return False
        mode = "subreaper" if self.cgroup is None else "cgroup+subreaper"
        self.send(f"started {pid} {mode} {self.me}")
        if self.cgroup is not None:
            # Moved after exec and after the report rather than before: a first
            # migration waits ~10 ms for an RCU grace period, which the CLI's own
            # start-up (>100 ms before it can run a tool) hides. Anything forked
            # before the move is still ours: the subreaper does not need the cgroup.
            try:
                with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except OSError as exc:
                _rmdir(self.cgroup)
                self.cgroup = None
                if exc.errno != errno.ESRCH:  # not merely a CLI that exited at once
                    self.send(f"nocgroup {exc.errno or 0}")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        return True

    # -- watching --------------------------------------------------------------

    def reap(self) -> bool:
        """Reap every exited child; report the CLI's exit. False when no child is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if pid == self.cli_pid and self.cli_code is None:
                self.cli_code = os.waitstatus_to_exitcode(status)
                self.send(f"exit {self.cli_code}")

    def drain_wake(self) -> None:
        try:
            while os.read(self.wake, 512):
                pass
        except BlockingIOError:
            pass

    def serve(self) -> None:
        buffer = b""
        while True:
            self.reap()
            ready, _, _ = select.select([self.ctrl, self.wake], [], [])
            if self.wake in ready:
                self.drain_wake()
                if os.getppid() != self.parent:  # PR_SET_PDEATHSIG: the library died
                    self.end_all(orphaned=True)
                    return
            if self.ctrl in ready:
                try:
                    data = os.read(self.ctrl, 4096)
                except OSError:
                    data = b""
                if not data:  # the library is gone
                    self.end_all(orphaned=True)
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if self.command(line.decode().split()):
                        return

    def command(self, words: list[str]) -> bool:
        """Act on one line from the library; True when the supervisor is done."""
        if not words:
            return False
        if words[0] == "term":
            if self.cli_code is None:
                _kill(self.cli_pid, signal.SIGTERM)
            return False
        if words[0] == "kill":
            self.end_all()
            return True
        if words[0] == "sweep":
            self.sweep(float(words[1]))
            return True
        if words[0] == "keep":
            self.release()
            return True
        return False

    # -- ending ----------------------------------------------------------------

    def descendants(self) -> set[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(name))
        found: set[int] = set()
        stack = [self.me]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def wait_children(self, timeout: float) -> bool:
        """Reap until no child is left or `timeout` s pass; True if none is left."""
        deadline = time.monotonic() + timeout
        while self.reap():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([self.wake], [], [], min(left, _TICK))
            self.drain_wake()
        return True

    def end_all(self, orphaned: bool = False) -> None:
        """SIGKILL everything under the task until nothing is left, reap it, report, exit."""
        if orphaned and self.cli_code is None:
            _kill(self.cli_pid, signal.SIGTERM)  # the real CLI then ends its own tools
            deadline = time.monotonic() + _ORPHAN_GRACE
            while self.cli_code is None and time.monotonic() < deadline:
                select.select([self.wake], [], [], _TICK)
                self.drain_wake()
                self.reap()
        deadline = time.monotonic() + _KILL_LOOP_LIMIT
        stuck: set[int] = set()
        while self.reap():
            if self.cgroup is not None:
                _write(os.path.join(self.cgroup, "cgroup.kill"), "1")
            stuck = self.descendants()
            for pid in stuck:
                _kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                break
            select.select([self.wake], [], [], _TICK)
            self.drain_wake()
        self.finish(len(stuck) if self.reap() else 0)

    def sweep(self, grace: float) -> None:
        """After a normal exit: SIGTERM what the task left, `grace` s, then end_all."""
        if not self.reap():  # no child left: as a subreaper, no descendant either
            self.finish(0)
            return
        for pid in self.descendants():
            _kill(pid, signal.SIGTERM)
        self.wait_children(grace)
        self.end_all()

    def release(self) -> None:
        """keep_background_processes: leave what is left running, outside our cgroup."""
        if self.cgroup is not None:
            parent = os.path.join(os.path.dirname(self.cgroup), "cgroup.procs")
            for pid in _read_procs(self.cgroup):
                _write(parent, str(pid))
        self.reap()
        if self.cgroup is not None:
            _rmdir(self.cgroup)  # never cgroup.kill here: what is left is to be kept
            self.cgroup = None
        self.finish(0)

    def finish(self, stuck: int) -> None:
        if self.cgroup is not None and not stuck:
            self.remove_cgroup()
        self.send(f"done {stuck}")

    def remove_cgroup(self) -> None:
        """rmdir the leaf; retried for a moment while it still counts as populated."""
        assert self.cgroup is not None
        deadline = time.monotonic() + 1.0
        while True:
            try:
                os.rmdir(self.cgroup)
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return  # the library tries again, and says so
                _write(os.path.join(self.cgroup, "cgroup.kill"), "1")
                time.sleep(_TICK)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError:
        pass


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # still populated: processes we could not kill


def _read_procs(cgroup: str) -> list[int]:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def supervise(parent: int, ctrl: int, request: tuple[list[str], dict[str, str], str, str]) -> int:
    """One task, in a process forked by the fork server: stdio is already the CLI's."""
    argv, env, cwd, cgroup = request
    os.set_inheritable(ctrl, False)  # fds received over a socket are inheritable
    os.setsid()  # Ctrl-C in the host's terminal reaches the host, not the task
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    sup = Supervisor(parent, ctrl, cgroup or None)
    if os.getppid() != parent:  # the fork server died before PDEATHSIG was armed
        return 1
    try:
        os.chdir(cwd)
    except OSError as exc:
        sup.send(f"error {exc.errno or 0} cwd")  # the library names cwd, not the CLI
        return 1
    if not sup.start(argv, env):
        return 0
    try:
        sup.serve()
    except BaseException:  # a bug here must not set the task loose: end it
        sup.end_all()
        raise
    return 0


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def fork_server(channel: int) -> int:
    """Started once per library process: fork one supervisor per request, until EOF.

    A request is an 8-byte length sent with four fds (the CLI's stdin, stdout,
    stderr and the task's control socket), then that many bytes of
    ``marshal.dumps((argv, env, cwd, cgroup_leaf))``.
    """
    me = os.getpid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=channel)
    while True:
        try:
            head, fds, _, _ = socket.recv_fds(sock, 8, 4)
        except OSError:
            return 0
        if not head:  # the library is gone; its supervisors see their own EOF
            return 0
        try:
            request = marshal.loads(_recv_exactly(sock, int.from_bytes(head, "big")))
        except EOFError:
            return 0
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for target, fd in enumerate(fds[:3]):
                    os.dup2(fd, target)
                for fd in fds[:3]:
                    os.close(fd)
                code = supervise(me, fds[3], request)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)


def run() -> None:
    """Entry point (``fork-server CHANNEL_FD``): exit at once, skipping interpreter teardown."""
    os._exit(fork_server(int(sys.argv[2])))


if __name__ == "__main__":
    run()
