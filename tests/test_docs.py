"""The README is a front page and the docs site is whole: every page in the nav, every
relative link resolving, every code block at least valid and its imports real. The
blocks that run end to end are run where their topic is tested (test_first_run: the
offline model and the test snippet; test_mcp: the `.mcp.json` entry); `make docs`
builds the site with `mkdocs build --strict`."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT
from .docs_blocks import code_blocks, doc_pages

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor MkDocs (and GitHub, for these headings) gives a heading."""
    heading = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", heading)


def _without_code(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _anchors(page: Path) -> set[str]:
    text = _without_code(page.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def _blocks(lang: str) -> list[tuple[str, int, str]]:
    return list(code_blocks(lang))


def _ids(lang: str) -> list[str]:
    return [f"{page}:{line}" for page, line, _ in code_blocks(lang)]


def test_the_readme_is_a_front_page_that_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 250
    assert lines[2] == "```bash"
    assert lines[3].startswith("make demo    # needs Python ≥ 3.10 and npm")
    assert lines[4].startswith("make test    # ")


def test_every_docs_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r"^\s+- (?:[^:\n]+: )?([\w/.-]+\.md)$", config, re.MULTILINE))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(_without_code(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https://, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page,line,code", _blocks("python"), ids=_ids("python"))
def test_python_blocks_compile_and_their_cc_executor_imports_exist(
    page: str, line: int, code: str
) -> None:
    """Top-level `await` is allowed (the docs say so: as in `python -m asyncio`)."""
    tree = compile(
        code, f"{page}:{line}", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    assert isinstance(tree, ast.Module)
    # The project's own names must exist; other packages are the reader's to install
    # (an OpenTelemetry exporter, trio, …).
    imports = [
        n
        for n in ast.walk(tree)
        if (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "cc_executor")
        or (
            isinstance(n, ast.Import)
            and all(a.name.split(".")[0] == "cc_executor" for a in n.names)
        )
    ]
    exec(compile(ast.Module(body=imports, type_ignores=[]), f"{page}:{line}", "exec"), {})


@pytest.mark.parametrize("page,line,code", _blocks("json"), ids=_ids("json"))
def test_json_blocks_parse(page: str, line: int, code: str) -> None:
    json.loads(code)


@pytest.mark.parametrize("page,line,code", _blocks("yaml"), ids=_ids("yaml"))
def test_yaml_blocks_parse(page: str, line: int, code: str) -> None:
    assert yaml.safe_load(code) is not None
