"""OpenTelemetry traces (the optional `otel` extra: `opentelemetry-api` only).

The span tree, named after the GenAI semantic conventions::

    invoke_workflow task_list      one per cc_execute_list call      (INTERNAL)
      cc_executor.step             one per step that runs            (INTERNAL)
        invoke_agent claude-code   one per task (cc_run, cc_execute, cc_stream)  (CLIENT)
          cc_executor.attempt      one per CLI process; its context reaches the CLI as
                                   the W3C `TRACEPARENT` environment variable

The tracer is looked up on every call, so a provider set after `import cc_executor`
is used. Nothing here imports OpenTelemetry: when `opentelemetry.trace` was never
imported by the application (so no provider can be set) or the global provider is
the API's default no-op one, every hook returns None at the cost of a dict lookup.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .config import CCExecutorConfig
    from .result import TaskResult

__all__ = [
    "end_attempt",
    "end_task",
    "list_span",
    "start_attempt",
    "start_task",
    "step_span",
    "traceparent_env",
]

PROVIDER = "anthropic"
AGENT_NAME = "claude-code"
TASK_SPAN = f"invoke_agent {AGENT_NAME}"
ATTEMPT_SPAN = "cc_executor.attempt"
LIST_SPAN = "invoke_workflow task_list"
STEP_SPAN = "cc_executor.step"

Span = Any  # opentelemetry.trace.Span; typed loosely so the API stays optional


def _trace() -> Any | None:
    """`opentelemetry.trace` when a real tracer provider is configured, else None."""
    trace: Any = sys.modules.get("opentelemetry.trace")
    if trace is None:
        # A provider named by environment is loaded by the API on first use.
        if not os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"):
            return None
        try:
            import opentelemetry.trace as otel_trace
        except ImportError:
            return None
        trace = otel_trace
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return trace


def tracing() -> bool:
    """Whether a real tracer provider is configured (spans are recorded)."""
    return _trace() is not None


def _tracer(trace: Any) -> Any:
    return trace.get_tracer("cc_executor", __version__)


def _metadata(config: CCExecutorConfig) -> dict[str, Any]:
    metadata: Mapping[str, Any] | None = getattr(config, "metadata", None)
    out: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if isinstance(value, (str, bool, int, float)):
            out[f"cc_executor.metadata.{key}"] = value
        else:
            out[f"cc_executor.metadata.{key}"] = json.dumps(value, default=str)
    return out


def _set(span: Span, attributes: Mapping[str, Any]) -> None:
    span.set_attributes({k: v for k, v in attributes.items() if v is not None})


def _error(span: Span, trace: Any, error_type: str, message: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(trace.Status(trace.StatusCode.ERROR, message[:500]))


def start_task(config: CCExecutorConfig, parent: Span | None = None) -> Span | None:
    """The task's `invoke_agent` span, child of `parent` or of the current span."""
    trace = _trace()
    if trace is None:
        return None
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = _tracer(trace).start_span(TASK_SPAN, context=context, kind=trace.SpanKind.CLIENT)
    _set(
        span,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": PROVIDER,
            "gen_ai.agent.name": AGENT_NAME,
            "gen_ai.request.model": config.model,
            **_metadata(config),
        },
    )
    return span


def end_task(span: Span | None, result: TaskResult | None, error: BaseException | None) -> None:
    """Attributes of the final result (totals over every attempt), status, end."""
    if span is None:
        return
    trace = _trace() or sys.modules["opentelemetry.trace"]
    if result is not None:
        usage = result.usage or {}
        cache_read = _int(usage.get("cache_read_input_tokens"))
        cache_creation = _int(usage.get("cache_creation_input_tokens"))
        input_tokens = _int(usage.get("input_tokens"))
        _set(
            span,
            {
                "gen_ai.conversation.id": result.session_id,
                # The conventions count cached input in input_tokens too.
                "gen_ai.usage.input_tokens": (
                    None
                    if input_tokens is None
                    else input_tokens + (cache_read or 0) + (cache_creation or 0)
                ),
                "gen_ai.usage.output_tokens": _int(usage.get("output_tokens")),
                "gen_ai.usage.cache_read.input_tokens": cache_read,
                "gen_ai.usage.cache_creation.input_tokens": cache_creation,
                "cc_executor.cost_usd": result.total_cost_usd,
                "cc_executor.execution_uuid": result.execution_uuid,
                "cc_executor.attempts": len(result.attempts) or 1,
                "cc_executor.num_turns": result.num_turns,
                "cc_executor.exit_code": result.exit_code,
                "cc_executor.transcript_path": (
                    str(result.transcript_path) if result.transcript_path else None
                ),
            },
        )
        if not result.success:
            _error(span, trace, result.error_type or "error", result.error_message or "")
    elif error is not None:
        _error(span, trace, type(error).__name__, str(error))
    span.end()


