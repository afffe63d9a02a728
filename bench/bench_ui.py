"""Dashboard page loads (`cc-execute ui`) on a 1,000-step run.

A temporary state dir gets one task list of N steps written by the real journal
(`Journal.start` / `Journal.finish`, every 10th step retried once after a wait, every
50th failed) and a transcript per attempt written by the real transcript writer (a
recorded tool-using stream: init, tool call, tool result, text, result), plus 50 single
tasks in the history. The dashboard serves it from an in-process Uvicorn on loopback;
each page is fetched over HTTP (urllib) R times, timing request to last byte:

  /                      the runs page (every list + recent single tasks, cost chart)
  /runs/ID               the run: N step rows, the timeline SVG, cost/time charts
  /api/runs/ID           the same as JSON
  /runs/ID/steps/K       one step in the middle, its transcript as a conversation

    python bench/bench_ui.py [N] [R]      (default 1000 steps, 7 rounds)
    python bench/bench_ui.py --screenshots docs/img   (the docs' pictures, small runs)
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cc_executor._history import record_history
from cc_executor._journal import Journal
from cc_executor._secrets import Secrets
from cc_executor._transcript import Transcript
from cc_executor.config import CCExecutorConfig
from cc_executor.result import Attempt, TaskResult

ROOT = Path(__file__).resolve().parents[1]
STREAM = ROOT / "tests" / "fixtures" / "bash_tool_accept_edits.jsonl"


def _transcript(folder: Path, execution: str, started: datetime, body: bytes) -> Path:
    t = Transcript.create(folder, execution, started, Secrets())
    t.record(
        "header",
        {
            "task": "bench",
            "execution_uuid": execution,
            "attempt": 1,
            "cwd": "/work",
            "started_at": started.isoformat(),
        },
    )
    t.write(body)
    t.record("footer", {"status": "success", "exit_code": 0})
    t.close()
    return t.path


async def synthesise(
    state: Path, transcripts: Path, run_id: str, n: int, hours_ago: float = 10, singles: int = 50
) -> None:
    body = STREAM.read_bytes()
    journal = await Journal.open(state)
    t0 = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    clock = t0
    try:
        for i in range(n):
            attempts = []
            tries = 2 if i % 10 == 9 else 1
            failed = i % 50 == 11
            for number in range(1, tries + 1):
                waited = 5.0 if number > 1 else 0.0
                start = clock + timedelta(seconds=waited)
                end = start + timedelta(seconds=20 + (i * 7) % 40)
                execution = str(uuid.uuid4())
                path = _transcript(transcripts, execution, start, body)
                ok = number == tries and not failed
                attempts.append(
                    Attempt(
                        number=number,
                        success=ok,
                        error_type=None if ok else "OverloadedError",
                        started_at=start,
                        ended_at=end,
                        duration_s=(end - start).total_seconds(),
                        cost_usd=0.01 + (i % 13) / 1000,
                        waited_s=waited,
                        execution_uuid=execution,
                        transcript_path=path,
                    )
                )
                clock = end
            last = attempts[-1]
            result = TaskResult(
                task=f"step {i + 1}: refactor module_{i}.py and run its tests",
                success=not failed,
                output=f"Refactored module_{i}.py; 12 tests pass.",
                error_type="MaxTurnsError" if failed else None,
                error_message="max turns" if failed else None,
                execution_uuid=last.execution_uuid,
                started_at=attempts[0].started_at,
                ended_at=last.ended_at,
                duration_s=(last.ended_at - attempts[0].started_at).total_seconds(),
                total_cost_usd=sum(a.cost_usd or 0 for a in attempts),
                num_turns=6,
                usage={"input_tokens": 1200, "output_tokens": 800},
                files_modified=[f"src/module_{i}.py"],
                files_created=[f"tests/test_{i}.py"],
                transcript_path=last.transcript_path,
                attempts=attempts,
                metadata={"team": ("ml", "web", "infra")[i % 3]},
            )
            await journal.start(run_id, i, f"step-{i + 1}", "0" * 64, drop_later=False)
            await journal.finish(run_id, i, result)
        config = CCExecutorConfig(state_dir=state, transcript_dir=transcripts)
        for j in range(singles):
            start = t0 + timedelta(minutes=j)
            single = TaskResult(
                task=f"single task {j}",
                success=True,
                output="ok",
                execution_uuid=str(uuid.uuid4()),
                started_at=start,
                ended_at=start + timedelta(seconds=30),
                duration_s=30.0,
                total_cost_usd=0.02,
                metadata={"team": "ml"},
            )
            await record_history(single, config)
    finally:
        await journal.close()


def fetch(url: str) -> tuple[float, bytes]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body = response.read()
    return time.perf_counter() - t, body


def browser_loads(base: str, pages: list[str], rounds: int) -> None:
    """The same pages in Chromium (if installed): navigation start to the load event,
    parsing, layout and the SVG included (the figure a person waits for)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        print("(no chromium: browser load times not measured; `make chromium`)")
        return
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page()
        print(f"{'in Chromium (load event)':<28} {'median':>9} {'max':>9}")
        for path in pages:
            times = []
            for _ in range(rounds + 1):
                page.goto(base + path, wait_until="load")
                times.append(
                    page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                )
            times = times[1:]
            print(f"{path:<28} {statistics.median(times):7.0f}ms {max(times):7.0f}ms")
        browser.close()


