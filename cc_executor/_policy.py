"""The rules of a task list and of a task's attempts, written once for both engines.

The local runner (`pipeline`, `_retry`) and the Temporal workflow (`temporal/`) ask the
same questions; the answers live here, as pure functions of what they are given:

- may this list run at all (`check_list_options`, `check_continue`);
- may step i start, or is a budget spent (`budget_stop`);
- what a step runs with: the session it continues (`continued_session`), its timeout
  and `--max-budget-usd` capped at what the list has left (`step_limits`);
- was a failed step cut short by the list's time budget (`budget_cut`): a
  `BudgetExceededError` on both engines;
- what the next attempt of a task is: which session it resumes (`resume_session`), with
  which prompt (`resume_prompt`); how long it waits for a limit reset (`limit_wait`,
  `limit_too_far`);
- how a list's outcome is built from its steps (`list_outcome`; the workflow's
  progress query uses `list_verdict`, which needs only whether each step succeeded);
- task graphs (steps with `depends_on`): whether the list is one (`is_graph`), its
  checks and edges (`check_graph`), the order it is restored in (`topological_order`),
  which steps start or are skipped as steps end (`GraphRun`: deterministic state, no
  I/O), why a step is skipped (`skip_reason`, `stop_reason`), and its outcome
  (`graph_outcome`);
- isolated steps (`isolation="worktree"`/`"copy"`): which steps' work a step starts from
  (`isolation_bases`) and which steps' work is the list's final state (`isolation_finals`).

No I/O and no clock: the caller passes the time (`elapsed`, `now`) and anything read
from disk (`is_saved`), so the Temporal workflow can call these during replay and get
the same answers.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypedDict

from .errors import BudgetExceededError, CCExecutorError, ConfigError

if TYPE_CHECKING:
    from .result import TaskResult

__all__ = [
    "DEFAULT_GRAPH_CONCURRENCY",
    "GraphRun",
    "ListVerdict",
    "MIN_STEP_TIMEOUT_S",
    "OutcomeFields",
    "RESET_MARGIN_S",
    "RESUME_PROMPT",
    "StepLimits",
    "budget_cut",
    "budget_stop",
    "check_continue",
    "check_graph",
    "check_list_options",
    "continued_session",
    "graph_outcome",
    "is_graph",
    "isolation_bases",
    "isolation_finals",
    "limit_too_far",
    "limit_wait",
    "list_error",
    "list_outcome",
    "list_verdict",
    "resume_prompt",
    "resume_session",
    "skip_reason",
    "step_limits",
    "stop_reason",
    "topological_order",
]

RESET_MARGIN_S = 1.0
"""A limit's reset time is given in whole seconds: waking this much after it avoids a
refusal."""

MIN_STEP_TIMEOUT_S = 0.01
"""The shortest timeout a step capped by `max_total_duration` gets: what is left may be
nothing once a prediction took its time, and a timeout must be positive."""

RESUME_PROMPT = (
    "Your previous attempt at this task was interrupted ({reason}). Continue where you "
    "stopped: check what is already done, do not repeat finished steps, and complete the "
    "task. End with the answer the task asks for."
)
"""The prompt of an attempt that resumes the failed attempt's session. The task itself
is already in that session; `TaskResult.task` and the transcript header keep it too."""


# -- arguments ---------------------------------------------------------------------------


def check_list_options(*, max_concurrency: int, run_id: str | None) -> None:
    """Raise `ConfigError` for a list option no engine can run with."""
    if max_concurrency < 1:
        raise ConfigError(
            f"max_concurrency must be >= 1, got {max_concurrency}", field="max_concurrency"
        )
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise ConfigError(f"run_id must be a non-empty str, got {run_id!r}", field="run_id")


def check_continue(i: int, continue_session: bool, *, sequential: bool) -> None:
    """Raise `ConfigError` when step i (0-based; messages count from 1) asks to continue a
    session it cannot have."""
    if not continue_session:
        return
    if not sequential:
        raise ConfigError(
            f"step {i + 1} has continue_session=True, which needs the previous step's session: "
            "use sequential=True",
            field="continue_session",
        )
    if i == 0:
        raise ConfigError(
            "step 1 has continue_session=True but there is no previous step; to resume an "
            "earlier session pass resume=<session_id> instead",
            field="continue_session",
        )


# -- a step of a list ------------------------------------------------------------------


def budget_stop(
    i: int,
    *,
    spent: float,
    elapsed: float,
    max_total_cost_usd: float | None,
    max_total_duration: float | None,
) -> str | None:
    """Why step i must not start (a budget of the list is spent), or None if it may."""
    message = None
    if max_total_cost_usd is not None and spent >= max_total_cost_usd:
        message = f"max_total_cost_usd={max_total_cost_usd:g} reached (spent ${spent:.4f})"
    elif max_total_duration is not None and elapsed >= max_total_duration:
        message = f"max_total_duration={max_total_duration:g}s reached ({elapsed:.1f}s)"
    if message is None:
        return None
    return f"{message}; step {i + 1} and later were not started"


def continued_session(continue_session: bool, previous_session: str | None) -> str | None:
    """The session a step resumes: the previous step's, when it asks to continue it and
    that step had one (otherwise it starts fresh; the caller logs why)."""
    return previous_session if continue_session and previous_session else None


@dataclass(frozen=True)
class StepLimits:
    """What a step runs with once the list's budgets are applied."""

    timeout_s: float
    max_budget_usd: float | None
    timeout_capped: bool
    """The list's `max_total_duration` cut the step's timeout: if the step then times
    out, the list's budget stopped it (`budget_cut`)."""


