"""Time of `import cc_executor` in a fresh interpreter (minus interpreter start-up).

python bench/bench_import.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def run(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    run("import cc_executor")  # warm the bytecode cache
    base = statistics.median(run("pass") for _ in range(10))
    full = statistics.median(run("import cc_executor") for _ in range(10))
    print(f"interpreter start: {base * 1000:.0f} ms, with import cc_executor: {full * 1000:.0f} ms")
    print(f"import cc_executor: {(full - base) * 1000:.0f} ms (median of 10)")


if __name__ == "__main__":
    main()
