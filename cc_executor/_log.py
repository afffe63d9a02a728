"""The library's logger (loguru). Disabled by default, as loguru advises for libraries:
unless one of these turns it on, nothing the library does writes to stderr.

- ``CC_EXECUTOR_LOG=LEVEL`` in the environment (read at import): the library's records
  at LEVEL and above go to stderr (`log_to_stderr`);
- `log_to_stdlib()`: its records go to the stdlib logger ``cc_executor`` (one child
  logger per module, ``cc_executor._run`` …), where the application's `logging`
  configuration decides what is kept;
- ``from loguru import logger; logger.enable("cc_executor")`` for a loguru application.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from loguru import logger

__all__ = ["log_to_stderr", "log_to_stdlib", "logger"]

ENV_VAR = "CC_EXECUTOR_LOG"
_OFF = ("", "0", "false", "no", "off", "none")
_ON = ("1", "true", "yes", "on")

logger.disable("cc_executor")

_sinks: dict[str, int] = {}


def _ours(record: Any) -> bool:
    name: str = record["name"] or ""
    return name == "cc_executor" or name.startswith("cc_executor.")


def _level(value: str) -> str | None:
    """A loguru level name for `value` ("debug", "INFO", "1" = INFO), None for off."""
    text = value.strip()
    if text.lower() in _OFF:
        return None
    if text.lower() in _ON:
        return "INFO"
    name = text.upper()
    try:
        logger.level(name)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a log level: use TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR "
            "or CRITICAL"
        ) from None
    return name


def _take_over_default_handler() -> None:
    """loguru's default handler (id 0, stderr, every level) would print the library's
    records as soon as they are enabled: replace it with the same handler minus them,
    so the application's own loguru records are unaffected."""
    try:
        logger.remove(0)
    except ValueError:
        return  # the application configured loguru itself
    logger.add(
        sys.stderr,
        level=os.environ.get("LOGURU_LEVEL", "DEBUG"),
        filter=lambda record: not _ours(record),
    )


def _replace(kind: str, sink: Any, level: str) -> int:
    _take_over_default_handler()
    old = _sinks.pop(kind, None)
    if old is not None:
        logger.remove(old)
    _sinks[kind] = logger.add(sink, level=level, filter=_ours)
    logger.enable("cc_executor")
    return _sinks[kind]


def log_to_stderr(level: str | None = "INFO") -> int | None:
    """Send the library's log records at `level` and above to stderr; None turns it off.

    `level` is a name (``"DEBUG"``, ``"info"``). Calling it again replaces the earlier
    level. Returns the loguru handler id (None when turned off). Raises ValueError
    for an unknown level name.
    """
    name = None if level is None else _level(level)
    if name is None:
        old = _sinks.pop("stderr", None)
        if old is not None:
            logger.remove(old)
        if not _sinks:
            logger.disable("cc_executor")
        return None
    return _replace("stderr", sys.stderr, name)


# loguru's levels without a stdlib twin map to the nearest one below.
_STDLIB = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 20, "WARNING": 30, "ERROR": 40}


def log_to_stdlib(level: str = "DEBUG") -> int:
    """Forward the library's log records to the stdlib logger ``"cc_executor"``.

    One call, typically at start-up next to `logging.basicConfig(...)`. Each record
    goes to ``logging.getLogger(<module>)`` (``cc_executor._retry`` …, all children of
    ``cc_executor``) with its level mapped: TRACE → 5, DEBUG → DEBUG, INFO and SUCCESS
    → INFO, WARNING, ERROR, CRITICAL as they are; an exception's traceback is the
    record's `exc_info`. `level` (a loguru level name) drops records below it before
    they reach `logging`; the stdlib loggers' own levels and handlers apply after.
    Calling it again replaces the earlier bridge. Returns the loguru handler id.
    """
    import logging

    def sink(message: Any) -> None:
        record = message.record
        stdlib_logger = logging.getLogger(record["name"] or "cc_executor")
        levelno = _STDLIB.get(record["level"].name, record["level"].no)
        if not stdlib_logger.isEnabledFor(levelno):
            return
        exception = record["exception"]
        exc_info = (exception.type, exception.value, exception.traceback) if exception else None
        stdlib_logger.handle(
            stdlib_logger.makeRecord(
                stdlib_logger.name,
                levelno,
                record["file"].path,
                record["line"],
                record["message"],
                (),
                exc_info,
                record["function"],
            )
        )

    return _replace("stdlib", sink, _level(level) or "DEBUG")


def _from_environment() -> None:
    value = os.environ.get(ENV_VAR)
    if value is None:
        return
    try:
        log_to_stderr(value)
    except ValueError as exc:
        log_to_stderr("INFO")
        logger.warning("{}={}: {}; logging at INFO", ENV_VAR, value, exc)


_from_environment()
