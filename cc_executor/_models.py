"""The task list's data: `TaskSpec` (one step as given), `StepEvent` (what `on_step`
receives) and `TaskListResult` (what a list returns).

Plain data with no runner behind it, so loading a list file (`_tasklist`) or showing a
result never imports the runner (`pipeline`, `_run`). `pipeline` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union, overload

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .config import CCExecutorConfig, check_prompt, config_error, unknown_option_error
from .errors import CCExecutorError, ConfigError
from .result import TaskResult

if TYPE_CHECKING:
    from ._predict import TaskPlan

__all__ = [
    "StepEvent",
    "StepStatus",
    "Task",
    "TaskFactory",
    "TaskListResult",
    "TaskSpec",
    "default_config",
    "first_line",
]

# Options of the whole list: a step cannot override them.
_LIST_FIELDS = frozenset(
    {
        "state_dir",
        "max_total_cost_usd",
        "max_total_duration",
        "isolation",
        "isolation_merge",
    }
)
# What a step accepts: its own fields and every config field a step may override.
_STEP_OPTIONS = (
    frozenset({"prompt", "name", "continue_session", "depends_on"})
    | (frozenset(CCExecutorConfig.model_fields) | {"stream"}) - _LIST_FIELDS
)


class TaskSpec(BaseModel):
    """One step of a task list: its prompt, an optional name, and options for this step.

    Every other keyword is a `CCExecutorConfig` field that overrides the list's
    config for this step only (``timeout``, ``cwd``, ``model``,
    ``allowed_tools``, …); they are checked here, so a typo raises
    `ConfigError` before the list starts. `continue_session=True` continues the
    previous step's session (``--resume <its session_id>``) instead of starting
    a fresh one. ``TaskSpec("prompt", timeout=600)`` is short for
    ``TaskSpec(prompt="prompt", timeout=600)``.

    `depends_on` names the steps (by `name`) this one waits for: a list in which any
    step has one runs as a task graph (docs/graphs.md). In a graph, `continue_session`
    continues the session of the step's one dependency.
    """

    model_config = ConfigDict(frozen=True, extra="allow", defer_build=True)

    prompt: str
    name: str | None = None
    continue_session: bool = False
    depends_on: tuple[str, ...] = ()
    """Names of the steps this one waits for (a list or tuple of str; one name alone
    may be given as a str)."""

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def __init__(self, prompt: str | None = None, /, **data: Any) -> None:
        if prompt is not None:
            data["prompt"] = prompt
        elif "prompt" not in data:  # `promt:` in a YAML file: the typo, not "prompt missing"
            for name in data:
                if name not in _STEP_OPTIONS and name not in _LIST_FIELDS:
                    raise unknown_option_error(name, _STEP_OPTIONS)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc) from None
        check_prompt(self.prompt, "prompt")
        if self.name is not None and not self.name.strip():
            raise ConfigError("name must be a non-empty str or None", field="name")
        for need in self.depends_on:
            if not need.strip():
                raise ConfigError(
                    "depends_on holds step names; an empty name names no step", field="depends_on"
                )
        overrides = self.overrides
        for name in overrides:
            if name not in _STEP_OPTIONS and name not in _LIST_FIELDS:
                raise unknown_option_error(name, _STEP_OPTIONS)
            if name in _LIST_FIELDS:
                raise ConfigError(
                    f"{name!r} applies to a whole task list, not to one step: pass it in the "
                    "config or as a keyword of cc_execute_list",
                    field=name,
                )
        if self.continue_session and "resume" in overrides:
            raise ConfigError(
                "continue_session=True resumes the previous step's session; do not also "
                "pass resume=",
                field="resume",
            )
        default_config().with_overrides(**overrides)

    @property
    def overrides(self) -> dict[str, Any]:
        """The config fields this step overrides."""
        return dict(self.__pydantic_extra__ or {})

    def overrides_over(self, base: CCExecutorConfig) -> dict[str, Any]:
        """`overrides` to apply over the list's config `base`: every field replaces the
        list's, except `metadata`, whose labels are added to the list's (the step's value
        wins for a name both have). Both engines (local, Temporal) use this."""
        overrides = self.overrides
        if "metadata" in overrides:
            overrides["metadata"] = {**base.metadata, **overrides["metadata"]}
        return overrides


TaskFactory = Callable[[list[TaskResult]], "str | TaskSpec | Awaitable[str | TaskSpec]"]
"""A step built at run time from the results so far (in step order)."""

Task = Union[str, TaskSpec, TaskFactory, "TaskPlan"]
"""A step: a prompt, a `TaskSpec`, a callable building one, or a task of a plan from
`suggest_execution_strategy` (named ``"task N"``, with its depends_on and timeout)."""
StepStatus = Literal["started", "success", "failed", "restored", "skipped"]
""""skipped": a step of a task graph that will not run (its result says why)."""


@dataclass(frozen=True)
class StepEvent:
    """What `on_step` receives when a step starts, ends, is restored from the journal, or
    (in a task graph) is skipped."""

    run_id: str
    index: int
    """0-based, as in `TaskListResult.results`."""
    total: int
    name: str | None
    label: str
    """`name`, or the first line of the prompt."""
    status: StepStatus
    total_cost_usd: float
    """Spent by the list so far, restored steps included."""
    result: TaskResult | None = None
    """Set when the step ended, was restored or skipped."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The step's `metadata`: the list's, with the step's own labels over it."""


