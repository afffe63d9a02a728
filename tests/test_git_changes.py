"""files_created / files_modified / files_deleted and TaskResult.diff from git.

Real git repositories in tmp dirs; the real CLI against the scripted model for what
a task does (Write / Edit / Bash turns), the same task in snapshot ("walk") mode as
the reference the git mode must equal.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cc_executor import TaskResult, TaskSpec, cc_execute_list, cc_run
from cc_executor import _gitchanges as gitchanges
from cc_executor._snapshot import FileTracker
from cc_executor.testing import ScriptedModel, http_error, text, tool_use


def _git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def _repo(path: Path) -> Path:
    """A repository with one commit, a .gitignore, a dirty and an untracked file."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    files = {
        ".gitignore": "*.log\nbuild/\n",
        "README.md": "# demo\n",
        "src/app.py": "x = 1\ny = 2\n",
        "src/old.py": "pass\n",
        "docs/guide.md": "guide\n",
        "keep.txt": "keep\n",
        "logo.bin": "",
    }
    for rel, content in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(content)
    (path / "logo.bin").write_bytes(bytes(range(256)))
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "start")
    # Changes from before the task: never the task's.
    (path / "keep.txt").write_text("dirty before the task\n")
    (path / "untracked.txt").write_text("was here before\n")
    (path / "already.log").write_text("ignored, before\n")
    return path


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


def _script(model: ScriptedModel, repo: Path) -> None:
    """One task: Write, Edit, and Bash that creates, appends, deletes, renames."""
    model.add(
        tool_use("Write", {"file_path": str(repo / "src" / "new.py"), "content": "z = 3\n"}),
        tool_use(
            "Edit",
            {
                "file_path": str(repo / "src" / "app.py"),
                "old_string": "x = 1",
                "new_string": "x = 10",
            },
        ),
        _bash(
            "rm src/old.py && mv docs/guide.md docs/manual.md && echo more >> README.md && "
            "printf '\\000\\001\\002' > data.bin && printf '\\003' >> logo.bin && "
            "echo log > run.log"
        ),
        text("done"),
    )


def _state(result: TaskResult) -> tuple[list[str], list[str], list[str]]:
    return result.files_created, result.files_modified, result.files_deleted


async def _run(
    model: ScriptedModel, repo: Path, transcripts: Path, mode: Any, **options: Any
) -> TaskResult:
    _script(model, repo)
    config = model.config(
        cwd=repo, transcript_dir=transcripts, allowed_tools=["Bash"], snapshot_files=mode
    )
    result = await cc_run("change the project", config, **options)
    assert result.success, result.error
    return result


EXPECTED = (
    ["data.bin", "docs/manual.md", "run.log", "src/new.py"],
    ["README.md", "logo.bin", "src/app.py"],
    ["docs/guide.md", "src/old.py"],
)


def _user_state(repo: Path) -> tuple[str, bytes, str, str]:
    """What the library must never touch: HEAD, the index, the stash, refs."""
    return (
        _git(repo, "rev-parse", "HEAD"),
        (repo / ".git" / "index").read_bytes(),
        _git(repo, "stash", "list"),
        _git(repo, "for-each-ref"),
    )


