"""Client helpers: submit a task list as a workflow, and read its `TaskListResult`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError

from .._isolation import check_isolated_step
from .._journal import restore_result
from .._log import logger
from .._policy import check_list_options, graph_outcome, list_outcome
from .._secrets import ALWAYS_SECRET, SECRET_NAME
from ..config import CCExecutorConfig
from ..errors import ConfigError, MergeConflictError
from ..pipeline import (
    Task,
    TaskListResult,
    TaskSpec,
    check_tasks,
    generate_run_id,
    graph_of,
    step_label,
)
from ..result import TaskResult
from ._models import ListInput, ListOutcome, StepOutcome, StepPlan
from ._workflow import TaskListWorkflow

__all__ = ["DEFAULT_TASK_QUEUE", "connect", "result", "submit_task_list"]

DEFAULT_TASK_QUEUE = "cc-executor"

# Options that hold Python callables: they run where the task runs, and cannot be
# sent to a worker on another machine.
_CALLABLE_FIELDS = ("on_event", "success_callback", "failure_callback")

TaskListHandle = WorkflowHandle[Any, ListOutcome]


async def connect(address: str, *, namespace: str = "default", **kwargs: Any) -> Client:
    """A Temporal client for task lists: `Client.connect` with the pydantic data converter
    (the workflow's input and result are pydantic models). `kwargs` go to `Client.connect`."""
    kwargs.setdefault("data_converter", pydantic_data_converter)
    return await Client.connect(address, namespace=namespace, **kwargs)


async def submit_task_list(
    client: Client,
    tasks: Iterable[Task],
    config: CCExecutorConfig | None = None,
    *,
    run_id: str | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
    sequential: bool = True,
    stop_on_failure: bool = True,
    max_concurrency: int = 3,
    heartbeat_timeout: float | None = None,
    **overrides: Any,
) -> TaskListHandle:
    """Start `tasks` as a Temporal workflow whose id is `run_id`; return its handle.

    The same tasks and options as `cc_execute_list` (prompts or `TaskSpec`s, task
    graphs with `depends_on` too; callables cannot cross to a worker and raise
    `ConfigError`). Every step
    runs on a worker polling `task_queue` (`python -m cc_executor.temporal
    worker`), as an activity. Submitting a `run_id` that was submitted before
    starts nothing and returns the handle of that run, running or finished.

    `heartbeat_timeout`: seconds without a stream event after which Temporal
    gives up on a step's attempt (its CLI is stuck, or its worker was lost) and
    retries it; default: the step's `idle_timeout`. The retry policy comes from
    the config: `num_retries`, `retry_backoff` (initial, max; Temporal adds no
    jitter), permanent failures (`is_transient`) never retried.

    Options the list sets are stored in the workflow's history on the server:
    `env` must not hold credentials (`ConfigError`); give them to the workers.
    """
    base = (config or CCExecutorConfig()).with_overrides(**overrides)
    items = check_tasks(tasks, base, sequential=sequential)
    edges = graph_of(items)
    check_list_options(max_concurrency=max_concurrency, run_id=run_id)
    if heartbeat_timeout is not None and not heartbeat_timeout > 0:
        raise ConfigError(
            f"heartbeat_timeout must be > 0 seconds, got {heartbeat_timeout!r}",
            field="heartbeat_timeout",
        )
    steps = []
    for i, item in enumerate(items):
        if not isinstance(item, TaskSpec):
            raise ConfigError(
                f"step {i + 1} is a callable ({step_label(item)}): a step built at run time "
                "cannot be sent to a Temporal worker. Build the TaskSpec before submitting, or "
                "run this list locally with cc_execute_list",
                field="tasks",
            )
        steps.append(_plan(i, item, base))
    job = ListInput(
        run_id=run_id or generate_run_id(),
        steps=steps,
        sequential=sequential,
        stop_on_failure=stop_on_failure,
        max_concurrency=max_concurrency,
        max_total_cost_usd=base.max_total_cost_usd,
        max_total_duration=base.max_total_duration,
        heartbeat_timeout_s=heartbeat_timeout,
        edges=[list(e) for e in edges] if edges is not None else None,
        isolation=_isolation(base, items),
    )
    client = _with_pydantic(client)
    try:
        handle = await client.start_workflow(
            TaskListWorkflow.run,
            job,
            id=job.run_id,
            task_queue=task_queue,
            # A run id names one run: never start it a second time, running or ended.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        logger.info("task list {} was submitted before: returning that run", job.run_id)
        return client.get_workflow_handle_for(TaskListWorkflow.run, job.run_id)
    logger.info("task list {}: {} step(s) on task queue {}", job.run_id, len(steps), task_queue)
    return handle


async def result(handle: WorkflowHandle[Any, Any]) -> TaskListResult:
    """Wait for the task-list workflow behind `handle` to end; return its `TaskListResult`
    (the same type `cc_execute_list` returns, with typed errors on failed steps).

    Raises `temporalio.client.WorkflowFailureError` if the workflow itself did not
    complete (cancelled, terminated, timed out).
    """
    raw = await handle.result()
    outcome = raw if isinstance(raw, ListOutcome) else ListOutcome.model_validate(raw)
    return to_task_list_result(outcome)


def to_task_list_result(outcome: ListOutcome) -> TaskListResult:
    out = _list_result(outcome)
    delivery = outcome.delivery
    if delivery is None:
        return out
    out = dataclasses.replace(
        out, merged_into=delivery.merged_into, branch=delivery.branch, branches=delivery.branches
    )
    if delivery.error_message is None:
        return out
    error = MergeConflictError(delivery.error_message, files=delivery.files)
    if out.results:
        error.result = out.results[-1]
    return dataclasses.replace(out, success=False, error=error)


def _list_result(outcome: ListOutcome) -> TaskListResult:
    results = [_step_result(step, outcome.prompts[step.index]) for step in outcome.steps]
    if outcome.graph:
        return TaskListResult(
            results=results,
            **graph_outcome(results, outcome.skipped, outcome.budget_error),
            total_cost_usd=outcome.total_cost_usd,
            duration_s=outcome.duration_s,
            run_id=outcome.run_id,
            labels=list(outcome.labels),
            names=list(outcome.names),
        )
    return TaskListResult(
        results=results,
        **list_outcome(results, len(outcome.labels), outcome.budget_error),
        total_cost_usd=outcome.total_cost_usd,
        duration_s=outcome.duration_s,
        run_id=outcome.run_id,
        labels=list(outcome.labels),
        names=list(outcome.names),
    )


def _isolation(base: CCExecutorConfig, items: list[Any]) -> dict[str, Any] | None:
    """What opens the list's isolation on a worker: its config fields as given (cwd is
    resolved there); None without isolation. The steps' own options checked here."""
    if base.isolation == "none":
        return None
    for i, item in enumerate(items):
        check_isolated_step(i, item, base.isolation)
    names = {"cwd", "isolation", "isolation_merge", "state_dir", "snapshot_ignore"}
    return base.model_dump(mode="json", include=names & set(base.model_fields_set))


def _step_result(step: StepOutcome, prompt: str) -> TaskResult:
    if step.result_json is not None:
        return restore_result(step.result_json, step.error_json)
    # No attempt ended with a result (the last one timed out, or its worker was lost).
    now = datetime.now(timezone.utc)
    return TaskResult(
        task=prompt,
        success=False,
        error_type=step.error_type or "TaskFailedError",
        error_message=step.error_message or "the step failed",
        error_fields=step.error_state or {},
        execution_uuid="",
        started_at=now,
        ended_at=now,
    )


def _plan(i: int, spec: TaskSpec, base: CCExecutorConfig) -> StepPlan:
    config = base.with_overrides(**spec.overrides_over(base))
    for name in _CALLABLE_FIELDS:
        if getattr(config, name):
            raise ConfigError(
                f"step {i + 1}: {name} holds Python callables, which cannot be sent to a Temporal "
                f"worker; pass them in the worker's config (run_worker(config=...)) instead",
                field=name,
            )
    if isinstance(config.json_schema, type):
        model = config.json_schema.__name__
        raise ConfigError(
            f"step {i + 1}: json_schema is a pydantic model class ({model}), which cannot be sent "
            f"to a Temporal worker: pass its JSON schema, json_schema={model}.model_json_schema(), "
            f"and read the answer with {model}.model_validate(result.structured)",
            field="json_schema",
        )
    for name in config.env:
        if name in ALWAYS_SECRET or SECRET_NAME.search(name):
            raise ConfigError(
                f"step {i + 1}: env[{name!r}] looks like a credential, and a workflow's input is "
                "stored in Temporal's history: set it in the workers' environment instead "
                "(the CLI inherits it)",
                field="env",
            )
    fields = config.model_dump(
        mode="json", include=set(config.model_fields_set) - set(_CALLABLE_FIELDS)
    )
    return StepPlan(
        prompt=spec.prompt,
        name=spec.name,
        label=step_label(spec),
        continue_session=spec.continue_session,
        depends_on=list(spec.depends_on),
        config=fields,
        timeout=config.timeout,
        idle_timeout=config.idle_timeout,
        grace_s=config.kill_grace + config.result_exit_grace,
        max_budget_usd=config.max_budget_usd,
        max_attempts=config.num_retries + 1,
        backoff_initial_s=config.retry_backoff.initial,
        backoff_max_s=config.retry_backoff.max,
        retry_strategy=config.retry_strategy,
    )


def _with_pydantic(client: Client) -> Client:
    """`client`, or a copy of it with the pydantic payload converter (codec kept)."""
    converter = client.data_converter
    if isinstance(converter.payload_converter, PydanticPayloadConverter):
        return client
    settings = client.config()
    settings["data_converter"] = dataclasses.replace(
        converter, payload_converter_class=PydanticPayloadConverter
    )
    return Client(**settings)
