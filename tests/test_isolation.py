"""Isolated steps (isolation="worktree" / "copy"): the real CLI and scripted models in a
real git repository. Each step has its own scripted model (a TaskSpec's `env`), so
concurrent steps get their own script; the Bash tool writes and lists files in the
step's cwd, and what the tool results carried shows what a step saw."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    CCExecutorConfig,
    ConfigError,
    DependencyFailedError,
    MergeConflictError,
    TaskFailedError,
    TaskSpec,
    cc_execute_list,
)
from cc_executor._cli import exit_code_for
from cc_executor.testing import ScriptedModel, http_error, text, tool_use

from .conftest import ROOT

# --------------------------------------------------------------------------- helpers


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` as a user would (their identity given here); its stdout."""
    return subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on branch main with one commit: README.md and shared.txt."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# project\n")
    (path / "shared.txt").write_text("one line\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "start")
    return path


@pytest.fixture
def models() -> Iterator[dict[str, ScriptedModel]]:
    """One scripted model per step name, created on first use, closed at the end."""
    made: dict[str, ScriptedModel] = {}

    class Models(dict[str, ScriptedModel]):
        def __missing__(self, key: str) -> ScriptedModel:
            made[key] = self[key] = ScriptedModel().start()
            return made[key]

    yield Models()
    for model in made.values():
        model.close()


def bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


def step(models: dict[str, ScriptedModel], name: str, *turns: Any, **options: Any) -> TaskSpec:
    """Step `name`, answered by its own scripted model playing `turns`."""
    model = models[name]
    model.add(*turns)
    return TaskSpec(f"do {name}", name=name, env=model.env(), **options)


def tool_output(model: ScriptedModel) -> str:
    """Every tool result the CLI sent back to `model`, joined."""
    out: list[str] = []
    for request in model.main_requests:
        for message in request.body.get("messages", []):
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, list):
                        out.extend(str(b.get("text", "")) for b in inner if isinstance(b, dict))
                    else:
                        out.append(str(inner))
    return "\n".join(out)


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def worktrees(repo: Path) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


def our_branches(repo: Path) -> list[str]:
    return git(repo, "branch", "--list", "cc-executor/*", "--format=%(refname:short)").split()


def assert_untouched(repo: Path, start: str) -> None:
    """The starting branch as it was: same commit, clean, no merge in progress, no
    worktree but the main one."""
    assert head(repo) == start
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    assert worktrees(repo) == [str(repo)]


def config_for(repo: Path, tmp_path: Path, **options: Any) -> CCExecutorConfig:
    return CCExecutorConfig(
        cwd=repo,
        timeout=120,
        allowed_tools=["Bash"],
        state_dir=tmp_path / "state",
        transcript_dir=tmp_path / "transcripts",
        **options,
    )


# Each of B and C marks that it started, then waits for the other's mark: "met" in its
# tool result proves the two ran at the same time (it gives up after 60 s: "alone").
RENDEZVOUS = (
    "printf '{me}\\n' > {me}.txt && touch {marks}/{me} && "
    "for i in $(seq 1 1200); do if [ -e {marks}/{other} ]; then echo met; break; fi; "
    "sleep 0.05; done; [ -e {marks}/{other} ] || echo alone"
)


# --------------------------------------------------------------------------- worktrees


