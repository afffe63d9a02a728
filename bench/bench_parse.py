"""Typed parse (pydantic validate_json on bytes) vs a bare json.loads loop over the same bytes.

python bench/bench_parse.py
"""

from __future__ import annotations

import json
import time

from _common import ROOT

from cc_executor import parse_event


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
    timings = {}
    for name, fn in (("json.loads", json.loads), ("parse_event", parse_event)):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for line in corpus:
                fn(line)
            best = min(best, time.perf_counter() - t0)
        timings[name] = best
    print(f"{len(corpus)} lines, {size / 1e6:.1f} MB (recorded CLI output)")
    for name, t in timings.items():
        print(f"  {name:12s} {t:.3f} s  {size / 1e6 / t:.0f} MB/s")
    print(f"typed/bare ratio: {timings['parse_event'] / timings['json.loads']:.2f}x")


if __name__ == "__main__":
    main()
