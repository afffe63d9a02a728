"""Failures and retries: which failures retry, resuming the session, waiting for a
limit's reset, fallback models, callbacks.

The real CLI runs against the scripted model with `cli_max_retries=0`
(`CLAUDE_CODE_MAX_RETRIES=0`), so every attempt of the library is one request
the scripted model sees. Backoff is zero so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    CCExecutorConfig,
    ConfigError,
    IdleTimeoutError,
    MaxTurnsError,
    OverloadedError,
    PermissionDeniedError,
    ProcessCrashedError,
    RateLimitError,
    RetryBackoff,
    TaskFailedError,
    TaskResult,
    TaskTimeoutError,
    cc_execute,
    cc_run,
    cc_stream,
    is_transient,
    parse_event,
)
from cc_executor._command import build_command
from cc_executor._retry import RESUME_PROMPT
from cc_executor._transcript import read_transcript
from cc_executor.events import ModelFallbackEvent, RateLimitEvent, ResultEvent, RetryEvent
from cc_executor.result import classify, limit_reset_at
from cc_executor.testing import ScriptedModel, hang, http_error, text, tool_use

Factory = Callable[..., CCExecutorConfig]


@pytest.fixture
def config(model: ScriptedModel, workdir: Path, transcripts: Path) -> CCExecutorConfig:
    return model.config(
        cwd=workdir, transcript_dir=transcripts, cli_max_retries=0, retry_backoff=(0, 0, 0)
    )


def _user_texts(body: Any) -> list[str]:
    """Every text block of the user messages of a request body, in order."""
    texts = []
    for message in body["messages"]:
        if message["role"] == "user" and isinstance(message["content"], list):
            texts += [b["text"] for b in message["content"] if b.get("type") == "text"]
    return texts


def _resume_prompts(body: Any) -> list[str]:
    prefix = RESUME_PROMPT.split("{")[0]
    return [t for t in _user_texts(body) if t.startswith(prefix)]


def _usage_limit(reset: datetime) -> Any:
    """The 429 the API answers when a plan's usage limit is reached, with its reset."""
    return http_error(
        429,
        "This request would exceed your account's rate limit. Please try again later.",
        headers={
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(int(reset.timestamp())),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
        },
    )


