"""Transcripts: one file per run, written as the CLI's lines arrive.

Layout (one record per line): a header record, then every stdout line of the
CLI exactly as received (non-JSON lines and invalid UTF-8 included), then a
footer record. Header and footer are JSON objects whose `type` is
`cc_executor.header` / `cc_executor.footer`, so a reader that parses the file
with `parse_event` sees them as `UnknownEvent`s.

The file is created with mode 0600 before the CLI starts and flushed after
every block of lines, so a crash of the caller loses nothing already received.
Secret values (see `_command.secret_values`) are replaced with `[REDACTED]`
before anything is written; the file name holds a timestamp and the execution
uuid, never task text.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ._command import MASK, mask

__all__ = ["NullTranscript", "Transcript", "read_transcript"]


class Transcript:
    def __init__(self, path: Path, secrets: tuple[str, ...]) -> None:
        self.path = path
        self._secrets = secrets
        self._secret_bytes = tuple(s.encode() for s in secrets)
        self._mask = MASK.encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "wb", buffering=1 << 16)

    @classmethod
    def create(
        cls, directory: Path, execution_uuid: str, started_at: datetime, secrets: tuple[str, ...]
    ) -> Transcript:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = started_at.strftime("%Y%m%dT%H%M%S")
        return cls(directory / f"{stamp}_{execution_uuid}.jsonl", secrets)

    def record(self, kind: str, fields: dict[str, Any]) -> None:
        line = json.dumps({"type": f"cc_executor.{kind}", **fields}, default=str)
        self._file.write(mask(line, self._secrets).encode() + b"\n")
        self._file.flush()

    def write(self, block: bytes) -> None:
        """Append raw stdout bytes (whole lines) and flush them to the OS."""
        for secret in self._secret_bytes:
            if secret in block:
                block = block.replace(secret, self._mask)
        self._file.write(block)
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


class NullTranscript:
    """Used when save_transcript=False."""

    path: Path | None = None

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
