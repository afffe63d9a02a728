"""Per-task overhead: the same task N times through (a) a bare
`create_subprocess_exec` + `json.loads` loop and (b) `cc_execute`, both running
the real CLI against the scripted model. Prints the median of each and the ratio.

    python bench/bench_overhead.py [N] [--trace]      (default 15)

--trace installs an OpenTelemetry SDK provider (in-memory exporter) first, so
cc_execute records its spans and passes TRACEPARENT (needs opentelemetry-sdk).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import median

from cc_executor import cc_execute
from cc_executor._command import find_cli
from cc_executor.config import CCExecutorConfig
from cc_executor.testing import ScriptedModel, text

ARGS = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]
ARGS += ["--permission-mode", "acceptEdits"]


async def bare(cli: str, env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        cli,
        *ARGS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
        cwd=cwd,
        limit=64 << 20,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(b"say hello")
    proc.stdin.close()
    answer = None
    while line := await proc.stdout.readline():
        event = json.loads(line)
        if event.get("type") == "result":
            answer = event["result"]
    await proc.wait()
    assert answer == "hello", answer
    return time.perf_counter() - t0


async def library(env: dict[str, str], cwd: Path, transcripts: Path) -> float:
    t0 = time.perf_counter()
    answer = await cc_execute("say hello", env=env, cwd=cwd, transcript_dir=transcripts)
    assert answer == "hello", answer
    return time.perf_counter() - t0


async def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--trace"]
    n = int(args[0]) if args else 15
    if "--trace" in sys.argv:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
        print("tracing on: SDK provider, in-memory exporter")
    cli = find_cli(CCExecutorConfig())
    with ScriptedModel() as model, tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        env = model.env()
        model.add(*[text("hello") for _ in range(2 * n + 2)])
        await bare(cli, env, cwd)  # warm-up: page cache, first-run files in HOME
        await library(env, cwd, cwd / "transcripts")
        bare_t, lib_t = [], []
        for _ in range(n):  # interleaved, so drift hits both alike
            bare_t.append(await bare(cli, env, cwd))
            lib_t.append(await library(env, cwd, cwd / "transcripts"))
    b, lib = median(bare_t), median(lib_t)
    print(f"{n} runs each, real CLI {cli} against the scripted model")
    print(f"  bare subprocess + json.loads: median {b * 1000:.0f} ms")
    print(f"  cc_execute                  : median {lib * 1000:.0f} ms")
    print(f"ratio cc_execute/bare: {lib / b:.3f}x")


if __name__ == "__main__":
    asyncio.run(main())
