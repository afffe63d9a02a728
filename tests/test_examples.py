"""The examples run in CI, or they rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_quickstart_runs_offline_and_writes_the_file(claude_cli: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env={**os.environ, "CC_EXECUTOR_CLI": claude_cli},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Model: SCRIPTED" in proc.stdout
    assert "hello.py on disk: \"print('Hello from cc_executor')\"" in proc.stdout
    assert "Second run: success=True" in proc.stdout
    transcripts = list((tmp_path / "transcripts").iterdir())
    assert len(transcripts) == 2


def test_structured_example_runs_offline(claude_cli: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "structured.py")],
        cwd=tmp_path,
        env={**os.environ, "CC_EXECUTOR_CLI": claude_cli},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'files_created': ['notes.md', 'util.py'], 'files_modified': []" in proc.stdout
    assert "json_schema=dict: {'language': 'python', 'files': 3}" in proc.stdout
    assert "Inventory(python_files=['app.py', 'util.py'], total_lines=2)" in proc.stdout
