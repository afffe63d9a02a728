"""Task lists: `cc_execute_list` runs many tasks, each in a fresh CLI process and session,
strictly one after another (or at most `max_concurrency` at a time), and records every
step boundary in a SQLite journal so that a list killed mid-way resumes where it stopped.
A sequential list spawns step N+1's CLI while step N runs (`_prestart`); it gets its
prompt only after step N has fully ended.

Resume: a list has a `run_id`. Each step's start and end are committed to the
journal (`state_dir/state.db`, see `_journal.py`) before the list moves on.
Running the same list again with the same `run_id` restores every step that
finished successfully with the same prompt (compared by SHA-256) without
running it, and runs the rest: in a sequential list, from the first step that
did not finish successfully (failed, or started and never ended) or whose
prompt changed, to the end; in a concurrent list, exactly the steps that did
not finish successfully, since its steps are independent; in a task graph, the
steps that did not finish successfully and every step that depends on one whose
prompt or dependencies changed.

Task graphs: a list in which any step has `depends_on` runs as a graph
(`_ListRun.run_graph`): a step starts once every step it depends on succeeded, at
most `max_concurrency` at once; the steps downstream of a failed one are skipped.
The rules (checks, order, what starts or is skipped next, the outcome) are
`_policy`'s, shared with the Temporal workflow.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _otel
from ._api import run_sync
from ._display import ListView, chain_hooks, with_live_view
from ._isolation import ListIsolation, NotEntered, conflict_result
from ._log import logger
from ._models import (
    StepEvent,
    StepStatus,
    TaskFactory,
    TaskListResult,
    TaskSpec,
)
from ._models import (
    Task as Task,  # re-exported: the Temporal client names a list step by it
)
from ._models import default_config as _default_config
from ._models import first_line as _first_line
from ._policy import (
    GraphRun,
    budget_cut,
    budget_stop,
    check_continue,
    check_graph,
    check_list_options,
    continued_session,
    graph_outcome,
    is_graph,
    isolation_bases,
    isolation_finals,
    list_outcome,
    skip_reason,
    step_limits,
    stop_reason,
    topological_order,
)
from ._predict import ExecutionStrategy, TaskPlan, TimeoutPrediction
from ._prestart import Prestarted, Prestarter
from ._retry import call_hook, resolve_timeout, run_task
from ._run import uncancellable
from ._runtime import require_asyncio
from ._secrets import find_secrets
from ._tasklist import load_task_list
from .config import CCExecutorConfig
from .errors import ConfigError, DependencyFailedError, StateStoreError, StepSkippedError
from .result import TaskResult

if TYPE_CHECKING:
    from ._journal import Journal, NullJournal, StepRecord
    from ._statestore import RunLock

__all__ = [
    "StepEvent",
    "TaskListResult",
    "TaskSpec",
    "cc_execute_list",
    "cc_execute_list_sync",
    "cc_execute_plan",
    "cc_execute_plan_sync",
    "load_task_list",
]


async def cc_execute_list(
    tasks: Iterable[Task],
    config: CCExecutorConfig | None = None,
    *,
    sequential: bool = True,
    stop_on_failure: bool = True,
    run_id: str | None = None,
    max_concurrency: int = 3,
    on_step: Callable[[StepEvent], Any] | None = None,
    wait_for_lease: float = 0,
    **overrides: Any,
) -> TaskListResult:
    """Run `tasks` (prompts, `TaskSpec`s, or callables building one from the results so far).

    Sequential (default): step N+1 receives its prompt only after step N's CLI
    and every process it started have exited and its transcript is closed;
    each step is a fresh process and session unless its spec has
    `continue_session=True`. With `prestart=True` (the default) step N+1's CLI
    is spawned while step N runs and waits for its prompt; it is used only if
    nothing it read at start changed (see docs/prestart.md), and ended on every
    way out of the list. `stop_on_failure=False` goes on after a failed
    step. `sequential=False` runs at most `max_concurrency` steps at a time,
    started in list order.

    Task graph: when any step is a `TaskSpec` with `depends_on` (names of other
    steps), the list runs as a graph whatever `sequential` says: a step starts
    as soon as every step it depends on succeeded, at most `max_concurrency`
    (default 3) at once, steps ready together in list order. When a step fails,
    every step depending on it (transitively) is skipped, its result a
    `DependencyFailedError` naming the failed step; independent branches go on
    unless `stop_on_failure=True` (the default), which starts nothing new after a
    failure (the steps not started get a `StepSkippedError`). A duplicate name,
    an unknown name, a step depending on itself and a cycle are `ConfigError`s
    raised before anything starts; see docs/graphs.md.

    Every step boundary is committed to the journal in `state_dir`; calling
    again with the same `run_id` restores the steps that finished and runs the
    rest (see the module docstring). A `run_id` is generated when not given:
    it is on the result and in the log, but pass your own to be able to resume
    after a crash.

    `on_step(event)` (sync or async) is called when a step starts, ends, or is
    restored; an exception in it is logged and ignored.

    One run id runs in one place at a time: with a `state_dir`, the call holds an
    advisory lock on the run id (a file beside `state.db`) until it returns; the
    kernel releases it if the process dies, so a crash never blocks a resume. A
    second call on a held run id raises `RunLockedError` naming the holder, or
    first waits up to `wait_for_lease` seconds (float, default 0) for it.

    Returns a `TaskListResult`; raises only what prevents a step from starting
    at all (`ConfigError`, `CLINotFoundError`, `RunLockedError`), `StateStoreError`
    when `state.db` cannot be read or written (corrupt, disk full, read-only:
    every step that ran is recorded as finished and on its `list_result`), and
    `CancelledError` when cancelled, after every running step's processes are gone.
    """
    require_asyncio("cc_execute_list")
    base = (config or _default_config()).with_overrides(**overrides)
    items = check_tasks(tasks, base, sequential=sequential)
    edges = graph_of(items)
    check_list_options(max_concurrency=max_concurrency, run_id=run_id)
    if (
        not isinstance(wait_for_lease, (int, float))
        or isinstance(wait_for_lease, bool)
        or not 0 <= wait_for_lease < float("inf")
    ):
        raise ConfigError(
            f"wait_for_lease is the seconds to wait for another call holding the run id "
            f"(a number >= 0), got {wait_for_lease!r}",
            field="wait_for_lease",
        )
    run_id = run_id or generate_run_id()
    if base.stream_output:  # the step lines subscribe like any caller's on_step
        on_step = chain_hooks(ListView(base).on_step, on_step)
    journal = await _open_journal(base)
    lock: RunLock | None = None
    isolation: ListIsolation | None = None
    try:
        lock = await _lock_run(base, journal, run_id, float(wait_for_lease))
        # After the lock: opening removes what a crash of this run left (worktrees).
        isolation = await ListIsolation.open(base, run_id)
        run = _ListRun(
            items,
            base,
            run_id,
            journal=journal,
            on_step=on_step,
            stop_on_failure=stop_on_failure,
            sequential=sequential,
            isolation=isolation,
            edges=edges,
        )
        try:
            with _otel.list_span(run_id, base, len(items)):
                await run.load()
                if edges is not None:
                    await run.run_graph(max_concurrency)
                elif sequential:
                    await run.run_sequential()
                else:
                    await run.run_concurrent(max_concurrency)
        except StateStoreError as exc:
            exc.list_result = run.outcome()
            raise
        outcome = run.outcome()
        if isolation is not None:
            outcome = await isolation.finish(outcome, run.finals())
        return outcome
    finally:
        try:
            if isolation is not None:
                await isolation.close()
        finally:
            try:
                await journal.close()
            finally:
                if lock is not None:
                    lock.release()


def cc_execute_list_sync(
    tasks: Iterable[Task],
    config: CCExecutorConfig | None = None,
    *,
    sequential: bool = True,
    stop_on_failure: bool = True,
    run_id: str | None = None,
    max_concurrency: int = 3,
    on_step: Callable[[StepEvent], Any] | None = None,
    wait_for_lease: float = 0,
    **overrides: Any,
) -> TaskListResult:
    """`cc_execute_list` for scripts without an event loop."""
    return run_sync(
        cc_execute_list(
            tasks,
            config,
            sequential=sequential,
            stop_on_failure=stop_on_failure,
            run_id=run_id,
            max_concurrency=max_concurrency,
            on_step=on_step,
            wait_for_lease=wait_for_lease,
            **overrides,
        )
    )


async def cc_execute_plan(
    plan: ExecutionStrategy | dict[str, Any],
    config: CCExecutorConfig | None = None,
    **kwargs: Any,
) -> TaskListResult:
    """Run the plan `suggest_execution_strategy` returned, as it is: each of its tasks a
    step named ``"task N"`` (N counts from 1), waiting for the tasks its `depends_on`
    names, with the plan's predicted `timeout_s`; tasks without dependencies start at
    once (at most `max_concurrency`, default 3, at a time). `plan` may be the
    `ExecutionStrategy` or its JSON form (a dict, as the MCP tool returns it).

    `kwargs` are `cc_execute_list`'s (`run_id`, `max_concurrency`, `stop_on_failure`,
    config overrides, ...). Passing `plan.tasks` to `cc_execute_list` runs the same
    graph. Raises what `cc_execute_list` raises; `ConfigError` for a plan that is not one.
    """
    if isinstance(plan, dict):
        from pydantic import ValidationError

        try:
            plan = ExecutionStrategy.model_validate(plan)
        except ValidationError as exc:
            raise ConfigError(
                f"plan is not an ExecutionStrategy: {exc.errors()[0]['msg']} at "
                f"{'.'.join(map(str, exc.errors()[0]['loc']))}",
                field="plan",
            ) from None
    if not isinstance(plan, ExecutionStrategy):
        raise ConfigError(
            f"plan must be what suggest_execution_strategy returned, got {type(plan).__name__}",
            field="plan",
        )
    # A plan's independent tasks may run at once: that is what the plan says.
    kwargs.setdefault("sequential", False)
    return await cc_execute_list(plan.tasks, config, **kwargs)


def cc_execute_plan_sync(
    plan: ExecutionStrategy | dict[str, Any],
    config: CCExecutorConfig | None = None,
    **kwargs: Any,
) -> TaskListResult:
    """`cc_execute_plan` for scripts without an event loop."""
    return run_sync(cc_execute_plan(plan, config, **kwargs))


def plan_step_name(index: int) -> str:
    """The name a planned task (0-based `index`) runs under: ``"task 1"``, ``"task 2"``…"""
    return f"task {index + 1}"


def spec_of_plan(task: TaskPlan) -> TaskSpec:
    """A planned task as a step: named `plan_step_name`, depending on the tasks its
    `depends_on` indices name, with the plan's predicted timeout."""
    return TaskSpec(
        prompt=task.task,
        name=plan_step_name(task.index),
        depends_on=[plan_step_name(j) for j in task.depends_on],
        timeout=task.timeout_s,
    )


