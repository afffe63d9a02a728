"""Secrets: which values must never reach a disk or a log, and the one place that masks them.

`find_secrets(config)` collects the values: variables whose name says they are
a credential (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ...) in
`config.env` and in the inherited environment, and the same names at any depth
of the structured config that can hold them (`mcp_servers` / `mcp_config` — their
servers' ``env`` and ``headers`` —, `settings`, and ``--settings`` / ``--mcp-config``
in `extra_args`).

`Secrets.mask` is the one masking function. Every writer calls it (or its
`mask_bytes` / `mask_tree` forms, which use the same list): transcripts
(header, CLI lines, footer), the journal's stored results, the history,
the log, the MCP server's results and `cc-execute show`. A secret is masked in
every form it takes on its way there: as is, JSON-escaped (``pa\\"ss\\\\word``;
non-ASCII as ``\\u00e9`` or as is, either hex case), and so up to three times
(a JSON text inside a JSON string inside a JSON line: an `mcp_config` on a
command line that a tool's output shows).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import CCExecutorConfig

__all__ = ["ALWAYS_SECRET", "MASK", "SECRET_NAME", "Secrets", "find_secrets"]

MASK = "[REDACTED]"
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTHORIZATION|COOKIE", re.IGNORECASE
)
ALWAYS_SECRET = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
# Inherited variables are masked only when long enough to be a credential, so a
# stray KEY=1 in the environment does not blank every "1" of a transcript.
MIN_INHERITED_SECRET_LEN = 8
# extra_args flags whose value is a JSON text (or a file holding one) that may hold secrets.
_JSON_FLAGS = ("--settings", "--mcp-config")
_HEX_ESCAPE = re.compile(r"\\u([0-9a-f]{4})")
_ESCAPE_LEVELS = 3


class Secrets:
    """Secret values, and every form each takes in text; masks them all, longest first.

    Iterating gives the raw values. `mask(text)` → text with each form replaced
    by ``[REDACTED]``; `mask_bytes` the same on UTF-8 bytes; `mask_tree` on every
    string of a JSON-like structure (dicts, lists, tuples).
    """

    __slots__ = ("_byte_groups", "_groups", "_values")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values = tuple(sorted({v for v in values if v}, key=len, reverse=True))
        # Per secret (longest first): a probe every form contains — its longest run of
        # characters JSON never escapes —, then its forms, longest first. A block without
        # the probe is skipped at the cost of one `in`, so masking a stream stays cheap.
        self._groups: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
            (_probe(v), tuple(sorted(_forms(v), key=len, reverse=True))) for v in self._values
        )
        self._byte_groups = tuple(
            (probe.encode(), tuple(_encoded(forms))) for probe, forms in self._groups
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:  # never the values
        return f"Secrets({len(self._values)} value(s))"

    def mask(self, text: str) -> str:
        """`text` with every form of every secret replaced by ``[REDACTED]``."""
        for probe, forms in self._groups:
            if probe in text:
                for form in forms:
                    if form in text:
                        text = text.replace(form, MASK)
        return text

    def mask_bytes(self, data: bytes) -> bytes:
        """`mask` for UTF-8 bytes (the CLI's stdout lines)."""
        for probe, forms in self._byte_groups:
            if probe in data:
                for form in forms:
                    if form in data:
                        data = data.replace(form, _MASK_BYTES)
        return data

    def mask_tree(self, data: Any) -> Any:
        """A copy of a JSON-like structure with `mask` applied to every string in it
        (keys included); other values as they are."""
        if not self._values:
            return data
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, dict):
            return {self.mask_tree(k): self.mask_tree(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.mask_tree(v) for v in data]
        return data

    def mask_json(self, text: str) -> str:
        """A JSON text with every string in it masked, still valid JSON."""
        if not self._values:
            return text
        return json.dumps(self.mask_tree(json.loads(text)), ensure_ascii=False)


_MASK_BYTES = MASK.encode()
_UNESCAPED_RUN = re.compile(r"[\x20-\x7e]+")


def _probe(value: str) -> str:
    """The longest run of `value` that every form keeps as is: printable ASCII other
    than `"` and `\\` ("" when there is none: then every form is tried)."""
    runs = [r for chunk in _UNESCAPED_RUN.findall(value) for r in re.split(r'["\\]', chunk)]
    return max(runs, key=len, default="")


def _encoded(forms: Iterable[str]) -> Iterator[bytes]:
    for form in forms:
        try:
            yield form.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate no file can hold as bytes
            continue


def _forms(value: str) -> set[str]:
    """`value` as is and JSON-escaped up to `_ESCAPE_LEVELS` times (a JSON text inside a
    JSON string inside a JSON line), each with `ensure_ascii` on and off, either hex case."""
    forms = frontier = {value}
    for _ in range(_ESCAPE_LEVELS):
        escaped = {json.dumps(f, ensure_ascii=a)[1:-1] for f in frontier for a in (True, False)}
        escaped |= {_HEX_ESCAPE.sub(lambda m: "\\u" + m.group(1).upper(), f) for f in escaped}
        frontier = escaped - forms
        forms = forms | frontier
    return forms


def find_secrets(config: CCExecutorConfig, environ: Mapping[str, str] | None = None) -> Secrets:
    """The secrets a run with `config` could leak: see the module docstring."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in config.env.items():
        if name in ALWAYS_SECRET or SECRET_NAME.search(name):
            found.add(value)
    for name, value in environ.items():
        if name in ALWAYS_SECRET or (
            SECRET_NAME.search(name) and len(value) >= MIN_INHERITED_SECRET_LEN
        ):
            found.add(value)
    nested: list[Any] = [config.mcp_config, config.mcp_servers, config.settings]
    args = config.extra_args
    for i, arg in enumerate(args):
        flag, eq, inline = arg.partition("=")
        if flag in _JSON_FLAGS:
            nested.append(inline if eq else (args[i + 1] if i + 1 < len(args) else None))
    for item in nested:
        found.update(_nested_secrets(_as_json(item)))
    return Secrets(found)


def _as_json(item: Any) -> Any:
    """A dict as is; a JSON text or the path of a file holding one, parsed; else None."""
    if item is None or isinstance(item, (dict, list)):
        return item
    text = str(item)
    if not text.lstrip().startswith(("{", "[")):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except (OSError, ValueError):
            return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _nested_secrets(data: Any) -> Iterator[str]:
    """Values under a credential-like key at any depth, and the argument after a
    credential-like flag in a list (``["--api-key", "…"]``)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str):
                if SECRET_NAME.search(str(key)) and value:
                    yield value
            else:
                yield from _nested_secrets(value)
    elif isinstance(data, list):
        for before, value in zip([None, *data], data, strict=False):
            if isinstance(value, str):
                flag = before if isinstance(before, str) else ""
                if flag.startswith("-") and SECRET_NAME.search(flag) and value:
                    yield value
            else:
                yield from _nested_secrets(value)
