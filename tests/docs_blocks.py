"""The fenced code blocks of README.md and docs/*.md, as the tests read and run them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .conftest import ROOT

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def doc_pages() -> list[Path]:
    """README.md and every page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def doc_block(page: str, section: str, lang: str) -> str:
    """The first ```lang block after the heading `section` of `page` (relative to the root)."""
    text = (ROOT / page).read_text()
    match = re.search(rf"^#+ {re.escape(section)}.*$", text, re.MULTILINE)
    assert match is not None, f"{page} has no section {section!r}"
    block = re.search(rf"^```{lang}\n(.*?)^```", text[match.end() :], re.DOTALL | re.MULTILINE)
    assert block is not None, f"no ```{lang} block after {section!r} in {page}"
    return block[1]


def code_blocks(lang: str) -> Iterator[tuple[str, int, str]]:
    """(page, line, code) of every ```lang block in the README and the docs."""
    for path in doc_pages():
        text = path.read_text()
        for match in FENCE.finditer(text):
            if match[1] == lang:
                line = text.count("\n", 0, match.start()) + 1
                yield str(path.relative_to(ROOT)), line, match[2]