@pytest.fixture
def subscriber(
    model: ScriptedModel, workdir: Path, transcripts: Path, monkeypatch: pytest.MonkeyPatch
) -> CCExecutorConfig:
    """A claude.ai subscriber's run (OAuth token, no API key): the CLI reads the
    plan's usage-limit headers only then."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    env = {k: v for k, v in model.env().items() if k != "ANTHROPIC_API_KEY"}
    return CCExecutorConfig(
        env={**env, "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01-scripted"},
        cwd=workdir,
        transcript_dir=transcripts,
        cli_max_retries=0,
        retry_backoff=(0, 0, 0),
    )


# -- transient failures are retried -----------------------------------------------------


async def test_529_until_the_cli_gives_up_is_retried_resumed_and_costs_are_summed(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, transcripts: Path
) -> None:
    target = workdir / "a.txt"
    model.add(
        tool_use("Write", {"file_path": str(target), "content": "first attempt did this"}),
        http_error(529, "Overloaded", times=2),
        text("recovered"),
    )
    result = await cc_run("write a.txt, then report", config)

    assert result.success, result.error
    assert result.output == "recovered"
    assert target.read_text() == "first attempt did this"
    assert [a.error_type for a in result.attempts] == ["OverloadedError", "OverloadedError", None]
    assert [a.number for a in result.attempts] == [1, 2, 3]
    # One request per attempt after the first attempt's tool call: no CLI retries.
    assert len(model.main_requests) == 4
    # Attempts 2 and 3 continued the first attempt's session...
    session = result.attempts[0].session_id
    assert session and result.session_id == session
    assert [a.resumed_session for a in result.attempts] == [None, session, session]
    # ...so the model saw the task, the file it wrote, and the continue prompt.
    last = model.main_requests[-1].body
    texts = _user_texts(last)
    assert texts.index("write a.txt, then report") < texts.index(_resume_prompts(last)[-1])
    assert "first attempt did this" in json.dumps(last["messages"])
    # Every attempt has its own transcript; the header keeps the task and the prompt.
    paths = [a.transcript_path for a in result.attempts]
    assert len(set(paths)) == 3 and all(p is not None and p.exists() for p in paths)
    assert sorted(transcripts.iterdir()) == sorted(p for p in paths if p is not None)
    assert paths[2] is not None
    header, _, footer = read_transcript(paths[2])
    assert header is not None and header["task"] == "write a.txt, then report"
    assert header["attempt"] == 3 and header["prompt"].startswith("Your previous attempt")
    assert any(arg.startswith("--resume=") for arg in header["argv"])
    # Two answered model calls in all; the CLI carries a resumed session's cost
    # over, and the total counts it once.
    costs = [a.cost_usd for a in result.attempts]
    assert costs[0] is not None and costs[0] > 0
    assert result.total_cost_usd == pytest.approx(sum(c or 0 for c in costs))
    assert result.total_cost_usd == pytest.approx(2 * costs[0])
    assert result.started_at == result.attempts[0].started_at


async def test_429_is_retried_then_succeeds(model: ScriptedModel, config: CCExecutorConfig) -> None:
    model.add(http_error(429, "rate limited"), text("fine now"))
    assert await cc_execute("x", config) == "fine now"
    assert len(model.main_requests) == 2


async def test_retries_give_up_after_num_retries(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(529, "Overloaded", times=None))
    with pytest.raises(OverloadedError) as info:
        await cc_execute("x", config, num_retries=1)
    assert [a.error_type for a in info.value.result.attempts] == ["OverloadedError"] * 2
    assert len(model.main_requests) == 2


async def test_idle_timeout_resumes_the_session_with_the_real_cli(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(hang(), text("continued"))
    # 4 s: long enough for a resumed CLI to print its first line on a loaded machine.
    result = await cc_run("the long task", config, idle_timeout=4, kill_grace=1)
    assert result.success, result.error
    assert [a.error_type for a in result.attempts] == ["IdleTimeoutError", None]
    assert result.attempts[1].resumed_session == result.attempts[0].session_id
    body = model.main_requests[1].body
    texts = [t.strip() for t in _user_texts(body)]
    (prompt,) = _resume_prompts(body)
    assert texts.index("the long task") < texts.index(prompt)
    assert "IdleTimeoutError" in prompt


def saved_sessions(tmp_path: Path) -> dict[str, str]:
    """Env for the fake CLI to save its session where the library looks for it."""
    return {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config"), "FAKE_CLI_SAVE_SESSION": "1"}


async def test_crash_with_a_session_is_resumed_with_the_same_session_id(
    fake_cli: Factory, tmp_path: Path
) -> None:
    config = fake_cli(
        "crash_with_session", env=saved_sessions(tmp_path), num_retries=1, retry_backoff=0
    )
    result = await cc_run("build the thing", config)
    assert result.success, result.error
    seen = json.loads(result.output)
    argv = seen["argv"]
    assert "--resume=fake-session-1" in argv
    assert seen["prompt"].startswith("Your previous attempt at this task was interrupted")
    assert "ProcessCrashedError" in seen["prompt"]
    assert [a.error_type for a in result.attempts] == ["ProcessCrashedError", None]
    assert result.attempts[0].cost_usd is None  # it died before reporting one
    assert result.total_cost_usd == pytest.approx(0.002)


async def test_a_session_that_was_never_saved_is_not_resumed(
    fake_cli: Factory, tmp_path: Path
) -> None:
    """The CLI died before saving the session its init line named: --resume would fail
    for good ("No conversation found"), so the retry starts the task anew."""
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config")}  # nothing saved there
    config = fake_cli("crash_with_session", env=env, num_retries=1, retry_backoff=0)
    result = await cc_run("build the thing", config)
    assert [a.error_type for a in result.attempts] == ["ProcessCrashedError"] * 2
    assert result.attempts[1].resumed_session is None
    path = result.attempts[1].transcript_path
    assert path is not None
    header, _, _ = read_transcript(path)
    assert header is not None and not any(a.startswith("--resume") for a in header["argv"])


async def test_restart_strategy_starts_over_with_the_task(fake_cli: Factory) -> None:
    config = fake_cli("crash_with_session", num_retries=1, retry_backoff=0)
    result = await cc_run("build the thing", config, retry_strategy="restart")
    assert [a.error_type for a in result.attempts] == ["ProcessCrashedError"] * 2
    assert result.attempts[1].resumed_session is None
    path = result.attempts[1].transcript_path
    assert path is not None
    header, _, _ = read_transcript(path)
    assert header is not None
    assert not any(a.startswith("--resume") for a in header["argv"]) and "prompt" not in header


# -- permanent failures are not --------------------------------------------------------


async def test_401_is_never_retried(
    model: ScriptedModel, config: CCExecutorConfig, transcripts: Path
) -> None:
    model.add(http_error(401, "invalid x-api-key", times=None))
    with pytest.raises(AuthenticationError) as info:
        await cc_execute("x", config)
    result = info.value.result
    assert len(result.attempts) == 1
    assert len(model.main_requests) == 1
    assert len(list(transcripts.iterdir())) == 1


async def test_400_is_never_retried(
    model: ScriptedModel, config: CCExecutorConfig, transcripts: Path
) -> None:
    model.add(http_error(400, "scripted bad request", times=None))
    with pytest.raises(BadRequestError) as info:
        await cc_execute("x", config)
    result = info.value.result
    assert len(result.attempts) == 1
    # The CLI re-sends a 400 request a few times on its own, all within the one attempt.
    ended = result.attempts[0].ended_at.timestamp()
    assert all(r.received_at <= ended for r in model.main_requests)
    assert len(list(transcripts.iterdir())) == 1


# -- the server's word: waiting for a limit's reset ------------------------------------


async def test_usage_limit_waits_until_the_reset_then_succeeds(
    model: ScriptedModel, subscriber: CCExecutorConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    # The reset must still be ahead when the first attempt ends, so that the library
    # waits for it: a loaded machine takes seconds to start the CLI (a reset already
    # past is retried at once, as a backoff).
    reset = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=10)
    model.add(_usage_limit(reset), text("after the reset"))
    events: list[Any] = []
    result = await cc_run("x", subscriber, on_event=events.append, stream_output=True)

    assert result.success, result.error
    assert result.output == "after the reset"
    assert [a.error_type for a in result.attempts] == ["RateLimitError", None]
    # The CLI passed the API's word on as a typed event...
    limits = [e for e in events if isinstance(e, RateLimitEvent)]
    assert limits and limits[0].rate_limit_info.status == "rejected"
    assert limits[0].rate_limit_info.reset_at == reset
    # ...the library said when it would resume...
    (retry,) = [e for e in events if isinstance(e, RetryEvent)]
    assert retry.reason == "limit_reset" and retry.reset_at == reset
    assert retry.resume_at >= reset and retry.attempt == 1
    # ...and the second attempt really started after the reset.
    assert result.attempts[1].started_at >= reset
    assert model.main_requests[1].received_at >= reset.timestamp()
    assert result.attempts[1].waited_s >= 1
    err = capsys.readouterr().err
    assert "usage limit reached" in err and "waiting for the limit to reset" in err
    # The failed attempt's error with its message when it was retried, then one closing
    # line for the whole task. No "error (success)" line from the result event.
    message = result.attempts[0].error_message or ""
    assert f"↻ attempt 1 failed: RateLimitError: {message[:40]}" in err
    ends = [line for line in err.splitlines() if " turn(s) · " in line]
    assert len(ends) == 1, ends
    assert ends[0].startswith("✓ 2 attempts · 1 turn(s) · ") and " · transcript " in ends[0]
    assert "(success)" not in err


async def test_usage_limit_beyond_max_limit_wait_fails_at_once_with_the_reset_time(
    model: ScriptedModel, subscriber: CCExecutorConfig
) -> None:
    reset = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=5)
    model.add(_usage_limit(reset))
    t0 = time.time()
    with pytest.raises(RateLimitError) as info:
        await cc_execute("x", subscriber, max_limit_wait=60)
    assert info.value.reset_at == reset
    assert len(info.value.result.attempts) == 1
    assert info.value.result.ended_at.timestamp() < reset.timestamp()
    assert len(model.main_requests) == 1 and model.main_requests[0].received_at >= t0


# -- streaming across attempts, fallback models, callbacks -----------------------------


async def test_stream_continues_across_attempts_with_a_retry_event_between(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(529, "Overloaded"), text("second time lucky"))
    kinds: list[str] = []
    async with cc_stream("x", config) as stream:
        async for event in stream:
            if isinstance(event, (ResultEvent, RetryEvent)):
                kinds.append(type(event).__name__)
    assert kinds == ["ResultEvent", "RetryEvent", "ResultEvent"]
    assert stream.result.success and len(stream.result.attempts) == 2


async def test_fallback_models_list_reaches_the_cli_and_model_usage_shows_it(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(529, "Overloaded", times=3), text("from the fallback"))
    events: list[Any] = []
    result = await cc_run(
        "x",
        config,
        model="claude-opus-4-5",
        fallback_model=["claude-sonnet-4-5", "claude-haiku-4-5"],
        cli_max_retries=5,
        on_event=events.append,
    )
    assert result.success, result.error
    assert len(result.attempts) == 1  # the CLI switched models itself
    (fallback,) = [e for e in events if isinstance(e, ModelFallbackEvent)]
    assert fallback.fallback_model == "claude-sonnet-4-5"
    assert list(result.model_usage) == ["claude-sonnet-4-5"]
    assert [r.body["model"] for r in model.main_requests][-1] == "claude-sonnet-4-5"
    assert result.transcript_path is not None
    header, _, _ = read_transcript(result.transcript_path)
    assert header is not None
    argv = header["argv"]
    assert argv[argv.index("--fallback-model") + 1] == "claude-sonnet-4-5,claude-haiku-4-5"


async def test_callbacks_are_called_once_and_a_raising_one_does_not_fail_the_task(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(529, "Overloaded"), text("ok"))
    seen: list[tuple[str, TaskResult]] = []

    def sync_cb(result: TaskResult) -> None:
        seen.append(("sync", result))

    async def async_cb(result: TaskResult) -> None:
        seen.append(("async", result))

    def broken(result: TaskResult) -> None:
        raise RuntimeError("callback bug")

    def broken_on_event(event: Any) -> None:
        raise ValueError("on_event bug")

    result = await cc_run(
        "x",
        config,
        success_callback=[broken, sync_cb, async_cb],
        failure_callback=lambda r: seen.append(("failure", r)),
        on_event=broken_on_event,
    )
    assert result.success and result.output == "ok"
    assert [name for name, _ in seen] == ["sync", "async"]
    assert all(r is result for _, r in seen)
    assert len(result.attempts) == 2  # called once per task, not per attempt


async def test_failure_callback_gets_the_failed_result(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(400, "bad", times=None))
    seen: list[TaskResult] = []
    result = await cc_run(
        "x",
        config,
        failure_callback=seen.append,
        success_callback=lambda r: pytest.fail("success_callback on a failure"),
    )
    assert seen == [result] and isinstance(result.error, BadRequestError)


async def test_cancelling_during_the_wait_ends_the_task_at_once(fake_cli: Factory) -> None:
    waiting = asyncio.Event()

    def on_event(event: Any) -> None:
        if isinstance(event, RetryEvent):
            waiting.set()

    config = fake_cli("crash_with_session", num_retries=1, retry_backoff=(600, 600, 0))
    task = asyncio.create_task(cc_run("x", config, on_event=on_event))
    await asyncio.wait_for(waiting.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- pure: the classification table and the options ------------------------------------


def _api(cls: type[APIError], status: int | None) -> APIError:
    return cls("x", status_code=status)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_api(RateLimitError, 429), True),
        (_api(OverloadedError, 529), True),
        (_api(APIError, 500), True),
        (_api(APIError, 503), True),
        (_api(APIError, None), True),  # connection error: no HTTP status
        (ProcessCrashedError("x"), True),
        (IdleTimeoutError("x", timeout_s=1), True),
        (_api(BadRequestError, 400), False),
        (_api(AuthenticationError, 401), False),
        (_api(AuthenticationError, 403), False),
        (_api(APIError, 404), False),
        (MaxTurnsError("x"), False),
        (BudgetExceededError("x"), False),
        (PermissionDeniedError("x", tools=["Bash"]), False),
        (TaskTimeoutError("x", timeout_s=1), False),
        (TaskFailedError("x"), False),
        (type("StructuredOutputError", (TaskFailedError,), {})("x"), False),
        (ConfigError("x"), False),
        (None, False),
    ],
)
def test_is_transient_table(error: BaseException | None, transient: bool) -> None:
    assert is_transient(error) is transient


def _result_line(**fields: Any) -> ResultEvent:
    event = parse_event(json.dumps({"type": "result", "subtype": "success", **fields}))
    assert isinstance(event, ResultEvent)
    return event


def _classify(result: ResultEvent, **kw: Any) -> Any:
    return classify(
        result=result,
        exit_code=1,
        stopped_by=None,
        api_retries=[],
        timeout_s=10,
        idle_timeout_s=None,
        on_permission_denied="fail",
        stderr_tail="",
        **kw,
    )


def test_the_older_usage_limit_text_gives_its_reset_time() -> None:
    error = _classify(
        _result_line(is_error=True, result="Claude AI usage limit reached|1760000400")
    )
    assert isinstance(error, RateLimitError)
    assert error.reset_at == datetime.fromtimestamp(1760000400, timezone.utc)


def test_usage_limit_reached_without_a_status_is_a_rate_limit_with_its_reset() -> None:
    reset = datetime(2026, 1, 1, tzinfo=timezone.utc)
    line = _result_line(is_error=True, terminal_reason="api_error", api_error="usage_limit_reached")
    error = _classify(line, limit_reset_at=reset)
    assert isinstance(error, RateLimitError) and error.reset_at == reset


def test_rate_limit_event_and_the_api_error_message_name_the_reset() -> None:
    rejected = parse_event(
        '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1795263082,'
        '"rateLimitType":"five_hour","isUsingOverage":false},"uuid":"u","session_id":"s"}'
    )
    assert isinstance(rejected, RateLimitEvent)
    assert limit_reset_at(rejected) == datetime.fromtimestamp(1795263082, timezone.utc)
    allowed = parse_event('{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}')
    assert limit_reset_at(allowed) is None
    message = parse_event(
        json.dumps(
            {
                "type": "assistant",
                "message": {"content": [{"type": "text", "text": "You've hit your limit"}]},
                "api_error": "usage_limit_reached",
                "api_error_params": {
                    "rate_limit_info": {"status": "rejected", "resetsAt": 1795263082}
                },
            }
        )
    )
    assert limit_reset_at(message) == datetime.fromtimestamp(1795263082, timezone.utc)


def test_retry_options_accept_simple_forms_and_explain_bad_ones() -> None:
    assert CCExecutorConfig(retry_backoff=2).retry_backoff == RetryBackoff(initial=2)
    assert CCExecutorConfig(retry_backoff=(1, 10, 0.5)).retry_backoff == RetryBackoff(
        initial=1, max=10, jitter=0.5
    )
    with pytest.raises(ConfigError) as info:
        CCExecutorConfig(retry_backoff=(10, 1, 0))
    assert info.value.field == "retry_backoff" and "max" in str(info.value)
    with pytest.raises(ConfigError) as info:
        CCExecutorConfig(retry_strategy="again")
    assert info.value.field == "retry_strategy" and "resume" in str(info.value)
    with pytest.raises(ConfigError):
        CCExecutorConfig(num_retries=-1)
    with pytest.raises(ConfigError):
        CCExecutorConfig(fallback_model=["sonnet", ""])
    single = CCExecutorConfig(success_callback=print)
    assert single.success_callback == (print,)


def test_cli_retries_and_fallback_models_reach_the_command(tmp_path: Path) -> None:
    cli = tmp_path / "claude"
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    base = CCExecutorConfig(cli_path=cli, cwd=tmp_path, fallback_model=["sonnet", "haiku"])
    command = build_command(base, "uuid", environ={"CLAUDE_CODE_MAX_RETRIES": "10"})
    assert command.env["CLAUDE_CODE_MAX_RETRIES"] == "3"
    assert command.argv[command.argv.index("--fallback-model") + 1] == "sonnet,haiku"
    explicit = base.with_overrides(env={"CLAUDE_CODE_MAX_RETRIES": "7"})
    assert build_command(explicit, "uuid", environ={}).env["CLAUDE_CODE_MAX_RETRIES"] == "7"
    cli_default = base.with_overrides(cli_max_retries=None)
    assert "CLAUDE_CODE_MAX_RETRIES" not in build_command(cli_default, "uuid", environ={}).env