# ---------------------------------------------------------------------------- internals


class _ListRun:
    """State of one call of cc_execute_list."""

    def __init__(
        self,
        items: list[TaskSpec | TaskFactory],
        config: CCExecutorConfig,
        run_id: str,
        *,
        journal: Journal | NullJournal,
        on_step: Callable[[StepEvent], Any] | None,
        stop_on_failure: bool,
        sequential: bool,
        isolation: ListIsolation | None = None,
        edges: list[tuple[int, ...]] | None = None,
    ) -> None:
        self.items = items
        self.edges = edges
        """A task graph's direct dependencies per step (None: a plain list)."""
        self.config = config
        self.run_id = run_id
        self.journal = journal
        self.on_step = on_step
        self.stop_on_failure = stop_on_failure
        self.sequential = sequential
        self.labels = [step_label(item) for item in items]
        self.specs: dict[int, TaskSpec] = {}
        self.results: dict[int, TaskResult] = {}
        self.restored: list[int] = []
        self.records: dict[int, StepRecord] = {}
        self.spent = 0.0
        self.t0 = time.monotonic()
        self.stop = False
        self.budget_message: str | None = None
        """Set when a budget of the list stopped it (the error is built in `outcome`)."""
        self.raised: Exception | None = None
        self.skipped: dict[int, int] = {}
        """A task graph's skipped steps: step -> the failed step it was skipped for
        (itself when the list stopped before it)."""
        self.isolation = isolation
        if isolation is not None:
            for i, item in enumerate(items):
                if isinstance(item, TaskSpec):
                    isolation.check(i, item, config)
        # Sequential lists: the CLI of the step after the running one, spawned ahead.
        self.prestarter = Prestarter()
        self.cwds: dict[int, Path] = {}

    async def load(self) -> None:
        self.records = await self.journal.load(self.run_id)
        logger.info(
            "task list {}: {} step(s), {} recorded in the journal",
            self.run_id,
            len(self.items),
            len(self.records),
        )

    async def run_sequential(self) -> None:
        try:
            await self._run_sequential()
        finally:  # every way out: list end, stop, budget, error, cancellation
            await uncancellable(self.prestarter.aclose())

    async def _run_sequential(self) -> None:
        restoring = bool(self.records)
        for i in range(len(self.items)):
            if not restoring and self._check_budget(i):
                return
            spec = await self._spec(i)
            if restoring:
                if await self._restore(i, spec):
                    continue
                restoring = False
                if self._check_budget(i):
                    return
            # drop_later: the journal's later steps were built on what this step redoes.
            await self._run(i, spec, drop_later=True)
            if self.stop:
                return

    async def run_concurrent(self, max_concurrency: int) -> None:
        import anyio

        slots = anyio.Semaphore(max_concurrency)

        async def run_one(i: int, spec: TaskSpec) -> None:
            try:
                await self._run(i, spec, drop_later=False)
            except Exception as exc:  # re-raised once the running steps ended
                self.raised = self.raised or exc
                self.stop = True
            finally:
                slots.release()

        async with anyio.create_task_group() as tg:
            for i in range(len(self.items)):
                # Steps start in list order, so the steps that ran are a prefix.
                await slots.acquire()
                started = False
                try:
                    if self.stop:
                        break
                    spec = await self._spec(i)
                    if await self._restore(i, spec):
                        continue
                    if self._check_budget(i):
                        break
                    tg.start_soon(run_one, i, spec)
                    started = True
                except Exception as exc:  # raised as is (not in an ExceptionGroup) below
                    self.raised = self.raised or exc
                    break
                finally:
                    if not started:
                        slots.release()
        if self.raised is not None:
            raise self.raised

    async def run_graph(self, max_concurrency: int) -> None:
        """Run a task graph: restore what the journal holds (in dependency order: a step
        whose dependency runs again runs again too), then start each step once its
        dependencies succeeded, at most `max_concurrency` at a time (`GraphRun` decides
        what starts and what is skipped)."""
        import math

        import anyio

        assert self.edges is not None
        graph = GraphRun(self.edges)
        for i in topological_order(self.edges):
            spec = await self._spec(i)
            restorable = all(graph.status.get(j) == "success" for j in self.edges[i])
            if self.records and restorable and await self._restore(i, spec):
                graph.succeeded(i)
        send, receive = anyio.create_memory_object_stream[tuple[int, bool]](math.inf)
        running = 0

        async def run_one(i: int) -> None:
            ok = False
            try:
                ok = (await self.run_node(i, self.specs[i], self._needs(i))).success
            except Exception as exc:  # re-raised once the running steps ended
                self.raised = self.raised or exc
                self.stop = True
            finally:
                send.send_nowait((i, ok))

        with send, receive:
            async with anyio.create_task_group() as tg:
                while True:
                    ready = [] if self.stop else graph.start(max_concurrency - running)
                    for n, i in enumerate(ready):
                        if self._check_budget(i):
                            self.stop = True
                            for k in ready[n:]:  # handed out, never started
                                del graph.status[k]
                            break
                        running += 1
                        tg.start_soon(run_one, i)
                    if running == 0:
                        break
                    i, ok = await receive.receive()
                    running -= 1
                    if ok:
                        graph.succeeded(i)
                    else:
                        for k, (via, cause) in graph.failed(i).items():
                            self.skipped[k] = cause
                            await self._skip(k, via, cause)
        if self.raised is not None:
            raise self.raised  # `outcome` gives the steps that never started a result
        for i in graph.not_started():  # the list stopped before these
            self.skipped[i] = i
            await self._skip(i, i, i)

    async def run_node(self, i: int, spec: TaskSpec, needs: dict[int, TaskResult]) -> TaskResult:
        """Run step i of a task graph, whose dependencies ended with `needs` (step index ->
        result, all successful); return its result. The one place a graph step runs."""
        return await self._run(i, spec, drop_later=False)

    def _needs(self, i: int) -> dict[int, TaskResult]:
        assert self.edges is not None
        return {j: self.results[j] for j in self.edges[i]}

    async def _skip(self, i: int, via: int, cause: int) -> None:
        """Record step i of a graph as skipped: its dependency `via` failed or was skipped
        for `cause`'s failure; or (all three equal) the list stopped before it."""
        spec = self.specs[i]
        result = self._skipped_result(i, via, cause)
        self.results[i] = result
        await self.journal.skip(
            self.run_id, i, spec.name, self._hash(i, spec), result, depends_on=spec.depends_on
        )
        logger.info("task list {}: {}", self.run_id, result.error_message)
        await self._emit(i, "skipped", result)

    def _skipped_result(self, i: int, via: int, cause: int) -> TaskResult:
        spec = self.specs.get(i)
        error: StepSkippedError
        if cause == i:
            why = stop_reason(self.budget_message, self.stop_on_failure)
            error = StepSkippedError(
                f"step {i + 1} ({self.labels[i]}) was not started: {why}", reason=why
            )
        else:
            names = [self._name(k) for k in range(len(self.items))]
            message, failed = skip_reason(i, via, cause, self.labels, names)
            error = DependencyFailedError(message, dependency=failed, reason=message)
        now = datetime.now(timezone.utc)
        return TaskResult(
            task=spec.prompt if spec is not None else self.labels[i],
            success=False,
            error_type=type(error).__name__,
            error_message=str(error),
            error_fields=error.fields,
            execution_uuid="",
            started_at=now,
            ended_at=now,
            metadata=self._step_metadata(spec),
        )

    def _hash(self, i: int, spec: TaskSpec) -> str:
        """What the journal compares on resume: the prompt; in a graph also the step's
        name and its dependencies' names (a changed graph runs the changed steps again)."""
        if self.edges is None:
            return _prompt_hash(spec.prompt)
        needs = ",".join(sorted(spec.depends_on))
        return _prompt_hash(f"{spec.prompt}\0{spec.name or ''}\0{needs}")

    async def _spec(self, i: int) -> TaskSpec:
        item = self.items[i]
        if isinstance(item, TaskSpec):
            self.specs[i] = item
            return item
        so_far = [self.results[j] for j in sorted(self.results)]
        made = item(so_far)
        if inspect.isawaitable(made):
            made = await made
        if isinstance(made, str):
            made = TaskSpec(prompt=made)
        if not isinstance(made, TaskSpec):
            raise ConfigError(
                f"step {i + 1}: the callable {step_label(item)} returned {type(made).__name__}; "
                "it must return a str or a TaskSpec",
                field="tasks",
            )
        check_continue(i, made.continue_session, sequential=self.sequential)
        if self.isolation is not None:
            self.isolation.check(i, made, self.config)
        self.labels[i] = step_label(made)
        self.specs[i] = made
        return made

    async def _restore(self, i: int, spec: TaskSpec) -> bool:
        record = self.records.get(i)
        if record is None:
            return False
        if record.status != "success" or record.result is None:
            how = "never ended" if record.status == "started" else record.status
            logger.info("task list {}: step {} {} last time; running it", self.run_id, i + 1, how)
            return False
        if record.prompt_hash != self._hash(i, spec):
            logger.warning(
                "task list {}: the prompt of step {} ({}) changed since it ran; running it{}",
                self.run_id,
                i + 1,
                self.labels[i],
                " and every step after it again"
                if self.sequential or self.edges is not None
                else " again",
            )
            return False
        result = record.result
        if self.isolation is not None and not await self.isolation.can_restore(result):
            logger.info(
                "task list {}: the work of step {} is gone (branch or copy); running it",
                self.run_id,
                i + 1,
            )
            return False
        self.results[i] = result
        self.restored.append(i)
        self.spent += result.total_cost_usd or 0.0
        logger.info("task list {}: step {} restored from the journal", self.run_id, i + 1)
        await self._emit(i, "restored", result)
        return True

    def _check_budget(self, i: int) -> bool:
        """True (and `budget_message` set) if step i must not start: a budget is spent."""
        message = budget_stop(
            i,
            spent=self.spent,
            elapsed=self._elapsed(),
            max_total_cost_usd=self.config.max_total_cost_usd,
            max_total_duration=self.config.max_total_duration,
        )
        if message is None:
            return False
        self.budget_message = message
        logger.warning("task list {}: {}", self.run_id, message)
        return True

    def _step_metadata(self, spec: TaskSpec | None) -> dict[str, Any]:
        """The list's `metadata` with the step's own over it (a step adds labels)."""
        if spec is None:
            return dict(self.config.metadata)
        return dict(spec.overrides_over(self.config).get("metadata", self.config.metadata))

    async def _step_config(
        self, i: int, spec: TaskSpec, place: dict[str, Any] | None = None
    ) -> tuple[CCExecutorConfig, TimeoutPrediction, bool]:
        """The step's config and its timeout (resolved once, before its first attempt),
        with its `--max-budget-usd` and timeout capped at what the list has left. The bool
        says whether the list's duration cut the timeout."""
        overrides = spec.overrides_over(self.config)
        # The session continued: the previous step's, in a graph the one dependency's.
        previous = self.results.get(self.edges[i][0] if self.edges and self.edges[i] else i - 1)
        session = continued_session(
            spec.continue_session, previous.session_id if previous is not None else None
        )
        if session:
            overrides["resume"] = session
        elif spec.continue_session:
            logger.warning(
                "task list {}: step {} asks to continue the previous session, but step {} "
                "has none; it starts a fresh session",
                self.run_id,
                i + 1,
                i,
            )
        if place:  # an isolated step: its folder, the list's records
            overrides.update(place)
            overrides["state_dir"] = self.config.state_dir
            if self.config.given_transcript_dir() is None:
                overrides["transcript_dir"] = self.config.resolved_transcript_dir()
        config = self.config.with_overrides(**overrides)
        timeout = await resolve_timeout(spec.prompt, config)
        limits = step_limits(
            timeout_s=timeout.seconds,
            max_budget_usd=config.max_budget_usd,
            spent=self.spent,
            elapsed=self._elapsed(),
            max_total_cost_usd=self.config.max_total_cost_usd,
            max_total_duration=self.config.max_total_duration,
        )
        if limits.max_budget_usd != config.max_budget_usd:
            config = config.with_overrides(max_budget_usd=limits.max_budget_usd)
        if limits.timeout_capped:
            timeout = timeout.model_copy(update={"seconds": limits.timeout_s})
        return config, timeout, limits.timeout_capped

    async def _run(self, i: int, spec: TaskSpec, *, drop_later: bool) -> TaskResult:
        place: dict[str, Any] | None = None
        if self.isolation is not None:
            try:
                place = await self.isolation.enter(i, spec, self.labels[i], self._bases(i))
            except NotEntered as conflict:  # its bases' work does not merge, or git failed
                return await self._not_run(i, spec, conflict, drop_later=drop_later)
        try:
            config, timeout, timeout_capped = await self._step_config(i, spec, place)
            prompt_hash = self._hash(i, spec)
            await self.journal.start(
                self.run_id,
                i,
                spec.name,
                prompt_hash,
                drop_later=drop_later,
                depends_on=spec.depends_on,
            )
            await self._emit(i, "started")
            prestarted: Prestarted | None = None
            # Graph nodes are not pre-started yet, nor isolated steps (their folder is
            # made when they start).
            if self.sequential and self.edges is None and self.isolation is None:
                # Checked after on_step ran: what a hook changed counts too.
                prestarted = await self.prestarter.take(
                    i, config, spec.prompt, self._changed_by(i - 1)
                )
                self._prestart(i + 1)
            try:
                with _otel.step_span(i, spec.name, config) as span:
                    # stream_output: the step's live view subscribes here, as cc_run's does.
                    result = await run_task(
                        spec.prompt, with_live_view(config), timeout=timeout, prestarted=prestarted
                    )
                    _otel.step_result(span, result)
            finally:
                if prestarted is not None:  # a no-op once the step's run took it over
                    await uncancellable(prestarted.aclose())
            self.cwds[i] = (config.cwd or Path.cwd()).absolute()
            if self.isolation is not None:
                result = await self.isolation.leave(i, result, self.labels[i], self.run_id)
        except BaseException:
            if self.isolation is not None:
                await self.isolation.abandon(i)
            raise
        # Kept before the journal write: a failing store still hands the result back.
        self.results[i] = result
        self.spent += result.total_cost_usd or 0.0
        await self.journal.finish(self.run_id, i, result, find_secrets(config))
        if not result.success:
            cut = budget_cut(
                i,
                timeout_capped=timeout_capped,
                stopped_by=result.stopped_by,
                max_total_duration=self.config.max_total_duration,
            )
            if cut is not None and self.budget_message is None:
                self.budget_message = cut
            if self.stop_on_failure:
                self.stop = True
        await self._emit(i, "success" if result.success else "failed", result)
        return result

    async def _not_run(
        self, i: int, spec: TaskSpec, conflict: NotEntered, *, drop_later: bool
    ) -> TaskResult:
        """Step i failed before it started: the work it builds on does not merge, or its
        isolated folder could not be made."""
        logger.error("task list {}: {}", self.run_id, conflict)
        result = conflict_result(spec.prompt, conflict, self._step_metadata(spec))
        self.results[i] = result
        await self.journal.start(
            self.run_id,
            i,
            spec.name,
            self._hash(i, spec),
            drop_later=drop_later,
            depends_on=spec.depends_on,
        )
        await self.journal.finish(self.run_id, i, result, find_secrets(self.config))
        if self.stop_on_failure:
            self.stop = True
        await self._emit(i, "failed", result)
        return result

    def _bases(self, i: int) -> list[TaskResult]:
        """The results step i builds on under isolation (`_policy.isolation_bases`)."""
        bases = isolation_bases(
            i, edges=self.edges, sequential=self.sequential, succeeded=self._succeeded()
        )
        return [self.results[j] for j in bases]

    def finals(self) -> list[TaskResult]:
        """The results whose merge is the list's final state under isolation
        (`_policy.isolation_finals`)."""
        total, succeeded = len(self.items), self._succeeded()
        finals = isolation_finals(
            total, edges=self.edges, sequential=self.sequential, succeeded=succeeded
        )
        return [self.results[j] for j in finals]

    def _succeeded(self) -> dict[int, bool]:
        return {j: r.success for j, r in self.results.items()}

    def _prestart(self, i: int) -> None:
        """Spawn step i's CLI now, while the step before it runs, when its command is
        known already: a static step (not a callable) that reads no session at start
        (continue_session, resume, continue_conversation), its `prestart` on, and no list
        cost budget (it caps each step's --max-budget-usd at what is left) or tracing
        (each attempt's TRACEPARENT is known only when it starts)."""
        if i >= len(self.items) or self.config.max_total_cost_usd is not None:
            return
        item = self.items[i]
        if not isinstance(item, TaskSpec) or item.continue_session or _otel.tracing():
            return
        config = self.config.with_overrides(**item.overrides_over(self.config))
        if not config.prestart or config.resume is not None or config.continue_conversation:
            return
        self.prestarter.begin(i, config, item.prompt)

    def _changed_by(self, i: int) -> list[Path]:
        """The files step i changed (its verified changes), as absolute paths."""
        result, cwd = self.results.get(i), self.cwds.get(i)
        if result is None or cwd is None:
            return []
        paths = [*result.files_created, *result.files_modified, *result.files_deleted]
        return [cwd / p for p in paths]  # an absolute p stays as it is

    async def _emit(self, i: int, status: StepStatus, result: TaskResult | None = None) -> None:
        if self.on_step is None:
            return
        spec = self.specs.get(i)
        event = StepEvent(
            run_id=self.run_id,
            index=i,
            total=len(self.items),
            name=spec.name if spec is not None else None,
            label=self.labels[i],
            status=status,
            total_cost_usd=self.spent,
            result=result,
            metadata=result.metadata if result is not None else self._step_metadata(spec),
        )
        await call_hook(self.on_step, event, f"task list {self.run_id}: on_step at step {i + 1}")

    def _name(self, i: int) -> str | None:
        spec = self.specs.get(i)
        return spec.name if spec is not None else None

    def _elapsed(self) -> float:
        return time.monotonic() - self.t0

    def outcome(self) -> TaskListResult:
        names = [self._name(i) for i in range(len(self.items))]
        if self.edges is not None:
            for i in range(len(self.items)):  # an error stopped the list before these
                if i not in self.results:
                    self.skipped[i] = i
                    self.results[i] = self._skipped_result(i, i, i)
            every = [self.results[i] for i in range(len(self.items))]
            return TaskListResult(
                results=every,
                **graph_outcome(every, sorted(self.skipped), self.budget_message),
                total_cost_usd=self.spent,
                duration_s=self._elapsed(),
                run_id=self.run_id,
                restored=sorted(self.restored),
                labels=list(self.labels),
                names=names,
            )
        ran = sorted(self.results)
        assert ran == list(range(len(ran))), ran  # the steps that ran are a prefix
        results = [self.results[i] for i in ran]
        return TaskListResult(
            results=results,
            **list_outcome(results, len(self.items), self.budget_message),
            total_cost_usd=self.spent,
            duration_s=self._elapsed(),
            run_id=self.run_id,
            restored=sorted(self.restored),
            labels=list(self.labels),
            names=names,
        )


