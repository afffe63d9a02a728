"""The dashboard in a real browser: Playwright driving the system's Chromium (`make
chromium` installs it; Playwright's own browser download is never used), against state
dirs written by real task lists (the `cc-execute list` command, the real CLI and a
scripted model). One browser for the module (so for the session); the server runs
in-process (Uvicorn on a free loopback port). Screenshots of every page go to test-artifacts/ui/."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import ScriptedModel, text, tool_use
from cc_executor.ui import create_app

from .conftest import PINNED_CLI, ROOT

ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "tok-sekrit-4711-value"
"""In the lists' environment as DEPLOY_TOKEN; the agent echoes it; no page may show it."""
WAIT_MS = 30_000
"""How long an expectation waits for the page (a ceiling, not a measurement)."""

PLAN = """\
tasks:
  - prompt: Say hello with a tool
    name: greet
    allowed_tools: [Bash]
  - prompt: Write notes.txt
    name: notes
"""


def chromium() -> str:
    """Debian's Chromium. Missing is a failure, never a skip: CI must run these tests."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: `make chromium` (apt-get install -y chromium)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module (the only one that uses it): gone, with Playwright's
    event loop, before the next module's tests run."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@dataclass
class Dashboard:
    url: str
    root: Path
    state: Path
    transcripts: Path

    def run_list(
        self, model: ScriptedModel, run_id: str, plan: str = PLAN
    ) -> subprocess.Popen[str]:
        """`cc-execute list` in a subprocess, recording into this dashboard's dirs."""
        work = self.root / f"work-{run_id}"
        work.mkdir()
        (self.root / f"{run_id}.yaml").write_text(plan)
        env = {
            **os.environ,
            **model.env(),
            "PYTHONPATH": str(ROOT),
            "CC_EXECUTOR_TRANSCRIPT_DIR": str(self.transcripts),
            "CC_EXECUTOR_CLI": str(PINNED_CLI),
            "DEPLOY_TOKEN": SECRET,
        }
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cc_executor._cli",
                "list",
                f"{run_id}.yaml",
                "--cwd",
                str(work),
                "--state-dir",
                str(self.state),
                "--new-run-id",
                run_id,
            ],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _script(marker: str, work: Path, *, slow: bool = False) -> list[Any]:
    command = f"sleep 6; echo {marker} $DEPLOY_TOKEN" if slow else f"echo {marker} $DEPLOY_TOKEN"
    return [
        tool_use("Bash", {"command": command}),
        text(f"{marker}: done", delay_before=2.0 if slow else 0.0),
        tool_use("Write", {"file_path": str(work / "notes.txt"), "content": "notes\n"}),
        text("notes written"),
    ]


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A dashboard over a state dir holding one finished real list (`first-run`)."""
    if not PINNED_CLI.exists():
        pytest.fail("The pinned Claude Code CLI is not installed: run `make install`")
    import uvicorn

    root = tmp_path_factory.mktemp("ui")
    board = Dashboard("", root, root / "state", root / "transcripts")
    with ScriptedModel(_script("hello-from-the-tool", root / "work-first-run")) as model:
        proc = board.run_list(model, "first-run")
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, (out, err)
    app = create_app(board.state, board.transcripts)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the dashboard's server did not start"
        time.sleep(0.02)
    board.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield board
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_runs_page_lists_the_run_and_clicking_through_reaches_the_tool_call(
    dash: Dashboard, page: Any
) -> None:
    from playwright.sync_api import expect

    page.goto(dash.url + "/")
    row = page.locator('tr[data-run="first-run"]')
    expect(row).to_contain_text("success")
    expect(row.locator("td.steps")).to_have_text("2/2")
    _shot(page, "runs")

    row.get_by_role("link", name="first-run").click()
    expect(page).to_have_url(dash.url + "/runs/first-run")
    steps = page.locator("tr.step")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("greet")
    expect(steps.nth(1)).to_contain_text("notes")
    expect(page.locator("pre.command")).to_have_count(0)  # a finished run: nothing to resume
    expect(page.locator("svg.chart").first).to_be_visible()
    _shot(page, "run")

    steps.nth(0).get_by_role("link", name="greet").click()
    expect(page).to_have_url(dash.url + "/runs/first-run/steps/1")
    call = page.locator(".item.tool_call").first
    expect(call).to_contain_text("Bash")
    expect(call).to_contain_text("echo hello-from-the-tool")
    expect(call.locator(".tool-result")).to_contain_text("hello-from-the-tool")
    expect(page.locator(".item.result")).to_contain_text("hello-from-the-tool: done")
    expect(page.locator(".item.ended")).to_contain_text("ended: success")
    # The secret the tool printed is masked in the transcript, and stays masked.
    expect(call.locator(".tool-result")).to_contain_text("hello-from-the-tool [REDACTED]")
    _shot(page, "step")
    for path in (
        "/",
        "/runs/first-run",
        "/runs/first-run/steps/1",
        "/api/runs/first-run/steps/1",
        "/api/runs/first-run",
        "/api/",
    ):
        page.goto(dash.url + path)
        assert SECRET not in page.content(), path


def test_pages_hold_their_content_without_javascript(dash: Dashboard, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(dash.url + "/runs/first-run/steps/1")
        expect(page.locator(".item.tool_call").first).to_contain_text("echo hello-from-the-tool")
        page.goto(dash.url + "/")
        expect(page.locator('tr[data-run="first-run"]')).to_contain_text("2/2")
    finally:
        context.close()


def test_a_list_started_while_the_page_is_open_appears_and_ticks_over_live(
    dash: Dashboard, page: Any, model: ScriptedModel
) -> None:
    from playwright.sync_api import expect

    page.goto(dash.url + "/")
    expect(page.locator("#live")).to_be_visible()  # the event stream is open
    page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded
    model.add(*_script("live-tool", dash.root / "work-live-run", slow=True))
    proc = dash.run_list(model, "live-run")
    try:
        row = page.locator('tr[data-run="live-run"]')
        expect(row).to_contain_text("running")  # appeared without a reload
        assert page.evaluate("window.loadedOnce") is True
        _shot(page, "runs-live")

        row.get_by_role("link", name="live-run").click()
        running = page.locator('tr.step.running[data-step="1"]')
        expect(running).to_be_visible()
        # The running step's current tool call, from the growing transcript.
        expect(page.locator('[data-current="1"]')).to_contain_text("sleep 6; echo live-tool")
        page.evaluate("window.loadedOnce = true")
        _shot(page, "run-live")
        page.locator('tr.step[data-step="1"]').get_by_role("link", name="greet").click()
        expect(page.locator(".item.tool_call").first).to_contain_text("echo live-tool")
        _shot(page, "step-live")
        # The step ends while the page is open: its result comes in live.
        expect(page.locator(".item.ended")).to_contain_text("ended: success")
        expect(page.locator(".item.result")).to_contain_text("live-tool: done")

        page.goto(dash.url + "/runs/live-run")
        page.evaluate("window.loadedOnce = true")
        expect(page.locator('tr.step[data-step="2"]')).to_contain_text("success")
        expect(page.locator(".summary .status")).to_have_text("success")
        assert page.evaluate("window.loadedOnce") is True
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
    finally:
        proc.kill()
        proc.communicate()


def test_a_transcript_path_out_of_the_transcript_dir_is_refused(dash: Dashboard, page: Any) -> None:
    from playwright.sync_api import expect

    page.goto(dash.url + "/runs/first-run/steps/1")
    link = page.locator("a.transcript-link")
    href = link.get_attribute("href")
    assert href and href.startswith("/transcripts/")
    link.click()
    expect(page.locator(".item.tool_call").first).to_contain_text("hello-from-the-tool")

    for path in (
        "/transcripts/..%2Fstate%2Fstate.db",
        "/transcripts/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/transcripts/%2E%2E/state/state.db",
    ):
        response = page.goto(dash.url + path)
        assert response is not None and response.status == 404, path
        assert "SQLite" not in page.content() and "root:" not in page.content()
    _shot(page, "refused")
