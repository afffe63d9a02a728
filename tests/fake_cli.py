#!/usr/bin/env python3
"""A stand-in for `claude` that misbehaves on purpose, for faults the real CLI
will not produce on demand. The behaviour is chosen by $FAKE_CLI_MODE; pids of
the processes it starts are written to $FAKE_CLI_PIDFILE (one per line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

MODE = os.environ.get("FAKE_CLI_MODE", "ok")
PIDFILE = os.environ.get("FAKE_CLI_PIDFILE")
SESSION = "fake-session-1"


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def init() -> None:
    emit({"type": "system", "subtype": "init", "session_id": SESSION, "model": "fake", "tools": []})


def result(text: str = "done", **extra: object) -> None:
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": text,
            "session_id": SESSION,
            "num_turns": 1,
            "total_cost_usd": 0.001,
            **extra,
        }
    )


def record_pid(pid: int) -> None:
    if PIDFILE:
        with open(PIDFILE, "a") as f:
            f.write(f"{pid}\n")


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


def spawn_stubborn_child(new_session: bool) -> int:
    """A child that ignores SIGTERM, like a tool process that will not stop."""
    code = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        start_new_session=new_session,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record_pid(child.pid)
    return child.pid


def spawn_orphan() -> int:
    """A background process whose parent exits at once, so it is re-parented (like `cmd &`)."""
    code = (
        "import os,subprocess,sys,time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(p.pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    record_pid(pid)
    return pid


def main() -> None:
    prompt = sys.stdin.read()
    record_pid(os.getpid())
    if os.environ.get("FAKE_CLI_ENV_LOG"):  # the trace context each run was given
        with open(os.environ["FAKE_CLI_ENV_LOG"], "a") as f:
            f.write(json.dumps({"TRACEPARENT": os.environ.get("TRACEPARENT")}) + "\n")
    if MODE == "ok":
        init()
        result(f"echo:{prompt}")
    elif MODE == "echo_env":
        init()
        result(
            json.dumps(
                {
                    "argv": sys.argv[1:],
                    "prompt": prompt,
                    "CLAUDECODE": os.environ.get("CLAUDECODE"),
                    "EXTRA": os.environ.get("FAKE_EXTRA"),
                    "secret": os.environ.get("FAKE_API_KEY"),
                }
            )
        )
    elif MODE == "hang_silent":
        init()
        sleep_forever()
    elif MODE == "hang_after_result":
        init()
        result("the answer")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sleep_forever()
    elif MODE == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        init()
        sleep_forever()
    elif MODE == "crash_mid_stream":
        init()
        emit({"type": "stream_event", "event": {"type": "message_start"}, "session_id": SESSION})
        sys.stderr.write("fatal: something broke\n")
        sys.stderr.flush()
        os._exit(3)
    elif MODE == "garbage_lines":
        init()
        sys.stdout.buffer.write(b"this is not json\n")
        sys.stdout.buffer.write(b'{"type": "assistant", "trunc\n')
        sys.stdout.buffer.write(b"\xff\xfe invalid utf-8 \xc3\x28\n")
        sys.stdout.buffer.write(b'{"type": "brand_new_type", "x": 1}\n')
        sys.stdout.buffer.flush()
        result("survived")
    elif MODE == "garbage_secret":
        # A non-JSON stdout line holding the secret (logged, and kept in the transcript).
        init()
        for name in ("FAKE_API_KEY", "FAKE_DB_PASSWORD"):
            secret = os.environ.get(name, "")
            sys.stdout.buffer.write(f"not json: {secret}\n".encode())
        result("done")
    elif MODE == "big_line":
        size = int(os.environ.get("FAKE_CLI_BYTES", str(100 * 1024 * 1024)))
        init()
        result("x" * size)
    elif MODE == "long_line_secret":
        # One long result line with the secret every 65,521 bytes, written in pieces.
        size = int(os.environ.get("FAKE_CLI_BYTES", str(3 << 20)))
        secret = os.environ.get("FAKE_API_KEY", "")
        filler = "y" * (65521 - len(secret))
        text = ((filler + secret) * (size // 65521 + 1))[:size]
        line = json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "result": text,
                "session_id": SESSION,
                "num_turns": 1,
            }
        )
        init()
        out = sys.stdout.buffer
        data = (line + "\n").encode()
        for start in range(0, len(data), 100_000):
            out.write(data[start : start + 100_000])
            out.flush()
    elif MODE == "long_lines":
        # Stream events between lines of several MB, each written in pieces.
        size = int(os.environ.get("FAKE_CLI_BYTES", str(3 << 20)))
        init()
        out = sys.stdout.buffer
        for i in range(6):
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"delta {i}"},
            }
            emit({"type": "stream_event", "event": delta, "session_id": SESSION})
            if i in (1, 3):
                big = {
                    "type": "user",
                    "message": {"role": "user", "content": "u" * size},
                    "session_id": SESSION,
                }
                data = (json.dumps(big) + "\n").encode()
                for start in range(0, len(data), 300_000):
                    out.write(data[start : start + 300_000])
                    out.flush()
        result("z" * size)
    elif MODE == "flood":
        # Many ordinary lines: a partial-message stream of `total` bytes.
        total = int(os.environ.get("FAKE_CLI_BYTES", str(50 * 1024 * 1024)))
        line = (
            json.dumps(
                {
                    "type": "stream_event",
                    "event": {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "lorem ipsum dolor sit amet " * 4},
                    },
                    "session_id": SESSION,
                    "parent_tool_use_id": None,
                    "uuid": "8233247e-e294-4c4e-82cd-6190841f98e3",
                }
            )
            + "\n"
        ).encode()
        block = line * max(1, (1 << 20) // len(line))
        init()
        written = 0
        out = sys.stdout.buffer
        while written < total:
            out.write(block)
            written += len(block)
        out.flush()
        result("flooded")
    elif MODE == "stderr_flood":
        init()
        chunk = b"E" * 65536 + b"\n"
        for _ in range(int(os.environ.get("FAKE_CLI_STDERR_MB", "20")) * 16):
            sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.write(b"last stderr line\n")
        sys.stderr.buffer.flush()
        result("ok despite stderr")
    elif MODE == "stubborn_child_then_hang":
        spawn_stubborn_child(new_session=True)
        init()
        sleep_forever()
    elif MODE == "orphan_then_exit":
        spawn_orphan()
        init()
        result("left something running")
    elif MODE == "orphan_then_hang":
        spawn_orphan()
        init()
        sleep_forever()
    elif MODE == "success_then_exit_2":
        init()
        result("claims success")
        sys.exit(2)
    elif MODE == "auth_retries":
        init()
        for attempt in range(1, 11):
            emit(
                {
                    "type": "system",
                    "subtype": "api_retry",
                    "attempt": attempt,
                    "max_retries": 10,
                    "retry_delay_ms": 500,
                    "error_status": 401,
                    "error": "authentication_failed",
                    "session_id": SESSION,
                }
            )
            time.sleep(10)
    elif MODE == "span":
        # Sleep a little and record when this process ran, for concurrency bounds.
        start = time.time()
        time.sleep(float(os.environ.get("FAKE_CLI_SLEEP", "0.3")))
        with open(os.environ["FAKE_CLI_SPANS"], "a") as f:
            f.write(json.dumps({"start": start, "end": time.time(), "cwd": os.getcwd()}) + "\n")
        init()
        result(f"span:{prompt}")
    elif MODE == "crash_with_session":
        # First run: a session starts, work streams, then the CLI dies without a result.
        # A run with --resume reports what it was given: its argv and prompt.
        init()
        if not any(arg.startswith("--resume") for arg in sys.argv):
            config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
            if os.environ.get("FAKE_CLI_SAVE_SESSION") and config_dir:
                # Like the CLI, which saves a session it can later --resume.
                os.makedirs(os.path.join(config_dir, "projects", "fake"), exist_ok=True)
                open(os.path.join(config_dir, "projects", "fake", f"{SESSION}.jsonl"), "w").close()
            emit(
                {"type": "stream_event", "event": {"type": "message_start"}, "session_id": SESSION}
            )
            sys.stderr.write("fatal: connection to the tool host lost\n")
            sys.stderr.flush()
            os._exit(3)
        result(json.dumps({"argv": sys.argv[1:], "prompt": prompt}), total_cost_usd=0.002)
    elif MODE == "slow_lines":
        # A line every 0.2 s for ~2 s: output keeps flowing, so no idle timeout.
        init()
        for i in range(10):
            emit({"type": "system", "subtype": "status", "status": f"tick {i}"})
            time.sleep(0.2)
        result("slow but alive")
    elif MODE == "replay":
        # Print a recorded stream verbatim, then exit with $FAKE_CLI_EXIT. A line
        # `#sleep <seconds>` pauses instead of being printed (for background work);
        # $FAKE_CLI_STDERR goes to stderr first.
        sys.stderr.write(os.environ.get("FAKE_CLI_STDERR", ""))
        sys.stderr.flush()
        out = sys.stdout.buffer
        with open(os.environ["FAKE_CLI_REPLAY"], "rb") as f:
            for line in f:
                if line.startswith(b"#sleep "):
                    out.flush()
                    time.sleep(float(line.split()[1]))
                    continue
                out.write(line)
        out.flush()
        sys.exit(int(os.environ.get("FAKE_CLI_EXIT", "0")))
    elif MODE == "structured_unchecked":
        # A CLI that passes the model's structured output on without checking it
        # against --json-schema: the library must not trust it.
        init()
        value = json.loads(os.environ["FAKE_CLI_STRUCTURED"])
        result(json.dumps(value), structured_output=value)
    elif MODE == "record_cmdline":
        # What any user could read about this process (/proc/<pid>/cmdline), and each
        # file named on it (mode, content): then a result, a crash or a hang (FAKE_CLI_THEN).
        with open("/proc/self/cmdline", "rb") as f:
            cmdline = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        files = {}
        for arg in cmdline[2:]:
            if os.path.isfile(arg):
                with open(arg, encoding="utf-8") as f:
                    files[arg] = {"mode": os.stat(arg).st_mode & 0o777, "content": f.read()}
        with open(os.environ["FAKE_CLI_RECORD"], "w") as f:
            json.dump({"cmdline": cmdline, "files": files}, f)
        init()
        then = os.environ.get("FAKE_CLI_THEN", "result")
        if then == "crash":
            os._exit(3)
        if then == "hang":
            sleep_forever()
        result("recorded")
    else:
        sys.stderr.write(f"unknown FAKE_CLI_MODE {MODE}\n")
        sys.exit(64)


if __name__ == "__main__":
    main()
