"""The activities: one step of a task list run by the library's own task runner.

`run_step` is one attempt of one step; Temporal's retry policy makes the next
one (the activity's own `num_retries` is 0, so attempts are never nested):

- it heartbeats on the CLI's stream events (at most once a second, and at once
  when the session id becomes known), with the session id in the details. A
  CLI that prints nothing for `heartbeat_timeout` misses its heartbeats and
  Temporal retries the step, on whichever worker polls first; the step's own
  `idle_timeout` is lowered to the heartbeat timeout, so the silent CLI is
  ended when Temporal stops waiting for it.
- a retried attempt finds the last attempt's session id in the heartbeat
  details and resumes it (`--resume` with the library's `RESUME_PROMPT`), when
  `retry_strategy="resume"` and the session is on this machine (a session is a
  file under the CLI's config dir); otherwise it starts the step over.
- a failure `is_transient` calls worth another attempt raises an
  `ApplicationError` (retryable; carrying the outcome, so the last attempt's
  result reaches the workflow); a permanent one is returned as a failed
  outcome, so Temporal does not retry it.
- cancellation reaches the activity as asyncio cancellation (delivered with a
  heartbeat's response); the runner then ends the CLI and its tool processes.
- an isolated step (`StepInput.isolation`) gets its worktree or copy on this worker,
  from the refs of the steps it builds on (a conflict: a failed outcome with
  `MergeConflictError`, not retried); its work is committed and the worktree removed
  when the attempt ends, and its ref travels back on the outcome. `open_isolation` and
  `finish_isolation` check and clean up before the list, and deliver its final state
  after it (the same `ListIsolation` the local runner uses).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._command import session_saved
from .._isolation import ListIsolation, NotEntered, conflict_result
from .._journal import error_json
from .._log import logger
from .._policy import limit_too_far, limit_wait, resume_prompt, resume_session
from .._predict import TimeoutPrediction, predict
from .._retry import RetryingRun, run_task
from ..config import CCExecutorConfig
from ..errors import CLINotFoundError, ConfigError, RateLimitError
from ..events import InitEvent
from ..result import TaskResult, TimeoutSource, is_transient
from ._models import (
    FINISH_ISOLATION,
    OPEN_ISOLATION,
    PREDICT_TIMEOUT,
    RUN_STEP,
    IsolationDelivery,
    IsolationFinish,
    IsolationOpen,
    PredictInput,
    Prediction,
    StepInput,
    StepOutcome,
)

__all__ = ["StepActivities"]

HEARTBEAT_EVERY_S = 1.0
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


class StepActivities:
    """The activities a worker runs. `config` is the worker's base config: a list's
    own options override it, step by step."""

    def __init__(self, config: CCExecutorConfig | None = None) -> None:
        self.config = config or CCExecutorConfig()

    def _step_config(self, fields: dict[str, Any]) -> CCExecutorConfig:
        try:
            return self.config.with_overrides(**fields)
        except ConfigError as exc:
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from exc

    @activity.defn(name=PREDICT_TIMEOUT)
    async def predict_timeout(self, job: PredictInput) -> Prediction:
        """A step's timeout="auto", predicted on the worker (it reads the history)."""
        prediction = await predict(job.prompt, self._step_config(job.config), run_task)
        return Prediction(seconds=prediction.seconds, source=prediction.source)

    @activity.defn(name=OPEN_ISOLATION)
    async def open_isolation(self, job: IsolationOpen) -> dict[str, Any]:
        """Check the list's repository (or directory) on this worker and remove what a
        crash of the run left; the isolation's state for the steps."""
        config = self._step_config(job.config)
        try:
            isolation = await ListIsolation.open(config, job.run_id)
        except ConfigError as exc:
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from exc
        assert isolation is not None
        return isolation.state()

    @activity.defn(name=FINISH_ISOLATION)
    async def finish_isolation(self, job: IsolationFinish) -> IsolationDelivery:
        """The list ended: its final state merged (or on a branch), or its branches kept."""
        isolation = ListIsolation.attach(job.state)
        delivery = await isolation.deliver(job.success, job.finals, job.branches)
        error = delivery.error
        return IsolationDelivery(
            merged_into=delivery.merged_into,
            branch=delivery.branch,
            branches=delivery.branches,
            error_message=str(error) if error is not None else None,
            files=error.files if error is not None else [],
        )

    @activity.defn(name=RUN_STEP)
    async def run_step(self, step: StepInput) -> StepOutcome:
        if step.isolation is None:
            return await self._run_step(step, self._step_config(step.config))
        place = step.isolation
        isolation = ListIsolation.attach(place.state)
        config = self._step_config(step.config)
        try:
            where = await isolation.enter_refs(
                step.index, place.name, place.cwd, place.label, place.refs
            )
        except NotEntered as conflict:
            result = conflict_result(step.prompt, conflict, dict(config.metadata))
            return _outcome(step.index, result, activity.info().attempt)
        # The step's folder; its records where the list's are.
        where["state_dir"] = config.state_dir
        if config.given_transcript_dir() is None:
            where["transcript_dir"] = config.resolved_transcript_dir()
        try:
            outcome = await self._run_step(
                step, config.with_overrides(**where), isolation=isolation, label=place.label
            )
        except BaseException:
            await isolation.abandon(step.index)
            raise
        return outcome

    async def _run_step(
        self,
        step: StepInput,
        config: CCExecutorConfig,
        *,
        isolation: ListIsolation | None = None,
        label: str = "",
    ) -> StepOutcome:
        info = activity.info()
        idle = min(config.idle_timeout or math.inf, step.heartbeat_timeout_s)
        config = config.with_overrides(num_retries=0, idle_timeout=idle)
        prompt = None
        session = _heartbeat_session(info.heartbeat_details) if info.attempt > 1 else None

        def is_saved(session: str) -> bool:
            saved = session_saved(session, config)
            if not saved:
                logger.warning(
                    "task list {} step {}: session {} of the last attempt is not on this "
                    "machine; starting the step over",
                    step.run_id,
                    step.index + 1,
                    session,
                )
            return saved

        resumed = resume_session(config.retry_strategy, session, is_saved=is_saved)
        if resumed:
            config = config.with_overrides(resume=resumed)
            prompt = resume_prompt(
                f"attempt {info.attempt - 1} of this step ended without a result: "
                "its worker was lost, or it failed or stalled"
            )
        # The workflow resolved the step's timeout once (a number in the config).
        source = cast(TimeoutSource, step.timeout_source or "explicit")
        timeout = TimeoutPrediction(seconds=float(config.timeout), source=source, reason="workflow")
        try:
            run = RetryingRun(
                step.prompt, config, prompt=prompt, attempt=info.attempt, timeout=timeout
            )
        except ConfigError as exc:
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from exc
        except CLINotFoundError as exc:  # another worker may have the CLI: retryable
            raise ApplicationError(str(exc), type="CLINotFoundError") from exc
        logger.info(
            "task list {} step {}: attempt {}{}",
            step.run_id,
            step.index + 1,
            info.attempt,
            f", resuming session {session}" if prompt else "",
        )
        heart = _Heart(session if prompt else None)
        batches = run.batches()
        try:
            async for batch in batches:
                heart.beat(batch)
        finally:
            await batches.aclose()
        result = run.result
        assert result is not None
        if isolation is not None:  # committed on its branch (or its copy kept) first
            result = await isolation.leave(step.index, result, label, step.run_id)
        outcome = _outcome(step.index, result, info.attempt)
        if isolation is not None:
            outcome = outcome.model_copy(
                update={"ref": isolation.ref(result), "branch": result.branch}
            )
        if not result.success and is_transient(result.error):
            error = result.error
            reset = error.reset_at if isinstance(error, RateLimitError) else None
            now = datetime.now(timezone.utc)
            if limit_too_far(reset, now, config.max_limit_wait):
                return outcome  # the limit resets too far away: give up, as locally
            delay = limit_wait(reset, now)
            raise ApplicationError(
                f"step {step.index + 1}: {result.error_type}: {result.error_message}",
                outcome,
                type=result.error_type,
                next_retry_delay=timedelta(seconds=delay) if delay is not None else None,
            )
        return outcome


