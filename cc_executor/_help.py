"""How `cc-execute` and `python -m cc_executor.mcp` print their help (Typer + Rich)."""

from __future__ import annotations

from typing import Any, cast

__all__ = ["placeholders_in_words"]


def placeholders_in_words() -> None:
    """Help shows each value's placeholder in words (TASK, SECONDS, TOOL, N: the metavars
    given below), never a Python type (`<str>`, `<list[str]>`, `<bool>` after a flag).
    Recent Typer prints a type column beside every parameter; this hides it where a
    metavar says more or nothing is to be typed. Older Typer has no such column."""
    from typer import core

    if getattr(core, "_cc_executor_placeholders", False):
        return
    core._cc_executor_placeholders = True  # type: ignore[attr-defined]

    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is None or argument is None or not hasattr(option, "display_type_rich"):
        return
    shown = option.display_type_rich

    def option_type(self: Any, ctx: Any) -> str | None:
        if self.is_flag or getattr(self, "count", False):  # nothing to type after it
            return None
        return cast("str | None", shown(self, ctx))

    def argument_type(self: Any, ctx: Any) -> str | None:
        return None  # the argument's name (its metavar) is the placeholder

    option.display_type_rich = option_type
    argument.display_type_rich = argument_type
