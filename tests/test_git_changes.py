"""files_created / files_modified / files_deleted and TaskResult.diff from git.

Real git repositories in tmp dirs; the real CLI against the scripted model for what
a task does (Write / Edit / Bash turns), the same task in snapshot ("walk") mode as
the reference the git mode must equal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, TaskResult, cc_run
from cc_executor import _gitchanges as gitchanges
from cc_executor._snapshot import FileTracker
from cc_executor.testing import ScriptedModel, text, tool_use


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
            {"file_path": str(repo / "src" / "app.py"), "old_string": "x = 1", "new_string": "x = 10"},
        ),
        _bash(
            "rm src/old.py && mv docs/guide.md docs/manual.md && echo more >> README.md && "
            "printf '\\000\\001\\002' > data.bin && echo log > run.log"
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


async def test_git_mode_reports_what_snapshot_mode_reports(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """The same scripted task in two identical repositories, one per mode."""
    walked = await _run(model, _repo(tmp_path / "walk"), tmp_path / "t1", "walk")
    from_git = await _run(model, _repo(tmp_path / "git"), tmp_path / "t2", "auto")
    expected = (
        ["data.bin", "docs/manual.md", "src/new.py"],
        ["README.md", "src/app.py"],
        ["docs/guide.md", "src/old.py"],
    )
    assert _state(from_git) == expected
    # Snapshot mode does not read .gitignore: run.log is its only extra.
    created, modified, deleted = _state(walked)
    assert (sorted(set(created) - {"run.log"}), modified, deleted) == expected
    assert walked.diff is None and walked.diff_path is None
    assert from_git.diff is not None
