"""Transcripts: one file per run, written as the CLI's lines arrive.

Layout (one record per line): a header record, then every stdout line of the
CLI exactly as received (non-JSON lines and invalid UTF-8 included), then a
footer record. Header and footer are JSON objects whose `type` is
`cc_executor.header` / `cc_executor.footer`, so a reader that parses the file
with `parse_event` sees them as `UnknownEvent`s.

The file is created with mode 0600 before the CLI starts and flushed after
every block of lines, so a crash of the caller loses nothing already received.
Secret values, in every form (see `_secrets.py`), are replaced with `[REDACTED]`
before anything is written; the file name holds a timestamp and the execution
uuid, never task text. A disk that fills up mid-run ends the transcript, never
the run (`TaskResult.transcript_complete`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._log import logger
from ._secrets import Secrets
from .errors import ConfigError

if TYPE_CHECKING:
    from .config import CCExecutorConfig

__all__ = [
    "NullTranscript",
    "Transcript",
    "find_transcripts",
    "read_transcript",
    "transcript_root",
    "trusted_transcript",
]


class Transcript:
    """One run's transcript file, open for appending.

    A write that fails (disk full, I/O error) ends the transcript: the error is
    logged once as a warning, the file is closed with what it holds, `complete`
    turns False and later writes are dropped. The run itself goes on.
    """

    def __init__(self, path: Path, secrets: Secrets) -> None:
        self.path = path
        self.complete = True
        self._secrets = secrets
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600
        )

    @classmethod
    def create(
        cls, directory: Path, execution_uuid: str, started_at: datetime, secrets: Secrets
    ) -> Transcript:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = started_at.strftime("%Y%m%dT%H%M%S")
        return cls(directory / f"{stamp}_{execution_uuid}.jsonl", secrets)

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        line = json.dumps({"type": f"cc_executor.{kind}", **fields}, default=str)
        self._put(self._secrets.mask(line).encode("utf-8", "surrogateescape") + b"\n")

    def write(self, block: bytes) -> None:
        """Append raw stdout bytes (whole lines), masked, and hand them to the OS."""
        self._put(self._secrets.mask_bytes(block))

    def _put(self, data: bytes) -> None:
        if self._fd is None:
            return
        view = memoryview(data)
        try:
            while view:  # os.write may write part of it (a disk filling up)
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.complete = False
        logger.warning(
            "transcript {} cannot be written any more ({}); it ends here, incomplete "
            "(result.transcript_complete=False), and the run goes on",
            self.path,
            exc.strerror or exc,
        )
        self._close_fd()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._fail(exc)
        self._close_fd()


class NullTranscript:
    """Used when save_transcript=False."""

    path: Path | None = None
    complete = True

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        pass

    def write(self, block: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def read_transcript(
    path: str | Path,
) -> tuple[dict[str, Any] | None, list[bytes], dict[str, Any] | None]:
    """Split a transcript into (header, raw stdout lines, footer); footer None: never ended."""
    header: dict[str, Any] | None = None
    footer: dict[str, Any] | None = None
    lines: list[bytes] = []
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if line.startswith(b'{"type": "cc_executor.'):
                record = json.loads(line)
                if record["type"] == "cc_executor.header":
                    header = record
                    continue
                if record["type"] == "cc_executor.footer":
                    footer = record
                    continue
            lines.append(line)
    return header, lines, footer


# -- which transcripts to trust --------------------------------------------------------


def transcript_root(config: CCExecutorConfig) -> Path:
    """The folder every transcript of `config` is written under: `transcript_dir` or
    $CC_EXECUTOR_TRANSCRIPT_DIR, else `<records_home()>/projects` (each project's
    ``transcripts`` folder is inside it)."""
    from .config import records_home

    return config.given_transcript_dir() or records_home() / "projects"


def find_transcripts(execution_uuid: str, config: CCExecutorConfig) -> list[Path]:
    """Every transcript file of `execution_uuid` under `transcript_root(config)`, resolved;
    a file that resolves outside it (a symlink planted there) is left out. More than one
    means something other than cc_executor wrote one: trust none."""
    root = transcript_root(config).resolve()
    if not root.is_dir():
        return []
    pattern = f"*_{execution_uuid}.jsonl"
    found = root.glob(pattern if config.given_transcript_dir() else f"*/transcripts/{pattern}")
    return sorted({p.resolve() for p in found if _inside(p.resolve(), root)})


def trusted_transcript(path: str | os.PathLike[str], config: CCExecutorConfig) -> Path:
    """`path`, resolved, if it is under `transcript_root(config)`; else `ConfigError`.

    A transcript elsewhere (in a project the agent could write to) may be forged:
    its footer says nothing about any run."""
    root = transcript_root(config).resolve()
    resolved = Path(path).expanduser().resolve()
    if not _inside(resolved, root):
        raise ConfigError(
            f"{str(path)!r} is not under the transcript dir {str(root)!r}, so it may not be "
            "a record cc_executor wrote (anyone, the agent included, can write a file that "
            "looks like one). Read transcripts from the transcript dir, or point "
            "transcript_dir / $CC_EXECUTOR_TRANSCRIPT_DIR at the folder that holds this one.",
            field="transcript_dir",
        )
    return resolved


def _inside(path: Path, root: Path) -> bool:
    return path != root and path.is_relative_to(root)
