"""A Node-free stand-in for `claude` that replays a recorded transcript.

Record a run once with the real CLI (every run writes a transcript:
`TaskResult.transcript_path`), then point `cli_path=` at `replay_cli(path)` in tests.
The stand-in, a standard-library Python script, reads the prompt from stdin like the
CLI, prints the recorded stdout lines byte for byte and the recorded stderr tail on
stderr, and exits with the recorded exit code. So output, events, cost, session id
and exit code of the run are those of the recording, and CI needs neither Node nor
the CLI.

One transcript is one attempt: a task that retries would run the same recording again.
The recorded lines are as the transcript holds them, secrets masked.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

__all__ = ["replay_cli"]


def replay_cli(
    transcript: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None
) -> Path:
    """Write an executable stand-in CLI replaying `transcript`; return its path.

    Pass the path as ``cli_path=``. `directory` is where the script goes (a new
    temporary directory by default; the pytest `tmp_path` is a good one). The script
    runs with the current Python interpreter and the standard library only (no shell,
    no Node, not even cc_executor).

    Raises FileNotFoundError when `transcript` does not exist, ValueError when it is
    not a cc_executor transcript that ended (no header or no footer).
    """
    from .._transcript import read_transcript

    source = Path(transcript).resolve()
    header, lines, footer = read_transcript(source)  # FileNotFoundError if missing
    if header is None or footer is None:
        raise ValueError(
            f"{source} is not a finished cc_executor transcript (header and footer "
            "records are needed): record a run that ended, e.g. TaskResult.transcript_path"
        )
    folder = (
        Path(directory)
        if directory is not None
        else Path(tempfile.mkdtemp(prefix="cc_executor-replay-"))
    )
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "claude"
    script.write_text(
        _SCRIPT.format(python=sys.executable, transcript=str(source), version=_version(lines)),
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def _version(lines: list[bytes]) -> str:
    """The CLI version the recording names (its init line), else the pinned one."""
    for line in lines:
        if b'"init"' in line:
            try:
                version = json.loads(line).get("claude_code_version")
            except ValueError:
                continue
            if isinstance(version, str):
                return version
    from .._command import PINNED_CLI_VERSION

    return PINNED_CLI_VERSION


# The stand-in: standard library only, so it starts fast and needs nothing installed.
_SCRIPT = """#!{python}
import json, sys

TRANSCRIPT = {transcript!r}
VERSION = {version!r}


def main(argv):
    if "--version" in argv or "-v" in argv:
        sys.stdout.write(VERSION + " (Claude Code)\\n")
        return 0
    sys.stdin.buffer.read()  # the prompt, as the CLI reads it
    lines, footer = [], {{}}
    with open(TRANSCRIPT, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\\n")
            if line.startswith(b'{{"type": "cc_executor.'):
                kind = json.loads(line)["type"]
                if kind == "cc_executor.header":
                    continue
                if kind == "cc_executor.footer":
                    footer = json.loads(line)
                    continue
            lines.append(line)
    err = footer.get("stderr_tail") or ""
    if err:
        sys.stderr.write(err if err.endswith("\\n") else err + "\\n")
        sys.stderr.flush()
    out = sys.stdout.buffer
    for line in lines:
        out.write(line + b"\\n")
        out.flush()
    code = footer.get("exit_code")
    return code if isinstance(code, int) and code >= 0 else 1


sys.exit(main(sys.argv[1:]))
"""
