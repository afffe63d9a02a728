"""Timeout prediction (`timeout="auto"`) and the orchestration helpers built on it.

Where an "auto" timeout comes from, in this order:

1. **history** — the `HISTORY_NEIGHBOURS` past runs most similar to the task
   (TF-IDF cosine over the normalized prompts, no model download) with a
   similarity of at least `HISTORY_MIN_SIMILARITY`. Successful runs count with
   their duration, runs that hit their timeout with `TIMED_OUT_FACTOR` × their
   duration (they needed more). With at least `HISTORY_MIN_SAMPLES` successful
   ones: the `HISTORY_PERCENTILE`th percentile × `HISTORY_SAFETY`.
2. **agent** (only with `agent_predict_timeout=True`) — one short call through
   the library itself: `--json-schema` with `seconds` and `reason`, no tools
   (`--tools ""`), `--max-turns 1`; its estimate × `AGENT_SAFETY`.
3. **heuristic** — `get_task_complexity(task).estimated_seconds` × `HEURISTIC_SAFETY`.

Every prediction is clamped to [`auto_timeout_min`, `auto_timeout_max`].
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ._history import HistoryRecord, load_candidates, normalize_prompt
from ._log import logger
from .config import CCExecutorConfig
from .errors import ConfigError
from .result import TaskResult, TimeoutSource

__all__ = [
    "ExecutionStrategy",
    "TaskComplexity",
    "TaskPlan",
    "TimeoutPrediction",
    "get_task_complexity",
    "predict_from_history",
    "predict",
    "suggest_execution_strategy",
]

Runner = Callable[[str, CCExecutorConfig], Awaitable[TaskResult]]
"""Runs a task to its `TaskResult` (the library's runner, handed down by the caller)."""

HISTORY_NEIGHBOURS = 20
HISTORY_MIN_SAMPLES = 3
HISTORY_MIN_SIMILARITY = 0.4
HISTORY_PERCENTILE = 95.0
HISTORY_SAFETY = 1.3
HISTORY_CANDIDATES = 2000
TIMED_OUT_FACTOR = 2.0
AGENT_SAFETY = 2.0
AGENT_TIMEOUT_S = 120.0
HEURISTIC_SAFETY = 3.0

ComplexityLevel = Literal["simple", "moderate", "complex"]


class TimeoutPrediction(BaseModel):
    """A predicted timeout and where it came from."""

    model_config = ConfigDict(defer_build=True)

    seconds: float
    source: TimeoutSource
    reason: str
    samples: int = 0
    """How many past runs the history prediction used (0 for other sources)."""


class TaskComplexity(BaseModel):
    """`get_task_complexity`: how big a task looks, and why."""

    model_config = ConfigDict(defer_build=True)

    level: ComplexityLevel
    estimated_seconds: float
    reasons: list[str]


class TaskPlan(BaseModel):
    """One task of `suggest_execution_strategy`."""

    model_config = ConfigDict(defer_build=True)

    index: int
    task: str
    level: ComplexityLevel
    estimated_seconds: float
    timeout_s: float
    timeout_source: TimeoutSource
    method: Literal["direct", "fresh_instance"]
    """"direct": small enough for the calling agent to do itself; "fresh_instance":
    run it in a new Claude Code instance (`cc_execute`) with a clean context."""
    reason: str
    depends_on: list[int]
    """Indices of the earlier tasks this one waits for directly (what they wait for,
    it waits for too: the dependencies are transitive and not repeated)."""


class ExecutionStrategy(BaseModel):
    """`suggest_execution_strategy`: a plan for a list of tasks (JSON-serialisable)."""

    model_config = ConfigDict(defer_build=True)

    tasks: list[TaskPlan]
    concurrent_groups: list[list[int]]
    """Stages run one after the other; the tasks (indices) inside a stage may run at once."""
    total_estimated_seconds: float
    """Sum over the stages of the longest estimate in each (the stages run in order)."""
    sequential_estimated_seconds: float
    """Sum of all estimates: one task after the other."""


# -- similarity over normalized prompts ------------------------------------------------

_TOKEN = re.compile(r"<[a-z]+>|[a-z_][a-z0-9_]+")
_STOPWORDS = frozenset(
    "the an and or of to in on for with from by at is are be it its this that as into "
    "your you please all any can will should must then so if we our".split()
)


def _tokens(normalized: str) -> Counter[str]:
    return Counter(t for t in _TOKEN.findall(normalized) if t not in _STOPWORDS)


def _similarities(task: str, records: Sequence[HistoryRecord]) -> list[float]:
    """TF-IDF cosine (sublinear tf) between `task` and each record's normalized prompt."""
    query = _tokens(normalize_prompt(task[:ANALYSED_CHARS]))
    docs = [_tokens(r.normalized_prompt) for r in records]
    if not query or not docs:
        return [0.0] * len(docs)
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(doc.keys())
    n = len(docs)

    def weights(counts: Counter[str]) -> dict[str, float]:
        return {
            t: (1 + math.log(c)) * (math.log((n + 1) / (df[t] + 1)) + 1) for t, c in counts.items()
        }

    q = weights(query)
    q_norm = math.sqrt(sum(w * w for w in q.values()))
    out = []
    for doc in docs:
        if not any(t in q for t in doc):
            out.append(0.0)
            continue
        d = weights(doc)
        dot = sum(w * q[t] for t, w in d.items() if t in q)
        out.append(dot / (q_norm * math.sqrt(sum(w * w for w in d.values()))))
    return out


def _percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * pct / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _clamp(seconds: float, low: float, high: float) -> float:
    return round(min(max(seconds, low), high), 1)


def predict_from_history(
    task: str,
    records: Sequence[HistoryRecord],
    *,
    low: float = 60.0,
    high: float = 3600.0,
) -> TimeoutPrediction | None:
    """The history prediction for `task` from `records`, or None if they are not enough.

    Pure: the same records give the same answer (the benchmark replays it).
    """
    usable = [r for r in records if r.success or r.error_type == "TaskTimeoutError"]
    if len(usable) < HISTORY_MIN_SAMPLES:
        return None
    scored = sorted(
        zip(_similarities(task, usable), usable, strict=True),
        key=lambda pair: (pair[0], pair[1].started_at),
        reverse=True,
    )
    near = [r for sim, r in scored[:HISTORY_NEIGHBOURS] if sim >= HISTORY_MIN_SIMILARITY]
    if sum(r.success for r in near) < HISTORY_MIN_SAMPLES:
        return None
    samples = [r.duration_s if r.success else r.duration_s * TIMED_OUT_FACTOR for r in near]
    pct = _percentile(samples, HISTORY_PERCENTILE)
    reason = f"p{HISTORY_PERCENTILE:g} of {len(samples)} similar past runs ({pct:.1f} s)"
    reason += f" × {HISTORY_SAFETY:g}"
    timed_out = sum(not r.success for r in near)
    if timed_out:
        reason += f"; {timed_out} of them hit their timeout (counted ×{TIMED_OUT_FACTOR:g})"
    return TimeoutPrediction(
        seconds=_clamp(pct * HISTORY_SAFETY, low, high),
        source="history",
        reason=reason,
        samples=len(samples),
    )


# -- the heuristic ------------------------------------------------------------------

ANALYSED_CHARS = 100_000
"""The estimates read a prompt's first 100,000 characters. Past that length the size
term is long at its cap (`LENGTH_CAP_S`, reached at 630 words), and reading more
would hold the interpreter (regular expressions keep the GIL) for seconds on a
prompt of megabytes."""
HEURISTIC_BASE_S = 30.0
_HEAVY_VERBS = re.compile(
    r"\b(implement|build|creat|develop|refactor|migrat|rewrit|debug|fix|optimi[sz]|integrat"
    r"|design|port)\w*",
    re.IGNORECASE,
)
_MEDIUM_VERBS = re.compile(
    r"\b(test|write|writing|add|update|review|analy[sz]|document|investigat|convert|renam"
    r"|configur|install|upgrad)\w*",
    re.IGNORECASE,
)
_FILE = re.compile(
    r"(?<![\w/.-])(?:[\w.-]+/)*[\w-]+\.(?:py|pyi|js|mjs|ts|tsx|jsx|go|rs|java|kt|c|h|cc|cpp|hpp"
    r"|rb|php|cs|swift|md|rst|json|ya?ml|toml|txt|sh|sql|html|css|cfg|ini|csv)\b"
)
_STEP_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+", re.MULTILINE)
_CONNECTOR = re.compile(r"\b(?:then|after that|afterwards|finally|next,)\b", re.IGNORECASE)
HEAVY_VERB_S = 240.0
MEDIUM_VERB_S = 90.0
FILE_S = 45.0
STEP_S = 60.0
WORD_S = 1.0
WORDS_FREE = 30
LENGTH_CAP_S = 600.0


def _heuristic(task: str) -> tuple[float, list[str]]:
    task = task[:ANALYSED_CHARS]
    seconds = HEURISTIC_BASE_S
    reasons = [f"base {HEURISTIC_BASE_S:g} s"]
    heavy = sorted({m.lower() for m in _HEAVY_VERBS.findall(task)})
    if heavy:
        seconds += HEAVY_VERB_S * len(heavy)
        reasons.append(f"building/changing verbs {heavy} (+{HEAVY_VERB_S:g} s each)")
    medium = sorted({m.lower() for m in _MEDIUM_VERBS.findall(task)})
    if medium:
        seconds += MEDIUM_VERB_S * len(medium)
        reasons.append(f"verbs {medium} (+{MEDIUM_VERB_S:g} s each)")
    files = sorted(set(_FILE.findall(task)))[:20]
    if files:
        seconds += FILE_S * len(files)
        reasons.append(f"{len(files)} file(s) mentioned (+{FILE_S:g} s each)")
    steps = max(len(_STEP_LINE.findall(task)), 1 + len(_CONNECTOR.findall(task)))
    if steps > 1:
        seconds += STEP_S * (steps - 1)
        reasons.append(f"{steps} steps (+{STEP_S:g} s per step after the first)")
    words = len(task.split())
    if words > WORDS_FREE:
        extra = min(LENGTH_CAP_S, (words - WORDS_FREE) * WORD_S)
        seconds += extra
        reasons.append(f"{words} words (+{extra:g} s)")
    return seconds, reasons


def _level(seconds: float) -> ComplexityLevel:
    if seconds < 120:
        return "simple"
    if seconds < 600:
        return "moderate"
    return "complex"


def get_task_complexity(
    task: str, *, history: Sequence[HistoryRecord] | None = None
) -> TaskComplexity:
    """How big `task` looks: `level` (simple < 120 s ≤ moderate < 600 s ≤ complex),
    `estimated_seconds` and the `reasons`.

    From the prompt alone (a documented heuristic: verbs, files, steps, length, read
    from the first `ANALYSED_CHARS` characters);
    with `history` (e.g. `await get_execution_history(limit=1000)`), the median
    of the similar past runs when there are enough of them.
    """
    if not isinstance(task, str):
        raise ConfigError(f"task must be a str, got {type(task).__name__}", field="task")
    seconds, reasons = _heuristic(task)
    if history:
        usable = [r for r in history if r.success]
        sims = _similarities(task, usable)
        near = sorted(
            (r for sim, r in zip(sims, usable, strict=True) if sim >= HISTORY_MIN_SIMILARITY),
            key=lambda r: r.started_at,
            reverse=True,
        )[:HISTORY_NEIGHBOURS]
        if len(near) >= HISTORY_MIN_SAMPLES:
            seconds = _percentile([r.duration_s for r in near], 50)
            reasons = [f"median of {len(near)} similar past runs"]
    return TaskComplexity(
        level=_level(seconds), estimated_seconds=round(seconds, 1), reasons=reasons
    )


def heuristic_timeout(task: str, low: float, high: float) -> TimeoutPrediction:
    estimate, reasons = _heuristic(task)
    return TimeoutPrediction(
        seconds=_clamp(estimate * HEURISTIC_SAFETY, low, high),
        source="heuristic",
        reason=f"estimate {estimate:g} s × {HEURISTIC_SAFETY:g}: " + "; ".join(reasons),
    )


# -- the agent ----------------------------------------------------------------------

AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Most likely wall-clock seconds the agent needs",
        },
        "reason": {"type": "string", "description": "One line: why"},
    },
    "required": ["seconds", "reason"],
    "additionalProperties": False,
}
AGENT_PROMPT = """\
Estimate how long an autonomous Claude Code agent (it edits files, runs shell \
commands and tests) needs to complete the task between the <task> markers. Do \
not do the task. Answer only with the StructuredOutput tool: `seconds`, the \
most likely wall-clock time in seconds, and `reason`, one line.

<task>
{task}
</task>"""