async def test_git_mode_reports_what_snapshot_mode_reports(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """The same scripted task in two identical repositories, one per mode: equal lists,
    and nothing of what was dirty, untracked or ignored before the task."""
    walked = await _run(model, _repo(tmp_path / "walk"), tmp_path / "t1", "walk")
    repo = _repo(tmp_path / "git")
    before = _user_state(repo)
    from_git = await _run(model, repo, tmp_path / "t2", "auto")
    assert _state(walked) == EXPECTED
    assert _state(from_git) == EXPECTED
    assert _user_state(repo) == before
    assert walked.diff is None and walked.diff_path is None
    assert from_git.diff is not None and from_git.diff_path is not None


async def test_the_diff_holds_the_tasks_changes_only(model: ScriptedModel, tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    result = await _run(model, repo, tmp_path / "t", True)
    diff = result.diff
    assert diff is not None
    assert "diff --git a/src/app.py b/src/app.py" in diff
    assert "-x = 1\n+x = 10\n y = 2\n" in diff
    assert "diff --git a/src/new.py b/src/new.py\nnew file mode 100644" in diff
    assert "diff --git a/src/old.py b/src/old.py\ndeleted file mode 100644" in diff
    # A rename is a deletion and a creation, as in the lists.
    assert "diff --git a/docs/guide.md b/docs/guide.md\ndeleted file mode" in diff
    assert "diff --git a/docs/manual.md b/docs/manual.md\nnew file mode" in diff
    assert "Binary files /dev/null and b/data.bin differ" in diff
    assert "Binary files a/logo.bin and b/logo.bin differ" in diff
    assert "+more" in diff
    # Dirty and untracked before the task; ignored (listed, but not git's to diff).
    for name in ("keep.txt", "untracked.txt", "already.log", "run.log"):
        assert name not in diff
    # The whole diff beside the transcript, named after the execution uuid, 0600.
    assert result.transcript_path is not None and result.diff_path is not None
    assert result.diff_path == result.transcript_path.with_suffix(".diff")
    assert result.diff_path.name.endswith(f"_{result.execution_uuid}.diff")
    assert result.diff_path.stat().st_mode & 0o777 == 0o600
    assert result.diff_path.read_text() == diff
    # Every form the result is serialised in keeps it (journal, Temporal, --json).
    assert TaskResult.model_validate_json(result.model_dump_json()).diff == diff


async def test_a_subdirectory_cwd_reports_relative_to_it_in_both_modes(
    model: ScriptedModel, tmp_path: Path
) -> None:
    results = []
    for mode in ("walk", "auto"):
        repo = _repo(tmp_path / mode)
        model.add(
            tool_use("Write", {"file_path": str(repo / "src" / "made.py"), "content": "m\n"}),
            _bash("echo changed >> app.py && rm old.py && echo outside >> ../README.md"),
            text("done"),
        )
        config = model.config(
            cwd=repo / "src",
            transcript_dir=tmp_path / f"t-{mode}",
            allowed_tools=["Bash"],
            snapshot_files=mode,
        )
        result = await cc_run("x", config)
        assert result.success, result.error
        assert (repo / "README.md").read_text().endswith("outside\n")
        results.append(result)
    walked, from_git = results
    assert _state(from_git) == _state(walked) == (["made.py"], ["app.py"], ["old.py"])
    assert from_git.diff is not None and "README.md" not in from_git.diff
    assert "diff --git a/src/app.py b/src/app.py" in from_git.diff


async def test_a_big_diff_is_capped_on_the_result_and_whole_in_the_file(
    model: ScriptedModel, tmp_path: Path
) -> None:
    repo = _repo(tmp_path / "repo")
    model.add(_bash("seq 1 100000 > numbers.txt"), text("done"))
    config = model.config(cwd=repo, transcript_dir=tmp_path / "t", allowed_tools=["Bash"])
    result = await cc_run("x", config)
    assert result.success, result.error
    assert result.files_created == ["numbers.txt"]
    assert result.diff is not None and result.diff_path is not None
    whole = result.diff_path.read_text()
    assert whole.endswith("+99999\n+100000\n")
    assert len(whole.encode()) > gitchanges.DIFF_CAP_BYTES
    head, marker = result.diff.rsplit("\n[cc_executor: diff truncated", 1)
    assert len(head.encode()) <= gitchanges.DIFF_CAP_BYTES
    assert whole.startswith(head) and head.endswith("\n")
    assert f"of {len(whole.encode())} bytes; the whole diff: {result.diff_path}]" in marker


async def test_a_secret_written_to_a_file_is_masked_in_the_diff(
    model: ScriptedModel, tmp_path: Path
) -> None:
    repo = _repo(tmp_path / "repo")
    secret = "sk-test-0123456789-very-secret"
    model.add(_bash('echo "token=$DEPLOY_TOKEN" > config.ini'), text("done"))
    config = model.config(
        cwd=repo,
        transcript_dir=tmp_path / "t",
        allowed_tools=["Bash"],
        env={"DEPLOY_TOKEN": secret},
    )
    result = await cc_run("x", config)
    assert result.success, result.error
    assert (repo / "config.ini").read_text() == f"token={secret}\n"
    assert result.diff is not None and result.diff_path is not None
    assert "+token=[REDACTED]" in result.diff
    assert secret not in result.diff
    assert secret not in result.diff_path.read_text()
    assert "+token=[REDACTED]" in result.diff_path.read_text()


async def test_without_git_the_walk_reports_the_same(
    model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitchanges, "GIT", str(tmp_path / "no-such-git"))
    result = await _run(model, _repo(tmp_path / "repo"), tmp_path / "t", "auto")
    assert _state(result) == EXPECTED
    assert result.diff is None and result.diff_path is None


def _fake_git(tmp_path: Path, fails: str) -> Path:
    """A git that runs the real one, except that `git <fails>` exits with 128."""
    real = shutil.which("git")
    script = tmp_path / "git"
    script.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do [ "$a" = "{fails}" ] && {{ echo fatal >&2; exit 128; }}; done\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return script


async def test_a_failing_git_falls_back_to_the_walk(
    model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitchanges, "GIT", str(_fake_git(tmp_path, "write-tree")))
    result = await _run(model, _repo(tmp_path / "repo"), tmp_path / "t", "auto")
    assert _state(result) == EXPECTED
    assert result.diff is None


async def test_git_failing_after_the_run_keeps_the_task_and_the_tools_changes(
    model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Git worked before the run and fails after it: no walk to fall back on, so the file
    tools' calls report what they changed, and the task still succeeds."""
    monkeypatch.setattr(gitchanges, "GIT", str(_fake_git(tmp_path, "diff-tree")))
    result = await _run(model, _repo(tmp_path / "repo"), tmp_path / "t", "auto")
    created, modified, _deleted = _state(result)
    assert "src/new.py" in created and "src/app.py" in modified
    assert result.diff is None


def test_cap_diff_cuts_at_a_line_end_and_says_so() -> None:
    diff = "".join(f"+line {i}\n" for i in range(1000))
    capped = gitchanges.cap_diff(diff, cap=100, where="/t/x.diff")
    head, marker = capped.split("\n[cc_executor:", 1)
    assert diff.startswith(head) and head.endswith("\n") and len(head) <= 100
    assert (
        marker
        == f" diff truncated at {len(head)} of {len(diff)} bytes; the whole diff: /t/x.diff]\n"
    )
    assert gitchanges.cap_diff(diff, cap=len(diff)) == diff


async def test_a_retried_tasks_diff_spans_every_attempt(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """Attempt 1 writes a file and then fails (529); attempt 2 edits another: the task's
    lists and its diff hold both, the diff in the last attempt's file."""
    repo = _repo(tmp_path / "repo")
    model.add(
        tool_use("Write", {"file_path": str(repo / "first.txt"), "content": "one\n"}),
        http_error(529, "Overloaded"),
        _bash("echo second >> README.md"),
        text("done"),
    )
    config = model.config(
        cwd=repo,
        transcript_dir=tmp_path / "t",
        allowed_tools=["Bash"],
        cli_max_retries=0,
        retry_backoff=(0, 0, 0),
    )
    result = await cc_run("x", config)
    assert result.success, result.error
    assert len(result.attempts) == 2
    assert _state(result) == (["first.txt"], ["README.md"], [])
    assert result.diff is not None and result.diff_path is not None
    assert "+one\n" in result.diff and "+second\n" in result.diff
    assert result.diff_path == result.attempts[-1].transcript_path.with_suffix(".diff")  # type: ignore[union-attr]
    assert result.diff_path.read_text() == result.diff
    first = result.attempts[0].transcript_path
    assert first is not None and "+second" not in first.with_suffix(".diff").read_text()


async def test_a_resumed_list_restores_each_finished_steps_diff(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """Step 1 writes a file, step 2 fails; the rerun restores step 1 from the journal
    with its lists and diff, and runs only step 2 (which gets a diff of its own)."""
    repo = _repo(tmp_path / "repo")
    config = model.config(
        cwd=repo,
        transcript_dir=tmp_path / "t",
        state_dir=tmp_path / "state",
        allowed_tools=["Bash"],
    )
    model.add(
        tool_use("Write", {"file_path": str(repo / "one.txt"), "content": "1\n"}),
        text("1"),
        _bash("true"),  # a second turn where only one is allowed: step two fails
    )
    tasks: list[Any] = ["one", TaskSpec("two", max_turns=1), "three"]
    first = await cc_execute_list(tasks, config, run_id="r")
    assert not first.success and first.failed_step == 1
    assert first[0].diff is not None and "+1\n" in first[0].diff
    model.add(_bash("echo 2 > two.txt"), text("2"), text("3"))
    again = await cc_execute_list(["one", "two", "three"], config, run_id="r")
    assert again.success and again.restored == [0]
    assert again[0].diff == first[0].diff and again[0].diff_path == first[0].diff_path
    assert again[0].files_created == ["one.txt"]
    assert again[1].files_created == ["two.txt"]
    assert again[1].diff is not None and "two.txt" in again[1].diff
    assert "one.txt" not in again[1].diff
    assert again[2].diff == ""


async def test_a_file_dirty_before_the_task_shows_the_tasks_change_only(
    model: ScriptedModel, tmp_path: Path
) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "src" / "app.py").write_text("x = 1\ny = 2\nuser = 'mine'\n")  # uncommitted
    _git(repo, "add", "src/app.py")  # staged, even
    model.add(
        tool_use(
            "Edit",
            {
                "file_path": str(repo / "src" / "app.py"),
                "old_string": "y = 2",
                "new_string": "y = 3",
            },
        ),
        _bash("echo task >> untracked.txt"),
        text("done"),
    )
    config = model.config(cwd=repo, transcript_dir=tmp_path / "t", allowed_tools=["Bash"])
    result = await cc_run("x", config)
    assert result.success, result.error
    assert _state(result) == ([], ["src/app.py", "untracked.txt"], [])
    assert result.diff is not None
    assert "-y = 2\n+y = 3\n user = 'mine'\n" in result.diff
    assert "+user = 'mine'" not in result.diff  # the user's own change is not the task's
    assert " was here before\n+task\n" in result.diff
    # The user's staged change is still staged, the index otherwise as it was.
    assert _git(repo, "diff", "--cached", "--name-only") == "src/app.py\n"


# ------------------------------------------------------------- the tracker alone


async def test_roots_in_two_repositories_and_outside_git_each_report_their_changes(
    tmp_path: Path,
) -> None:
    """cwd in one repository, an add_dirs entry in another, one outside git (walked)."""
    a, b = _repo(tmp_path / "a"), _repo(tmp_path / "b")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "old.txt").write_text("old\n")
    tracker = FileTracker(a, [b / "src", plain], enabled=True, ignore=[".git"])
    await tracker.start()
    (a / "README.md").write_text("changed\n")
    (b / "src" / "app.py").write_text("changed\n")
    (b / "README.md").write_text("outside the add_dirs entry\n")
    (plain / "new.txt").write_text("new\n")
    (plain / "old.txt").unlink()
    changes = await tracker.finish()
    assert changes.created == [str(plain / "new.txt")]
    assert changes.modified == sorted(["README.md", str(b / "src" / "app.py")])
    assert changes.deleted == [str(plain / "old.txt")]
    assert tracker.diff is not None
    assert tracker.diff.count("diff --git") == 2 and "+changed" in tracker.diff
    assert "outside the add_dirs entry" not in tracker.diff


async def test_the_full_diff_stops_at_its_limit_with_a_line_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitchanges, "FULL_DIFF_MAX_BYTES", 4096)
    repo = _repo(tmp_path / "repo")
    tracker = FileTracker(repo, [], enabled="git", ignore=[".git"])
    await tracker.start()
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(100_000)))
    changes = await tracker.finish()
    assert changes.created == ["big.txt"]
    assert tracker.diff is not None and len(tracker.diff) < 4096 + 200
    body, marker = tracker.diff.rsplit("\n[cc_executor:", 1)
    assert body.endswith("\n") and "+line 1\n" in body
    assert marker == " diff truncated: git's output went on beyond 4096 bytes]\n"


