"""files_created / files_modified / files_deleted: from snapshots and tool calls, verified.

The real CLI against the scripted model for what a task does; the snapshot
walker alone for what it must not touch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from cc_executor import CCExecutorConfig, cc_run
from cc_executor import _snapshot as snapshot
from cc_executor.testing import ScriptedModel, text, tool_use


@pytest.fixture
def config(model: ScriptedModel, workdir: Path, transcripts: Path) -> CCExecutorConfig:
    return model.config(cwd=workdir, transcript_dir=transcripts, allowed_tools=["Bash"])


def _bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "run"})


def _write(path: Path, content: str, *, age_s: float = 3600) -> None:
    """Create a file whose mtime lies `age_s` in the past (as if made well before the task)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    t = time.time() - age_s
    os.utime(path, (t, t))


async def test_modified_and_deleted_files_are_detected(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    _write(workdir / "keep.txt", "same")
    _write(workdir / "append.txt", "one\n")
    _write(workdir / "gone.txt", "bye")
    _write(workdir / "src" / "app.py", "x = 1\n")
    _write(workdir / "src" / "old" / "dead.py", "pass\n")
    model.add(
        tool_use("Read", {"file_path": str(workdir / "src" / "app.py")}),
        tool_use(
            "Edit",
            {"file_path": str(workdir / "src" / "app.py"), "old_string": "1", "new_string": "2"},
        ),
        _bash("echo two >> append.txt && rm gone.txt && rm -r src/old && mkdir -p out"),
        _bash("printf 'new' > out/made.txt"),
        text("done"),
    )
    result = await cc_run("change things", config)
    assert result.success, result.error
    assert (workdir / "src" / "app.py").read_text() == "x = 2\n"
    assert (workdir / "append.txt").read_text() == "one\ntwo\n"
    assert result.files_created == ["out/made.txt"]
    assert result.files_modified == ["append.txt", "src/app.py"]
    assert result.files_deleted == ["gone.txt", "src/old/dead.py"]


async def test_same_size_same_mtime_change_is_caught_by_the_hash(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    """A file whose mtime is as late as the run's start (written in the same clock tick,
    here stamped a second ahead so timing cannot matter) is rewritten with the same size
    and the same mtime: only the hash taken before the run tells."""
    target = workdir / "racy.txt"
    target.write_text("aaaa")
    stamp = time.time_ns() + 1_000_000_000 + 123
    os.utime(target, ns=(stamp, stamp))
    # The command restores the exact mtime (nanoseconds) after rewriting the same size.
    secs, ns = divmod(stamp, 1_000_000_000)
    model.add(
        _bash(f"printf bbbb > racy.txt && touch -d @{secs}.{ns:09d} racy.txt"),
        text("done"),
    )
    result = await cc_run("x", config)
    assert result.success, result.error
    assert target.read_text() == "bbbb"
    assert target.stat().st_mtime_ns == stamp and target.stat().st_size == 4
    assert result.files_modified == ["racy.txt"]


async def test_ignored_directories_are_skipped_but_file_tools_still_count(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    _write(workdir / "node_modules" / "pkg" / "index.js", "old")
    _write(workdir / "build" / "out.o", "obj")
    model.add(
        _bash(
            "echo new > node_modules/pkg/index.js && "
            "echo y > build/out.o && echo z > build/new.o && echo log > run.log"
        ),
        tool_use("Write", {"file_path": str(workdir / "node_modules" / "w.js"), "content": "w"}),
        text("done"),
    )
    result = await cc_run(
        "x",
        config,
        snapshot_ignore=["node_modules", "build", "*.log"],
        transcript_dir=workdir / "tr",
    )
    assert result.success, result.error
    assert (workdir / "node_modules" / "pkg" / "index.js").read_text() == "new\n"
    assert (workdir / "run.log").exists()
    # Only the file a tool wrote shows; the snapshot never looked inside the ignored
    # directories, nor at the transcript written inside cwd.
    assert result.transcript_path is not None and result.transcript_path.parent == workdir / "tr"
    assert result.files_created == ["node_modules/w.js"]
    assert result.files_modified == []
    assert result.files_deleted == []


async def test_add_dirs_outside_cwd_are_reported_with_absolute_paths(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    model.add(
        tool_use("Write", {"file_path": str(other / "x.txt"), "content": "x"}),
        _bash(f"echo y > {other / 'y.txt'}"),
        text("done"),
    )
    result = await cc_run("x", config, add_dirs=[other])
    assert result.success, result.error
    assert result.files_created == [str(other / "x.txt"), str(other / "y.txt")]


async def test_snapshots_off_leaves_only_verified_file_tool_calls(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    _write(workdir / "edit.txt", "a")
    model.add(
        tool_use("Write", {"file_path": str(workdir / "w.txt"), "content": "w"}),
        _bash("echo b > bash.txt && rm edit.txt"),
        tool_use("Write", {"file_path": str(workdir / "then_gone.txt"), "content": "w"}),
        _bash("rm then_gone.txt"),
        text("done"),
    )
    result = await cc_run("x", config, snapshot_files=False)
    assert result.success, result.error
    assert (workdir / "bash.txt").exists()
    assert result.files_created == ["w.txt"]
    assert result.files_modified == [] and result.files_deleted == []


# --------------------------------------------------------------------------- the walker


def test_walker_never_enters_ignored_or_excluded_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in ["a.txt", "src/b.py", "node_modules/p/i.js", ".git/HEAD", "tr/t.jsonl", "x/.venv/c"]:
        _write(tmp_path / rel, "x", age_s=-1)
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_DIRECTORY:
            opened.append(os.path.relpath(path, tmp_path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    ignore = snapshot._Ignore(["node_modules", ".venv"], exclude=[tmp_path / "tr"])
    snap = snapshot.take_snapshot([str(tmp_path)], ignore)
    assert sorted(opened) == [".", "src", "x"]
    assert sorted(os.path.relpath(p, tmp_path) for p in snap.files) == ["a.txt", "src/b.py"]
    # Files stamped as late as the walk are hashed, for a change that keeps size and mtime.
    assert set(snap.hashes) == set(snap.files)


def test_walker_records_symlinks_without_following_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(outside / "big.txt", "x" * 100)
    root = tmp_path / "root"
    root.mkdir()
    (root / "dir_link").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    snap = snapshot.take_snapshot([str(root)], snapshot._Ignore([], exclude=[]))
    assert sorted(os.path.relpath(p, root) for p in snap.files) == ["dangling", "dir_link"]


def test_only_files_stamped_within_the_clock_granularity_are_hashed(tmp_path: Path) -> None:
    now = time.time_ns()
    stamps = {
        "old.txt": now - 60 * 10**9,
        "second_ago_fine.txt": now - 10**9 - 123_456,  # ns timestamps: 50 ms window
        "second_ago_coarse.txt": (now // 10**9 - 1) * 10**9,  # whole seconds: 2 s window
        "ahead.txt": now + 10**9,
    }
    for name, ns in stamps.items():
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, ns=(ns, ns))
    snap = snapshot.take_snapshot([str(tmp_path)], snapshot._Ignore([], exclude=[]))
    hashed = sorted(os.path.basename(p) for p in snap.hashes)
    assert hashed == ["ahead.txt", "second_ago_coarse.txt"]


def test_special_files_never_block_the_snapshot(tmp_path: Path) -> None:
    """A FIFO stamped as late as the walk would hang a naive hash (open waits for a writer)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    ahead = time.time_ns() + 10**9
    os.utime(fifo, ns=(ahead, ahead))
    (tmp_path / "link").symlink_to(fifo)
    snap = snapshot.take_snapshot([str(tmp_path)], snapshot._Ignore([], exclude=[]))
    # Both are racy; neither is read: a symlink and a FIFO are decided by size and mtime.
    assert snap.hashes == {str(fifo): None, str(tmp_path / "link"): None}
    assert sorted(snap.files) == [str(tmp_path / "link"), str(fifo)]


async def test_cwd_through_a_symlink_lists_each_file_once(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, tmp_path: Path
) -> None:
    """The CLI resolves cwd (it denies writes through the link's path), so the model names
    files by the real path while the library walked the link: one entry each all the same."""
    link = tmp_path / "link"
    link.symlink_to(workdir)
    model.add(
        tool_use("Write", {"file_path": str(workdir / "real.txt"), "content": "r"}),
        _bash("echo b > via_bash.txt"),
        text("done"),
    )
    result = await cc_run("x", config, cwd=link)
    assert result.success, result.error
    assert result.files_created == ["real.txt", "via_bash.txt"]


def test_changes_of_successive_runs_combine_into_the_net_change() -> None:
    runs = [
        snapshot.FileChanges(created=["new", "tmp"], modified=["old"], deleted=["gone"]),
        snapshot.FileChanges(created=["gone"], modified=["new"], deleted=["tmp", "old"]),
    ]
    net = snapshot.combine(runs)
    assert net == snapshot.FileChanges(created=["new"], modified=["gone"], deleted=["old"])


async def test_task_list_steps_do_not_list_the_librarys_own_files(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    """Each step lists its own files only, with the journal and transcripts inside cwd."""
    from cc_executor import cc_execute_list

    model.add(
        tool_use("Write", {"file_path": str(workdir / "a.txt"), "content": "a"}),
        text("one"),
        _bash("echo b > b.txt"),
        text("two"),
    )
    listing = await cc_execute_list(
        ["write a", "write b"],
        config,
        state_dir=workdir / ".state",
        transcript_dir=workdir / "transcripts",
    )
    assert listing.success, listing.error
    assert (workdir / ".state" / "state.db").exists()
    assert [(r.files_created, r.files_modified) for r in listing] == [
        (["a.txt"], []),
        (["b.txt"], []),
    ]