def _agent_config(config: CCExecutorConfig) -> CCExecutorConfig:
    """The estimate is the library's own short call, not the caller's task: it keeps only
    where and how the CLI runs; none of the task's tools, answer format, callbacks,
    retries or snapshots apply to it."""
    return CCExecutorConfig(
        cli_path=config.cli_path,
        env=config.env,
        cwd=config.cwd,
        model=config.model,
        fallback_model=config.fallback_model,
        save_transcript=config.save_transcript,
        transcript_dir=config.transcript_dir,
        state_dir=config.state_dir,
        kill_grace=config.kill_grace,
        timeout=AGENT_TIMEOUT_S,
        max_turns=1,
        permission_mode="default",
        extra_args=(
            "--json-schema",
            json.dumps(AGENT_SCHEMA),
            "--tools",
            "",
            "--strict-mcp-config",
        ),
        record_history=False,
        snapshot_files=False,
        num_retries=0,
    )


async def agent_timeout(
    task: str, config: CCExecutorConfig, run: Runner
) -> TimeoutPrediction | None:
    """Ask Claude for an estimate (one structured-output call through `run`); None if
    that fails."""
    try:
        result = await run(AGENT_PROMPT.format(task=task), _agent_config(config))
    except Exception as exc:
        logger.warning("timeout prediction by the agent could not run: {!r}", exc)
        return None
    answer = result.structured_output
    seconds = answer.get("seconds") if isinstance(answer, dict) else None
    if not result.success or isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        logger.warning(
            "timeout prediction by the agent gave no estimate ({}): {!r}",
            result.error_type or "no structured output",
            answer,
        )
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        logger.warning("timeout prediction by the agent is not a positive number: {!r}", seconds)
        return None
    reason = " ".join(str(answer.get("reason", "")).split())[:300]
    return TimeoutPrediction(
        seconds=_clamp(seconds * AGENT_SAFETY, config.auto_timeout_min, config.auto_timeout_max),
        source="agent",
        reason=f"agent estimate {seconds:g} s × {AGENT_SAFETY:g}: {reason}",
    )