def step_limits(
    *,
    timeout_s: float,
    max_budget_usd: float | None,
    spent: float,
    elapsed: float,
    max_total_cost_usd: float | None,
    max_total_duration: float | None,
) -> StepLimits:
    """The step's timeout (resolved: a number) and `--max-budget-usd`, capped at what the
    list has left of `max_total_duration` and `max_total_cost_usd`."""
    capped = False
    if max_total_duration is not None:
        left = max(max_total_duration - elapsed, MIN_STEP_TIMEOUT_S)
        if left < timeout_s:
            timeout_s, capped = left, True
    if max_total_cost_usd is not None:
        left_usd = max_total_cost_usd - spent
        if max_budget_usd is None or left_usd < max_budget_usd:
            max_budget_usd = left_usd
    return StepLimits(timeout_s=timeout_s, max_budget_usd=max_budget_usd, timeout_capped=capped)


def budget_cut(
    i: int, *, timeout_capped: bool, stopped_by: str | None, max_total_duration: float | None
) -> str | None:
    """The list's budget error when step i was ended by a timeout the list's
    `max_total_duration` had cut; None when the step's own timeout (or anything else)
    ended it."""
    if not timeout_capped or stopped_by != "timeout" or max_total_duration is None:
        return None
    return (
        f"max_total_duration={max_total_duration:g}s reached during step {i + 1}, which was ended"
    )


@dataclass(frozen=True)
class ListVerdict:
    """A list's outcome, from which steps ran and how they ended."""

    success: bool
    failed_step: int | None
    """The first step that failed, or None."""
    skipped: list[int]
    """The steps that did not run."""


def list_verdict(successes: Sequence[bool], total: int, *, budget_stopped: bool) -> ListVerdict:
    """`successes` says how each step that ran ended, in step order (they are the first
    `len(successes)` of the `total` steps). A list stopped by a budget did not succeed."""
    failed_step = next((i for i, ok in enumerate(successes) if not ok), None)
    skipped = list(range(len(successes), total))
    return ListVerdict(
        success=not budget_stopped and not skipped and failed_step is None,
        failed_step=failed_step,
        skipped=skipped,
    )


class OutcomeFields(TypedDict):
    """The fields of a `TaskListResult` that say how the list ended."""

    success: bool
    failed_step: int | None
    skipped: list[int]
    error: CCExecutorError | None


def list_outcome(
    results: Sequence[TaskResult], total: int, budget_message: str | None
) -> OutcomeFields:
    """How a list ended: `results` are the steps that ran, in step order (the first
    `len(results)` of the `total` steps); `budget_message` is set when a budget stopped
    it. What both engines' `TaskListResult` is built with."""
    verdict = list_verdict(
        [r.success for r in results], total, budget_stopped=budget_message is not None
    )
    return OutcomeFields(
        success=verdict.success,
        failed_step=verdict.failed_step,
        skipped=verdict.skipped,
        error=list_error(results, verdict.failed_step, budget_message),
    )


