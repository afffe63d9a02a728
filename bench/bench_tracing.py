"""Per-task cost of the OpenTelemetry hooks, off and on.

1. The hooks alone (task span, attempt span, TRACEPARENT, both ends), per task:
   - OpenTelemetry never imported (the library never imports it itself),
   - the API imported but no provider set (its no-op proxy),
   - an SDK provider with an in-memory exporter (SimpleSpanProcessor).
2. Whole tasks, `cc_run` against the Node-free replay stand-in of a recorded run
   (tests/fixtures: a real CLI stream), tracing off vs on, interleaved; medians.

    python bench/bench_tracing.py [N]      (default 30 whole tasks each way)

Needs opentelemetry-sdk (the test extra).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median

from cc_executor import _otel, cc_run
from cc_executor.config import CCExecutorConfig
from cc_executor.testing import replay_cli

HOOK_ROUNDS = 20_000


def hooks_per_task_us(config: CCExecutorConfig) -> float:
    t0 = time.perf_counter()
    for _ in range(HOOK_ROUNDS):
        task = _otel.start_task(config)
        attempt = _otel.start_attempt(task, 1, "uuid")
        _otel.traceparent_env(attempt)
        _otel.end_attempt(attempt, None, None)
        _otel.end_task(task, None, None)
    return (time.perf_counter() - t0) / HOOK_ROUNDS * 1e6


def transcript(directory: Path) -> Path:
    """A finished transcript around a recorded real-CLI stream."""
    stream = (ROOT / "tests" / "fixtures" / "tool_write_accept_edits.jsonl").read_bytes()
    path = directory / "recorded.jsonl"
    header = {"type": "cc_executor.header", "task": "x"}
    footer = {"type": "cc_executor.footer", "exit_code": 0, "stderr_tail": ""}
    path.write_bytes(
        json.dumps(header).encode()
        + b"\n"
        + stream.rstrip(b"\n")
        + b"\n"
        + json.dumps(footer).encode()
        + b"\n"
    )
    return path


async def tasks(config: CCExecutorConfig, n: int) -> tuple[float, float]:
    off, on = [], []
    for i in range(n + 1):
        for traced, times in ((False, off), (True, on)):
            _PROVIDER.enabled = traced
            t0 = time.perf_counter()
            result = await cc_run("x", config)
            elapsed = time.perf_counter() - t0
            assert result.success, result.error
            if i:  # the first round warms up
                times.append(elapsed)
    return median(off), median(on)


class _Switch:
    enabled = False


_PROVIDER = _Switch()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    config = CCExecutorConfig(model="claude-sonnet-4-5")
    never = hooks_per_task_us(config)
    from opentelemetry import trace

    proxy = hooks_per_task_us(config)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    sdk = hooks_per_task_us(config)
    exporter.clear()
    print(f"hooks per task (task + attempt span, TRACEPARENT), {HOOK_ROUNDS} rounds:")
    print(f"  OpenTelemetry never imported : {never:8.2f} us")
    print(f"  API imported, no provider    : {proxy:8.2f} us")
    print(f"  SDK provider, in-memory      : {sdk:8.2f} us")

    # Whole tasks: tracing on = the SDK provider above; off = the hooks see no provider.
    real_trace = _otel._trace
    _otel._trace = lambda: real_trace() if _PROVIDER.enabled else None  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        stand_in = replay_cli(transcript(Path(tmp)), Path(tmp) / "bin")
        run_config = CCExecutorConfig(
            cli_path=stand_in, cwd=tmp, transcript_dir=Path(tmp) / "t", snapshot_files=False
        )
        off, on = asyncio.run(tasks(run_config, n))
    spans = len(exporter.get_finished_spans())
    print(f"{n} whole tasks each way, cc_run on the replay stand-in ({spans} spans exported):")
    print(f"  tracing off: median {off * 1000:.2f} ms")
    print(f"  tracing on : median {on * 1000:.2f} ms ({(on - off) * 1000:+.2f} ms per task)")


if __name__ == "__main__":
    main()