async def test_a_root_git_ignores_is_walked(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "build").mkdir()
    (repo / "build" / "old.o").write_text("o")
    tracker = FileTracker(repo / "build", [], enabled=True, ignore=[".git"])
    await tracker.start()
    assert tracker.git is None
    (repo / "build" / "new.o").write_text("n")
    changes = await tracker.finish()
    assert changes.created == ["new.o"] and tracker.diff is None


async def test_cancelled_while_git_runs_leaves_no_git_process_nor_temporary_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A git that hangs in `add` (a slow disk, a huge tree): cancelling the run ends it,
    and closing the tracker removes the temporary index."""
    from .test_process_faults import assert_all_gone

    real = shutil.which("git")
    pids = tmp_path / "pids"
    script = tmp_path / "git"
    script.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do [ "$a" = add ] && {{ echo $$ >> {pids}; exec sleep 600; }}; done\n'
        f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setattr(gitchanges, "GIT", str(script))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    repo = _repo(tmp_path / "repo")
    tracker = FileTracker(repo, [], enabled=True, ignore=[".git"])
    start = asyncio.ensure_future(tracker.start())
    for _ in range(6000):  # until the hanging git has started (at most a minute)
        if pids.exists() or start.done():
            break
        await asyncio.sleep(0.01)
    assert pids.exists() and not start.done()
    assert list((tmp_path / "tmp").iterdir())  # the temporary index's folder
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    tracker.close()
    assert_all_gone([int(p) for p in pids.read_text().split()])
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_the_users_git_settings_and_environment_do_not_change_the_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path / "repo")
    (repo / "long.txt").write_text("".join(f"{i}\n" for i in range(20)))
    _git(repo, "add", "long.txt")
    for key, value in {
        "diff.noprefix": "true",
        "diff.context": "0",
        "color.ui": "always",
        "color.diff": "always",
        "diff.external": "/bin/false",
        "core.quotepath": "true",
        "diff.renames": "copies",
    }.items():
        _git(repo, "config", key, value)
    # A GIT_DIR / GIT_INDEX_FILE of the caller (say, inside a git hook) is not followed.
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "nowhere-index"))
    tracker = FileTracker(repo, [], enabled="git", ignore=[".git"])
    await tracker.start()
    assert tracker.git is not None
    (repo / "long.txt").write_text("".join(f"{i}\n" for i in range(20)).replace("10\n", "ten\n"))
    (repo / "ünï.txt").write_text("x\n")
    changes = await tracker.finish()
    assert changes.created == ["ünï.txt"] and changes.modified == ["long.txt"]
    diff = tracker.diff
    assert diff is not None and "\x1b[" not in diff
    assert "--- a/long.txt\n+++ b/long.txt\n@@ -8,7 +8,7 @@\n 7\n 8\n 9\n-10\n+ten\n 11\n" in diff
    assert "diff --git a/ünï.txt b/ünï.txt" in diff
    assert not (tmp_path / "nowhere-index").exists()


async def test_two_git_calls_at_once_raise_the_failure_not_the_cancelled_other() -> None:
    async def slow() -> int:
        await asyncio.sleep(60)
        return 1

    async def fails() -> int:
        raise gitchanges.GitUnavailable("git diff-tree exited with 128")

    with pytest.raises(gitchanges.GitUnavailable, match="diff-tree"):
        await gitchanges._both(slow(), fails())