# -- what timeout="auto" runs -----------------------------------------------------


async def predict(task: str, config: CCExecutorConfig, run: Runner) -> TimeoutPrediction:
    """The timeout `timeout="auto"` gives `task` now: history, else agent (asked through
    `run`, the library's task runner, handed down by the caller), else heuristic.

    Never raises for an unreadable history or a failed agent call: it falls
    back to the next source (and logs why). The public `predict_timeout` is this,
    with the runner `cc_run` uses.
    """
    low, high = config.auto_timeout_min, config.auto_timeout_max
    records = await load_candidates(config, HISTORY_CANDIDATES)
    prediction = predict_from_history(task, records, low=low, high=high)
    if prediction is None and config.agent_predict_timeout:
        prediction = await agent_timeout(task, config, run)
    if prediction is None:
        prediction = heuristic_timeout(task, low, high)
    logger.info(
        "timeout {:g} s from {}: {}", prediction.seconds, prediction.source, prediction.reason
    )
    return prediction


# -- a strategy for a list of tasks ---------------------------------------------------

MAX_PLAN_TASKS = 10_000
"""The most tasks `suggest_execution_strategy` plans in one call."""

_REFERS_BACK = re.compile(
    r"^\s*(?:and\s+)?then\b|\b(?:after that|afterwards|previous(?:ly)?|above|earlier"
    r"|the results? of|the output of|from step|from task|step \d+|task \d+|based on"
    r"|using the (?:result|output)|that file|those files|continue)\b",
    re.IGNORECASE,
)


