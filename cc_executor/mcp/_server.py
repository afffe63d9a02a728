"""The MCP server: cc_executor's tools for an orchestrating agent, over stdio.

One `MCPServer` (the official `mcp` SDK's, formerly FastMCP) with seven tools.
Each tool is a method of `_Tools`, which holds the server's `CCExecutorConfig`
and counts what is running. The config is fixed when the server starts (see
`cc_executor.mcp.main`); a tool call may choose only what cannot widen the
agent's permissions: the task, its timeout, model and a `cwd` inside the
server's own directory.

Failures come back as MCP tool errors (`isError`) whose text starts with the
typed error's class and message; a failed task also carries its record (uuid,
transcript, session) so the orchestrator can verify or resume it. The server
itself never goes down because of a tool call.

Cancellation: when the client cancels a `tools/call`, the SDK cancels the
tool's coroutine; the running `cc_stream` / `cc_execute_list` then ends the CLI
and every process it started before the cancellation completes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from .._cost import json_cost
from .._display import with_live_view
from .._history import HistoryRecord, get_execution_history, load_candidates
from .._log import logger
from .._predict import (
    ExecutionStrategy,
    TaskComplexity,
    get_task_complexity,
    suggest_execution_strategy,
)
from .._prestart import PrestartPool
from .._retry import RetryingRun
from .._run import TaskStream, uncancellable
from .._secrets import Secrets, find_secrets
from .._version import __version__
from ..config import CCExecutorConfig
from ..errors import CCExecutorError, ConfigError
from ..events import AssistantEvent, InitEvent, RetryEvent
from ..pipeline import StepEvent, TaskListResult, TaskSpec, cc_execute_list, generate_run_id
from ..prompts import orchestrator_prompt
from ..result import TaskResult
from ._checks import ExecutionVerification, ExecutorStatus, check_status, verify_execution

__all__ = [
    "ListTask",
    "SERVER_NAME",
    "create_server",
]

SERVER_NAME = "cc_executor"
"""The server's name, and the key of its `.mcp.json` entry: Claude Code then names the
tools `mcp__cc_executor__<tool>`."""

MAX_OUTPUT_CHARS = 40_000
"""An answer longer than this is cut in the tool result (Claude Code caps a tool result
at about 25,000 tokens); the whole answer stays in the transcript."""
MAX_STEP_OUTPUT_CHARS = 4_000
HISTORY_FOR_ESTIMATES = 1000

INSTRUCTIONS = """\
Runs Claude Code tasks in fresh, unattended Claude Code instances and reports \
what happened. check_executor_status first; get_task_complexity / \
suggest_execution_strategy to plan; execute_task for one task, \
execute_task_list for steps that build on each other (pass your own run_id to \
be able to resume); verify_execution to confirm a run from its transcript. \
The prompt `cc_execute` explains when to delegate and how."""

_P = ParamSpec("_P")
_R = TypeVar("_R")


class ListTask(BaseModel):
    """One step of `execute_task_list` with options (a plain string is a step too)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The complete prompt of this step.")
    name: str | None = Field(None, description="A short name, shown in progress and results.")
    timeout: float | Literal["auto"] | None = Field(
        None, description='Seconds this step may take, or "auto" (predicted from history).'
    )
    model: str | None = None
    cwd: str | None = Field(
        None, description="Working directory, inside the server's directory (relative to it)."
    )
    continue_session: bool = Field(
        False, description="Continue the previous step's Claude Code session instead of a new one."
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Names of the steps this one waits for. Any step with depends_on makes the "
        "list a task graph: each step starts once those steps succeeded, independent steps "
        "at once; a step whose dependency failed is skipped.",
    )
    max_turns: int | None = Field(None, ge=1)
    max_budget_usd: float | None = Field(None, gt=0)


