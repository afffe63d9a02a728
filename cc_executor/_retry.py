"""Every attempt of one task: retries after transient failures, waits for limits, callbacks.

`RetryingRun.batches()` is what `cc_run`, `cc_execute` and `cc_stream` consume.
It runs one `Execution` per attempt and yields their events as they come, with
a `RetryEvent` between two attempts, then sets `result`: the last attempt's
`TaskResult` with every attempt on it (`attempts`) and costs summed.

The policy is tenacity's, composed from three parts:

- retry: only a failure `is_transient` says another attempt may fix;
- stop: after `num_retries` retries, or at once when the API names a limit
  reset further away than `max_limit_wait` (the task then fails with the
  `RateLimitError` carrying `reset_at`);
- wait: until the reset the API named (plus a second and some jitter), else
  exponential backoff (`retry_backoff`), never shorter than the delay the
  CLI's last `api_retry` event named.

tenacity decides whether and how long; the generator itself does the waiting,
so the consumer sees the `RetryEvent` (with `resume_at`) before the wait starts.
The rules themselves (which session the next attempt resumes, how long a limit
reset is waited for) are `_policy`'s, shared with the Temporal activity.

The timeout is resolved once per task, before the first attempt (`timeout="auto"`
predicts it then, see `_predict`), and every attempt runs with the same one.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import sys
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from . import _otel
from ._command import session_saved
from ._gitchanges import keep_diff, net_diff
from ._history import record_history
from ._log import logger
from ._policy import RESUME_PROMPT, limit_too_far, limit_wait, resume_prompt, resume_session
from ._predict import TimeoutPrediction, predict
from ._run import Execution
from ._snapshot import FileChanges, combine
from ._testing_mode import max_attempts, retry_wait
from .config import CCExecutorConfig
from .errors import CCExecutorError, RateLimitError
from .events import Event, RetryEvent
from .result import Attempt, TaskResult, is_transient

if TYPE_CHECKING:
    from tenacity import RetryCallState

    from ._prestart import Prestarted

__all__ = ["RESUME_PROMPT", "RetryingRun", "resolve_timeout", "run_task"]


class RetryingRun:
    """All attempts of one task. Create, iterate `batches()` once, then read `result`."""

    def __init__(
        self,
        task: str,
        config: CCExecutorConfig,
        *,
        prompt: str | None = None,
        attempt: int = 1,
        timeout: TimeoutPrediction | None = None,
        prestarted: Prestarted | None = None,
    ) -> None:
        """`prompt` and `attempt` are for a caller that continues attempts made elsewhere
        (the Temporal activity: its first attempt here may resume an earlier one's session).
        `timeout` is for a caller that resolved the task's timeout already (a task list
        caps it at what the list has left); else it is resolved before the first attempt.
        `prestarted`: a CLI a task list spawned ahead for the first attempt (`_prestart`)."""
        self.task = task
        self.config = config
        self.timeout = timeout
        # Built now, so a bad option or a missing CLI raises before anything runs.
        self._execution = Execution(
            task, config, prompt=prompt, attempt=attempt, prestarted=prestarted
        )
        self.result: TaskResult | None = None
        self._results: list[TaskResult] = []
        self._attempts: list[Attempt] = []
        self._trees: list[list[tuple[str, str, str]]] = []  # each attempt's git trees
        self._delay = 0.0
        self._reason: Literal["backoff", "limit_reset"] = "backoff"
        self._resuming: str | None = None  # the session the next attempt continues
        self._span: _otel.Span | None = None

    @property
    def execution_uuid(self) -> str:
        """The current attempt's execution uuid (each attempt has its own)."""
        return self._execution.execution_uuid

    async def batches(self) -> AsyncGenerator[Sequence[Event | RetryEvent], None]:
        # The task's span (None without a tracer provider) covers every attempt.
        self._span = _otel.start_task(self.config)
        attempts = self._attempt_batches()
        try:
            async for batch in attempts:
                yield batch
        finally:
            await attempts.aclose()
            _otel.end_task(self._span, self.result, sys.exc_info()[1])

    async def _attempt_batches(self) -> AsyncGenerator[Sequence[Event | RetryEvent], None]:
        # Imported here: `import cc_executor` stays fast (tenacity costs ~7 ms).
        from tenacity import (
            AsyncRetrying,
            retry_if_result,
            stop_after_attempt,
            wait_exponential,
            wait_random,
        )

        backoff = self.config.retry_backoff
        self._out_of_retries = stop_after_attempt(max_attempts(self.config.num_retries + 1))
        self._backoff = wait_exponential(multiplier=backoff.initial, max=backoff.max) + wait_random(
            0, backoff.jitter
        )
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda result: is_transient(result.error)),
            stop=self._stop,
            wait=self._wait,
            sleep=self._defer_sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        if self.timeout is None:
            self.timeout = await resolve_timeout(self.task, self.config)
        execution = self._execution
        execution.set_timeout(self.timeout)
        async for attempt in retrying:
            waited = 0.0
            number = attempt.retry_state.attempt_number
            if number > 1:
                try:
                    execution = self._next_execution(number, execution)
                except CCExecutorError as exc:
                    logger.error(
                        "attempt {} cannot start, keeping the last result: {}", number, exc
                    )
                    break
                event = self._retry_event(number - 1)
                await self._deliver([event])
                yield [event]
                waited = retry_wait(self._delay)  # none in test mode (set_testing)
                await asyncio.sleep(waited)
                self._execution = execution
            span = _otel.start_attempt(
                self._span,
                number,
                execution.execution_uuid,
                retry_of=self._results[-1] if number > 1 else None,
                retry_reason=self._reason if number > 1 else None,
                delay_s=waited if number > 1 else None,
            )
            execution.trace_env = _otel.traceparent_env(span)
            batches = execution.batches()
            try:
                async for batch in batches:
                    await self._deliver(batch)
                    yield batch
            finally:
                await batches.aclose()
                _otel.end_attempt(span, execution.result, sys.exc_info()[1])
            assert execution.result is not None
            self._record(execution, waited)
            attempt.retry_state.set_result(execution.result)
        self.result = self._final(await self._net_diff())
        await record_history(self.result, self.config)  # never raises
        await self._callbacks(self.result)

    # -- tenacity's policy parts ------------------------------------------------------

    def _stop(self, state: RetryCallState) -> bool:
        return self._out_of_retries(state) or self._limit_too_far(state)

    def _limit_too_far(self, state: RetryCallState) -> bool:
        error = _error(state)
        reset = error.reset_at if isinstance(error, RateLimitError) else None
        now = datetime.now(timezone.utc)
        if reset is None or not limit_too_far(reset, now, self.config.max_limit_wait):
            return False
        logger.warning(
            "the limit resets at {} ({:.0f} s away), beyond max_limit_wait={:g} s: giving up",
            reset.isoformat(),
            (reset - now).total_seconds(),
            self.config.max_limit_wait,
        )
        return True

    def _wait(self, state: RetryCallState) -> float:
        backoff = self.config.retry_backoff
        error = _error(state)
        reset = error.reset_at if isinstance(error, RateLimitError) else None
        wait = limit_wait(reset, datetime.now(timezone.utc))
        if wait is not None:
            self._reason = "limit_reset"
            return wait + random.uniform(0, backoff.jitter)
        self._reason = "backoff"
        delay = self._backoff(state)
        retries = self._results[-1].api_retries if self._results else []
        cli_delay = (retries[-1].retry_delay_ms or 0) / 1000 if retries else 0.0
        return max(delay, cli_delay)

    async def _defer_sleep(self, seconds: float) -> None:
        # The wait happens in `batches`, after the RetryEvent went out.
        self._delay = seconds

    # -- attempts ---------------------------------------------------------------------

    def _next_execution(self, number: int, failed: Execution) -> Execution:
        config = self.config

        def is_saved(session: str) -> bool:
            saved = session_saved(session, config)
            if not saved:  # named by the CLI's init line, but the CLI died first
                logger.warning(
                    "session {} was never saved; the retry starts the task anew", session
                )
            return saved

        self._resuming = resume_session(config.retry_strategy, failed.session_id, is_saved=is_saved)
        if self._resuming:
            error = self._results[-1].error
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            reason = f"{type(error).__name__}: {first_line[:200]}" if first_line else "an error"
            execution = Execution(
                self.task,
                config.with_overrides(resume=self._resuming),
                prompt=resume_prompt(reason),
                attempt=number,
            )
        else:
            execution = Execution(self.task, config, attempt=number)
        assert self.timeout is not None
        execution.set_timeout(self.timeout)  # the task's, resolved once
        return execution

    def _retry_event(self, failed_number: int) -> RetryEvent:
        result = self._results[-1]
        error = result.error
        resume_at = datetime.now(timezone.utc) + timedelta(seconds=self._delay)
        event = RetryEvent(
            attempt=failed_number,
            error_type=type(error).__name__,
            error_message=str(error),
            reason=self._reason,
            delay_s=self._delay,
            resume_at=resume_at,
            reset_at=error.reset_at if isinstance(error, RateLimitError) else None,
            strategy=self.config.retry_strategy,
            session_id=self._resuming,
        )
        logger.info(
            "attempt {} failed ({}); attempt {} at {} ({})",
            failed_number,
            event.error_type,
            failed_number + 1,
            resume_at.isoformat(),
            f"resuming session {event.session_id}" if event.session_id else "starting over",
        )
        return event

    def _record(self, execution: Execution, waited: float) -> None:
        result = execution.result
        assert result is not None
        self._results.append(result)
        self._trees.append(execution.git_trees)
        self._attempts.append(
            Attempt(
                number=execution.attempt,
                success=result.success,
                error_type=result.error_type,
                error_message=result.error_message,
                started_at=result.started_at,
                ended_at=result.ended_at,
                duration_s=result.duration_s,
                cost_usd=result.total_cost_usd,  # made this attempt's own in _final
                session_id=result.session_id,
                resumed_session=execution.config.resume,
                waited_s=waited,
                transcript_path=result.transcript_path,
                execution_uuid=result.execution_uuid,
            )
        )

    async def _net_diff(self) -> dict[str, Any]:
        """For a task with several attempts: its diff over all of them (first tree before
        to last tree after), in place of the last attempt's, in that attempt's file."""
        if len(self._trees) < 2:
            return {}
        diff = await net_diff(self._trees[0], self._trees[-1])
        last = self._results[-1]
        text, path = await asyncio.to_thread(
            keep_diff, diff, last.transcript_path, self._execution.command.secrets, replace=True
        )
        return {"diff": text, "diff_path": path}

    def _final(self, diff: dict[str, Any]) -> TaskResult:
        """The last attempt's result, with every attempt on it and the totals of all;
        `diff`: the fields of the diff over every attempt (empty for one attempt)."""
        results, attempts = self._results, self._attempts
        last = results[-1]
        # A resumed CLI reports the session's cost so far, carried over from the
        # attempt before it when that one ended with a result: count it once.
        reported: dict[str, TaskResult] = {}
        usage: dict[str, Any] = {}
        model_usage: dict[str, Any] = {}
        for result, attempt in zip(results, attempts, strict=True):
            before = reported.get(attempt.resumed_session or "")
            own_usage, own_models = result.usage, result.model_usage
            if (
                before is not None
                and result.total_cost_usd is not None
                and before.total_cost_usd is not None
                and result.total_cost_usd >= before.total_cost_usd
            ):
                attempt.cost_usd = result.total_cost_usd - before.total_cost_usd
                own_usage = _combine(own_usage, before.usage, -1)
                own_models = _combine(own_models, before.model_usage, -1)
            usage = _combine(usage, own_usage)
            model_usage = _combine(model_usage, own_models)
            if result.total_cost_usd is not None and result.session_id:
                reported[result.session_id] = result
        costs = [a.cost_usd for a in attempts if a.cost_usd is not None]
        files = combine(
            FileChanges(r.files_created, r.files_modified, r.files_deleted) for r in results
        )
        structured = last.structured
        if self.config.return_json and isinstance(structured, dict):
            structured = {
                **structured,
                "files_created": files.created,
                "files_modified": files.modified,
            }
        final = last.model_copy(
            update={
                "files_created": files.created,
                "files_modified": files.modified,
                "files_deleted": files.deleted,
                "structured": structured,
                "attempts": attempts,
                "started_at": results[0].started_at,
                "prestarted_at": results[0].prestarted_at,
                "duration_s": (last.ended_at - results[0].started_at).total_seconds(),
                "total_cost_usd": sum(costs) if costs else None,
                "usage": usage,
                "model_usage": model_usage,
                "tool_uses": [t for r in results for t in r.tool_uses],
                "api_retries": [e for r in results for e in r.api_retries],
                "transcript_complete": all(r.transcript_complete for r in results),
                **diff,
            }
        )
        return final

    # -- what the caller hooked in ----------------------------------------------------

    async def _deliver(self, batch: Sequence[Event | RetryEvent]) -> None:
        on_event = self.config.on_event
        if on_event is not None:
            for event in batch:
                await call_hook(on_event, event, "on_event")

    async def _callbacks(self, result: TaskResult) -> None:
        callbacks = self.config.success_callback if result.success else self.config.failure_callback
        for callback in callbacks:
            await call_hook(
                callback, result, "success_callback" if result.success else "failure_callback"
            )


