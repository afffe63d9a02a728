"""Prompts shipped with cc_executor (package data, read with importlib.resources)."""

from __future__ import annotations

from importlib.resources import files

__all__ = ["orchestrator_prompt"]


def orchestrator_prompt() -> str:
    """The orchestrator prompt `cc_execute.md`: when to run a task directly or through a
    fresh Claude Code instance, how to write a task list, how to read results and resume,
    with the MCP server's tools by the names Claude Code gives them."""
    return files(__package__).joinpath("cc_execute.md").read_text(encoding="utf-8")