async def test_diamond_steps_run_in_worktrees_and_the_result_is_merged(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    start = head(repo)
    tasks = [
        step(models, "a", bash("printf 'a\\n' > a.txt"), text("A done")),
        step(
            models,
            "b",
            bash(RENDEZVOUS.format(me="b", other="c", marks=marks)),
            text("B done"),
            depends_on=["a"],
        ),
        step(
            models,
            "c",
            bash(RENDEZVOUS.format(me="c", other="b", marks=marks)),
            text("C done"),
            depends_on=["a"],
        ),
        step(models, "d", bash("ls; pwd"), text("D done"), depends_on=["b", "c"]),
    ]
    out = await cc_execute_list(
        tasks, config_for(repo, tmp_path), isolation="worktree", run_id="diamond"
    )
    assert out.success, out.summary()
    # B and C overlapped; D's worktree held A's, B's and C's files.
    assert "met" in tool_output(models["b"]) and "met" in tool_output(models["c"])
    seen = tool_output(models["d"])
    assert all(f"{n}.txt" in seen for n in "abc"), seen
    # D ran in its own worktree, outside the repository.
    pwd = Path(seen.strip().splitlines()[-1])
    assert repo not in pwd.parents and pwd != repo
    for name in "abcd":  # each step ran once, as scripted
        assert len(models[name].main_requests) == 2 and not models[name].exhausted
    # The final state merged into main in cwd: a fast-forward, clean, nothing left over.
    assert out.merged_into == "main" and out.branch is None and out.branches == []
    assert "4/4 ok · run diamond · merged into main" in out.summary()
    assert sorted(p.name for p in repo.glob("*.txt")) == ["a.txt", "b.txt", "c.txt", "shared.txt"]
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert worktrees(repo) == [str(repo)] and our_branches(repo) == []
    assert git(repo, "merge-base", "--is-ancestor", start, "HEAD") == ""
    # Every step's work was committed by the library, named and with its execution uuid.
    log = git(repo, "log", "--format=%an <%ae>|%s|%b", f"{start}..HEAD")
    for i, name in enumerate("abc"):
        r = out[name]
        assert r.branch == f"cc-executor/diamond/{i + 1}-{name}" and r.commit
        assert f"cc_executor: step {i + 1} ({name}) of run diamond" in log
        assert f"execution_uuid: {r.execution_uuid}" in log
        assert r.files_created == [f"{name}.txt"]
    assert {line.split("|")[0] for line in log.splitlines() if "|" in line} == {
        "cc_executor <cc_executor@localhost>"
    }
    # D (the one step nothing depends on) changed nothing: main fast-forwarded to it.
    assert head(repo) == out["d"].commit


async def test_steps_editing_the_same_line_conflict_and_nothing_is_merged(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    start = head(repo)
    tasks = [
        step(models, "b", bash("printf 'from B\\n' > shared.txt"), text("B done")),
        step(models, "c", bash("printf 'from C\\n' > shared.txt"), text("C done")),
        step(models, "d", text("D done"), depends_on=["b", "c"]),
    ]
    out = await cc_execute_list(
        tasks, config_for(repo, tmp_path), isolation="worktree", run_id="clash"
    )
    assert not out.success
    d = out["d"]
    assert d.error_type == "MergeConflictError" and d.error_fields == {"files": ["shared.txt"]}
    error = d.error
    assert isinstance(error, MergeConflictError) and isinstance(error, TaskFailedError)
    assert error.files == ["shared.txt"] and "shared.txt" in str(error)
    assert exit_code_for(error) == 22
    assert isinstance(out.error, MergeConflictError)
    assert models["d"].main_requests == []  # D never ran
    assert_untouched(repo, start)
    assert (repo / "shared.txt").read_text() == "one line\n"
    # B's and C's work is kept on their branches, named; D's branch is gone.
    assert out.branches == ["cc-executor/clash/1-b", "cc-executor/clash/2-c"]
    assert our_branches(repo) == out.branches
    assert "branches kept: cc-executor/clash/1-b, cc-executor/clash/2-c" in out.summary()
    assert git(repo, "show", "cc-executor/clash/2-c:shared.txt") == "from C\n"


async def test_a_failing_step_skips_its_dependents_and_nothing_is_merged(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    start = head(repo)
    tasks = [
        step(models, "a", bash("printf 'a\\n' > a.txt"), text("A done")),
        step(models, "b", http_error(400, "bad request", times=None), depends_on=["a"]),
        step(models, "c", bash("printf 'c\\n' > c.txt"), text("C done"), depends_on=["a"]),
        step(models, "d", text("D done"), depends_on=["b", "c"]),
    ]
    out = await cc_execute_list(
        tasks,
        config_for(repo, tmp_path),
        isolation="worktree",
        run_id="broken",
        stop_on_failure=False,
    )
    assert not out.success
    assert out["a"].success and out["c"].success and not out["b"].success
    assert isinstance(out["d"].error, DependencyFailedError) and models["d"].main_requests == []
    assert_untouched(repo, start)
    assert not (repo / "a.txt").exists()
    assert out.merged_into is None
    assert out.branches == [f"cc-executor/broken/{n}" for n in ("1-a", "2-b", "3-c")]
    assert git(repo, "show", "cc-executor/broken/3-c:c.txt") == "c\n"
    assert git(repo, "show", "cc-executor/broken/3-c:a.txt") == "a\n"


async def test_a_sequential_list_chains_and_branch_mode_leaves_the_result_on_a_branch(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    start = head(repo)
    tasks = [
        step(models, "one", bash("printf '1\\n' > n.txt"), text("ok")),
        step(models, "two", bash("cat n.txt && printf '2\\n' >> n.txt"), text("ok")),
    ]
    out = await cc_execute_list(
        tasks,
        config_for(repo, tmp_path),
        isolation="worktree",
        isolation_merge="branch",
        run_id="chain",
    )
    assert out.success, out.summary()
    assert "1" in tool_output(models["two"])  # step two started from step one's work
    assert out.branch == "cc-executor/chain/result" and out.merged_into is None
    assert git(repo, "show", "cc-executor/chain/result:n.txt") == "1\n2\n"
    assert our_branches(repo) == ["cc-executor/chain/result"]
    assert_untouched(repo, start)


async def test_worktree_outside_git_is_a_config_error_naming_copy(
    tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError, match='isolation="copy"') as caught:
        await cc_execute_list(
            [step(models, "a", text("A"))], config_for(plain, tmp_path), isolation="worktree"
        )
    assert caught.value.field == "isolation"
    assert models["a"].requests == []


async def test_a_dirty_work_tree_is_a_config_error_naming_the_files(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    (repo / "shared.txt").write_text("edited\n")
    (repo / "notes.txt").write_text("new\n")
    with pytest.raises(ConfigError, match="notes.txt, shared.txt"):
        await cc_execute_list(
            [step(models, "a", text("A"))], config_for(repo, tmp_path), isolation="worktree"
        )
    assert models["a"].requests == []


def test_isolation_is_a_list_option_not_a_step_option() -> None:
    with pytest.raises(ConfigError, match="applies to a whole task list"):
        TaskSpec("x", isolation="worktree")
    with pytest.raises(ConfigError):
        CCExecutorConfig(isolation="folder")


# --------------------------------------------------------------------------- copies


async def test_copy_isolation_outside_git_runs_each_step_in_a_copy(
    tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "input.txt").write_text("data\n")
    (plain / "node_modules").mkdir()
    (plain / "node_modules" / "big.js").write_text("x")
    tasks = [
        step(models, "one", bash("printf 'made\\n' > made.txt && ls -a"), text("ok")),
        step(models, "two", bash("cat made.txt input.txt && rm input.txt"), text("ok")),
    ]
    out = await cc_execute_list(tasks, config_for(plain, tmp_path), isolation="copy")
    assert out.success, out.summary()
    one, two = out
    assert "node_modules" not in tool_output(models["one"])  # the ignore list applies
    assert "made" in tool_output(models["two"]) and "data" in tool_output(models["two"])
    assert one.files_created == ["made.txt"] and two.files_deleted == ["input.txt"]
    # Nothing came back into cwd; each copy is kept, outside it, holding the step's work.
    assert sorted(p.name for p in plain.iterdir()) == ["input.txt", "node_modules"]
    assert one.workdir is not None and two.workdir is not None
    assert plain not in one.workdir.parents
    assert (one.workdir / "made.txt").exists() and (one.workdir / "input.txt").exists()
    assert (two.workdir / "made.txt").exists() and not (two.workdir / "input.txt").exists()
    assert one.branch is None and out.merged_into is None


# --------------------------------------------------------------------------- resume

_ORCHESTRATOR = """
import asyncio, json, os
from cc_executor import CCExecutorConfig, TaskSpec, cc_execute_list

config = CCExecutorConfig(**json.loads(os.environ["LIST_CONFIG"]))
tasks = [TaskSpec(**t) for t in json.loads(os.environ["LIST_TASKS"])]
asyncio.run(cc_execute_list(tasks, config, run_id="crash", isolation="worktree"))
"""


def _journal_rows(state_dir: Path, run_id: str) -> dict[int, str]:
    if not (state_dir / "state.db").exists():
        return {}
    with sqlite3.connect(state_dir / "state.db") as db:
        return dict(
            db.execute("SELECT step, status FROM steps WHERE run_id = ?", (run_id,)).fetchall()
        )


async def test_sigkill_mid_step_then_resume_leaves_no_worktree_behind(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    from cc_executor.testing import hang

    start = head(repo)
    config = config_for(repo, tmp_path)
    first = [
        step(models, "a", bash("printf 'a\\n' > a.txt"), text("A done")),
        step(models, "b", bash("printf 'b\\n' > b.txt"), text("B done"), depends_on=["a"]),
        step(models, "c", bash("printf 'c\\n' > c.txt"), hang(), depends_on=["a"]),
        step(models, "d", text("D done"), depends_on=["b", "c"]),
    ]
    script = tmp_path / "orchestrator.py"
    script.write_text(_ORCHESTRATOR)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LIST_CONFIG": config.model_dump_json(exclude_unset=True),
        "LIST_TASKS": json.dumps([t.model_dump(mode="json", exclude_defaults=True) for t in first]),
    }
    orchestrator = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    try:
        deadline = time.monotonic() + 60
        # C is in its hanging model call and B has finished.
        while (
            len(models["c"].main_requests) < 2
            or _journal_rows(config.state_dir, "crash").get(1) != "success"
        ):
            assert orchestrator.returncode is None, "the orchestrator exited early"
            assert time.monotonic() < deadline, "B never finished or C never hung"
            await asyncio.sleep(0.05)
    finally:
        orchestrator.send_signal(signal.SIGKILL)
        await orchestrator.wait()
    assert len(worktrees(repo)) == 2  # C's worktree, left by the crash
    assert head(repo) == start

    models.pop("c").close()
    models.pop("d").close()
    again = [
        first[0],
        first[1],
        step(models, "c", bash("printf 'c\\n' > c.txt"), text("C done"), depends_on=["a"]),
        step(models, "d", bash("ls"), text("D done"), depends_on=["b", "c"]),
    ]
    out = await cc_execute_list(again, config, run_id="crash", isolation="worktree")
    assert out.success, out.summary()
    assert out.restored == [0, 1]
    assert len(models["a"].main_requests) == 2 and len(models["b"].main_requests) == 2
    assert all(f"{n}.txt" in tool_output(models["d"]) for n in "abc")
    assert sorted(p.name for p in repo.glob("*.txt")) == ["a.txt", "b.txt", "c.txt", "shared.txt"]
    assert worktrees(repo) == [str(repo)] and our_branches(repo) == []
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_the_users_hooks_and_signing_do_not_apply_and_a_moved_branch_gets_a_merge(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    """A failing pre-commit hook and commit.gpgSign=true in the repository's config do not
    stop the library's commits; main moving during the run gives a merge commit, as
    `git merge` would, its first parent the user's commit."""
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho hook ran >&2\nexit 1\n")
    hook.chmod(0o755)
    git(repo, "config", "commit.gpgSign", "true")
    git(repo, "config", "user.signingkey", "nonexistent")

    def user_commits(event: Any) -> None:
        if event.status == "started":  # the user works on main meanwhile
            (repo / "user.txt").write_text("mine\n")
            git(repo, "add", "user.txt")
            git(repo, "-c", "commit.gpgSign=false", "commit", "-q", "--no-verify", "-m", "user")

    out = await cc_execute_list(
        [step(models, "work", bash("printf 'w\\n' > work.txt"), text("ok"))],
        config_for(repo, tmp_path),
        isolation="worktree",
        run_id="moved",
        on_step=user_commits,
    )
    assert out.success, out.summary()
    assert out.merged_into == "main"
    assert (repo / "user.txt").read_text() == "mine\n" and (repo / "work.txt").exists()
    parents = git(repo, "log", "-1", "--format=%P").split()
    assert len(parents) == 2
    assert git(repo, "log", "-1", "--format=%s", parents[0]).strip() == "user"
    assert parents[1] == out["work"].commit
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert worktrees(repo) == [str(repo)] and our_branches(repo) == []


# --------------------------------------------------------------------------- best of N

FIB_CHECK = (
    "import sys; sys.setrecursionlimit(200); from fib import fib; "
    "assert [fib(i) for i in range(8)] == [0, 1, 1, 2, 3, 5, 8, 13], 'wrong'; "
    "assert fib(300) > 0; print('passed')"
)
LOOP = (
    "def fib(n):\n    a, b = 0, 1\n    for _ in range({}):\n        a, b = b, a + b\n    return a\n"
)
FIB = {
    "naive": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "loop": LOOP.format("n"),
    "off": LOOP.format("n - 1"),
}


def write_fib(kind: str) -> Any:
    escaped = FIB[kind].replace("\n", "\\n")  # printf %b turns \n back into newlines
    return bash(f"printf '%b' '{escaped}' > fib.py")


async def test_best_of_tests_each_attempt_in_its_worktree_and_merges_the_passing_one(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    from cc_executor import cc_execute_best_of

    start = head(repo)
    attempts = [step(models, kind, write_fib(kind), text("wrote fib.py")) for kind in FIB]
    out = await cc_execute_best_of(
        attempts, [sys.executable, "-c", FIB_CHECK], config_for(repo, tmp_path), run_id="fib"
    )
    naive, loop, off = out.attempts
    assert loop.passed and loop.test_exit_code == 0 and "passed" in loop.test_output
    assert not naive.passed and "RecursionError" in naive.test_output
    assert not off.passed and "wrong" in off.test_output
    assert out.success and out.winner == 1 and out.best is loop
    # The winner's fib.py is merged into main; the others' branches and every worktree gone.
    assert out.merged_into == "main" and out.branches == []
    assert (repo / "fib.py").read_text() == FIB["loop"]
    assert head(repo) == loop.result.commit and git(repo, "rev-parse", "HEAD^").strip() == start
    assert worktrees(repo) == [str(repo)] and our_branches(repo) == []
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_best_of_with_no_passing_attempt_merges_nothing_and_keeps_the_branches(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    from cc_executor import cc_execute_best_of

    start = head(repo)
    attempts = [step(models, kind, write_fib(kind), text("ok")) for kind in ("naive", "off")]
    out = await cc_execute_best_of(
        attempts, [sys.executable, "-c", FIB_CHECK], config_for(repo, tmp_path), run_id="none"
    )
    assert not out.success and out.winner is None and out.best is None
    assert out.branches == ["cc-executor/none/1-naive", "cc-executor/none/2-off"]
    assert git(repo, "show", "cc-executor/none/2-off:fib.py") == FIB["off"]
    assert_untouched(repo, start)


async def test_best_of_checks_its_arguments_before_anything_starts(tmp_path: Path) -> None:
    from cc_executor import cc_execute_best_of

    with pytest.raises(ConfigError, match="list of arguments"):
        await cc_execute_best_of("x", "pytest -q", cwd=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n must be"):
        await cc_execute_best_of("x", ["true"], cwd=tmp_path, n=0)
    with pytest.raises(ConfigError, match='isolation="copy"'):  # not a git work tree
        await cc_execute_best_of("x", ["true"], cwd=tmp_path)


async def test_cancelling_an_isolated_list_removes_every_worktree(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    from cc_executor.testing import hang

    start = head(repo)
    tasks = [step(models, "a", hang()), step(models, "b", hang())]
    running = asyncio.create_task(
        cc_execute_list(
            tasks, config_for(repo, tmp_path), isolation="worktree", sequential=False, run_id="cut"
        )
    )
    deadline = time.monotonic() + 60
    while not (models["a"].main_requests and models["b"].main_requests):
        assert not running.done(), running
        assert time.monotonic() < deadline, "the steps never reached their models"
        await asyncio.sleep(0.05)
    assert len(worktrees(repo)) == 3  # both steps in their worktrees
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert_untouched(repo, start)


def test_the_command_line_list_takes_isolation(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (tmp_path / "plan.md").write_text("1. Do it\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    for mode, message in (("worktree", 'isolation="copy"'), ("folder", "isolation")):
        proc = subprocess.run(
            [sys.executable, "-m", "cc_executor._cli", "list", "plan.md", "--cwd", str(plain)]
            + ["--isolation", mode],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert message in proc.stderr


async def test_copy_isolation_lays_several_bases_over_cwd_or_names_the_conflict(
    tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "shared.txt").write_text("one line\n")
    tasks = [
        step(models, "b", bash("printf 'b\\n' > b.txt"), text("ok")),
        step(models, "c", bash("printf 'c\\n' > c.txt && rm shared.txt"), text("ok")),
        step(models, "d", bash("ls"), text("ok"), depends_on=["b", "c"]),
        step(models, "e", bash("printf 'e\\n' > b.txt"), text("ok")),
        step(models, "f", text("never"), depends_on=["b", "e"]),
    ]
    out = await cc_execute_list(
        tasks, config_for(plain, tmp_path), isolation="copy", stop_on_failure=False
    )
    seen = tool_output(models["d"])
    assert "b.txt" in seen and "c.txt" in seen and "shared.txt" not in seen
    d = out["d"]
    assert d.success and d.workdir is not None
    assert sorted(p.name for p in d.workdir.iterdir()) == ["b.txt", "c.txt"]
    f = out["f"]
    assert f.error_type == "MergeConflictError" and f.error_fields == {"files": ["b.txt"]}
    assert models["f"].main_requests == []
    assert sorted(p.name for p in plain.iterdir()) == ["shared.txt"]  # cwd untouched


def test_the_bases_and_finals_rules() -> None:
    """Which steps' work a step starts from, and which make the final state: pure rules
    both engines call."""
    from cc_executor._policy import isolation_bases, isolation_finals

    diamond = [(), (0,), (0,), (1, 2)]
    ok = {0: True, 1: True, 2: True}
    assert isolation_bases(3, edges=diamond, sequential=True, succeeded=ok) == [1, 2]
    assert isolation_bases(0, edges=diamond, sequential=True, succeeded={}) == []
    assert isolation_finals(4, edges=diamond, sequential=True, succeeded={**ok, 3: True}) == [3]
    two_sinks = [(), (0,), (0,)]
    assert isolation_finals(3, edges=two_sinks, sequential=False, succeeded=ok) == [1, 2]
    # A chain builds on the last step that succeeded; its last success is the result.
    chain = {0: True, 1: False}
    assert isolation_bases(2, edges=None, sequential=True, succeeded=chain) == [0]
    assert isolation_finals(3, edges=None, sequential=True, succeeded={**chain, 2: True}) == [2]
    # Concurrent steps all start from the start; every success is merged.
    assert isolation_bases(2, edges=None, sequential=False, succeeded=chain) == []
    assert isolation_finals(2, edges=None, sequential=False, succeeded=chain) == [0]


async def test_a_cwd_in_a_subdirectory_maps_into_each_worktree(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    (repo / "pkg").mkdir()
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pkg")
    out = await cc_execute_list(
        [step(models, "sub", bash("ls && printf 'n\\n' > new.txt"), text("ok"))],
        config_for(repo / "pkg", tmp_path),
        isolation="worktree",
    )
    assert out.success, out.summary()
    assert "mod.py" in tool_output(models["sub"])  # it ran in pkg/ of its worktree
    assert (repo / "pkg" / "new.txt").read_text() == "n\n" and not (repo / "new.txt").exists()
    assert out["sub"].files_created == ["new.txt"]


async def test_a_worktree_that_cannot_be_made_fails_the_step_not_the_call(
    repo: Path, tmp_path: Path, models: dict[str, ScriptedModel]
) -> None:
    """git or the disk failing while a step's worktree is made: the step fails without
    running (a TaskFailedError saying why), the list ends normally, main is untouched."""
    start = head(repo)
    blocker = tmp_path / "state" / "worktrees" / "blocked"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the run's worktrees would go\n")
    out = await cc_execute_list(
        [step(models, "a", text("never"))],
        config_for(repo, tmp_path),
        isolation="worktree",
        run_id="blocked",
    )
    assert not out.success
    a = out["a"]
    assert a.error_type == "TaskFailedError" and "could not be made" in (a.error_message or "")
    assert models["a"].requests == []
    assert_untouched(repo, start)
