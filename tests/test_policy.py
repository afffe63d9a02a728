"""The list and retry rules both engines call (`cc_executor._policy`): pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cc_executor import BudgetExceededError, ConfigError
from cc_executor._policy import (
    RESET_MARGIN_S,
    budget_cut,
    budget_stop,
    check_continue,
    check_list_options,
    continued_session,
    limit_too_far,
    limit_wait,
    list_verdict,
    resume_session,
    step_limits,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_a_spent_budget_stops_the_next_step_cost_first() -> None:
    both = dict(max_total_cost_usd=1.0, max_total_duration=10.0)
    assert budget_stop(2, spent=0.5, elapsed=5.0, **both) is None
    assert budget_stop(2, spent=1.0, elapsed=50.0, **both) == (
        "max_total_cost_usd=1 reached (spent $1.0000); step 3 and later were not started"
    )
    assert budget_stop(3, spent=0.0, elapsed=10.0, **both) == (
        "max_total_duration=10s reached (10.0s); step 4 and later were not started"
    )
    assert (
        budget_stop(0, spent=9e9, elapsed=9e9, max_total_cost_usd=None, max_total_duration=None)
        is None
    )


def test_step_limits_cap_timeout_and_budget_at_what_the_list_has_left() -> None:
    limits = step_limits(
        timeout_s=600, max_budget_usd=None, spent=0.25, elapsed=70,
        max_total_cost_usd=1.0, max_total_duration=100,
    )  # fmt: skip
    assert (limits.timeout_s, limits.max_budget_usd, limits.timeout_capped) == (30, 0.75, True)
    own = step_limits(
        timeout_s=10, max_budget_usd=0.1, spent=0.25, elapsed=70,
        max_total_cost_usd=1.0, max_total_duration=100,
    )  # fmt: skip
    assert (own.timeout_s, own.max_budget_usd, own.timeout_capped) == (10, 0.1, False)
    late = step_limits(
        timeout_s=10, max_budget_usd=None, spent=0, elapsed=101,
        max_total_cost_usd=None, max_total_duration=100,
    )  # fmt: skip
    assert late.timeout_s > 0 and late.timeout_capped


def test_a_step_cut_by_the_lists_duration_is_a_budget_stop_on_its_own_timeout_not() -> None:
    assert budget_cut(1, timeout_capped=True, stopped_by="timeout", max_total_duration=5) == (
        "max_total_duration=5s reached during step 2, which was ended"  # counted from 1
    )
    assert budget_cut(1, timeout_capped=False, stopped_by="timeout", max_total_duration=5) is None
    assert (
        budget_cut(1, timeout_capped=True, stopped_by="idle_timeout", max_total_duration=5) is None
    )


def test_list_verdict() -> None:
    assert list_verdict([True, True], 2, budget_stopped=False).success
    v = list_verdict([True, False], 4, budget_stopped=False)
    assert (v.success, v.failed_step, v.skipped) == (False, 1, [2, 3])
    v = list_verdict([True], 2, budget_stopped=True)
    assert (v.success, v.failed_step, v.skipped) == (False, None, [1])


def test_argument_checks() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        check_list_options(max_concurrency=0, run_id=None)
    with pytest.raises(ConfigError, match="run_id"):
        check_list_options(max_concurrency=1, run_id="  ")
    with pytest.raises(ConfigError, match="sequential=True"):
        check_continue(1, True, sequential=False)
    with pytest.raises(ConfigError, match="no previous step"):
        check_continue(0, True, sequential=True)
    check_continue(0, False, sequential=False)
    assert continued_session(True, "s1") == "s1"
    assert continued_session(False, "s1") is None and continued_session(True, None) is None


def test_the_next_attempt_resumes_only_a_saved_session_under_resume() -> None:
    asked: list[str] = []

    def saved(session: str) -> bool:
        asked.append(session)
        return session == "on-disk"

    assert resume_session("resume", "on-disk", is_saved=saved) == "on-disk"
    assert resume_session("resume", "never-saved", is_saved=saved) is None
    assert resume_session("restart", "on-disk", is_saved=saved) is None
    assert resume_session("resume", None, is_saved=saved) is None
    assert asked == ["on-disk", "never-saved"]  # the disk is asked only when it matters


def test_a_limit_reset_is_waited_for_with_the_margin_and_too_far_is_judged_without() -> None:
    reset = NOW + timedelta(seconds=30)
    assert limit_wait(reset, NOW) == 30 + RESET_MARGIN_S
    assert limit_wait(NOW - timedelta(seconds=1), NOW) is None and limit_wait(None, NOW) is None
    # 30 s away with max_limit_wait=30: waited for (the margin does not tip it over).
    assert not limit_too_far(reset, NOW, 30)
    assert limit_too_far(reset, NOW, 29.9) and not limit_too_far(None, NOW, 0)


def test_budget_exceeded_error_is_what_a_list_error_is_built_as() -> None:
    from cc_executor._policy import list_error

    error = list_error([], None, "max_total_cost_usd=1 reached")
    assert isinstance(error, BudgetExceededError)
    assert list_error([], None, None) is None


def test_list_outcome_gives_the_fields_both_engines_build_their_result_with() -> None:
    from cc_executor._policy import list_outcome

    assert list_outcome([], 2, None) == {
        "success": False,
        "failed_step": None,
        "skipped": [0, 1],
        "error": None,
    }
    stopped = list_outcome([], 1, "max_total_duration=1s reached")
    assert isinstance(stopped["error"], BudgetExceededError) and not stopped["success"]
