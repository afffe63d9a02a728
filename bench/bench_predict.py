"""Quality of timeout="auto": replay a synthetic history in time order.

python bench/bench_predict.py [runs] [seed]

Task families (prompt templates with random slot fillers) have different
duration distributions. Each run is predicted from the history *before* it
(the same pure function `timeout="auto"` uses, same defaults), then recorded
the way a real run would be: finished in time → a success with its duration;
longer than its timeout → a `TaskTimeoutError` run that lasted the timeout.
Pruning (newest `history_max_per_class` per prompt class) applies as in the store.

Reports coverage (share of runs that finish under their predicted timeout;
target ≥ 95 %) and median over-allowance (predicted ÷ actual), overall, for the
predictions that came from history, and per family.
"""

from __future__ import annotations

import random
import statistics
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from cc_executor import CCExecutorConfig, HistoryRecord
from cc_executor._history import normalize_prompt, prompt_class
from cc_executor._predict import HISTORY_CANDIDATES, heuristic_timeout, predict_from_history

MODULES = ["parser", "cli", "api", "models", "utils", "storage", "auth", "billing", "search"]
NAMES = ["retry", "login", "export", "cache", "invoice", "upload", "token", "report"]
LANGS = ["French", "German", "Spanish", "Japanese"]
PKGS = ["requests", "pydantic", "sqlalchemy", "numpy", "django"]


def lognormal(median: float, sigma: float) -> Callable[[random.Random], float]:
    return lambda rng: median * rng.lognormvariate(0, sigma)


def bimodal(rng: random.Random) -> float:
    return (
        120 * rng.lognormvariate(0, 0.3) if rng.random() < 0.7 else 900 * rng.lognormvariate(0, 0.3)
    )


# name, weight, prompt template, duration distribution
FAMILIES: list[
    tuple[str, float, Callable[[random.Random], str], Callable[[random.Random], float]]
] = [
    (
        "fix test (median 90 s)",
        3,
        lambda r: (
            f"Fix the failing test test_{r.choice(NAMES)}_{r.randint(1, 99)} in "
            f"tests/test_{r.choice(MODULES)}.py"
        ),
        lognormal(90, 0.4),
    ),
    (
        "docstring (25 s)",
        2,
        lambda r: (
            f"Add a docstring to the function {r.choice(NAMES)}_{r.choice(NAMES)} in "
            f"{r.choice(MODULES)}.py"
        ),
        lognormal(25, 0.3),
    ),
    (
        "implement endpoint (600 s)",
        1,
        lambda r: (
            f"Implement the {r.choice(NAMES)} endpoint in api/{r.choice(MODULES)}.py "
            "with tests and update the OpenAPI spec"
        ),
        lognormal(600, 0.5),
    ),
    (
        "refactor (300 s, wide)",
        1,
        lambda r: (
            f"Refactor {r.choice(MODULES)}.py to remove the duplicated {r.choice(NAMES)} handling"
        ),
        lognormal(300, 0.6),
    ),
    (
        "summarise PR (15 s)",
        2,
        lambda r: f"Summarise the changes in pull request #{r.randint(100, 999)}",
        lognormal(15, 0.25),
    ),
    (
        "upgrade dependency (bimodal 120/900 s)",
        1,
        lambda r: (
            f"Upgrade the dependency {r.choice(PKGS)} to version "
            f"{r.randint(1, 5)}.{r.randint(0, 20)} and fix what breaks"
        ),
        bimodal,
    ),
    (
        "translate (45 s)",
        1,
        lambda r: f"Translate section {r.randint(1, 12)} of README.md into {r.choice(LANGS)}",
        lognormal(45, 0.3),
    ),
]


def replay(runs: int, seed: int) -> None:
    rng = random.Random(seed)
    config = CCExecutorConfig()
    low, high, keep = config.auto_timeout_min, config.auto_timeout_max, config.history_max_per_class
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    history: list[HistoryRecord] = []
    per_class: dict[str, int] = defaultdict(int)
    rows: list[tuple[str, str, float, float]] = []  # family, source, predicted, actual
    weights = [f[1] for f in FAMILIES]
    for i in range(runs):
        name, _, template, duration = rng.choices(FAMILIES, weights)[0]
        task, actual = template(rng), duration(rng)
        prediction = predict_from_history(
            task, history[-HISTORY_CANDIDATES:], low=low, high=high
        ) or heuristic_timeout(task, low, high)
        rows.append((name, prediction.source, prediction.seconds, actual))
        finished = actual <= prediction.seconds
        normalized = normalize_prompt(task)
        record = HistoryRecord(
            execution_uuid=str(uuid.UUID(int=rng.getrandbits(128))),
            prompt_hash="",
            prompt_class=prompt_class(normalized),
            normalized_prompt=normalized,
            duration_s=actual if finished else prediction.seconds,
            success=finished,
            error_type=None if finished else "TaskTimeoutError",
            started_at=t0 + timedelta(minutes=i),
        )
        history.append(record)
        per_class[record.prompt_class] += 1
        if per_class[record.prompt_class] > keep:  # prune the oldest of that class
            oldest = next(r for r in history if r.prompt_class == record.prompt_class)
            history.remove(oldest)
            per_class[record.prompt_class] -= 1

    def report(label: str, subset: list[tuple[str, str, float, float]]) -> None:
        if not subset:
            return
        covered = sum(pred >= act for _, _, pred, act in subset) / len(subset)
        over = statistics.median(pred / act for _, _, pred, act in subset)
        print(f"{label:<42} {len(subset):>5} {covered * 100:>9.1f} % {over:>13.2f}×")

    print(f"{runs} runs, seed {seed}, defaults: clamp [{low:g}, {high:g}] s\n")
    print(f"{'':<42} {'runs':>5} {'coverage':>11} {'over-allow.':>14}")
    report("all predictions", rows)
    report("from history", [r for r in rows if r[1] == "history"])
    report("from the heuristic (no history yet)", [r for r in rows if r[1] == "heuristic"])
    print()
    for name, *_ in FAMILIES:
        report(f"  {name}", [r for r in rows if r[0] == name and r[1] == "history"])
    fixed = statistics.median(3600 / act for *_, act in rows)
    print(
        f"\nfor comparison, a fixed timeout of 3600 s: 100 % coverage, {fixed:.0f}× over-allowance"
    )


if __name__ == "__main__":
    replay(
        int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 42,
    )