def screenshots(folder: Path) -> None:
    """The docs' pictures: the runs page, a run and a retried step, on small runs."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    from cc_executor.ui import create_app

    root = Path(tempfile.mkdtemp(prefix="bench-ui-shots-"))
    try:
        state, transcripts = root / "state", root / "transcripts"
        asyncio.run(synthesise(state, transcripts, "nightly-refactor", 30, hours_ago=3, singles=6))
        asyncio.run(synthesise(state, transcripts, "docs-pass", 12, hours_ago=6, singles=0))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = uvicorn.Server(
            uvicorn.Config(create_app(state, transcripts), log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        folder.mkdir(parents=True, exist_ok=True)
        args = [
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=args)
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            for name, path in [
                ("dashboard-runs.png", "/?chart=team"),
                ("dashboard-run.png", "/runs/docs-pass"),
                ("dashboard-retried-step.png", "/runs/nightly-refactor/steps/10"),
            ]:
                page.goto(base + path, wait_until="load")
                height = page.evaluate("document.body.scrollHeight")
                clip = {"x": 0, "y": 0, "width": 1100, "height": min(height, 1300)}
                page.screenshot(path=str(folder / name), full_page=True, clip=clip)
                print(f"{folder / name}: {(folder / name).stat().st_size // 1024} KB")
            browser.close()
        server.should_exit = True
        thread.join(10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    if sys.argv[1:2] == ["--screenshots"]:
        screenshots(Path(sys.argv[2]))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    import uvicorn

    from cc_executor.ui import create_app

    root = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    try:
        state, transcripts = root / "state", root / "transcripts"
        t = time.perf_counter()
        asyncio.run(synthesise(state, transcripts, "bench-run", n))
        files = len(list(transcripts.glob("*.jsonl")))
        print(f"synthesised {n} steps, {files} transcripts in {time.perf_counter() - t:.1f}s")

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = uvicorn.Server(
            uvicorn.Config(create_app(state, transcripts), log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        pages = ["/", "/runs/bench-run", "/api/runs/bench-run", f"/runs/bench-run/steps/{n // 2}"]
        print(f"{'page':<28} {'median':>9} {'max':>9} {'size':>10}   ({rounds} rounds, {n} steps)")
        worst = 0.0
        for page in pages:
            _, body = fetch(base + page)  # warm: templates compiled, modules imported
            # What each page must hold, so a page that lost its content cannot look fast.
            must = {"/": b"bench-run", "/runs/bench-run": f"step-{n}<".encode()}.get(
                page, b"tool_call"
            )
            assert must in body, (page, body[:2000])
            times = []
            for _ in range(rounds):
                elapsed, body = fetch(base + page)
                times.append(elapsed)
            size = len(body)
            worst = max(worst, statistics.median(times))
            print(
                f"{page:<28} {statistics.median(times) * 1000:7.0f}ms "
                f"{max(times) * 1000:7.0f}ms {size / 1024:8.0f}KB"
            )
        print(f"slowest page (median): {worst * 1000:.0f} ms; target: under 1000 ms")
        browser_loads(base, pages[:2] + pages[3:], rounds)
        server.should_exit = True
        thread.join(10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