class _Heart:
    """Heartbeats on stream events: throttled, and at once when the session id changes."""

    def __init__(self, session_id: str | None) -> None:
        self.session_id = session_id
        self.events = 0
        self._last = -math.inf

    def beat(self, batch: Sequence[Any]) -> None:
        self.events += len(batch)
        changed = False
        for event in batch:
            if isinstance(event, InitEvent) and event.session_id != self.session_id:
                self.session_id, changed = event.session_id, True
        now = time.monotonic()
        if changed or now - self._last >= HEARTBEAT_EVERY_S:
            self._last = now
            activity.heartbeat({"session_id": self.session_id, "events": self.events})


def _heartbeat_session(details: Sequence[Any]) -> str | None:
    if not details or not isinstance(details[-1], dict):
        return None
    session = details[-1].get("session_id")
    return session if isinstance(session, str) and _SESSION_ID.fullmatch(session) else None


def _outcome(index: int, result: TaskResult, attempt: int) -> StepOutcome:
    return StepOutcome(
        index=index,
        success=result.success,
        cost_usd=result.total_cost_usd,
        session_id=result.session_id,
        stopped_by=result.stopped_by,
        error_type=result.error_type,
        error_message=result.error_message,
        attempt=attempt,
        result_json=result.model_dump_json(),
        error_json=error_json(result),
    )
