"""The task-list workflow: deterministic orchestration only, every step an activity.

It runs the steps strictly one after another (or at most `max_concurrency` at a
time, started in list order; or, for a task graph, each step once its dependencies
succeeded, skipping what depends on a failed step), checks the list's budgets before each step, and
records each step's `StepOutcome`. No I/O here: predicting an "auto" timeout
and running the CLI are activities (`_activities.py`). The list's rules (budgets,
caps, `continue_session`, the outcome) are `cc_executor._policy`'s, the same
functions the local `cc_execute_list` calls.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
    TimeoutType,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from .._policy import (
        GraphRun,
        budget_cut,
        budget_stop,
        continued_session,
        isolation_bases,
        isolation_finals,
        list_verdict,
        skip_reason,
        step_limits,
        stop_reason,
    )
    from ._models import (
        FINISH_ISOLATION,
        OPEN_ISOLATION,
        PREDICT_TIMEOUT,
        RUN_STEP,
        WORKFLOW_NAME,
        IsolationDelivery,
        IsolationFinish,
        IsolationOpen,
        ListInput,
        ListOutcome,
        PredictInput,
        Prediction,
        StepInput,
        StepIsolation,
        StepOutcome,
        StepPlan,
    )

# Room for the worker to start the CLI and report back, on top of the step's own
# timeout and the time ending the CLI may take.
START_MARGIN_S = 60.0
# With no idle_timeout and no heartbeat_timeout: a step whose CLI prints nothing for
# this long is given up on (and its worker presumed lost).
DEFAULT_HEARTBEAT_TIMEOUT_S = 900.0
PREDICT_START_TO_CLOSE_S = 180.0
ISOLATION_START_TO_CLOSE_S = 600.0


@workflow.defn(name=WORKFLOW_NAME)
class TaskListWorkflow:
    def __init__(self) -> None:
        self._job: ListInput | None = None
        self._outcomes: dict[int, StepOutcome] = {}
        self._spent = 0.0
        self._budget_error: str | None = None
        self._stop = False
        self._skipped: dict[int, int] = {}
        """A task graph's skipped steps: step -> the failed step it was skipped for."""
        self._isolation: dict[str, Any] | None = None
        """The list's isolation (`ListIsolation.state`), opened on a worker; or None."""
        self._delivery: IsolationDelivery | None = None

    @workflow.run
    async def run(self, job: ListInput) -> ListOutcome:
        self._job = job
        if job.isolation is not None:
            self._isolation = await workflow.execute_activity(
                OPEN_ISOLATION,
                IsolationOpen(run_id=job.run_id, config=job.isolation),
                result_type=dict,
                activity_id="isolation-open",
                start_to_close_timeout=timedelta(seconds=ISOLATION_START_TO_CLOSE_S),
                retry_policy=RetryPolicy(
                    maximum_attempts=3, non_retryable_error_types=["ConfigError"]
                ),
            )
        if job.edges is not None:
            await self._run_graph(job, [tuple(e) for e in job.edges])
        elif job.sequential:
            await self._run_sequential(job)
        else:
            await self._run_concurrent(job)
        if self._isolation is not None:
            await self._deliver(job, self._isolation)
        return self.progress()

    def _succeeded(self) -> dict[int, bool]:
        return {i: o.success for i, o in self._outcomes.items() if i not in self._skipped}

    def _edges(self, job: ListInput) -> list[tuple[int, ...]] | None:
        return [tuple(e) for e in job.edges] if job.edges is not None else None

    async def _deliver(self, job: ListInput, isolation: dict[str, Any]) -> None:
        """The list's final state merged (or left on a branch) on a worker, as locally."""
        succeeded = self._succeeded()
        success = (
            self._budget_error is None
            and len(succeeded) == len(job.steps)
            and all(succeeded.values())
        )
        finals = isolation_finals(
            len(job.steps), edges=self._edges(job), sequential=job.sequential, succeeded=succeeded
        )
        outcomes = [self._outcomes[i] for i in sorted(self._outcomes)]
        self._delivery = await workflow.execute_activity(
            FINISH_ISOLATION,
            IsolationFinish(
                state=isolation,
                success=success,
                finals=[r for r in (self._outcomes[i].ref for i in finals) if r],
                branches=[o.branch for o in outcomes if o.branch],
            ),
            result_type=IsolationDelivery,
            activity_id="isolation-finish",
            start_to_close_timeout=timedelta(seconds=ISOLATION_START_TO_CLOSE_S),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )

    @workflow.query
    def progress(self) -> ListOutcome:
        """The outcome so far (the final one once the workflow ended)."""
        job = self._job
        assert job is not None
        if job.edges is not None:
            return ListOutcome(
                run_id=job.run_id,
                steps=[self._outcomes[i] for i in sorted(self._outcomes)],
                prompts=[s.prompt for s in job.steps],
                labels=[s.label for s in job.steps],
                names=[s.name for s in job.steps],
                graph=True,
                skipped=sorted(self._skipped),
                total_cost_usd=self._spent,
                duration_s=(workflow.now() - workflow.info().start_time).total_seconds(),
                budget_error=self._budget_error,
                delivery=self._delivery,
            )
        ran = sorted(self._outcomes)
        # Running steps are not in the outcome yet; the finished ones form a prefix
        # once the list ended, which is what the result reports.
        prefix = [i for n, i in enumerate(ran) if i == n]
        verdict = list_verdict(
            [self._outcomes[i].success for i in prefix],
            len(job.steps),
            budget_stopped=self._budget_error is not None,
        )
        return ListOutcome(
            run_id=job.run_id,
            steps=[self._outcomes[i] for i in prefix],
            prompts=[s.prompt for s in job.steps],
            labels=[s.label for s in job.steps],
            names=[s.name for s in job.steps],
            failed_step=verdict.failed_step,
            skipped=verdict.skipped,
            total_cost_usd=self._spent,
            duration_s=(workflow.now() - workflow.info().start_time).total_seconds(),
            budget_error=self._budget_error,
            delivery=self._delivery,
        )

    async def _run_sequential(self, job: ListInput) -> None:
        for i, step in enumerate(job.steps):
            if self._out_of_budget(job, i):
                return
            previous = self._outcomes.get(i - 1)
            await self._run(job, i, step, previous.session_id if previous else None)
            if self._stop:
                return

    async def _run_concurrent(self, job: ListInput) -> None:
        slots = asyncio.Semaphore(job.max_concurrency)
        running: list[asyncio.Task[None]] = []

        async def run_one(i: int, step: StepPlan) -> None:
            try:
                await self._run(job, i, step, None)
            finally:
                slots.release()

        for i, step in enumerate(job.steps):
            await slots.acquire()
            if self._stop or self._out_of_budget(job, i):
                slots.release()
                break
            running.append(asyncio.create_task(run_one(i, step)))
        if running:
            await asyncio.gather(*running)

    async def _run_graph(self, job: ListInput, edges: list[tuple[int, ...]]) -> None:
        """Each step once its dependencies succeeded, at most `max_concurrency` at once;
        `GraphRun` (the state the local runner follows too) decides what starts and what
        is skipped."""
        graph = GraphRun(edges)
        done: list[int] = []
        tasks: list[asyncio.Task[None]] = []

        async def run_one(i: int) -> None:
            try:
                step = job.steps[i]
                parent = self._outcomes.get(edges[i][0]) if step.continue_session else None
                await self._run(job, i, step, parent.session_id if parent else None)
            finally:
                done.append(i)

        running = 0
        try:
            while True:
                ready = [] if self._stop else graph.start(job.max_concurrency - running)
                for n, i in enumerate(ready):
                    if self._out_of_budget(job, i):
                        self._stop = True
                        for k in ready[n:]:  # handed out, never started
                            del graph.status[k]
                        break
                    running += 1
                    tasks.append(asyncio.create_task(run_one(i)))
                if running == 0:
                    break
                await workflow.wait_condition(lambda: bool(done))
                while done:
                    i = done.pop(0)
                    running -= 1
                    outcome = self._outcomes.get(i)
                    if outcome is not None and outcome.success:
                        graph.succeeded(i)
                    else:
                        for k, (via, cause) in graph.failed(i).items():
                            self._skip(job, k, via, cause)
        except asyncio.CancelledError:
            # The workflow was cancelled: every running step's activity is cancelled and
            # waited for (its CLI and tools gone) before the workflow ends cancelled.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        await asyncio.gather(*tasks)
        for i in graph.not_started():  # the list stopped before these
            self._skip(job, i, i, i)

    def _skip(self, job: ListInput, i: int, via: int, cause: int) -> None:
        """Step i of a graph is skipped: its dependency `via` failed or was skipped for
        `cause`'s failure; or (all equal) the list stopped before it."""
        self._skipped[i] = cause
        if cause == i:
            why = stop_reason(self._budget_error, job.stop_on_failure)
            message = f"step {i + 1} ({job.steps[i].label}) was not started: {why}"
            outcome = StepOutcome(
                index=i,
                success=False,
                error_type="StepSkippedError",
                error_message=message,
                error_state={"reason": why},
            )
        else:
            labels = [s.label for s in job.steps]
            names = [s.name for s in job.steps]
            message, failed = skip_reason(i, via, cause, labels, names)
            outcome = StepOutcome(
                index=i,
                success=False,
                error_type="DependencyFailedError",
                error_message=message,
                error_state={"dependency": failed, "reason": message},
            )
        self._outcomes[i] = outcome
        workflow.logger.info("task list %s: %s", job.run_id, message)

    def _elapsed(self) -> float:
        return (workflow.now() - workflow.info().start_time).total_seconds()

    def _out_of_budget(self, job: ListInput, i: int) -> bool:
        message = budget_stop(
            i,
            spent=self._spent,
            elapsed=self._elapsed(),
            max_total_cost_usd=job.max_total_cost_usd,
            max_total_duration=job.max_total_duration,
        )
        if message is None:
            return False
        self._budget_error = message
        workflow.logger.warning("task list %s: %s", job.run_id, message)
        return True

    async def _run(self, job: ListInput, i: int, step: StepPlan, session: str | None) -> None:
        outcome, timeout_capped = await self._step(job, i, step, session)
        self._outcomes[i] = outcome
        self._spent += outcome.cost_usd or 0.0
        if not outcome.success:
            cut = budget_cut(
                i,
                timeout_capped=timeout_capped,
                stopped_by=outcome.stopped_by,
                max_total_duration=job.max_total_duration,
            )
            if cut is not None and self._budget_error is None:
                self._budget_error = cut
            if job.stop_on_failure:
                self._stop = True

    async def _step(
        self, job: ListInput, i: int, step: StepPlan, session: str | None
    ) -> tuple[StepOutcome, bool]:
        """The step's outcome, and whether the list's max_total_duration cut its timeout."""
        config: dict[str, Any] = dict(step.config)
        resume = continued_session(step.continue_session, session)
        if resume:
            config["resume"] = resume
        elif step.continue_session:
            workflow.logger.warning(
                "task list %s: step %d continues the previous session, which has none; "
                "it starts a fresh one",
                job.run_id,
                i,
            )
        source = None
        if step.timeout == "auto":
            prediction: Prediction = await workflow.execute_activity(
                PREDICT_TIMEOUT,
                PredictInput(prompt=step.prompt, config=config),
                result_type=Prediction,
                activity_id=f"predict-{i}",
                start_to_close_timeout=timedelta(seconds=PREDICT_START_TO_CLOSE_S),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            timeout, source = prediction.seconds, prediction.source
        else:
            timeout = step.timeout
        # What the list has left caps the step, as in the local cc_execute_list.
        limits = step_limits(
            timeout_s=timeout,
            max_budget_usd=step.max_budget_usd,
            spent=self._spent,
            elapsed=self._elapsed(),
            max_total_cost_usd=job.max_total_cost_usd,
            max_total_duration=job.max_total_duration,
        )
        timeout = limits.timeout_s
        if limits.max_budget_usd is not None:
            config["max_budget_usd"] = limits.max_budget_usd
        config["timeout"] = timeout
        heartbeat = job.heartbeat_timeout_s or step.idle_timeout or DEFAULT_HEARTBEAT_TIMEOUT_S
        place = None
        if self._isolation is not None:
            bases = isolation_bases(
                i, edges=self._edges(job), sequential=job.sequential, succeeded=self._succeeded()
            )
            place = StepIsolation(
                state=self._isolation,
                refs=[r for r in (self._outcomes[j].ref for j in bases) if r],
                name=step.name,
                label=step.label,
                cwd=step.config.get("cwd"),
            )
        try:
            outcome: StepOutcome = await workflow.execute_activity(
                RUN_STEP,
                StepInput(
                    run_id=job.run_id,
                    index=i,
                    prompt=step.prompt,
                    config=config,
                    heartbeat_timeout_s=heartbeat,
                    timeout_source=source,
                    isolation=place,
                ),
                result_type=StepOutcome,
                activity_id=f"step-{i}",
                start_to_close_timeout=timedelta(seconds=timeout + step.grace_s + START_MARGIN_S),
                heartbeat_timeout=timedelta(seconds=heartbeat),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=max(step.backoff_initial_s, 0.001)),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(
                        seconds=max(step.backoff_max_s, step.backoff_initial_s, 0.001)
                    ),
                    maximum_attempts=step.max_attempts,
                    non_retryable_error_types=["ConfigError"],
                ),
                # Cancelling the workflow waits until the step's CLI and its tools are gone.
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise  # the workflow was cancelled: it ends cancelled, the CLI gone
            return _lost_step(i, heartbeat, timeout, exc), limits.timeout_capped
        return outcome, limits.timeout_capped


def _lost_step(i: int, heartbeat: float, timeout: float, exc: ActivityError) -> StepOutcome:
    """The outcome of a step whose last attempt raised instead of returning."""
    cause = exc.cause
    if isinstance(cause, ApplicationError) and cause.details:
        # A transient failure on the last allowed attempt: its result came along.
        return StepOutcome.model_validate(cause.details[0])
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT:
        return StepOutcome(
            index=i,
            success=False,
            error_type="ProcessCrashedError",
            error_message=(
                f"step {i + 1}: no heartbeat for {heartbeat:g} s on its last attempt (the worker "
                "was lost, or the CLI printed nothing for that long)"
            ),
        )
    if isinstance(cause, TimeoutError):
        return StepOutcome(
            index=i,
            success=False,
            stopped_by="timeout",
            error_type="TaskTimeoutError",
            error_message=f"step {i + 1}: its activity ran out of time (timeout {timeout:g} s)",
            error_state={"timeout_s": timeout},
        )
    kind = type(cause).__name__
    if isinstance(cause, ApplicationError) and cause.type:
        kind = cause.type
    return StepOutcome(
        index=i,
        success=False,
        error_type=kind,
        error_message=f"step {i + 1}: {kind}: {cause if cause is not None else exc}",
    )
