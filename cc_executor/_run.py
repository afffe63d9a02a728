"""One attempt, end to end: config → command → process → lines → events → result → transcript.

`Execution.batches()` runs one CLI process; every public call reaches it through
`_retry.RetryingRun`, which runs one `Execution` per attempt. It yields
the parsed events of each block of output, and when it finishes (normally, by
timeout, by cancellation or by error) the process tree is gone, the transcript
has its footer, and `Execution.result` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._command import Command, arg_files, build_command, spawn_error
from ._contain import containment_mode
from ._gitchanges import keep_diff
from ._lines import LineReader
from ._log import logger
from ._process import CLIProcess
from ._runtime import require_asyncio
from ._snapshot import FileChanges, FileTracker
from ._structured import STRUCTURED_TOOL, StructuredCheck, check
from ._transcript import NullTranscript, Transcript
from ._version import __version__
from .config import CCExecutorConfig, check_prompt
from .errors import ConfigError
from .events import (
    ApiRetryEvent,
    AssistantEvent,
    Event,
    ResultEvent,
    RetryEvent,
    StreamEvent,
)
from .result import StreamFacts, TaskResult, TimeoutSource, ToolUse, classify, sum_usage

if TYPE_CHECKING:
    from ._predict import TimeoutPrediction
    from ._prestart import Prestarted

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
        self,
        task: str,
        config: CCExecutorConfig,
        *,
        prompt: str | None = None,
        attempt: int = 1,
        prestarted: Prestarted | None = None,
    ) -> None:
        """`prestarted`: a CLI spawned ahead for this run, checked usable with this config
        by its holder (`_prestart`); a discarded one is only named in the transcript."""
        if not isinstance(task, str):
            raise ConfigError(f"task must be a str, got {type(task).__name__}", field="task")
        check_prompt(task)
        if prompt is not None and prompt != task:
            check_prompt(prompt, "prompt")
        self.task = task
        # What goes to the CLI's stdin: the task, or a retry's "continue" prompt.
        self.prompt = task if prompt is None else prompt
        self.attempt = attempt
        self.config = config
        self.prestarted = prestarted
        if prestarted is not None and not prestarted.fits(self.prompt):
            prestarted.discarded = "the prompt is not the one it was started for"
        if prestarted is not None and prestarted.discarded is None:
            self.execution_uuid = prestarted.execution_uuid
            self.command: Command = prestarted.command
        else:
            self.execution_uuid = str(uuid.uuid4())
            self.command = build_command(config, self.execution_uuid)
        # The attempt span's W3C context (TRACEPARENT), set by the caller when tracing.
        self.trace_env: dict[str, str] = {}
        self.result: TaskResult | None = None
        self._structured: StructuredCheck | None = None
        self.tool_uses: list[ToolUse] = []
        self.facts = StreamFacts()
        self.invalid_lines = 0
        self._lines = LineReader()
        # The task's timeout, resolved once for all its attempts (`RetryingRun` sets it).
        self.timeout_s: float | None = None
        self.timeout_source: TimeoutSource = "explicit"
        # The trees git recorded before and after the run (a retried task's diff spans them).
        self.git_trees: list[tuple[str, str, str]] = []
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

    def set_timeout(self, timeout: TimeoutPrediction) -> None:
        """Run with the task's resolved timeout (seconds, and where it came from)."""
        self.timeout_s, self.timeout_source = timeout.seconds, timeout.source

    async def batches(self) -> AsyncGenerator[Sequence[Event], None]:
        config = self.config
        if self.timeout_s is None:
            raise RuntimeError("the task's timeout is resolved before its run (set_timeout)")
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
                **self._prestart_header(),
                "cc_executor_version": __version__,
                **({"metadata": dict(config.metadata)} if config.metadata else {}),
            },
        )
        proc: CLIProcess | None = None
        status = "not_started"
        changes = FileChanges()
        diff: tuple[str | None, Path | None] = (None, None)
        # The run owns the temp files of its file arguments: gone once its process is.
        arguments = contextlib.ExitStack()
        pre = self.prestarted
        try:
            await self._files.start()
            if pre is not None and pre.discarded is None and pre.process is not None:
                # The pre-started CLI is this run's now: its files, its process, its end.
                pre.taken = True
                arguments.enter_context(pre.files)
                proc = pre.process
                proc.send(
                    pre.rest(self.prompt),
                    timeout=self.timeout_s,
                    idle_timeout=config.idle_timeout,
                    result_exit_grace=config.result_exit_grace,
                    keep_background=config.keep_background_processes,
                )
            else:
                proc = await self._spawn(arguments)
            status = "cancelled"
            async for block, parse in proc.blocks():
                transcript.write(block)
                events = self._parse_block(block, proc) if parse else None
                del block  # a 100 MB line is not kept while its events are consumed
                if events:
                    yield events
            exit_code = await proc.wait()
            changes = await self._files.finish()
            self.git_trees = self._files.git_trees
            # Masking a big diff is CPU work, writing it I/O: off the event loop.
            diff = await asyncio.to_thread(
                keep_diff, self._files.diff, transcript.path, self.command.secrets
            )
            if config.return_json or config.json_schema is not None:
                # A big answer against a big schema is CPU work: off the event loop.
                self._structured = await asyncio.to_thread(
                    self._check_structured, self.result_event, changes
                )
            status = "finished"
        except BaseException:
            if proc is not None:
                await uncancellable(proc.aclose())
            raise
        finally:
            arguments.close()
            self._files.close()
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
                    diff,
                )
            footer = self._footer(proc, status, started_at, ended_at, time.monotonic() - t0)
            transcript.record("footer", footer)
            transcript.close()
            if self.result is not None:
                self.result.transcript_complete = transcript.complete

    async def _spawn(self, arguments: contextlib.ExitStack) -> CLIProcess:
        """Start the CLI with the prompt on stdin at once."""
        config = self.config
        assert self.timeout_s is not None
        command = arguments.enter_context(arg_files(self.command))
        if self.trace_env:  # an explicit env=TRACEPARENT wins
            env = {**command.env, **self.trace_env, **config.env}
            command = dataclasses.replace(command, env=env)
        try:
            return await CLIProcess.start(
                command,
                self.prompt.encode("utf-8", "surrogateescape"),
                self.execution_uuid,
                timeout=self.timeout_s,
                idle_timeout=config.idle_timeout,
                kill_grace=config.kill_grace,
                result_exit_grace=config.result_exit_grace,
                keep_background=config.keep_background_processes,
            )
        except OSError as exc:
            raise spawn_error(exc, self.command) from exc

    def _prestart_header(self) -> dict[str, object]:
        pre = self.prestarted
        if pre is None:
            return {"prestarted": False}
        if pre.discarded is not None:
            return {"prestarted": False, "prestart_discarded": pre.discarded}
        return {"prestarted": True, "prestarted_at": pre.spawned_at.isoformat()}

    @property
    def prestarted_at(self) -> datetime | None:
        """When this run's CLI was spawned, if it was pre-started (else None)."""
        pre = self.prestarted
        return pre.spawned_at if pre is not None and pre.discarded is None else None

    @property
    def api_retries(self) -> list[ApiRetryEvent]:
        return self.facts.api_retries

    @property
    def result_event(self) -> ResultEvent | None:
        """The result that decides the run (the last one that counts)."""
        return self.facts.final_result

    @property
    def session_id(self) -> str | None:
        """The CLI session: the init line's, else the first one any line carried."""
        return self.facts.session_id

    def _parse_block(self, block: bytes, proc: CLIProcess) -> Sequence[Event]:
        self.facts.stdout_seen = True
        items, invalid = self._lines.read_block(block)
        for line in invalid:
            self.invalid_lines += 1
            preview = self.command.secrets.mask_bytes(line)[:200]
            logger.warning("skipping a stdout line of the CLI, not JSON: {!r}", preview)
        for item in items:
            # The outcome never depends on a stream_event line (a dict: typed when read).
            if type(item) is not dict and type(item) is not StreamEvent:
                self._observe(item, proc)  # type: ignore[arg-type]
        return self._lines.batch(items)

    def _observe(self, event: Event, proc: CLIProcess) -> None:
        facts = self.facts
        pending = facts.background_pending
        facts.observe(event)
        self._files.observe(event)
        if isinstance(event, AssistantEvent):
            for block in event.tool_uses:
                self.tool_uses.append(
                    ToolUse(
                        name=block.name,
                        input=block.input,
                        id=block.id,
                        parent_tool_use_id=event.parent_tool_use_id,
                    )
                )
        elif isinstance(event, ApiRetryEvent):
            if event.error_status in (401, 403) or event.error == "authentication_failed":
                proc.request_stop("auth_failed")
        elif isinstance(event, ResultEvent):
            proc.result_seen()
        if facts.background_pending != pending:
            # While background work is pending the CLI is silent on purpose: no idle
            # timeout, no result-exit grace; the total timeout still holds.
            proc.set_background_pending(facts.background_pending)

    def _build_result(
        self,
        proc: CLIProcess,
        exit_code: int,
        started_at: datetime,
        ended_at: datetime,
        duration_s: float,
        transcript: Transcript | NullTranscript,
        changes: FileChanges,
        diff: tuple[str | None, Path | None] = (None, None),
    ) -> TaskResult:
        facts = self.facts
        res = facts.final_result
        kept = facts.kept_results
        stopped_by = proc.stopped_by
        if stopped_by == "result_no_exit":
            logger.warning("the CLI did not exit after its result; it was ended, the result stands")
        stderr_tail = self.command.secrets.mask(proc.stderr_tail)
        assert self.timeout_s is not None
        structured = self._structured
        error = classify(
            exit_code=exit_code,
            stopped_by=stopped_by,
            timeout_s=self.timeout_s,
            idle_timeout_s=self.config.idle_timeout,
            on_permission_denied=self.config.on_permission_denied,
            stderr_tail=stderr_tail,
            structured=structured,
            facts=facts,
        )
        if error is None and res is not None and res.permission_denials:
            logger.warning(
                "the CLI denied {} tool call(s); on_permission_denied='warn' keeps the result",
                len(res.permission_denials),
            )
        turns = [r.num_turns for r in kept if r.num_turns is not None]
        costs = [r.total_cost_usd for r in kept if r.total_cost_usd is not None]
        api_ms = [r.duration_api_ms for r in kept if r.duration_api_ms is not None]
        result = TaskResult(
            task=self.task,
            success=error is None,
            output=_answer_text(res),
            error_type=type(error).__name__ if error is not None else None,
            error_message=str(error) if error is not None else None,
            error_fields=error.fields if error is not None else {},
            subtype=res.subtype if res else None,
            is_error=res.is_error if res else None,
            terminal_reason=res.terminal_reason if res else None,
            session_id=(res.session_id if res else None) or self.session_id,
            # Over every result of the run (background work adds results): turns and
            # usage add up; the CLI's cost is already cumulative, so the last one.
            num_turns=sum(turns) if turns else None,
            duration_s=duration_s,
            duration_api_ms=sum(api_ms) if api_ms else None,
            total_cost_usd=costs[-1] if costs else None,
            usage=sum_usage([r.usage for r in kept]),
            model_usage=sum_usage([r.model_usage for r in kept]),
            permission_denials=res.permission_denials if res else [],
            tool_uses=self.tool_uses,
            api_retries=self.api_retries,
            exit_code=exit_code,
            stderr_tail=stderr_tail,
            transcript_path=transcript.path,
            execution_uuid=self.execution_uuid,
            started_at=started_at,
            prestarted_at=self.prestarted_at,
            ended_at=ended_at,
            stopped_by=stopped_by,
            structured_output=res.structured_output if res else None,
            timeout_s=self.timeout_s,
            timeout_source=self.timeout_source,
            metadata=dict(self.config.metadata),
            structured=structured.value if structured is not None and error is None else None,
            files_created=changes.created,
            files_modified=changes.modified,
            files_deleted=changes.deleted,
            diff=diff[0],
            diff_path=diff[1],
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
            "stderr_tail": self.command.secrets.mask(proc.stderr_tail) if proc else "",
            "started_at": started_at.isoformat(),
            "ended_at": ended_at.isoformat(),
            "duration_s": round(duration_s, 3),
        }


def _answer_text(res: ResultEvent | None) -> str:
    """The answer: the result's text, or the structured answer's JSON when only it is set."""
    if res is None:
        return ""
    if not res.result and res.structured_output is not None:
        return json.dumps(res.structured_output, ensure_ascii=False)
    return res.result or ""


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
        if self._index >= len(self._pending):
            require_asyncio("cc_stream")  # checked where it awaits, not per buffered event
            while self._index >= len(self._pending):
                self._pending = await self._batches.__anext__()
                self._index = 0
        event = self._pending[self._index]
        self._index += 1
        return event

    async def batches(self) -> AsyncIterator[Sequence[Event | RetryEvent]]:
        """The same events, a block of output at a time (less overhead per event)."""
        require_asyncio("cc_stream")
        async for batch in self._batches:
            yield batch

    async def aclose(self) -> None:
        await self._batches.aclose()

    async def __aenter__(self) -> TaskStream:
        require_asyncio("cc_stream")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