def list_error(
    results: Sequence[TaskResult], failed_step: int | None, budget_message: str | None
) -> CCExecutorError | None:
    """Why a list did not succeed: a `BudgetExceededError` when a budget stopped it (its
    `result` is the last step that ran), else the first failed step's error; None."""
    if budget_message is not None:
        return BudgetExceededError(budget_message, result=results[-1] if results else None)
    if failed_step is not None:
        return results[failed_step].error
    return None


# -- task graphs -------------------------------------------------------------------------

DEFAULT_GRAPH_CONCURRENCY = 3
"""How many steps of a task graph run at once unless `max_concurrency` says otherwise:
the same default as a concurrent list's."""

GraphStatus = str
"""A graph step's state: "running", "success", "failed" or "skipped" (absent: pending)."""


def is_graph(depends_on: Sequence[Sequence[str]]) -> bool:
    """A list runs as a graph when any of its steps has a `depends_on`."""
    return any(depends_on)


def check_graph(
    names: Sequence[str | None],
    depends_on: Sequence[Sequence[str]],
    continue_session: Sequence[bool],
) -> list[tuple[int, ...]]:
    """Check a task graph; return each step's direct dependencies as step indices (in
    the order given). Raises `ConfigError` (messages count steps from 1) for a duplicate
    name, a step depending on itself or twice on one step, an unknown name (with the
    closest names), a cycle (its members in order), and a `continue_session` step that
    does not have exactly one dependency, or whose dependency another step continues too
    (two CLIs would write one session at once)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name is None:
            continue
        if name in index:
            raise ConfigError(
                f"steps {index[name] + 1} and {i + 1} are both named {name!r}: names in a task "
                "graph must be unique",
                field="name",
            )
        index[name] = i
    edges: list[tuple[int, ...]] = []
    for i, needs in enumerate(depends_on):
        own = f"step {i + 1}" + (f" ({names[i]!r})" if names[i] is not None else "")
        found: list[int] = []
        for need in needs:
            if need == names[i]:
                raise ConfigError(f"{own} depends on itself", field="depends_on")
            j = index.get(need)
            if j is None:
                close = difflib.get_close_matches(need, list(index), n=3, cutoff=0.5)
                hint = (
                    f"; did you mean {' or '.join(repr(c) for c in close)}?"
                    if close
                    else f"; the named steps are {', '.join(repr(n) for n in index) or 'none'}"
                )
                raise ConfigError(
                    f"{own} depends on {need!r}, which no step is named{hint}",
                    field="depends_on",
                )
            if j in found:
                raise ConfigError(f"{own} lists {need!r} twice in depends_on", field="depends_on")
            found.append(j)
        edges.append(tuple(found))
    cycle = _find_cycle(edges)
    if cycle is not None:
        members = " -> ".join(repr(names[k]) for k in [*cycle, cycle[0]])
        raise ConfigError(
            f"the task graph has a cycle: {members} (each waits for the next); remove one "
            "of these dependencies",
            field="depends_on",
        )
    continued: dict[int, int] = {}
    for i, wants in enumerate(continue_session):
        if not wants:
            continue
        if len(edges[i]) != 1:
            raise ConfigError(
                f"step {i + 1} has continue_session=True, which in a task graph continues the "
                f"session of its one dependency; it has {len(edges[i])}",
                field="continue_session",
            )
        (j,) = edges[i]
        if j in continued:
            raise ConfigError(
                f"steps {continued[j] + 1} and {i + 1} both continue the session of step "
                f"{j + 1} ({names[j]!r}); two CLIs cannot continue one session at once: "
                "let one of them start a fresh session",
                field="continue_session",
            )
        continued[j] = i
    return edges


def _find_cycle(edges: Sequence[Sequence[int]]) -> list[int] | None:
    """One cycle of the graph (each member depends on the next... in the order found),
    or None. Iterative depth-first search: no recursion limit on long chains."""
    state = [0] * len(edges)  # 0 new, 1 on the path, 2 done
    for root in range(len(edges)):
        if state[root]:
            continue
        path: list[int] = []
        stack: list[tuple[int, int]] = [(root, 0)]
        while stack:
            node, k = stack.pop()
            if k == 0:
                state[node] = 1
                path.append(node)
            if k < len(edges[node]):
                stack.append((node, k + 1))
                nxt = edges[node][k]
                if state[nxt] == 1:
                    return path[path.index(nxt) :]
                if state[nxt] == 0:
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def topological_order(edges: Sequence[Sequence[int]]) -> list[int]:
    """Every step after its dependencies; among steps free at once, the lower index
    first. `edges` must be acyclic (`check_graph`)."""
    waiting = [len(set(e)) for e in edges]
    dependents: list[list[int]] = [[] for _ in edges]
    for i, needs in enumerate(edges):
        for j in set(needs):
            dependents[j].append(i)
    free = [i for i, n in enumerate(waiting) if n == 0]
    heapq.heapify(free)
    order: list[int] = []
    while free:
        i = heapq.heappop(free)
        order.append(i)
        for k in dependents[i]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(free, k)
    return order


class GraphRun:
    """Where a task graph's run stands: which steps wait, which may start, which are
    skipped. Deterministic and free of I/O, so the local runner and the Temporal workflow
    (also during replay) each hold one and follow the same rules.

    A step may start once every step it depends on succeeded (`succeeded`); `start`
    hands out such steps in index order. When a step fails (`failed`), every step that
    depends on it, directly or through others, is skipped at once, each with the
    dependency that made it so and the failed step at the root. O(edges) over a whole
    run: a 10,000-step graph costs milliseconds, not a scan per finished step.
    """

    def __init__(self, edges: Sequence[Sequence[int]]) -> None:
        self.edges = [tuple(e) for e in edges]
        self.dependents: list[list[int]] = [[] for _ in self.edges]
        for i, needs in enumerate(self.edges):
            for j in sorted(set(needs)):
                self.dependents[j].append(i)
        self._waiting = [len(set(e)) for e in self.edges]
        self._ready = [i for i, n in enumerate(self._waiting) if n == 0]
        heapq.heapify(self._ready)
        self.status: dict[int, GraphStatus] = {}
        """Each step's state once it has one: "running", "success", "failed", "skipped"."""
        self.causes: dict[int, int] = {}
        """Each skipped step's failed step (itself when the list stopped before it)."""

    def start(self, free: int) -> list[int]:
        """Up to `free` steps that may start now, in index order, marked running."""
        out: list[int] = []
        while self._ready and len(out) < free:
            i = heapq.heappop(self._ready)
            if i not in self.status:  # a restored step leaves its entry behind
                self.status[i] = "running"
                out.append(i)
        return out

    def succeeded(self, i: int) -> None:
        """Step i succeeded (or was restored): what waited only for it may start."""
        self.status[i] = "success"
        for k in self.dependents[i]:
            self._waiting[k] -= 1
            if self._waiting[k] == 0 and k not in self.status:
                heapq.heappush(self._ready, k)

    def failed(self, i: int) -> dict[int, tuple[int, int]]:
        """Step i failed: the steps skipped because of it, in the order found (each after
        the step it was skipped through): step -> (its dependency that failed or was
        skipped, i)."""
        self.status[i] = "failed"
        skipped: dict[int, tuple[int, int]] = {}
        todo = [i]
        while todo:
            via = todo.pop(0)
            for k in self.dependents[via]:
                if k not in self.status:
                    self.status[k] = "skipped"
                    self.causes[k] = i
                    skipped[k] = (via, i)
                    todo.append(k)
        return skipped

    def not_started(self) -> list[int]:
        """The steps that never started and were not skipped (the list stopped first),
        now marked skipped for themselves."""
        left = [i for i in range(len(self.edges)) if i not in self.status]
        for i in left:
            self.status[i] = "skipped"
            self.causes[i] = i
        return left


