"""The progress view of `cc-execute list` and `cc-execute demo`.

`ListProgress` is fed by the two hooks the library already has: `on_step`
(a `StepEvent` when a step starts, ends or is restored) and the config's
`on_event` (every typed event of the running step). On a terminal it is a Rich
`Live` region — step k/N, its name, elapsed time, the current tool call, tokens
and cost so far — above which a line is printed per finished step. Elsewhere
(a pipe, a CI log) it prints one plain line per event instead.

Steps of a `cc-execute list` run one after another, so every event belongs to
the step that started last.

Only the command line imports this module (Rich is not imported by
`import cc_executor`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from .events import (
    ApiRetryEvent,
    AssistantEvent,
    PermissionDeniedEvent,
    RateLimitEvent,
    ResultEvent,
    RetryEvent,
    UserEvent,
)
from .pipeline import StepEvent
from .result import TaskResult

__all__ = ["ListProgress", "describe_tool", "token_counts", "tool_result_text", "tool_results"]

_PREVIEW = 100


def describe_tool(name: str, tool_input: dict[str, Any], cwd: Path | None = None) -> str:
    """``Bash python3 main.py`` / ``Write main.py`` / ``Grep {"pattern": …}``: one short line."""
    path = tool_input.get("file_path") or tool_input.get("notebook_path")
    if isinstance(path, str):
        if cwd is not None:
            try:
                path = str(Path(path).relative_to(cwd))
            except ValueError:
                pass
        return f"{name} {path}"
    command = tool_input.get("command")
    if isinstance(command, str):
        return f"{name} {_one_line(command)}"
    return f"{name} {_one_line(json.dumps(tool_input, ensure_ascii=False))}"


def tool_result_text(block: dict[str, Any]) -> str:
    """The text of a `tool_result` content block (its content is a str or a list of blocks)."""
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return "" if content is None else str(content)


def tool_results(event: UserEvent) -> list[tuple[str, str, bool]]:
    """(tool_use_id, text, is_error) of each tool result a user turn carries."""
    content = event.message.get("content")
    if not isinstance(content, list):
        return []
    return [
        (str(block.get("tool_use_id")), tool_result_text(block), bool(block.get("is_error")))
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def _one_line(text: str, limit: int = _PREVIEW) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    if len(lines) > 1:
        line += " …"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def token_counts(usage: dict[str, Any]) -> tuple[int, int]:
    """(input, output) tokens of a usage record; cached input counts as input."""

    def get(name: str) -> int:
        value = usage.get(name)
        return value if isinstance(value, int) else 0

    return (
        get("input_tokens") + get("cache_creation_input_tokens") + get("cache_read_input_tokens"),
        get("output_tokens"),
    )


@dataclass
class _Step:
    index: int
    label: str
    started: float = field(default_factory=time.monotonic)
    tool: str = ""
    tool_result: str = ""
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Tokens per assistant message id (the latest report of each message)."""
    cost: float = 0.0
    """The step's cost once its result line arrived."""