def check_tasks(
    tasks: Iterable[Task], config: CCExecutorConfig, *, sequential: bool
) -> list[TaskSpec | TaskFactory]:
    """Every step checked before the first one starts (callables: when they are called)."""
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
        raise ConfigError(
            f"tasks must be a list of tasks, got {type(tasks).__name__}"
            + (": wrap a single prompt in a list, [prompt]" if isinstance(tasks, str) else ""),
            field="tasks",
        )
    tasks = [spec_of_plan(t) if isinstance(t, TaskPlan) else t for t in tasks]
    graph = any(isinstance(t, TaskSpec) and t.depends_on for t in tasks)
    items: list[TaskSpec | TaskFactory] = []
    for i, task in enumerate(tasks):
        if isinstance(task, (str, TaskSpec)):
            try:
                task = TaskSpec(prompt=task) if isinstance(task, str) else task
                config.with_overrides(**task.overrides)
            except ConfigError as exc:
                raise ConfigError(f"step {i + 1}: {exc}", field=exc.field) from None
            if not graph:  # a graph's steps continue their dependency's session
                check_continue(i, task.continue_session, sequential=sequential)
        elif not callable(task):
            raise ConfigError(
                f"step {i + 1}: a task is a str, a TaskSpec or a callable returning one, "
                f"got {type(task).__name__}",
                field="tasks",
            )
        items.append(task)
    return items


