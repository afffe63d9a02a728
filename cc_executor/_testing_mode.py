"""The test-mode switch (`cc_executor.testing.set_testing`), read by the retry loop.

Kept out of `cc_executor.testing` so the core imports nothing of the test helpers."""

from __future__ import annotations

__all__ = ["max_attempts", "retry_wait"]

testing = False
attempts: int | None = None


def retry_wait(seconds: float) -> float:
    """The seconds the retry loop really waits: none in test mode."""
    return 0.0 if testing else seconds


def max_attempts(configured: int) -> int:
    """Attempts a task may make: capped by `set_testing(attempts=...)` in test mode."""
    return min(configured, attempts) if testing and attempts is not None else configured