def suggest_execution_strategy(
    tasks: Sequence[str],
    *,
    history: Sequence[HistoryRecord] | None = None,
    config: CCExecutorConfig | None = None,
) -> ExecutionStrategy:
    """A plan for `tasks`: per task direct or fresh instance, its predicted timeout,
    what it waits for; which tasks may run at once; the total estimate.

    Rules (documented, deliberately simple):

    - method: a "simple" task (`get_task_complexity`) is "direct", anything
      bigger a "fresh_instance" with its own context;
    - a task that refers back ("then", "the result", "previous", "step 2",
      "based on", ...) waits for every earlier task; a task that names a file an
      earlier task names waits for that task; any other task may start at once;
    - `depends_on` names only the direct dependencies: a task that waits for every
      earlier one lists the earlier tasks nothing else waits for yet (in a chain,
      just the one before); a shared file, the last earlier task naming it. The
      rest follows transitively, so the plan's size and the time to make it are
      linear in the number of tasks;
    - timeout: from `history` when it has enough similar runs, else the
      heuristic (the agent is never called here), clamped to the bounds of `config`.

    At most `MAX_PLAN_TASKS` (10,000) tasks: more is a `ConfigError` (plan the list
    in parts). CPU-bound (regular expressions over every prompt): from async code,
    call it in a worker thread (`anyio.to_thread.run_sync`), as the MCP server does.
    """
    if isinstance(tasks, str) or not all(isinstance(t, str) for t in tasks):
        raise ConfigError("tasks must be a list of str", field="tasks")
    if len(tasks) > MAX_PLAN_TASKS:
        raise ConfigError(
            f"suggest_execution_strategy plans at most {MAX_PLAN_TASKS:,} tasks, got "
            f"{len(tasks):,}: plan the list in parts",
            field="tasks",
        )
    config = config or CCExecutorConfig()
    low, high = config.auto_timeout_min, config.auto_timeout_max
    plans: list[TaskPlan] = []
    stage: list[int] = []
    last_naming: dict[str, int] = {}  # file -> the last task that named it
    waited_for_by_none: dict[int, None] = {}  # earlier tasks no other task waits for yet
    for index, task in enumerate(tasks):
        complexity = get_task_complexity(task, history=history)
        prediction = (
            predict_from_history(task, history, low=low, high=high) if history else None
        ) or heuristic_timeout(task, low, high)
        head = task[:ANALYSED_CHARS]
        files = set(_FILE.findall(head))
        if index and _REFERS_BACK.search(head):
            depends_on = sorted(waited_for_by_none)
            why = "refers to earlier work"
        else:
            depends_on = sorted({last_naming[f] for f in files if f in last_naming})
            why = "shares a file with an earlier task" if depends_on else "independent"
        for i in depends_on:
            waited_for_by_none.pop(i, None)
        waited_for_by_none[index] = None
        last_naming.update(dict.fromkeys(files, index))
        stage.append(max((stage[i] + 1 for i in depends_on), default=0))
        method: Literal["direct", "fresh_instance"] = (
            "direct" if complexity.level == "simple" else "fresh_instance"
        )
        plans.append(
            TaskPlan(
                index=index,
                task=task,
                level=complexity.level,
                estimated_seconds=complexity.estimated_seconds,
                timeout_s=prediction.seconds,
                timeout_source=prediction.source,
                method=method,
                reason=f"{complexity.level} task; {why}",
                depends_on=depends_on,
            )
        )
    groups: list[list[int]] = [[] for _ in range(max(stage, default=-1) + 1)]
    for i, n in enumerate(stage):
        groups[n].append(i)
    total = sum(max(plans[i].estimated_seconds for i in group) for group in groups)
    return ExecutionStrategy(
        tasks=plans,
        concurrent_groups=groups,
        total_estimated_seconds=round(total, 1),
        sequential_estimated_seconds=round(sum(p.estimated_seconds for p in plans), 1),
    )