@dataclass
class TaskListResult:
    """The record of a task list. Iterates, indexes and measures like `results`.

    `results[i]` is step i: the steps that ran or were restored always form the
    start of the list (later ones are `skipped`). In a task graph (steps with
    `depends_on`) `results` holds every step: a skipped one has a result with
    `success=False` and a `StepSkippedError` / `DependencyFailedError` saying why,
    and its index is in `skipped`. `error` says why the list did not succeed: a
    `BudgetExceededError` when `max_total_cost_usd` / `max_total_duration` stopped
    it, else the first failed step's error; None on success.

    `result["build"]` (or `result.by_name("build")`) is the step named ``build``;
    `result[i]` step i.
    """

    results: list[TaskResult]
    success: bool
    failed_step: int | None
    """Index of the first step that failed, or None."""
    skipped: list[int]
    """Indices of the steps that did not run."""
    total_cost_usd: float
    """Cost of every step in `results`, restored ones included."""
    duration_s: float
    """Wall-clock seconds of this call."""
    run_id: str
    error: CCExecutorError | None = None
    restored: list[int] = field(default_factory=list)
    """Indices of the steps taken from the journal instead of being run."""
    labels: list[str] = field(default_factory=list)
    """A short label per step (its name, or its prompt's first line), skipped ones included."""
    names: list[str | None] = field(default_factory=list)
    """Each step's `name` (None when it has none), skipped ones included."""
    merged_into: str | None = None
    """isolation="worktree", isolation_merge="auto": the branch the final state was merged
    into (the one checked out at the start; ``"HEAD"`` for a detached HEAD); else None."""
    branch: str | None = None
    """isolation="worktree": the branch holding the final state when it was not merged
    (isolation_merge="branch", or the merge was refused: see `error`); else None."""
    branches: list[str] = field(default_factory=list)
    """isolation="worktree", list not merged: the step branches kept (each step's work, its
    `TaskResult.branch`); emptied (and the branches deleted) once the final state is merged
    or on its `branch`."""

    def __iter__(self) -> Iterator[TaskResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @overload
    def __getitem__(self, index: int | str) -> TaskResult: ...
    @overload
    def __getitem__(self, index: slice) -> list[TaskResult]: ...
    def __getitem__(self, index: int | str | slice) -> TaskResult | list[TaskResult]:
        if isinstance(index, str):
            return self.by_name(index)
        return self.results[index]

    def by_name(self, name: str) -> TaskResult:
        """The result of the step named `name`. Raises `KeyError` naming the closest
        names when no step has it, or saying it did not run (a list stopped before it)."""
        if name not in self.names:
            import difflib

            known = [n for n in self.names if n is not None]
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise KeyError(f"no step is named {name!r}{hint}")
        i = self.names.index(name)
        if i >= len(self.results):
            raise KeyError(f"step {i + 1} ({name!r}) did not run: the list stopped before it")
        return self.results[i]

    def raise_for_error(self) -> TaskListResult:
        """Raise `error` if the list did not succeed; return self otherwise."""
        if self.error is not None:
            raise self.error
        return self

    def summary(self) -> str:
        """One table: a row per step (status, cost, time, label), then the totals."""
        rows = [("step", "status", "cost", "time", "task")]
        restored, skipped = set(self.restored), set(self.skipped)
        for i, label in enumerate(self.labels):
            if i < len(self.results) and i in skipped:  # a task graph's skipped step
                r = self.results[i]
                status, cost, took = "skipped", "-", "-"
                label = f"{label} — {first_line(str(r.error_message), 80)}"
            elif i < len(self.results):
                r = self.results[i]
                status = "restored" if i in restored else ("success" if r.success else "failed")
                if r.error is not None:
                    label = f"{label} — {r.error_type}: {first_line(str(r.error), 80)}"
                cost, took = f"${r.total_cost_usd or 0:.4f}", f"{r.duration_s:.1f}s"
            else:
                status, cost, took = "skipped", "-", "-"
            rows.append((str(i + 1), status, cost, took, label))
        ok = sum(1 for r in self.results if r.success)
        verdict = f"{ok}/{len(self.labels)} ok · run {self.run_id}"
        if self.error is not None and self.error is not self._step_error():
            verdict += f" · {type(self.error).__name__}: {first_line(str(self.error), 100)}"
        if self.merged_into is not None:
            verdict += f" · merged into {self.merged_into}"
        elif self.branch is not None:
            verdict += f" · result on branch {self.branch}"
        if self.branches:
            verdict += f" · branches kept: {', '.join(self.branches)}"
        rows.append(
            ("total", "", f"${self.total_cost_usd:.4f}", f"{self.duration_s:.1f}s", verdict)
        )
        widths = [max(len(row[c]) for row in rows) for c in range(4)]
        lines = [
            "  ".join(
                [row[0].rjust(widths[0])] + [row[c].ljust(widths[c]) for c in (1, 2, 3)] + [row[4]]
            ).rstrip()
            for row in rows
        ]
        rule = "-" * min(100, max(len(line) for line in lines))
        return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])

    def _step_error(self) -> CCExecutorError | None:
        if self.failed_step is not None and self.failed_step < len(self.results):
            return self.results[self.failed_step].error
        return None

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        ok = sum(1 for r in self.results if r.success)
        return (
            f"<TaskListResult run_id={self.run_id!r} success={self.success} "
            f"{ok}/{len(self.labels)} ok failed_step={self.failed_step} "
            f"cost=${self.total_cost_usd:.4f}>"
        )


def first_line(text: str, limit: int) -> str:
    """The first line of `text`, cut to `limit` characters (an ellipsis marks the cut)."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def default_config() -> CCExecutorConfig:
    """The config a call without one uses."""
    # Built per call, never cached: its default state_dir is the current directory's
    # project folder, which changes with the directory.
    return CCExecutorConfig()