async def run_task(
    task: str,
    config: CCExecutorConfig,
    *,
    timeout: TimeoutPrediction | None = None,
    prestarted: Prestarted | None = None,
) -> TaskResult:
    """Every attempt of `task`, consumed; its `TaskResult`. What `cc_run` runs, and the
    runner an agent timeout prediction is given (`_predict.predict`). `timeout`,
    `prestarted`: see `RetryingRun`."""
    run = RetryingRun(task, config, timeout=timeout, prestarted=prestarted)
    batches = run.batches()
    try:
        async for _ in batches:
            pass
    finally:
        await batches.aclose()
    assert run.result is not None
    return run.result


async def resolve_timeout(task: str, config: CCExecutorConfig) -> TimeoutPrediction:
    """The task's timeout in seconds and its source: `config.timeout` when it is a number,
    else the prediction (history, the agent through `run_task`, the heuristic)."""
    if config.timeout != "auto":
        return TimeoutPrediction(seconds=config.timeout, source="explicit", reason="config")
    return await predict(task, config, run_task)


def _error(state: RetryCallState) -> BaseException | None:
    assert state.outcome is not None
    result: TaskResult = state.outcome.result()
    return result.error


async def call_hook(fn: Callable[[Any], Any], arg: Any, what: str) -> None:
    """Call a user hook, sync or async; an exception is logged and goes no further."""
    try:
        value = fn(arg)
        if inspect.isawaitable(value):
            await value
    except Exception:
        logger.opt(exception=True).error("{} {!r} raised; the run goes on", what, fn)


def _additive(key: str) -> bool:
    name = key.lower()
    return name.endswith(("tokens", "requests")) or name == "costusd"


def _combine(a: dict[str, Any], b: dict[str, Any], sign: int = 1) -> dict[str, Any]:
    """`a` with `b`'s counts added (sign=1) or taken away (-1); other fields from `b`
    when adding, from `a` when taking away. Counts: token, request and cost fields."""
    out = dict(a)
    for key, value in b.items():
        mine = out.get(key)
        if isinstance(value, dict):
            out[key] = _combine(mine if isinstance(mine, dict) else {}, value, sign)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and _additive(key):
            base = mine if isinstance(mine, (int, float)) and not isinstance(mine, bool) else 0
            out[key] = base + sign * value
        elif sign > 0 or key not in out:
            out[key] = value
    return out