def start_attempt(
    task_span: Span | None,
    number: int,
    execution_uuid: str,
    *,
    retry_of: TaskResult | None = None,
    retry_reason: str | None = None,
    delay_s: float | None = None,
) -> Span | None:
    """One attempt's span under the task's; `retry_of` is the failed attempt before it."""
    if task_span is None:
        return None
    trace = _trace() or sys.modules["opentelemetry.trace"]
    span = _tracer(trace).start_span(ATTEMPT_SPAN, context=trace.set_span_in_context(task_span))
    _set(
        span,
        {
            "cc_executor.attempt.number": number,
            "cc_executor.execution_uuid": execution_uuid,
            "cc_executor.retry.reason": retry_reason,
            "cc_executor.retry.previous_error.type": retry_of.error_type if retry_of else None,
            "cc_executor.retry.delay_s": delay_s,
        },
    )
    return span


def end_attempt(span: Span | None, result: TaskResult | None, error: BaseException | None) -> None:
    if span is None:
        return
    trace = _trace() or sys.modules["opentelemetry.trace"]
    if result is not None:
        _set(
            span,
            {
                "gen_ai.conversation.id": result.session_id,
                "cc_executor.cost_usd": result.total_cost_usd,
                "cc_executor.exit_code": result.exit_code,
                "cc_executor.stopped_by": result.stopped_by,
            },
        )
        if not result.success:
            _error(span, trace, result.error_type or "error", result.error_message or "")
    elif error is not None:
        _error(span, trace, type(error).__name__, str(error))
    span.end()


def traceparent_env(span: Span | None) -> dict[str, str]:
    """`{"TRACEPARENT": ..., "TRACESTATE": ...}` for the CLI's environment (W3C trace
    context of `span`), or {} without a span."""
    if span is None:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    trace = sys.modules["opentelemetry.trace"]
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return {name.upper(): value for name, value in carrier.items()}


@contextmanager
def list_span(run_id: str, config: CCExecutorConfig, steps: int) -> Iterator[Span | None]:
    """The task list's span, current inside the block (its steps become its children)."""
    trace = _trace()
    if trace is None:
        yield None
        return
    with _tracer(trace).start_as_current_span(LIST_SPAN) as span:
        _set(
            span,
            {
                "gen_ai.operation.name": "invoke_workflow",
                "gen_ai.provider.name": PROVIDER,
                "cc_executor.run_id": run_id,
                "cc_executor.steps": steps,
                **_metadata(config),
            },
        )
        yield span


@contextmanager
def step_span(index: int, name: str | None, config: CCExecutorConfig) -> Iterator[Span | None]:
    """One step's span, current inside the block (its task becomes its child)."""
    trace = _trace()
    if trace is None:
        yield None
        return
    with _tracer(trace).start_as_current_span(STEP_SPAN) as span:
        _set(
            span,
            {"cc_executor.step.index": index, "cc_executor.step.name": name, **_metadata(config)},
        )
        yield span


def step_result(span: Span | None, result: TaskResult) -> None:
    if span is None:
        return
    trace = sys.modules["opentelemetry.trace"]
    _set(span, {"cc_executor.cost_usd": result.total_cost_usd})
    if not result.success:
        _error(span, trace, result.error_type or "error", result.error_message or "")


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