def skip_reason(
    i: int, via: int, cause: int, labels: Sequence[str], names: Sequence[str | None]
) -> tuple[str, str]:
    """Why step i is skipped: its dependency `via` failed (`via == cause`), or was skipped
    because step `cause` failed. Returns (message, name of the failed step: its name, or
    its label when it has none)."""
    failed = names[cause] or labels[cause]
    dependency = names[via] or labels[via]
    message = f"step {i + 1} ({labels[i]}) was skipped: its dependency {dependency!r}"
    if via == cause:
        message += f" (step {via + 1}) failed"
    else:
        message += f" was skipped because {failed!r} (step {cause + 1}) failed"
    return message, failed


def stop_reason(budget_message: str | None, stop_on_failure: bool) -> str:
    """Why a graph step was never started although no dependency of it failed."""
    if budget_message is not None:
        return budget_message
    if stop_on_failure:
        return "a step failed and stop_on_failure=True starts nothing new"
    return "the list stopped"


def graph_outcome(
    results: Sequence[TaskResult], skipped: Sequence[int], budget_message: str | None
) -> OutcomeFields:
    """How a task graph ended: `results` holds every step (index order), the `skipped`
    ones included (their results are `StepSkippedError`s). The failed step is the lowest
    index that ran and failed; the list succeeded when every step did."""
    skipped_set = set(skipped)
    failed_step = next(
        (i for i, r in enumerate(results) if not r.success and i not in skipped_set), None
    )
    success = budget_message is None and failed_step is None and not skipped_set
    error: CCExecutorError | None
    if budget_message is not None:
        ran = [r for i, r in enumerate(results) if i not in skipped_set]
        error = BudgetExceededError(budget_message, result=ran[-1] if ran else None)
    elif failed_step is not None:
        error = results[failed_step].error
    else:
        error = next((results[i].error for i in sorted(skipped_set)), None)
    return OutcomeFields(
        success=success, failed_step=failed_step, skipped=sorted(skipped_set), error=error
    )