def _tool_errors(fn: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R | CallToolResult]]:
    """A library error (bad option, no CLI, bad id) becomes an MCP tool error whose text is
    the error's type and message. Every result, error or not, has the server's secrets
    masked (`_secrets.Secrets`): it lands in the orchestrator's own transcript."""

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R | CallToolResult:
        tools = args[0]
        assert isinstance(tools, _Tools)
        result: Any
        try:
            result = await fn(*args, **kwargs)
        except CCExecutorError as exc:
            logger.info("tool {} failed: {}", fn.__name__, tools.secrets.mask(repr(exc)))
            result = _error(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug or an OS error: say what, keep serving
            logger.error(
                "tool {} failed unexpectedly: {}",
                fn.__name__,
                tools.secrets.mask("".join(traceback.format_exception(exc))),
            )
            result = _error(f"{type(exc).__name__}: {exc} (unexpected; see the server's log)")
        masked: _R | CallToolResult = _masked(result, tools.secrets)
        return masked

    return wrapper


def _masked(value: Any, secrets: Secrets) -> Any:
    """`value` (a tool's result) with `secrets` masked in every string it holds."""
    if not secrets:
        return value
    if isinstance(value, CallToolResult):
        content = [
            TextContent(type="text", text=secrets.mask(c.text)) if isinstance(c, TextContent) else c
            for c in value.content
        ]
        return value.model_copy(
            update={
                "content": content,
                "structured_content": secrets.mask_tree(value.structured_content),
            }
        )
    if isinstance(value, BaseModel):
        return type(value).model_validate(secrets.mask_tree(value.model_dump()))
    if isinstance(value, list):
        return [_masked(item, secrets) for item in value]
    return value


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


class _Tools:
    """The tools, bound to the server's config; counts the runs going on now."""

    def __init__(self, config: CCExecutorConfig) -> None:
        self.root = (config.cwd or Path.cwd()).resolve()
        if not self.root.is_dir():
            raise ConfigError(
                f"cwd {str(self.root)!r} is not an existing directory; create it or start "
                "the server with another --cwd",
                field="cwd",
            )
        # The records of every call stay in the server's project folder (a call's cwd,
        # inside the root, does not move them): one history, one place to verify runs.
        self.config = config.with_overrides(
            cwd=self.root,
            state_dir=config.state_dir,
            transcript_dir=config.resolved_transcript_dir().absolute(),
        )
        self.secrets = find_secrets(self.config)
        # execute_task's pre-started CLIs (mcp_prestart_pool), started on the first call.
        self.pool = PrestartPool(self.config, self.config.mcp_prestart_pool)
        self.running_tasks = 0
        self.running_task_lists = 0

    # -- read-only tools ------------------------------------------------------------

    @_tool_errors
    async def check_executor_status(self) -> ExecutorStatus:
        """Is the executor ready? Reports the Claude Code CLI (found, version), whether
        credentials are configured (never their values), whether the state store and the
        transcript dir are usable, the directory tasks run in, and how many tasks this
        server is running now. `ready` is true when tasks can run; `problems` says what to
        fix otherwise."""
        return await check_status(
            self.config,
            running_tasks=self.running_tasks,
            running_task_lists=self.running_task_lists,
        )

    @_tool_errors
    async def get_task_complexity(
        self, task: Annotated[str, Field(description="The task prompt to assess.")]
    ) -> TaskComplexity:
        """How big a task looks: level (simple < 120 s <= moderate < 600 s <= complex),
        estimated_seconds and the reasons. From the execution history of similar tasks
        when there is enough of it, else from the prompt (verbs, files, steps, length)."""
        history = await load_candidates(self.config, HISTORY_FOR_ESTIMATES)
        # CPU work (regular expressions over the prompt): off the event loop, so a
        # huge prompt never stalls the tasks this server is running.
        return await anyio.to_thread.run_sync(
            functools.partial(get_task_complexity, task, history=history)
        )

    @_tool_errors
    async def suggest_execution_strategy(
        self,
        tasks: Annotated[list[str], Field(description="The task prompts, in the intended order.")],
    ) -> ExecutionStrategy:
        """A plan for a list of tasks: per task "direct" (small enough to do yourself) or
        "fresh_instance" (run it with execute_task / execute_task_list), a predicted
        timeout, which earlier tasks it depends on; which tasks could run at once
        (concurrent_groups) and the estimated total time."""
        history = await load_candidates(self.config, HISTORY_FOR_ESTIMATES)
        return await anyio.to_thread.run_sync(
            functools.partial(
                suggest_execution_strategy, tasks, history=history, config=self.config
            )
        )

    @_tool_errors
    async def get_execution_history(
        self,
        limit: Annotated[
            int, Field(ge=1, le=1000, description="How many runs, newest first.")
        ] = 20,
    ) -> list[HistoryRecord]:
        """The newest finished tasks (of this server and of any program sharing its state
        store): execution_uuid, success, error_type, duration_s, cost_usd, model, turns,
        tool calls, started_at. Prompts are kept only in normalized form."""
        if self.config.state_dir is None and self.config.history_url is None:
            return []  # state_dir=None: no history kept
        records = await get_execution_history(
            limit, state_dir=self.config.state_dir, history_url=self.config.history_url
        )
        return [r.model_copy(update={"cost_usd": json_cost(r.cost_usd)}) for r in records]

    @_tool_errors
    async def verify_execution(
        self,
        execution_uuid: Annotated[
            str,
            Field(description="The execution_uuid of a run (from execute_task or the history)."),
        ],
    ) -> ExecutionVerification:
        """Confirm from the transcript on disk that a run with this execution uuid happened,
        and how it ended: status (success / failed / cancelled), error type, exit code,
        cost, session id. Says plainly when there is no transcript, or when the transcript
        has no footer (the program running it died during the run)."""
        return await verify_execution(execution_uuid, self.config)

    # -- execution tools ------------------------------------------------------------

    @_tool_errors
    async def execute_task(
        self,
        ctx: Context[Any, Any],
        task: Annotated[
            str,
            Field(
                description="The complete, self-contained prompt for a fresh Claude Code "
                "instance: it sees nothing of your conversation."
            ),
        ],
        return_json: Annotated[
            bool,
            Field(
                description="Ask for a structured answer {result, summary} plus the files "
                "changed, returned as `structured`."
            ),
        ] = False,
        timeout: Annotated[  # noqa: ASYNC109 (the task's timeout, passed on; not this call's)
            float | Literal["auto"] | None,
            Field(
                description='Seconds the task may take, or "auto" (predicted from history); '
                "default: the server's."
            ),
        ] = None,
        model: Annotated[
            str | None, Field(description="Model for this task; default: the server's.")
        ] = None,
        cwd: Annotated[
            str | None,
            Field(description="Working directory, inside the server's directory (relative to it)."),
        ] = None,
    ) -> CallToolResult:
        """Run one task in a fresh Claude Code instance and wait for it. Returns output,
        success, cost, duration, session_id, execution_uuid, transcript_path and the files
        created / modified / deleted. Sends a progress notification per tool call the agent
        makes. Cancelling the call ends the Claude Code process and everything it started.
        A failed task is a tool error starting with the error's type and message, followed
        by the same record."""
        overrides: dict[str, Any] = {"cwd": self._cwd(cwd)}
        if return_json:
            overrides["return_json"] = True
        if timeout is not None:
            overrides["timeout"] = timeout
        if model is not None:
            overrides["model"] = model
        config = self.config.with_overrides(**overrides)
        progress = _Progress(ctx, self.secrets)
        self.running_tasks += 1
        prestarted = await self.pool.take(config) if self.pool.size else None
        try:
            run = RetryingRun(task, with_live_view(config), prestarted=prestarted)
            async with TaskStream(run) as stream:
                await progress(f"started · execution {stream.execution_uuid}")
                async for batch in stream.batches():
                    for event in batch:
                        for note in _describe(event):
                            await progress(note)
            result = stream.result
        finally:
            self.running_tasks -= 1
            if prestarted is not None:  # a no-op once the run took it over
                await uncancellable(prestarted.aclose())
        return _tool_result(_task_report(result, MAX_OUTPUT_CHARS), result)

    @_tool_errors
    async def execute_task_list(
        self,
        ctx: Context[Any, Any],
        tasks: Annotated[
            list[str | ListTask],
            Field(
                description="The steps, in order: each a complete prompt, or an object with "
                "`prompt` and options (name, depends_on, timeout, model, cwd, continue_session, "
                "max_turns, max_budget_usd). Each step runs in a fresh Claude Code instance "
                "after the previous one has ended (with depends_on: after the steps it names)."
            ),
        ],
        run_id: Annotated[
            str | None,
            Field(
                description="Your id for this list. Calling again with the same run_id and "
                "list restores the steps that already succeeded and runs the rest. Default: "
                "a new id."
            ),
        ] = None,
        stop_on_failure: Annotated[
            bool, Field(description="Stop at the first failed step (false: run the rest).")
        ] = True,
    ) -> CallToolResult:
        """Run a list of tasks one after another, each in a fresh Claude Code instance, with
        every step recorded in a journal: after a failure or a crash, call again with the
        same run_id to resume where it stopped. Sends a progress notification when a step
        starts, ends or is restored. Returns per step: status, output, error, session_id,
        execution_uuid, transcript_path, cost; and the list's run_id, totals and a summary
        table. A list that did not succeed is a tool error with the same record."""
        specs = [self._spec(item) for item in tasks]
        run_id = run_id if run_id is not None else generate_run_id()
        progress = _Progress(ctx, self.secrets)
        running_steps = 0

        async def on_step(event: StepEvent) -> None:
            nonlocal running_steps
            if event.status == "started":
                running_steps += 1
                self.running_tasks += 1
            elif event.status in ("success", "failed"):
                running_steps -= 1
                self.running_tasks -= 1
            done = event.status != "started"
            message = f"step {event.index + 1}/{event.total} {event.status}: {event.label}"
            if event.result is not None and event.result.error_type:
                message += f" ({event.result.error_type})"
            await progress(
                message, value=2 * event.index + (2 if done else 1), total=2 * event.total
            )

        await progress(
            f"task list {run_id}: {len(specs)} step(s); call again with run_id={run_id!r} to "
            "resume",
            value=0,
            total=2 * len(specs),
        )
        self.running_task_lists += 1
        try:
            outcome = await cc_execute_list(
                specs,
                self.config,
                run_id=run_id,
                stop_on_failure=stop_on_failure,
                on_step=on_step,
            )
        finally:
            self.running_task_lists -= 1
            self.running_tasks -= running_steps
        return _list_result(outcome)

    # -- argument checks --------------------------------------------------------------

    def _cwd(self, cwd: str | None) -> Path:
        """`cwd` (relative to the server's directory) if it lies inside it."""
        if cwd is None or not cwd.strip():
            return self.root
        path = (self.root / cwd).resolve()
        if path != self.root and self.root not in path.parents:
            raise ConfigError(
                f"cwd {cwd!r} is outside the server's directory {self.root}; tasks may only "
                "run inside it (start the server with --cwd at a parent directory to allow "
                "more)",
                field="cwd",
            )
        if not path.is_dir():
            raise ConfigError(
                f"cwd {str(path)!r} is not an existing directory; create it first or pass "
                "another cwd",
                field="cwd",
            )
        return path

    def _spec(self, item: str | ListTask) -> TaskSpec:
        if isinstance(item, str):
            return TaskSpec(item)
        options = item.model_dump(exclude_unset=True, exclude_none=True)
        options.pop("prompt", None)
        if "cwd" in options:
            options["cwd"] = self._cwd(options["cwd"])
        return TaskSpec(item.prompt, **options)


class _Progress:
    """MCP progress notifications for one tool call; a failure to send never stops the run."""

    def __init__(self, ctx: Context[Any, Any], secrets: Secrets) -> None:
        self._ctx = ctx
        self._secrets = secrets
        self._count = 0

    async def __call__(
        self, message: str, *, value: float | None = None, total: float | None = None
    ) -> None:
        self._count += 1
        try:
            await self._ctx.report_progress(
                self._count if value is None else value, total, self._secrets.mask(message)[:300]
            )
        except Exception as exc:
            logger.debug("could not send a progress notification: {!r}", exc)


def _describe(event: object) -> list[str]:
    """Progress lines for the events worth one: each tool call, the session start, retries."""
    if isinstance(event, AssistantEvent):
        return [f"tool: {b.name} {_tool_detail(b.input)}".rstrip() for b in event.tool_uses]
    if isinstance(event, InitEvent):
        return [f"session {event.session_id}"]
    if isinstance(event, RetryEvent):
        return [
            f"attempt {event.attempt} failed ({event.error_type}); retrying in "
            f"{event.delay_s:.0f} s"
        ]
    return []


def _tool_detail(tool_input: dict[str, Any]) -> str:
    for key in ("command", "file_path", "path", "pattern", "url", "description", "prompt"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return " ".join(value.split())[:120]
    return ""


def _cut(text: str, limit: int, where: Path | None) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    tail = f"\n… [{len(text) - limit} more characters"
    tail += f"; the whole answer is in the transcript {where}]" if where else "]"
    return text[:limit] + tail, True


def _task_report(result: TaskResult, limit: int) -> dict[str, Any]:
    output, cut = _cut(result.output, limit, result.transcript_path)
    report: dict[str, Any] = {
        "success": result.success,
        "output": output,
        "error_type": result.error_type,
        "error_message": result.error_message,
        "total_cost_usd": json_cost(result.total_cost_usd),
        "duration_s": round(result.duration_s, 3),
        "num_turns": result.num_turns,
        "session_id": result.session_id,
        "execution_uuid": result.execution_uuid,
        "transcript_path": str(result.transcript_path) if result.transcript_path else None,
        "files_created": result.files_created,
        "files_modified": result.files_modified,
        "files_deleted": result.files_deleted,
        "attempts": max(len(result.attempts), 1),
    }
    if result.structured is not None:
        structured = result.structured
        report["structured"] = (
            structured.model_dump(mode="json") if isinstance(structured, BaseModel) else structured
        )
    if cut:
        report["output_truncated"] = True
    return report


def _tool_result(report: dict[str, Any], result: TaskResult) -> CallToolResult:
    body = json.dumps(report, indent=1, default=str)
    if result.success:
        return CallToolResult(
            content=[TextContent(type="text", text=body)], structured_content=report
        )
    headline = f"{result.error_type}: {result.error_message}"
    return _error(f"{headline}\n\n{body}")


def _list_result(outcome: TaskListResult) -> CallToolResult:
    restored, skipped = set(outcome.restored), set(outcome.skipped)
    steps: list[dict[str, Any]] = []
    for index, label in enumerate(outcome.labels):
        if index >= len(outcome.results):
            steps.append({"index": index, "label": label, "status": "skipped"})
            continue
        result = outcome.results[index]
        status = "restored" if index in restored else ("success" if result.success else "failed")
        if index in skipped:  # a task graph's step that never ran: its result says why
            status = "skipped"
        steps.append(
            {"index": index, "label": label, "status": status}
            | _task_report(result, MAX_STEP_OUTPUT_CHARS)
        )
    error = outcome.error
    report: dict[str, Any] = {
        "run_id": outcome.run_id,
        "success": outcome.success,
        "failed_step": outcome.failed_step,
        "skipped": outcome.skipped,
        "restored": outcome.restored,
        "total_cost_usd": json_cost(outcome.total_cost_usd),
        "duration_s": round(outcome.duration_s, 3),
        "error_type": type(error).__name__ if error is not None else None,
        "error_message": str(error) if error is not None else None,
        "steps": steps,
        "summary": outcome.summary(),
    }
    body = json.dumps(report, indent=1, default=str)
    if outcome.success:
        return CallToolResult(
            content=[TextContent(type="text", text=body)], structured_content=report
        )
    failed = outcome.failed_step
    where = (
        f" (step {failed + 1}/{len(outcome.labels)}: {outcome.labels[failed]})"
        if failed is not None
        else ""
    )
    headline = f"{report['error_type']}{where}: {report['error_message']}"
    resume = f"Resume with execute_task_list(same tasks, run_id={outcome.run_id!r})."
    return _error(f"{headline}\n{resume}\n\n{body}")


def create_server(config: CCExecutorConfig | None = None) -> MCPServer[Any]:
    """The MCP server with its tools and the `cc_execute` prompt, bound to `config`.

    `config` gives every run's defaults (cwd, transcript_dir, state_dir,
    permission_mode, model, env, ...); its `cwd` (default: the current directory)
    is also the directory a tool call's `cwd` must stay inside.
    """
    tools = _Tools(config or CCExecutorConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        # The pool (mcp_prestart_pool) lives while the server runs, not longer.
        tools.pool.fill()
        try:
            yield {}
        finally:
            await uncancellable(tools.pool.aclose())

    server: MCPServer[Any] = MCPServer(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        # The SDK's own log (stdlib logging, on stderr): errors only, unless the server
        # was started with --log-level (cc_executor.mcp.main raises it then).
        log_level="ERROR",
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    runs = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=True)
    server.add_tool(tools.check_executor_status, "check_executor_status", annotations=read_only)
    server.add_tool(tools.get_task_complexity, "get_task_complexity", annotations=read_only)
    server.add_tool(
        tools.suggest_execution_strategy, "suggest_execution_strategy", annotations=read_only
    )
    server.add_tool(tools.execute_task, "execute_task", annotations=runs)
    server.add_tool(tools.execute_task_list, "execute_task_list", annotations=runs)
    server.add_tool(tools.get_execution_history, "get_execution_history", annotations=read_only)
    server.add_tool(tools.verify_execution, "verify_execution", annotations=read_only)

    @server.prompt(
        name="cc_execute",
        description="How to orchestrate work with cc_executor's tools (the cc_execute.md prompt).",
    )
    def cc_execute() -> str:
        return orchestrator_prompt()

    return server
