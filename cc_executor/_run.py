"""One attempt, end to end: config → command → process → lines → events → result → transcript.

`Execution.batches()` runs one CLI process; every public call reaches it through
`_retry.RetryingRun`, which runs one `Execution` per attempt. It yields
the parsed events of each block of output, and when it finishes (normally, by
timeout, by cancellation or by error) the process tree is gone, the transcript
has its footer, and `Execution.result` is set.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Protocol, TypeVar

from ._command import Command, build_command, mask
from ._contain import containment_mode
from ._display import LiveView
from ._log import logger
from ._predict import predict_timeout
from ._process import CLIProcess
from ._snapshot import FileChanges, FileTracker
from ._structured import STRUCTURED_TOOL, StructuredCheck, check
from ._transcript import NullTranscript, Transcript
from ._version import __version__
from .config import CCExecutorConfig
from .errors import CLINotFoundError, ConfigError
from .events import (
    ApiRetryEvent,
    AssistantEvent,
    Event,
    InitEvent,
    InvalidLineError,
    ResultEvent,
    RetryEvent,
    StreamEvent,
    parse_event,
)
from .result import TaskResult, TimeoutSource, ToolUse, classify, limit_reset_at

__all__ = ["Execution", "TaskStream"]

_T = TypeVar("_T")


async def uncancellable(awaitable: Awaitable[_T]) -> _T:
    """Await `awaitable` to the end even if the caller is cancelled (again); then re-raise."""
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


class Execution:
    """State of one run. Create, iterate `batches()` once, then read `result`."""

    def __init__(
        self, task: str, config: CCExecutorConfig, *, prompt: str | None = None, attempt: int = 1
    ) -> None:
        if not isinstance(task, str):
            raise ConfigError(f"task must be a str, got {type(task).__name__}", field="task")
        self.task = task
        # What goes to the CLI's stdin: the task, or a retry's "continue" prompt.
        self.prompt = task if prompt is None else prompt
        self.attempt = attempt
        self.config = config
        self.execution_uuid = str(uuid.uuid4())
        self.command: Command = build_command(config, self.execution_uuid)
        self.result: TaskResult | None = None
        self.session_id: str | None = None
        self.tool_uses: list[ToolUse] = []
        self.api_retries: list[ApiRetryEvent] = []
        self.result_event: ResultEvent | None = None
        self.limit_reset: datetime | None = None
        self.invalid_lines = 0
        # timeout="auto" is resolved when the run starts (it may read the history).
        self.timeout_s: float | None = None if config.timeout == "auto" else config.timeout
        self.timeout_source: TimeoutSource = "explicit"
        self._view = LiveView() if config.stream_output else None
        self._files = FileTracker(
            self.command.cwd,
            config.add_dirs,
            enabled=config.snapshot_files,
            ignore=config.snapshot_ignore,
            # The library's own files are not the task's changes.
            exclude=[
                *([config.resolved_transcript_dir()] if config.save_transcript else []),
                *([config.state_dir] if config.state_dir is not None else []),
            ],
        )

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        config = self.config
        if self.timeout_s is None:
            prediction = await predict_timeout(self.task, config)
            self.timeout_s, self.timeout_source = prediction.seconds, prediction.source
        started_at = datetime.now(timezone.utc)
        t0 = time.monotonic()
        transcript: Transcript | NullTranscript = NullTranscript()
        if config.save_transcript:
            directory = config.resolved_transcript_dir()
            try:
                transcript = Transcript.create(
                    directory, self.execution_uuid, started_at, self.command.secrets
                )
            except OSError as exc:
                raise ConfigError(
                    f"Cannot write transcripts to {str(directory)!r}: {exc}. Pass a writable "
                    "transcript_dir, or save_transcript=False.",
                    field="transcript_dir",
                ) from exc
        transcript.record(
            "header",
            {
                "task": self.task,
                **({"prompt": self.prompt} if self.prompt != self.task else {}),
                "attempt": self.attempt,
                "execution_uuid": self.execution_uuid,
                "argv": self.command.masked_argv(),
                "cwd": str(self.command.cwd),
                "containment": containment_mode(),
                "timeout_s": self.timeout_s,
                "timeout_source": self.timeout_source,
                "started_at": started_at.isoformat(),
                "cc_executor_version": __version__,
            },
        )
        proc: CLIProcess | None = None
        status = "not_started"
        changes = FileChanges()
        try:
            await self._files.start()
            try:
                proc = await CLIProcess.start(
                    self.command,
                    self.prompt.encode("utf-8", "surrogateescape"),
                    self.execution_uuid,
                    timeout=self.timeout_s,
                    idle_timeout=config.idle_timeout,
                    kill_grace=config.kill_grace,
                    result_exit_grace=config.result_exit_grace,
                    keep_background=config.keep_background_processes,
                )
            except OSError as exc:
                raise CLINotFoundError(
                    f"Could not start the Claude Code CLI {self.command.argv[0]!r}: {exc}. "
                    "Check that it is an executable `claude` (cli_path / $CC_EXECUTOR_CLI)."
                ) from exc
            status = "cancelled"
            async for block, parse in proc.blocks():
                transcript.write(block)
                if not parse:
                    continue
                events = self._parse_block(block, proc)
                if events:
                    if self._view is not None:
                        self._view.show(events)
                    yield events
            exit_code = await proc.wait()
            changes = await self._files.finish()
            status = "finished"
        except BaseException:
            if proc is not None:
                await uncancellable(proc.aclose())
            raise
        finally:
            ended_at = datetime.now(timezone.utc)
            if status == "finished":
                assert proc is not None
                self.result = self._build_result(
                    proc,
                    exit_code,
                    started_at,
                    ended_at,
                    time.monotonic() - t0,
                    transcript,
                    changes,
                )
            footer = self._footer(proc, status, started_at, ended_at, time.monotonic() - t0)
            transcript.record("footer", footer)
            transcript.close()

    def _parse_block(self, block: bytes, proc: CLIProcess) -> list[Event]:
        events: list[Event] = []
        for line in block.split(b"\n"):
            if not line or line.isspace():
                continue
            try:
                event = parse_event(line)
            except InvalidLineError as exc:
                self.invalid_lines += 1
                logger.warning("skipping a stdout line of the CLI: {}", exc)
                continue
            if type(event) is not StreamEvent:
                self._observe(event, proc)
            events.append(event)
        return events

    def _observe(self, event: Event, proc: CLIProcess) -> None:
        self.limit_reset = limit_reset_at(event) or self.limit_reset
        self._files.observe(event)
        if isinstance(event, AssistantEvent):
            for block in event.tool_uses:
                self.tool_uses.append(ToolUse(name=block.name, input=block.input, id=block.id))
        elif isinstance(event, ApiRetryEvent):
            self.api_retries.append(event)
            if event.error_status in (401, 403):
                proc.request_stop("auth_failed")
        elif isinstance(event, ResultEvent):
            self.result_event = event
            proc.result_seen()
        elif isinstance(event, InitEvent):
            self.session_id = event.session_id

    def _build_result(
        self,
        proc: CLIProcess,
        exit_code: int,
        started_at: datetime,
        ended_at: datetime,
        duration_s: float,
        transcript: Transcript | NullTranscript,
        changes: FileChanges,
    ) -> TaskResult:
        res = self.result_event
        stopped_by = proc.stopped_by
        if stopped_by == "result_no_exit":
            logger.warning("the CLI did not exit after its result; it was ended, the result stands")
        stderr_tail = mask(proc.stderr_tail, self.command.secrets)
        assert self.timeout_s is not None
        structured = self._check_structured(res, changes)
        error = classify(
            result=res,
            exit_code=exit_code,
            stopped_by=stopped_by,
            api_retries=self.api_retries,
            timeout_s=self.timeout_s,
            idle_timeout_s=self.config.idle_timeout,
            on_permission_denied=self.config.on_permission_denied,
            stderr_tail=stderr_tail,
            limit_reset_at=self.limit_reset,
            structured=structured,
        )
        if error is None and res is not None and res.permission_denials:
            logger.warning(
                "the CLI denied {} tool call(s); on_permission_denied='warn' keeps the result",
                len(res.permission_denials),
            )
        result = TaskResult(
            task=self.task,
            success=error is None,
            output=(res.result or "") if res is not None else "",
            error=error,
            subtype=res.subtype if res else None,
            is_error=res.is_error if res else None,
            terminal_reason=res.terminal_reason if res else None,
            session_id=(res.session_id if res else None) or self.session_id,
            num_turns=res.num_turns if res else None,
            duration_s=duration_s,
            duration_api_ms=res.duration_api_ms if res else None,
            total_cost_usd=res.total_cost_usd if res else None,
            usage=res.usage if res else {},
            model_usage=res.model_usage if res else {},
            permission_denials=res.permission_denials if res else [],
            tool_uses=self.tool_uses,
            api_retries=self.api_retries,
            exit_code=exit_code,
            stderr_tail=stderr_tail,
            transcript_path=transcript.path,
            execution_uuid=self.execution_uuid,
            started_at=started_at,
            ended_at=ended_at,
            stopped_by=stopped_by,
            structured_output=res.structured_output if res else None,
            timeout_s=self.timeout_s,
            timeout_source=self.timeout_source,
            structured=structured.value if structured is not None and error is None else None,
            files_created=changes.created,
            files_modified=changes.modified,
            files_deleted=changes.deleted,
        )
        if error is not None:
            error.result = result
        if self._view is not None:
            self._view.note(
                f"{'✓' if result.success else '✗'} {result.error_type or 'success'}"
                f" · ${result.total_cost_usd or 0:.4f} · {duration_s:.1f}s"
                + (f" · transcript {result.transcript_path}" if result.transcript_path else "")
            )
        return result

    def _check_structured(
        self, res: ResultEvent | None, changes: FileChanges
    ) -> StructuredCheck | None:
        if res is None or not (self.config.return_json or self.config.json_schema is not None):
            return None
        attempts = [t.input for t in self.tool_uses if t.name == STRUCTURED_TOOL]
        return check(
            self.config,
            res.structured_output,
            attempts[-1] if attempts else None,
            changes,
            self.execution_uuid,
        )

    def _footer(
        self,
        proc: CLIProcess | None,
        status: str,
        started_at: datetime,
        ended_at: datetime,
        duration_s: float,
    ) -> dict[str, object]:
        result = self.result
        if result is not None:
            status = "success" if result.success else "failed"
        return {
            "status": status,
            "exit_code": proc.returncode if proc else None,
            "error_type": result.error_type if result else None,
            "error_message": result.error_message if result else None,
            "stopped_by": proc.stopped_by if proc else None,
            "session_id": self.session_id,
            "total_cost_usd": result.total_cost_usd if result else None,
            "invalid_lines": self.invalid_lines,
            "stderr_tail": mask(proc.stderr_tail, self.command.secrets) if proc else "",
            "started_at": started_at.isoformat(),
            "ended_at": ended_at.isoformat(),
            "duration_s": round(duration_s, 3),
        }


class Run(Protocol):
    """What `TaskStream` iterates: one `Execution`, or every attempt of a task (`_retry`)."""

    @property
    def execution_uuid(self) -> str: ...

    @property
    def result(self) -> TaskResult | None: ...

    def batches(self) -> AsyncGenerator[Sequence[Any], None]: ...


class TaskStream:
    """What `cc_stream` returns: an async iterator of typed events, and the result after them.

    ::

        async with cc_stream("task") as stream:
            async for event in stream:
                ...
        stream.result          # TaskResult, available once the iteration ended

    Leaving the `async with` block early (break, exception, cancellation) ends
    the CLI and every process it started before the block exits. Without
    `async with`, call `await stream.aclose()` when you stop iterating early.
    """

    def __init__(self, execution: Run) -> None:
        self._execution = execution
        self._batches = execution.batches()
        self._pending: Sequence[Event | RetryEvent] = []
        self._index = 0

    @property
    def execution_uuid(self) -> str:
        return self._execution.execution_uuid

    @property
    def result(self) -> TaskResult:
        """The run's `TaskResult`; raises RuntimeError until the stream is exhausted."""
        if self._execution.result is None:
            raise RuntimeError(
                "TaskStream.result is available after the last event: iterate the stream "
                "to its end first (async for event in stream: ...)"
            )
        return self._execution.result

    def __aiter__(self) -> TaskStream:
        return self

    async def __anext__(self) -> Event | RetryEvent:
        while self._index >= len(self._pending):
            self._pending = await self._batches.__anext__()
            self._index = 0
        event = self._pending[self._index]
        self._index += 1
        return event

    async def batches(self) -> AsyncIterator[Sequence[Event | RetryEvent]]:
        """The same events, a block of output at a time (less overhead per event)."""
        async for batch in self._batches:
            yield batch

    async def aclose(self) -> None:
        await self._batches.aclose()

    async def __aenter__(self) -> TaskStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
