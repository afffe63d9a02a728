"""What crosses the workflow boundary: plain, JSON-serialisable pydantic models.

The workflow holds only these (Temporal stores them in the workflow's history).
A step's `TaskResult` travels as its JSON (`result_json`) with its error's own
attributes (`error_json`), exactly as the task-list journal stores it, and is
rebuilt with its typed error by `cc_executor._journal.restore_result`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

WORKFLOW_NAME = "cc_executor.TaskList"
RUN_STEP = "cc_executor.run_step"
PREDICT_TIMEOUT = "cc_executor.predict_timeout"
OPEN_ISOLATION = "cc_executor.open_isolation"
FINISH_ISOLATION = "cc_executor.finish_isolation"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepPlan(_Model):
    """One step as the client checked it: its prompt and the config fields it runs with."""

    prompt: str
    name: str | None = None
    label: str
    continue_session: bool = False
    depends_on: list[str] = []
    """Names of the steps this one waits for (a task graph)."""
    config: dict[str, Any]
    """JSON of the list's config fields merged with the step's overrides (no callables)."""
    timeout: float | Literal["auto"]
    idle_timeout: float | None
    grace_s: float
    """kill_grace + result_exit_grace: how long ending the CLI may take past its timeout."""
    max_budget_usd: float | None = None
    max_attempts: int
    backoff_initial_s: float
    backoff_max_s: float
    retry_strategy: Literal["resume", "restart"] = "resume"


class ListInput(_Model):
    """The workflow's input."""

    run_id: str
    steps: list[StepPlan]
    sequential: bool = True
    stop_on_failure: bool = True
    max_concurrency: int = 3
    max_total_cost_usd: float | None = None
    max_total_duration: float | None = None
    heartbeat_timeout_s: float | None = None
    edges: list[list[int]] | None = None
    """A task graph's direct dependencies per step (indices, checked by the client with
    `_policy.check_graph`); None for a plain list."""
    isolation: dict[str, Any] | None = None
    """isolation="worktree"/"copy": the list's config fields that open it on a worker
    (cwd, isolation, isolation_merge, state_dir, snapshot_ignore, as given); else None."""


class StepIsolation(_Model):
    """An isolated step's place: the list's isolation (`ListIsolation.state`), the `ref`s
    of the steps it starts from (commits, or copies), its name, label and cwd option."""

    state: dict[str, Any]
    refs: list[str] = []
    name: str | None = None
    label: str
    cwd: str | None = None


class StepInput(_Model):
    """One activity execution's input."""

    run_id: str
    index: int
    prompt: str
    config: dict[str, Any]
    heartbeat_timeout_s: float
    timeout_source: str | None = None
    """Where the workflow's predicted timeout came from, when the step had timeout="auto"."""
    isolation: StepIsolation | None = None
    """Set when the list isolates its steps: where this step starts from."""


class IsolationOpen(_Model):
    run_id: str
    config: dict[str, Any]


class IsolationFinish(_Model):
    state: dict[str, Any]
    success: bool
    finals: list[str]
    """The refs whose merge is the final state."""
    branches: list[str]


class IsolationDelivery(_Model):
    """Where the final state went (`ListIsolation.deliver`)."""

    merged_into: str | None = None
    branch: str | None = None
    branches: list[str] = []
    error_message: str | None = None
    files: list[str] = []


class PredictInput(_Model):
    prompt: str
    config: dict[str, Any]


class Prediction(_Model):
    seconds: float
    source: str


class StepOutcome(_Model):
    """How a step ended, as the workflow records it."""

    index: int
    success: bool
    cost_usd: float | None = None
    session_id: str | None = None
    stopped_by: str | None = None
    """What ended the step's CLI early (`TaskResult.stopped_by`), if anything."""
    error_type: str | None = None
    error_message: str | None = None
    attempt: int = 1
    """The Temporal activity attempt that produced this outcome (1 = first)."""
    result_json: str | None = None
    """The step's `TaskResult` as JSON; None when no attempt ended with a result (the
    last one timed out or its worker was lost)."""
    error_json: str | None = None
    error_state: dict[str, Any] | None = None
    """For an outcome without result_json: attributes of the error to rebuild."""
    ref: str | None = None
    """An isolated step's work, for the steps built on it: its commit, or its copy."""
    branch: str | None = None
    """isolation="worktree": the branch holding the step's work."""


class ListOutcome(_Model):
    """The workflow's result; `cc_executor.temporal.result` turns it into a TaskListResult."""

    run_id: str
    steps: list[StepOutcome]
    """The steps that ran, in step order (always the first len(steps) steps); in a task
    graph every step, skipped ones included (see `skipped`)."""
    prompts: list[str]
    labels: list[str]
    names: list[str | None] = []
    graph: bool = False
    """A task graph: `steps` holds every step, `skipped` the ones that never ran."""
    failed_step: int | None = None
    skipped: list[int]
    total_cost_usd: float = 0.0
    duration_s: float = 0.0
    budget_error: str | None = None
    """Set when max_total_cost_usd / max_total_duration stopped the list."""
    delivery: IsolationDelivery | None = None
    """isolation="worktree": where the final state went."""
