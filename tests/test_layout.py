"""The package's shape: public names listed in plain sorted order, and the data
modules usable without importing the runner."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import cc_executor

PACKAGE = Path(cc_executor.__file__).parent
PUBLIC = ["cc_executor", "cc_executor.testing", "cc_executor.temporal", "cc_executor.mcp"]


@pytest.mark.parametrize("name", PUBLIC)
def test_exported_members_are_sorted_and_importable(name: str) -> None:
    """As httpx's test_exported_members: `__all__` in `sorted()` order (code points),
    and every name in it resolves."""
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert len(set(exported)) == len(exported)
    for member in exported:
        assert getattr(module, member) is not None, member
    assert set(exported) <= set(dir(module))


def _all_lists() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                found.append((str(path.relative_to(PACKAGE)), ast.literal_eval(node.value)))
    return found


def test_every_all_in_the_package_is_sorted() -> None:
    lists = _all_lists()
    assert len(lists) > 20  # the walk found the modules
    unsorted = [path for path, names in lists if names != sorted(names)]
    assert unsorted == []


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


RUNNER = {
    "cc_executor.pipeline",
    "cc_executor._run",
    "cc_executor._retry",
    "cc_executor._api",
    "cc_executor._process",
}


@pytest.mark.parametrize(
    "statement",
    [
        "import cc_executor._tasklist",
        "from cc_executor import load_task_list, TaskSpec, TaskListResult, StepEvent",
    ],
)
def test_loading_a_task_list_does_not_import_the_runner(statement: str, tmp_path: Path) -> None:
    """A fresh interpreter: the list loader and the list's data types come without
    `pipeline` / `_run` (and the loader really loads a file there)."""
    tasks = tmp_path / "tasks.md"
    tasks.write_text("Task 1: one\nTask 2: two\n", encoding="utf-8")
    statement += (
        f"\nfrom cc_executor._tasklist import load_task_list as _l"
        f"\nassert len(_l({str(tasks)!r})) == 2"
    )
    assert _modules_after(statement) & RUNNER == set()


def test_the_runner_names_are_loaded_on_first_use() -> None:
    loaded = _modules_after("import cc_executor\ncc_executor.cc_execute_list")
    assert "cc_executor.pipeline" in loaded


def test_tasklist_and_pipeline_do_not_import_each_other() -> None:
    source = (PACKAGE / "_tasklist.py").read_text(encoding="utf-8")
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "pipeline" not in imported and "_run" not in imported


def test_list_types_are_the_same_objects_everywhere() -> None:
    from cc_executor import _models, pipeline

    for name in ("StepEvent", "TaskListResult", "TaskSpec"):
        assert getattr(pipeline, name) is getattr(_models, name) is getattr(cc_executor, name)
