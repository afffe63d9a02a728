"""Shared bits of the benchmark scripts."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE_CLI = ROOT / "tests" / "fake_cli.py"


def fake_cli_wrapper(directory: Path) -> Path:
    """An executable that runs tests/fake_cli.py with this interpreter."""
    wrapper = directory / "claude"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def median(values: list[float]) -> float:
    return statistics.median(values)
