"""Task-list files → `TaskSpec`s: Markdown (`Task 1: …` / numbered lines) and YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ._models import TaskSpec
from .errors import ConfigError

__all__ = ["load_task_list"]

_MARKDOWN = {".md", ".markdown", ".txt"}
_YAML = {".yaml", ".yml"}

# "Task 3: title", "## Task 3 - title", "**Task 3:** title", "### Task 3" (a heading
# needs no separator; a plain line does, so prose like "Task 3 is hard" is not a task).
_TASK = re.compile(
    r"^\s{0,3}(?P<heading>#{1,6}\s+)?[*_]*task\s+(?P<num>\d+)[*_]*"
    r"\s*(?P<sep>[:.)]|\s[-–—]\s|$)[*_]*\s*(?P<title>.*?)[*_]*\s*$",
    re.IGNORECASE,
)
# "1. title" / "1) title" at the left margin (indented ones are sub-items of a body).
_NUMBERED = re.compile(r"^ ?(?P<num>\d+)[.)]\s+(?P<title>\S.*?)\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
# "Depends on: Task 1, Task 3" in a task's body (outside fences).
_DEPENDS = re.compile(
    r"^\s*[*_]*depends[ _-]on[*_]*\s*:\s*[*_]*\s*(?P<list>.*?)\s*$", re.IGNORECASE
)
_TASK_REF = re.compile(r"^(?:task\s+)?(?P<num>\d+)$", re.IGNORECASE)


def load_task_list(path: str | Path) -> list[TaskSpec]:
    """Read a task list from a Markdown or YAML file, for `cc_execute_list`.

    Markdown (``.md``, ``.markdown``, ``.txt``): each ``Task N: title`` line or
    heading starts a task; the lines under it, up to the next task, are part of
    its prompt (fenced code included). Without such markers, each numbered line
    ``1. title`` is a task, with the indented lines under it. Text before the
    first task is ignored. The step's `name` is the marker line
    (``"Task 1: Create project structure"``); the prompt is the title and body.
    A body line ``Depends on: Task 1, Task 3`` (also ``depends_on:``) makes the
    list a task graph: the task waits for those tasks (``Task N`` or ``N`` names
    the task with that number, anything else a step name); the line is not part
    of the prompt. In a numbered list that uses it, each item is named ``Task N``.

    YAML (``.yaml``, ``.yml``; ``.json`` too): a list, or a mapping with a
    ``tasks`` list. Each item is a prompt string or a mapping with ``prompt``
    and any `TaskSpec` option (``name``, ``depends_on``, ``continue_session``,
    ``timeout``, ``model``, ``cwd``, …). A bad option raises `ConfigError` naming
    the item.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _MARKDOWN | _YAML | {".json"}:
        raise ConfigError(
            f"{path}: unknown task-list format {suffix or '(no extension)'!r}; use Markdown "
            "(.md, .markdown, .txt) or YAML (.yaml, .yml) or JSON (.json)",
            field="tasks",
        )
    content = path.read_text(encoding="utf-8")
    if suffix in _MARKDOWN:
        specs = _from_markdown(path, content)
    else:
        specs = _from_data(path, _parse_data(path, content, suffix))
    if not specs:
        raise ConfigError(
            f"{path}: no tasks found. Markdown needs 'Task 1: …' lines or headings, or "
            "numbered lines '1. …'; YAML needs a list of prompts (or a 'tasks:' list)",
            field="tasks",
        )
    return specs


def _from_markdown(path: Path, content: str) -> list[TaskSpec]:
    lines = content.splitlines()
    fenced = _fenced_lines(lines)
    markers = [
        (i, m)
        for i, line in enumerate(lines)
        if i not in fenced and (m := _TASK.match(line)) and (m["heading"] or m["sep"])
    ]
    numbered = not markers
    if numbered:
        markers = [
            (i, m)
            for i, line in enumerate(lines)
            if i not in fenced and (m := _NUMBERED.match(line))
        ]
    items = []
    for k, (start, m) in enumerate(markers):
        end = markers[k + 1][0] if k + 1 < len(markers) else len(lines)
        body_lines = lines[start + 1 : end]
        if numbered:
            body_lines = _indented_block(body_lines)
        needs: list[str] = []
        kept = []
        for n, line in enumerate(body_lines, start=start + 1):
            d = _DEPENDS.match(line)
            if d and n not in fenced:
                needs += [part.strip() for part in d["list"].split(",") if part.strip()]
            else:
                kept.append(line)
        body = "\n".join(kept).strip("\n")
        title = m["title"].strip()
        prompt = "\n\n".join(part for part in (title, _dedent(body)) if part.strip())
        if not prompt:
            raise ConfigError(
                f"{path}:{start + 1}: task {m['num']} has no text; write what it should do",
                field="prompt",
            )
        name = None if numbered else (f"Task {m['num']}: {title}" if title else f"Task {m['num']}")
        items.append((start, m["num"], name, prompt, needs))
    graph = any(needs for *_, needs in items)
    if graph and numbered:
        items = [(at, num, f"Task {num}", text, needs) for at, num, _, text, needs in items]
    by_number = {str(int(num)): name for _, num, name, _, _ in items}
    specs = []
    for start, _, name, prompt, needs in items:
        resolved = []
        for need in needs:
            ref = _TASK_REF.match(need)
            if ref and str(int(ref["num"])) not in by_number:
                raise ConfigError(
                    f"{path}:{start + 1}: depends on {need!r}, but there is no task "
                    f"{int(ref['num'])}",
                    field="depends_on",
                )
            resolved.append(by_number[str(int(ref["num"]))] if ref else need)
        specs.append(TaskSpec(prompt=prompt, name=name, depends_on=resolved))
    return specs


def _fenced_lines(lines: list[str]) -> set[int]:
    fenced: set[int] = set()
    fence: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            fenced.add(i)
        elif fence is not None:
            fenced.add(i)
            if line.strip().startswith(fence):
                fence = None
    return fenced


def _indented_block(lines: list[str]) -> list[str]:
    """The lines that belong to a numbered item: indented ones and blanks between them."""
    block: list[str] = []
    for line in lines:
        if line.strip() and not line[:1].isspace():
            break
        block.append(line)
    return block


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip()


def _parse_data(path: Path, content: str, suffix: str) -> Any:
    if suffix == ".json":
        try:
            return json.loads(content)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON: {exc}", field="tasks") from None
    import yaml  # 25 ms to import: only when a YAML list is read

    try:
        return yaml.safe_load(content)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}", field="tasks") from None


def _from_data(path: Path, data: Any) -> list[TaskSpec]:
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"tasks"})
        if unknown or not isinstance(data.get("tasks"), list):
            raise ConfigError(
                f"{path}: a task-list mapping holds one key, 'tasks' (a list)"
                + (f"; unknown key(s): {', '.join(map(str, unknown))}" if unknown else ""),
                field="tasks",
            )
        data = data["tasks"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(
            f"{path}: expected a list of tasks, got {type(data).__name__}", field="tasks"
        )
    specs = []
    for n, item in enumerate(data, start=1):
        try:
            if isinstance(item, str):
                specs.append(TaskSpec(prompt=item))
            elif isinstance(item, dict):
                specs.append(TaskSpec(**{str(k): v for k, v in item.items()}))
            else:
                raise ConfigError(
                    f"expected a prompt string or a mapping with 'prompt', "
                    f"got {type(item).__name__}",
                    field="tasks",
                )
        except ConfigError as exc:
            raise ConfigError(f"{path}: task {n}: {exc}", field=exc.field) from None
    return specs