# -- isolated steps -----------------------------------------------------------------------


def isolation_bases(
    i: int,
    *,
    edges: Sequence[Sequence[int]] | None,
    sequential: bool,
    succeeded: Mapping[int, bool],
) -> list[int]:
    """The steps whose work step i starts from under isolation (none: the list's starting
    commit or directory): in a task graph its dependencies; in a sequential list the last
    step before it that succeeded; in a concurrent list none. `succeeded` holds the steps
    that ended (or were restored) so far: step -> whether it succeeded."""
    if edges is not None:
        return [j for j in edges[i] if j in succeeded]
    if not sequential:
        return []
    done = [j for j, ok in succeeded.items() if j < i and ok]
    return [max(done)] if done else []


def isolation_finals(
    total: int,
    *,
    edges: Sequence[Sequence[int]] | None,
    sequential: bool,
    succeeded: Mapping[int, bool],
) -> list[int]:
    """The steps whose merged work is the list's final state under isolation: a task
    graph's successful steps no other step depends on, a sequential list's last successful
    step, a concurrent list's every successful step."""
    if edges is not None:
        needed = {j for deps in edges for j in deps}
        return [j for j in range(total) if j not in needed and succeeded.get(j)]
    if sequential:
        return isolation_bases(total, edges=None, sequential=True, succeeded=succeeded)
    return [j for j in sorted(succeeded) if succeeded[j]]


# -- the next attempt of a task ------------------------------------------------------------


def resume_session(
    strategy: str, session: str | None, *, is_saved: Callable[[str], bool]
) -> str | None:
    """The session the next attempt resumes, or None to start the task over.

    `retry_strategy="resume"` resumes the failed attempt's session when the CLI saved
    it (`is_saved`, asked only then): a session named by the init line but never saved
    (the CLI died first) would make `--resume` fail for good.
    """
    if strategy != "resume" or not session:
        return None
    return session if is_saved(session) else None


def resume_prompt(reason: str) -> str:
    """The prompt of an attempt that resumes a session; `reason` says what stopped the
    last one."""
    return RESUME_PROMPT.format(reason=reason)


def limit_wait(reset_at: datetime | None, now: datetime) -> float | None:
    """Seconds to wait for the limit the API named to reset (plus `RESET_MARGIN_S`), or
    None when it named no reset time (or one already past)."""
    if reset_at is None or reset_at <= now:
        return None
    return (reset_at - now).total_seconds() + RESET_MARGIN_S


def limit_too_far(reset_at: datetime | None, now: datetime, max_limit_wait: float) -> bool:
    """True when the limit resets further away than `max_limit_wait` seconds: the task
    then fails with the `RateLimitError` instead of waiting."""
    return reset_at is not None and (reset_at - now).total_seconds() > max_limit_wait
