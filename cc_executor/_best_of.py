"""Best of N: `cc_execute_best_of` runs N attempts at one task at once, each in its own
git worktree and branch, tests each attempt's work with a command, and keeps the best.

The attempts start from the checked-out commit of `cwd`'s repository (clean work tree
required, as for ``isolation="worktree"``). When an attempt's CLI has ended, its work is
committed on its branch and the test command runs in its worktree (argv, no shell; exit
status 0 passes). The best attempt is the passing one with the lowest cost, then the
shortest run, then the first; it is merged into the starting branch (``merge="auto"``) or
left on ``cc-executor/<run id>/result`` (``"branch"``), and the other attempts' branches
are deleted. When no attempt passes, nothing is merged and every branch is kept and
named. The worktrees are removed either way. Not journaled: a second call with the same
`run_id` removes what a crash left and runs every attempt again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._isolation import MergeConflict, WorktreeRun, open_worktrees
from ._log import logger
from ._models import TaskSpec
from ._models import default_config as _default_config
from ._retry import resolve_timeout, run_task
from ._runtime import require_asyncio
from .config import CCExecutorConfig
from .errors import ConfigError, MergeConflictError
from .result import TaskResult

__all__ = ["BestOfAttempt", "BestOfResult", "cc_execute_best_of", "cc_execute_best_of_sync"]

_OUTPUT_TAIL = 4000  # characters of a test's output kept on the result


@dataclass
class BestOfAttempt:
    """One attempt of `cc_execute_best_of`."""

    index: int
    """0-based."""
    result: TaskResult
    """The run; `result.branch` / `result.commit` hold its committed work."""
    passed: bool
    """The run succeeded and the test command exited 0."""
    test_exit_code: int | None
    """The test command's exit status (None: not run, the attempt failed; -N: killed by
    signal N, e.g. at `test_timeout`)."""
    test_output: str = ""
    """The end of what the test printed (stdout and stderr together)."""


@dataclass
class BestOfResult:
    """What `cc_execute_best_of` returns."""

    attempts: list[BestOfAttempt]
    winner: int | None
    """Index of the attempt kept, or None when none passed."""
    run_id: str
    merged_into: str | None = None
    """merge="auto": the branch the winner was merged into; else None."""
    branch: str | None = None
    """The branch holding the winner's work when it was not merged (merge="branch", or
    the merge was refused: see `error`)."""
    branches: list[str] = field(default_factory=list)
    """The attempts' branches kept: all of them when none passed; else none (deleted)."""
    error: MergeConflictError | None = None
    """Set when the winner could not be merged into the starting branch."""

    @property
    def success(self) -> bool:
        """An attempt passed and its work was delivered (merged, or on `branch`)."""
        return self.winner is not None and self.error is None

    @property
    def best(self) -> BestOfAttempt | None:
        """The winning attempt, or None."""
        return self.attempts[self.winner] if self.winner is not None else None


async def cc_execute_best_of(
    task: str | TaskSpec | Sequence[TaskSpec],
    test: Sequence[str],
    config: CCExecutorConfig | None = None,
    *,
    n: int = 3,
    merge: Literal["auto", "branch"] = "auto",
    test_timeout: float = 600.0,
    run_id: str | None = None,
    **overrides: Any,
) -> BestOfResult:
    """Run `n` attempts at `task` concurrently, each in its own git worktree; test each
    with `test`; keep the best (see the module docstring for the rules).

    Args:
        task: the prompt (or a `TaskSpec`) every attempt gets; or a sequence of
            `TaskSpec`s, one per attempt (then `n` is their number): different models,
            options or prompts competing.
        test: the test command as argv (``["pytest", "-q"]``), run in each attempt's
            worktree at the list's `cwd` inside it; exit status 0 passes.
        config: the base config (`cwd` must be in a git work tree); `overrides` apply.
        n: how many attempts (>= 1) when `task` is one task.
        merge: ``"auto"`` merges the winner into the checked-out branch, ``"branch"``
            leaves it on ``cc-executor/<run_id>/result``.
        test_timeout: seconds a test command may run before it (and its process group)
            is killed; it then fails.
        run_id: names the branches (``cc-executor/<run_id>/<n>-attempt-<k>``); generated
            when not given.

    Returns a `BestOfResult`. Raises `ConfigError` before anything starts: bad
    arguments, `cwd` not in a git work tree, uncommitted changes.
    """
    require_asyncio("cc_execute_best_of")
    from .pipeline import generate_run_id

    base = (config or _default_config()).with_overrides(**overrides)
    specs = _attempts(task, n)
    if isinstance(test, str) or not test or not all(isinstance(a, str) for a in test):
        raise ConfigError(
            f"test is the test command as a list of arguments, e.g. ['pytest', '-q'], got {test!r}",
            field="test",
        )
    if merge not in ("auto", "branch"):
        raise ConfigError(f"merge is 'auto' or 'branch', got {merge!r}", field="merge")
    if not test_timeout > 0:
        raise ConfigError(f"test_timeout must be > 0 seconds, got {test_timeout!r}", field="test")
    for k, spec in enumerate(specs):
        if spec.continue_session or spec.depends_on:
            raise ConfigError(
                f"attempt {k + 1}: continue_session and depends_on have no meaning for "
                "independent attempts",
                field="task",
            )
        base.with_overrides(**spec.overrides)
    run_id = run_id or generate_run_id()
    run = await open_worktrees(
        base.task_cwd(), run_id=run_id, state_dir=base.state_dir, merge=merge
    )
    import anyio

    attempts: dict[int, BestOfAttempt] = {}

    async def attempt(k: int, spec: TaskSpec) -> None:
        attempts[k] = await _attempt(run, k, spec, base, list(test), test_timeout)

    try:
        async with anyio.create_task_group() as tg:  # an error or a cancel ends them all
            for k, spec in enumerate(specs):
                tg.start_soon(attempt, k, spec)
        return await _keep_best(run, [attempts[k] for k in sorted(attempts)])
    finally:
        with contextlib.suppress(Exception):
            for k in list(run.trees):
                await asyncio.shield(run.drop_step(k, delete_branch=False))