class ListProgress:
    """Shows a task list as it runs. Use as a context manager around the list's run.

    `on_step` and `on_event` are the hooks to pass to `cc_execute_list` and the
    config. `interactive=None` picks the live view when the console is a terminal.
    """

    def __init__(
        self,
        console: Console,
        *,
        total: int,
        run_id: str,
        title: str,
        cwd: Path | None = None,
        interactive: bool | None = None,
        refresh_per_second: float = 8,
    ) -> None:
        self.console = console
        self.total = total
        self.run_id = run_id
        self.title = title
        self.cwd = cwd
        self.interactive = console.is_terminal if interactive is None else interactive
        self._refresh = refresh_per_second
        self._live: Live | None = None
        self._t0 = time.monotonic()
        self.current: _Step | None = None
        self._running: dict[int, _Step] = {}
        self.spent = 0.0
        self.done_tokens = (0, 0)
        self.finished: list[StepEvent] = []
        self._spinner = Spinner("dots")

    # -- context ------------------------------------------------------------------

    def __enter__(self) -> ListProgress:
        self._line(
            Text.assemble(
                ("● ", "bold"),
                f"{self.title} · {self.total} step(s) · run {self.run_id}",
            )
        )
        if self.interactive:
            self._live = Live(
                self,
                console=self.console,
                refresh_per_second=self._refresh,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- the hooks ----------------------------------------------------------------

    def on_step(self, event: StepEvent) -> None:
        self.spent = event.total_cost_usd
        k = f"{event.index + 1}/{event.total}"
        if event.status == "started":
            self.current = self._running[event.index] = _Step(event.index, event.label)
            if not self.interactive:
                self._line(Text(f"▶ {k} {event.label}", style="bold"))
            self._refresh_now()
            return
        if event.status != "skipped":  # a skipped graph step never ran
            # Steps of a task graph run at once: the live region follows the one started
            # last of those still running.
            self._running.pop(event.index, None)
            self.current = next(reversed(self._running.values()), None)
        self.finished.append(event)
        result = event.result
        if result is not None:
            tin, tout = token_counts(result.usage)
            self.done_tokens = (self.done_tokens[0] + tin, self.done_tokens[1] + tout)
        self._line(self.step_line(event))
        self._refresh_now()

    def on_event(self, event: Any) -> None:
        step = self.current
        if step is None:
            return
        if isinstance(event, AssistantEvent):
            if event.message.usage:
                step.usage[event.message.id or str(len(step.usage))] = token_counts(
                    event.message.usage
                )
            for tool in event.tool_uses:
                step.tool = describe_tool(tool.name, tool.input, self.cwd)
                step.tool_result = ""
                self._detail(f"⏺ {step.tool}")
        elif isinstance(event, UserEvent):
            for _, text, is_error in tool_results(event):
                step.tool_result = ("✗ " if is_error else "") + _one_line(text)
                self._detail(f"↳ {step.tool_result}")
        elif isinstance(event, ResultEvent):
            step.cost = event.total_cost_usd or 0.0
        elif isinstance(event, ApiRetryEvent):
            delay = (event.retry_delay_ms or 0) / 1000
            self._note(
                f"↻ API error {event.error_status} ({event.error}); the CLI retries "
                f"({event.attempt}/{event.max_retries}) in {delay:.1f}s"
            )
        elif isinstance(event, RetryEvent):
            self._note(
                f"↻ attempt {event.attempt} failed ({event.error_type}); attempt "
                f"{event.attempt + 1} in {event.delay_s:.1f}s"
            )
        elif isinstance(event, RateLimitEvent) and event.rate_limit_info.status == "rejected":
            self._note("⏸ usage limit reached; waiting for its reset")
        elif isinstance(event, PermissionDeniedEvent):
            self._note(f"✗ permission denied: {event.tool_name}")
        else:
            return  # streamed deltas and the like change nothing shown: no redraw
        self._refresh_now()

    # -- rendering ----------------------------------------------------------------

    def step_line(self, event: StepEvent) -> Text:
        """The line printed once per finished (or restored) step."""
        k = f"{event.index + 1}/{event.total}"
        result = event.result
        if event.status == "restored":
            cost = _cost(result)
            return Text(f"↺ {k} {event.label} · restored from the journal · {cost}", style="cyan")
        assert result is not None
        if event.status == "skipped":
            reason = _one_line(result.error_message or "", 120)
            return Text(f"⊘ {k} {event.label} · {result.error_type}: {reason}", style="yellow")
        tin, tout = token_counts(result.usage)
        facts = (
            f"{result.num_turns or 0} turn(s) · {result.duration_s:.1f}s · "
            f"{tin:,} in / {tout:,} out tokens · {_cost(result)}"
        )
        if event.status == "success":
            return Text(f"✓ {k} {event.label} · {facts}", style="green")
        error = f"{result.error_type}: {_one_line(result.error_message or '', 120)}"
        return Text(f"✗ {k} {event.label} · {error} · {facts}", style="red")

    def tokens(self) -> tuple[int, int]:
        """Tokens of the finished steps plus the running step's so far."""
        tin, tout = self.done_tokens
        if self.current is not None:
            for a, b in self.current.usage.values():
                tin, tout = tin + a, tout + b
        return tin, tout

    def __rich__(self) -> RenderableType:
        """The live region: the running step, its current tool call, the totals."""
        now = time.monotonic()
        step = self.current
        tin, tout = self.tokens()
        spent = self.spent + (step.cost if step is not None else 0.0)
        totals = Text(
            f"  {tin:,} in / {tout:,} out tokens · ${spent:.4f} so far · "
            f"{now - self._t0:.1f}s total",
            style="dim",
        )
        if step is None:
            done = len(self.finished)
            self._spinner.update(text=Text(f"{done}/{self.total} done"))
            return Group(self._spinner, totals)
        self._spinner.update(
            text=Text.assemble(
                (f"step {step.index + 1}/{self.total}", "bold"),
                f" · {step.label} · {now - step.started:.1f}s",
            )
        )
        rows: list[RenderableType] = [self._spinner]
        if step.tool:
            rows.append(Text(f"  ⏺ {step.tool}", overflow="ellipsis", no_wrap=True))
        if step.tool_result:
            rows.append(Text(f"  ↳ {step.tool_result}", overflow="ellipsis", no_wrap=True))
        rows.append(totals)
        return Group(*rows)

    # -- output -------------------------------------------------------------------

    def _line(self, text: Text) -> None:
        """A permanent line: above the live region on a terminal, else plain."""
        if self.interactive:
            self.console.print(text, overflow="ellipsis", no_wrap=True)
        else:
            _plain(self.console.file, text.plain)

    def _detail(self, line: str) -> None:
        """A tool call or result: in the live region on a terminal, a line elsewhere."""
        if not self.interactive:
            _plain(self.console.file, f"  {line}")

    def _note(self, line: str) -> None:
        """Something worth keeping (retries, denials): a permanent line everywhere."""
        self._line(Text(f"  {line}", style="yellow"))

    def _refresh_now(self) -> None:
        if self._live is not None:
            self._live.refresh()


def _cost(result: TaskResult | None) -> str:
    return f"${(result.total_cost_usd or 0.0) if result is not None else 0.0:.4f}"


def _plain(out: IO[str], line: str) -> None:
    out.write(line + "\n")
    out.flush()
