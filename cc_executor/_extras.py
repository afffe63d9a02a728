"""The one command that installs an optional extra (``mcp``, ``temporal``, ``redis``).

Into the interpreter that is running, and, when the package runs from a source
checkout (an editable install: the project's ``pyproject.toml`` beside the package),
as ``-e <checkout>[extra]``: a bare ``pip install 'cc_executor[extra]'`` in a clone's
venv would fetch a second, released copy over the editable one.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

__all__ = ["install_command"]


def install_command(extra: str) -> str:
    """The shell command (quoted) that installs `extra` for `sys.executable`."""
    root = Path(__file__).resolve().parent.parent
    try:
        checkout = 'name = "cc_executor"' in (root / "pyproject.toml").read_text("utf-8")
    except OSError:
        checkout = False
    target = ["-e", f"{root}[{extra}]"] if checkout else [f"cc_executor[{extra}]"]
    return shlex.join([sys.executable, "-m", "pip", "install", *target])
