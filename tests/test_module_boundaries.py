"""What one module of cc_executor may take from another: only names without a leading
underscore. A helper two modules share is a named API of the module that owns it."""

from __future__ import annotations

import ast
from pathlib import Path

import cc_executor

PACKAGE = Path(cc_executor.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imported_from(node: ast.ImportFrom, module: str, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def private_uses(module: str, path: Path) -> list[str]:
    """Every `from <cc_executor module> import _name` and `<module alias>._name` in `path`
    (importing a private *module* is fine; taking a private name out of one is not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # `import cc_executor.errors as errors`
                if alias.name in MODULES and alias.asname:
                    aliases.add(alias.asname)
        elif isinstance(node, ast.ImportFrom):
            source = _imported_from(node, module, path)
            if source.split(".")[0] != "cc_executor" or source == module:
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    aliases.add(alias.asname or alias.name)
                elif _private(alias.name):
                    found.append(f"{path.name}:{node.lineno}: from {source} import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _private(node.attr)
        ):
            found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_takes_a_private_name_from_another() -> None:
    found = [use for module, path in MODULES.items() for use in private_uses(module, path)]
    assert found == []


def test_the_check_finds_a_private_import(tmp_path: Path) -> None:
    """The check itself: both shapes of a private cross-module use are caught."""
    source = (
        "from .pipeline import step_label, _first_line\n"
        "from . import errors\n"
        "import cc_executor._history as history\n"
        "from ._api import run_sync\n"
        "x = errors._hidden\n"
        "y = history._connect\n"
    )
    fake = tmp_path / "_probe.py"
    fake.write_text(source)
    uses = private_uses("cc_executor._probe", fake)
    assert uses == [
        "_probe.py:1: from cc_executor.pipeline import _first_line",
        "_probe.py:5: errors._hidden",
        "_probe.py:6: history._connect",
    ]