def cc_execute_best_of_sync(
    task: str | TaskSpec | Sequence[TaskSpec],
    test: Sequence[str],
    config: CCExecutorConfig | None = None,
    **kwargs: Any,
) -> BestOfResult:
    """`cc_execute_best_of` for scripts without an event loop."""
    from ._api import run_sync

    return run_sync(cc_execute_best_of(task, test, config, **kwargs))


def _attempts(task: str | TaskSpec | Sequence[TaskSpec], n: int) -> list[TaskSpec]:
    if isinstance(task, (str, TaskSpec)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"n must be an int >= 1, got {n!r}", field="n")
        spec = TaskSpec(task) if isinstance(task, str) else task
        return [spec] * n
    specs = list(task)
    if not specs or not all(isinstance(s, TaskSpec) for s in specs):
        raise ConfigError(
            "task is a prompt, a TaskSpec, or a non-empty sequence of TaskSpecs (one per attempt)",
            field="task",
        )
    return specs


async def _attempt(
    run: WorktreeRun,
    k: int,
    spec: TaskSpec,
    base: CCExecutorConfig,
    test: list[str],
    test_timeout: float,
) -> BestOfAttempt:
    name = spec.name or f"attempt-{k + 1}"
    tree = await run.start_step(k, name, [], label=name)
    try:
        overrides = spec.overrides_over(base)
        overrides.update(cwd=tree.cwd, state_dir=base.state_dir)
        if base.given_transcript_dir() is None:
            overrides["transcript_dir"] = base.resolved_transcript_dir()
        config = base.with_overrides(**overrides)
        result = await run_task(
            spec.prompt, config, timeout=await resolve_timeout(spec.prompt, config)
        )
        message = (
            f"cc_executor: attempt {k + 1} ({name}) of best-of run {run.run_id}\n\n"
            f"status: {'success' if result.success else result.error_type}\n"
            f"execution_uuid: {result.execution_uuid}\n"
        )
        commit = await run.finish_step(k, message, keep=True)
        result = result.model_copy(
            update={"branch": tree.branch, "commit": commit, "workdir": tree.path}
        )
        if not result.success or commit is None:
            return BestOfAttempt(k, result, passed=False, test_exit_code=None)
        code, output = await _run_test(test, tree.cwd, test_timeout)
        logger.info("best of: attempt {} test exited {}", k + 1, code)
        return BestOfAttempt(k, result, passed=code == 0, test_exit_code=code, test_output=output)
    finally:
        await asyncio.shield(run.drop_step(k, delete_branch=False))


async def _run_test(test: list[str], cwd: Any, timeout: float) -> tuple[int, str]:
    """Run `test` in `cwd` (its own process group, ended at `timeout`): (status, output)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *test,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return 127, f"cannot run {test[0]}: {exc}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:  # TimeoutError from 3.11 on
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return proc.returncode or -signal.SIGKILL, f"(killed after {timeout:g} s)"
    except BaseException:  # cancelled: the test's processes go too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):  # what the test left running
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")[-_OUTPUT_TAIL:]


def rank(attempt: BestOfAttempt) -> tuple[float, float, int]:
    """Order of the passing attempts: cost, then duration, then index (lowest first)."""
    r = attempt.result
    return (r.total_cost_usd or 0.0, r.duration_s, attempt.index)


async def _keep_best(run: WorktreeRun, attempts: list[BestOfAttempt]) -> BestOfResult:
    branches = [a.result.branch for a in attempts if a.result.branch]
    passing = sorted((a for a in attempts if a.passed), key=rank)
    if not passing:
        logger.warning("best of, run {}: no attempt passed; nothing merged", run.run_id)
        return BestOfResult(attempts, None, run.run_id, branches=branches)
    best = passing[0]
    assert best.result.commit is not None
    merged_into, branch, problem = await run.deliver(best.result.commit)
    if problem is not None:
        return BestOfResult(
            attempts,
            best.index,
            run.run_id,
            branch=branch,
            branches=branches,
            error=_error(problem, best.result),
        )
    await run.delete_branches(branches)
    return BestOfResult(attempts, best.index, run.run_id, merged_into=merged_into, branch=branch)


def _error(problem: MergeConflict, result: TaskResult) -> MergeConflictError:
    error = MergeConflictError(str(problem), files=problem.files)
    error.result = result
    return error
