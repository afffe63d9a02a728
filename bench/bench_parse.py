"""Reading recorded CLI lines: a bare json.loads loop vs `parse_event` (typed: pydantic
validate_json on bytes) vs a run's `LineReader` (pydantic-core's JSON reader; every line
typed except `stream_event` lines, typed when read) over the same bytes.

python bench/bench_parse.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from _common import ROOT

from cc_executor import parse_event
from cc_executor._lines import LineReader


def main() -> None:
    fixtures = sorted((ROOT / "tests" / "fixtures").glob("*.jsonl"))
    lines = [
        line
        for path in fixtures
        if path.stat().st_size < 1_000_000
        for line in path.read_bytes().splitlines()
    ]
    corpus = lines * max(1, 200_000 // len(lines))
    size = sum(map(len, corpus))
    blocks = [b"\n".join(corpus[i : i + 200]) + b"\n" for i in range(0, len(corpus), 200)]
    reader = LineReader()

    def each_line(fn: Callable[[bytes], object]) -> Callable[[], None]:
        return lambda: [fn(line) for line in corpus] and None

    def line_reader() -> None:
        for block in blocks:
            reader.read_block(block)

    timings = {}
    for name, run in (
        ("json.loads", each_line(json.loads)),
        ("parse_event", each_line(parse_event)),
        ("LineReader", line_reader),
    ):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        timings[name] = best
    print(f"{len(corpus)} lines, {size / 1e6:.1f} MB (recorded CLI output)")
    for name, t in timings.items():
        print(f"  {name:12s} {t:.3f} s  {size / 1e6 / t:.0f} MB/s")
    print(f"parse_event/json.loads ratio: {timings['parse_event'] / timings['json.loads']:.2f}x")
    print(f"LineReader/json.loads ratio: {timings['LineReader'] / timings['json.loads']:.2f}x")


if __name__ == "__main__":
    main()
