"""`set_testing`: retries without their waits, for test suites."""

from __future__ import annotations

from types import TracebackType

from .. import _testing_mode

__all__ = ["is_testing", "set_testing"]


class _Restore:
    """What `set_testing` returns: a context manager that puts the previous mode back."""

    def __init__(self, previous: tuple[bool, int | None]) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _testing_mode.testing, _testing_mode.attempts = self._previous


def set_testing(testing: bool = True, *, attempts: int | None = None) -> _Restore:
    """Turn test mode on (or off with False) for the whole process.

    In test mode a retry starts at once: the backoff and the wait for a rate limit's
    reset are skipped. Everything else is unchanged: which failures are retried, how
    many times (`num_retries`), when a reset too far away (`max_limit_wait`) ends the
    task, and the `RetryEvent` (its `delay_s` / `resume_at` still say what would have
    been waited; `Attempt.waited_s` is 0). `attempts` (>= 1) additionally caps the
    attempts of every task (``attempts=1``: no retries at all).

    Use it once (``set_testing(True)`` in a conftest fixture) or as a context manager,
    which restores the previous mode on exit::

        with set_testing(True):
            result = await cc_run(...)

    Raises ValueError for ``attempts < 1``.
    """
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be >= 1 (1 = no retries), got {attempts}")
    previous = (_testing_mode.testing, _testing_mode.attempts)
    _testing_mode.testing = bool(testing)
    _testing_mode.attempts = attempts if testing else None
    return _Restore(previous)


def is_testing() -> bool:
    """Whether `set_testing(True)` is in force."""
    return _testing_mode.testing
