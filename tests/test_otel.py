"""OpenTelemetry: the span tree and attributes of a task, a retried task and a task list,
the W3C trace context the CLI receives, and nothing at all without a provider."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cc_executor import CCExecutorConfig, TaskSpec, cc_execute_list, cc_run

_PROVIDER = TracerProvider()
_EXPORTER = InMemorySpanExporter()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
_installed = False


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The global provider is set once per process (the API refuses a second one); it is
    set here, after `import cc_executor`, which must still use it."""
    global _installed
    if not _installed:
        trace.set_tracer_provider(_PROVIDER)
        _installed = True
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def _traceparents(log: Path) -> list[str | None]:
    return [json.loads(line)["TRACEPARENT"] for line in log.read_text().splitlines()]


def _w3c(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


async def test_task_span_and_attempt_span_with_genai_attributes_and_traceparent(
    spans: InMemorySpanExporter, fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    log = tmp_path / "env.jsonl"
    config = fake_cli("ok", env={"FAKE_CLI_ENV_LOG": str(log)}, model="claude-sonnet-4-5")
    result = await cc_run("hello", config)
    assert result.success
    finished = spans.get_finished_spans()
    (task,) = _by_name(finished, "invoke_agent claude-code")
    (attempt,) = _by_name(finished, "cc_executor.attempt")
    assert task.kind is trace.SpanKind.CLIENT
    assert task.parent is None
    assert attempt.parent is not None and attempt.parent.span_id == task.context.span_id
    attrs = dict(task.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.request.model"] == "claude-sonnet-4-5"
    assert attrs["gen_ai.conversation.id"] == result.session_id == "fake-session-1"
    assert attrs["cc_executor.cost_usd"] == result.total_cost_usd
    assert attrs["cc_executor.execution_uuid"] == result.execution_uuid
    assert "error.type" not in attrs
    assert dict(attempt.attributes or {})["cc_executor.attempt.number"] == 1
    # The CLI ran inside the attempt's span: its TRACEPARENT names that span.
    assert _traceparents(log) == [_w3c(attempt)]


async def test_usage_tokens_on_the_task_span(
    spans: InMemorySpanExporter, fake_cli: Callable[..., CCExecutorConfig]
) -> None:
    """Recorded output of a real CLI run with usage: the conventions' token counts."""
    fixture = Path(__file__).parent / "fixtures" / "tool_write_accept_edits.jsonl"
    if not fixture.exists():
        pytest.fail(f"fixture missing: {fixture}")
    result = await cc_run("x", fake_cli("replay", env={"FAKE_CLI_REPLAY": str(fixture)}))
    (task,) = _by_name(spans.get_finished_spans(), "invoke_agent claude-code")
    attrs = dict(task.attributes or {})
    usage = result.usage
    cached = usage.get("cache_read_input_tokens", 0) + usage.get("cache_creation_input_tokens", 0)
    assert attrs["gen_ai.usage.input_tokens"] == usage["input_tokens"] + cached
    assert attrs["gen_ai.usage.output_tokens"] == usage["output_tokens"] > 0


async def test_retried_task_has_one_child_span_per_attempt_with_retry_reason(
    spans: InMemorySpanExporter, fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    log = tmp_path / "env.jsonl"
    config = fake_cli(
        "crash_with_session",
        env={"FAKE_CLI_ENV_LOG": str(log)},
        num_retries=1,
        retry_backoff=0,
        retry_strategy="restart",
    )
    result = await cc_run("x", config)
    assert len(result.attempts) == 2
    finished = spans.get_finished_spans()
    (task,) = _by_name(finished, "invoke_agent claude-code")
    attempts = sorted(
        _by_name(finished, "cc_executor.attempt"),
        key=lambda s: dict(s.attributes or {})["cc_executor.attempt.number"],
    )
    assert [a.parent.span_id for a in attempts if a.parent] == [task.context.span_id] * 2
    first, second = (dict(a.attributes or {}) for a in attempts)
    assert first["error.type"] == "ProcessCrashedError"
    assert attempts[0].status.status_code is trace.StatusCode.ERROR
    assert second["cc_executor.retry.reason"] == "backoff"
    assert second["cc_executor.retry.previous_error.type"] == "ProcessCrashedError"
    assert second["cc_executor.execution_uuid"] == result.attempts[1].execution_uuid
    assert dict(task.attributes or {})["cc_executor.attempts"] == 2
    # Each CLI process got its own attempt's context.
    assert _traceparents(log) == [_w3c(a) for a in attempts]


async def test_failed_task_span_has_error_type(
    spans: InMemorySpanExporter, fake_cli: Callable[..., CCExecutorConfig]
) -> None:
    result = await cc_run("x", fake_cli("crash_mid_stream"))
    assert not result.success
    (task,) = _by_name(spans.get_finished_spans(), "invoke_agent claude-code")
    assert dict(task.attributes or {})["error.type"] == result.error_type
    assert task.status.status_code is trace.StatusCode.ERROR


async def test_task_list_span_has_step_spans_with_task_spans_below(
    spans: InMemorySpanExporter, fake_cli: Callable[..., CCExecutorConfig], tmp_path: Path
) -> None:
    log = tmp_path / "env.jsonl"
    config = fake_cli("ok", env={"FAKE_CLI_ENV_LOG": str(log)})
    outcome = await cc_execute_list(
        [TaskSpec(prompt="a", name="first"), TaskSpec(prompt="b", name="second")],
        config,
        run_id="traced-run",
    )
    assert outcome.success
    finished = spans.get_finished_spans()
    (root,) = _by_name(finished, "invoke_workflow task_list")
    steps = _by_name(finished, "cc_executor.step")
    tasks = _by_name(finished, "invoke_agent claude-code")
    assert dict(root.attributes or {})["cc_executor.run_id"] == "traced-run"
    assert root.parent is None
    assert sorted(dict(s.attributes or {})["cc_executor.step.name"] for s in steps) == [
        "first",
        "second",
    ]
    assert all(s.parent and s.parent.span_id == root.context.span_id for s in steps)
    step_ids = {s.context.span_id for s in steps}
    assert len(tasks) == 2 and all(t.parent and t.parent.span_id in step_ids for t in tasks)
    assert {t.context.trace_id for t in finished} == {root.context.trace_id}
    assert len(_traceparents(log)) == 2


def test_import_loads_neither_opentelemetry_nor_psutil() -> None:
    code = (
        "import sys, cc_executor; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'psutil')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_provider_no_import_no_traceparent(tmp_path: Path, fake_cli: Any) -> None:
    """Without a provider a task imports no OpenTelemetry and passes no TRACEPARENT."""
    log = tmp_path / "env.jsonl"
    config = fake_cli("ok", env={"FAKE_CLI_ENV_LOG": str(log)})
    code = (
        "import sys, json, cc_executor\n"
        f"config = cc_executor.CCExecutorConfig.model_validate_json({config.model_dump_json()!r})\n"
        "r = cc_executor.cc_run_sync('x', config)\n"
        "assert r.success, r.error\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('opentelemetry'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in __import__("os").environ.items() if k != "TRACEPARENT"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert _traceparents(log) == [None]