def graph_of(items: list[TaskSpec | TaskFactory]) -> list[tuple[int, ...]] | None:
    """The direct dependencies (step indices) of each step when `items` is a task graph
    (a step has `depends_on`), checked (`_policy.check_graph`); None for a plain list."""
    specs = [item for item in items if isinstance(item, TaskSpec)]
    if not is_graph([spec.depends_on for spec in specs]):
        return None
    for i, item in enumerate(items):
        if not isinstance(item, TaskSpec):
            raise ConfigError(
                f"step {i + 1} is a callable ({step_label(item)}), but the list is a task graph "
                "(a step has depends_on): build that step as a TaskSpec with a name, and let "
                "the steps that need it depend on it",
                field="tasks",
            )
    return check_graph(
        [s.name for s in specs], [s.depends_on for s in specs], [s.continue_session for s in specs]
    )


async def _open_journal(config: CCExecutorConfig) -> Journal | NullJournal:
    from ._journal import Journal, NullJournal

    if config.state_dir is None:
        return NullJournal()
    return await Journal.open(config.state_dir)


async def _lock_run(
    config: CCExecutorConfig, journal: Journal | NullJournal, run_id: str, wait_s: float
) -> RunLock | None:
    """Hold `run_id` for this call (no journal: nothing to protect, no lock)."""
    import anyio.to_thread

    from ._journal import Journal
    from ._statestore import RunLock

    if config.state_dir is None or not isinstance(journal, Journal):
        return None
    lock = await RunLock.acquire(
        journal.path.parent, run_id, wait_s=wait_s, holder=lambda: journal.holder(run_id)
    )
    try:
        await anyio.to_thread.run_sync(journal.claim, run_id)
    except BaseException:
        lock.release()
        raise
    return lock


def _prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogateescape")).hexdigest()


def generate_run_id() -> str:
    """A fresh task-list run id: ``<UTC time>Z-<8 hex digits>``, sortable by start."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


def step_label(item: TaskSpec | TaskFactory) -> str:
    """How a step is named in logs and views: its name, its prompt's first line, or
    ``<function name>`` for a step built at run time."""
    if isinstance(item, TaskSpec):
        return item.name or _first_line(item.prompt, 60)
    return f"<{getattr(item, '__name__', 'callable')}>"
