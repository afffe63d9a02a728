"""Level 2: what CLIs really print in the field, replayed through the whole runner.

`tests/fixtures/field/` holds real streams of CLI versions 1.0.x–2.1.285 and, in
`EXPECTED.json`, what a correct run returns for each. A fake CLI prints a stream
and exits with the recorded code; everything after that (process layer, parser,
classification, retries) is the library's own. Hand-made samples below cover the
kinds the corpus has one example of, in other shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cc_executor import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    CCExecutorConfig,
    CLIArgumentError,
    MaxTurnsError,
    OverloadedError,
    PermissionDeniedError,
    ProcessCrashedError,
    RateLimitError,
    TaskFailedError,
    TaskResult,
    TaskTimeoutError,
    cc_run,
)
from cc_executor._transcript import read_transcript
from cc_executor.events import AssistantEvent, ResultEvent, parse_event

Factory = Callable[..., CCExecutorConfig]

FIELD = Path(__file__).parent / "fixtures" / "field"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FIELD / "EXPECTED.json").read_text())
ERRORS = {
    cls.__name__: cls
    for cls in (
        APIError,
        AuthenticationError,
        MaxTurnsError,
        RateLimitError,
        TaskFailedError,
    )
}


async def replay(
    fake_cli: Factory,
    stream: Path,
    exit_code: int,
    *,
    stderr: str = "",
    **options: Any,
) -> TaskResult:
    """Run the whole library against a CLI that prints `stream` and exits with `exit_code`.

    One retry is allowed (with no wait), so `len(result.attempts)` tells whether
    the library judged the failure worth another attempt.
    """
    options.setdefault("num_retries", 1)
    options.setdefault("retry_backoff", (0, 0, 0))
    env = {"FAKE_CLI_REPLAY": str(stream), "FAKE_CLI_EXIT": str(exit_code)}
    if stderr:
        env["FAKE_CLI_STDERR"] = stderr
    return await cc_run("replayed task", fake_cli("replay", env=env, **options))


@pytest.mark.parametrize("sample", sorted(EXPECTED), ids=str)
async def test_field_stream_replays_to_its_expected_outcome(fake_cli: Factory, sample: str) -> None:
    want = EXPECTED[sample]
    stream = FIELD / want["file"]
    result = await replay(fake_cli, stream, want["exit"], **want.get("options", {}))

    assert result.success is want["success"], result.error
    if "error" in want:
        assert type(result.error) is ERRORS[want["error"]], repr(result.error)
    else:
        assert result.error is None
    if "output" in want:
        assert result.output == want["output"]
    if "output_startswith" in want:
        assert result.output.startswith(want["output_startswith"])
    if "session_id" in want:
        assert result.session_id == want["session_id"]
    if "session_id_startswith" in want:
        assert (result.session_id or "").startswith(want["session_id_startswith"])
    if "total_cost_usd" in want:
        assert result.total_cost_usd == pytest.approx(want["total_cost_usd"])
    if "num_turns" in want:
        assert result.num_turns == want["num_turns"]
    if "reset_at" in want:
        assert isinstance(result.error, RateLimitError)
        assert result.error.reset_at == datetime.fromtimestamp(want["reset_at"], timezone.utc)
    if "status_code" in want:
        assert isinstance(result.error, APIError)
        assert result.error.status_code == want["status_code"]
    if want.get("retried") is False:
        assert len(result.attempts) == 1, [a.error_type for a in result.attempts]
    if want.get("message_contains_cli_errors"):
        cli_errors = _cli_errors(stream)
        assert cli_errors and all(e in str(result.error) for e in cli_errors)
    if "message_contains" in want:
        assert want["message_contains"] in str(result.error)
    if "invalid_lines" in want:
        assert result.transcript_path is not None
        _, _, footer = read_transcript(result.transcript_path)
        assert footer is not None and footer["invalid_lines"] == want["invalid_lines"]
    if want.get("structured_is_dict"):
        assert isinstance(result.structured, dict)
        assert json.loads(result.output) == result.structured_output


def _cli_errors(stream: Path) -> list[str]:
    for line in stream.read_text().splitlines():
        data = json.loads(line)
        if data.get("type") == "result" and data.get("errors"):
            return [str(e) for e in data["errors"]]
    return []


def test_every_result_line_of_the_corpus_is_a_result_event() -> None:
    for path in sorted(FIELD.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if b'"type": "result"' in line or b'"type":"result"' in line:
                assert isinstance(parse_event(line), ResultEvent), (path.name, line[:100])


def test_sub_agent_tool_calls_carry_their_parent_tool_use_id(tmp_path: Path) -> None:
    events = [
        parse_event(line)
        for line in (FIELD / "S-05_hivemind-task-subagent-images-2.0.27.jsonl")
        .read_bytes()
        .splitlines()
    ]
    calls = [
        (e.parent_tool_use_id, b)
        for e in events
        if isinstance(e, AssistantEvent)
        for b in e.tool_uses
    ]
    task_ids = {b.id for parent, b in calls if b.name == "Task"}
    inner = [b for parent, b in calls if parent is not None]
    assert task_ids and inner
    assert {parent for parent, _ in calls if parent is not None} <= task_ids


async def test_sub_agent_tool_uses_on_the_result_name_their_parent(fake_cli: Factory) -> None:
    result = await replay(fake_cli, FIELD / EXPECTED["S-05"]["file"], 0)
    assert result.success
    parents = {t.parent_tool_use_id for t in result.tool_uses}
    assert None in parents and len(parents) > 1


# --- hand-made samples, one kind each ----------------------------------------------


def lines(*objects: dict[str, Any] | str) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


INIT = {"type": "system", "subtype": "init", "session_id": "s-init", "model": "m", "tools": []}


def synthetic(text: str, error: str, **extra: Any) -> dict[str, Any]:
    """The assistant line the CLI writes itself when the API call failed."""
    return {
        "type": "assistant",
        "message": {
            "id": "synthetic-1",
            "model": "<synthetic>",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "usage": None,
        },
        "parent_tool_use_id": None,
        "session_id": "s-init",
        "error": error,
        "is_api_error_message": True,
        **extra,
    }


def failed_result(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "terminal_reason": "api_error",
        "api_error_status": None,
        "result": text,
        "num_turns": 1,
        "session_id": "s-init",
        "total_cost_usd": 0,
        **extra,
    }


def ok_result(text: str = "the answer", **extra: Any) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": text,
        "num_turns": 1,
        "session_id": "s-init",
        "total_cost_usd": 0.01,
        **extra,
    }


async def replay_text(
    fake_cli: Factory, tmp_path: Path, text: str, exit_code: int, **options: Any
) -> TaskResult:
    stream = tmp_path / "stream.jsonl"
    stream.write_text(text)
    return await replay(fake_cli, stream, exit_code, **options)


@pytest.mark.parametrize(
    ("error", "text", "cls"),
    [
        ("authentication_failed", "Not logged in · Please run /login", AuthenticationError),
        ("billing_error", "Credit balance is too low", BillingError),
        ("invalid_request", "API Error: prompt is too long", BadRequestError),
    ],
)
async def test_a_synthetic_api_error_line_that_is_permanent_is_never_retried(
    fake_cli: Factory, tmp_path: Path, error: str, text: str, cls: type[APIError]
) -> None:
    stream = lines(INIT, synthetic(text, error), failed_result(text))
    result = await replay_text(fake_cli, tmp_path, stream, 1, num_retries=2)
    assert type(result.error) is cls
    assert text in str(result.error)
    assert len(result.attempts) == 1


async def test_a_synthetic_server_error_is_retried(fake_cli: Factory, tmp_path: Path) -> None:
    stream = lines(INIT, synthetic("API Error: upstream failed", "server_error"), failed_result(""))
    result = await replay_text(fake_cli, tmp_path, stream, 1)
    assert isinstance(result.error, APIError)
    assert len(result.attempts) == 2


async def test_a_synthetic_rate_limit_line_is_a_rate_limit(
    fake_cli: Factory, tmp_path: Path
) -> None:
    text = "API Error: Rate limit reached"
    stream = lines(INIT, synthetic(text, "rate_limit"), failed_result(text))
    result = await replay_text(fake_cli, tmp_path, stream, 1, num_retries=0)
    assert isinstance(result.error, RateLimitError)
    assert result.error.status_code == 429


@pytest.mark.parametrize(
    "text",
    [
        "You've hit your limit · resets 1pm (Europe/Lisbon)",
        "Weekly limit reached ∙ resets 5am",
        "5-hour limit reached ∙ resets at 3:30pm",
        "Claude AI usage limit reached|1755806400",
        "Usage limit reached. Your limit will reset at 2026-12-01T05:00:00Z.",
        "Opus limit reached · resets Dec 3, 9am (America/New_York)",
    ],
)
async def test_limit_texts_in_result_give_a_rate_limit_with_its_reset(
    fake_cli: Factory, tmp_path: Path, text: str
) -> None:
    stream = lines(INIT, failed_result(text))
    result = await replay_text(fake_cli, tmp_path, stream, 1, num_retries=0)
    assert isinstance(result.error, RateLimitError)
    assert result.error.reset_at is not None and result.error.reset_at.tzinfo is not None


async def test_a_limit_without_a_reset_in_the_text_is_still_a_rate_limit(
    fake_cli: Factory, tmp_path: Path
) -> None:
    stream = lines(INIT, failed_result("API Error: Rate limit reached"))
    result = await replay_text(fake_cli, tmp_path, stream, 1, num_retries=0)
    assert isinstance(result.error, RateLimitError) and result.error.reset_at is None


async def test_a_rejected_rate_limit_event_in_milliseconds_as_the_last_line(
    fake_cli: Factory, tmp_path: Path
) -> None:
    event = {
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1785322800000, "rateLimitType": "x"},
        "session_id": "s-limit",
    }
    result = await replay_text(fake_cli, tmp_path, lines(event), 1, num_retries=0)
    assert isinstance(result.error, RateLimitError)
    assert result.error.reset_at == datetime.fromtimestamp(1785322800, timezone.utc)
    assert result.session_id == "s-limit"


@pytest.mark.parametrize(
    ("status", "cls", "attempts"),
    [
        (529, OverloadedError, 2),
        (500, APIError, 2),
        (404, APIError, 1),
        (401, AuthenticationError, 1),
    ],
)
async def test_http_status_only_in_the_result_text(
    fake_cli: Factory, tmp_path: Path, status: int, cls: type[APIError], attempts: int
) -> None:
    text = f'API Error: {status} {{"type":"error","error":{{"type":"x","message":"y"}}}}'
    stream = lines(INIT, failed_result(text))
    result = await replay_text(fake_cli, tmp_path, stream, 1)
    assert type(result.error) is cls
    assert result.error.status_code == status
    assert len(result.attempts) == attempts


@pytest.mark.parametrize(
    ("text", "cls", "status"),
    [
        ("API Error: Repeated 529 Overloaded errors", OverloadedError, 529),
        ('API Error: {"type":"overloaded_error","message":"Overloaded"}', OverloadedError, 529),
        ("Invalid API key · Please run /login", AuthenticationError, None),
        ("Credit balance is too low", BillingError, None),
        ("Context limit reached · /compact or /clear to continue", TaskFailedError, None),
    ],
)
async def test_older_failure_texts_without_a_status(
    fake_cli: Factory, tmp_path: Path, text: str, cls: type[TaskFailedError], status: int | None
) -> None:
    line = failed_result(text)
    del line["terminal_reason"]
    result = await replay_text(fake_cli, tmp_path, lines(INIT, line), 1, num_retries=0)
    assert type(result.error) is cls, repr(result.error)
    assert getattr(result.error, "status_code", None) == status


async def test_nulls_in_optional_fields_keep_the_result(fake_cli: Factory, tmp_path: Path) -> None:
    result_line = ok_result(
        usage=None,
        modelUsage=None,
        permission_denials=None,
        errors=None,
        terminal_reason=None,
        structured_output=None,
    )
    stream = lines(INIT, {"type": "system", "subtype": "status", "status": None}, result_line)
    result = await replay_text(fake_cli, tmp_path, stream, 0)
    assert result.success, result.error
    assert result.output == "the answer" and result.usage == {}


async def test_a_result_without_subtype_is_read(fake_cli: Factory, tmp_path: Path) -> None:
    line = ok_result()
    del line["subtype"]
    line["terminal_reason"] = "completed"
    result = await replay_text(fake_cli, tmp_path, lines(INIT, line), 0)
    assert result.success, result.error
    assert result.output == "the answer"


@pytest.mark.parametrize(
    ("fields", "cls"),
    [
        ({"errors": ["Reached maximum number of turns (5)"]}, MaxTurnsError),
        ({"errors": ["Reached maximum budget ($0.10)"]}, BudgetExceededError),
        ({"terminal_reason": "max_turns"}, MaxTurnsError),
        (
            {"permission_denials": [{"tool_name": "Write", "tool_input": {}}]},
            PermissionDeniedError,
        ),
        ({"is_error": None, "result": "?"}, TaskFailedError),
    ],
)
async def test_without_subtype_the_other_fields_decide(
    fake_cli: Factory, tmp_path: Path, fields: dict[str, Any], cls: type[TaskFailedError]
) -> None:
    line = {"type": "result", "is_error": True, "num_turns": 5, "session_id": "s", **fields}
    result = await replay_text(fake_cli, tmp_path, lines(INIT, line), 1, num_retries=2)
    assert type(result.error) is cls
    assert len(result.attempts) == 1
    for text in fields.get("errors", []):
        assert text in str(result.error)


async def test_an_unknown_subtype_is_never_a_success(fake_cli: Factory, tmp_path: Path) -> None:
    line = ok_result(subtype="error_brand_new_kind")
    result = await replay_text(fake_cli, tmp_path, lines(INIT, line), 0, num_retries=2)
    assert type(result.error) is TaskFailedError
    assert len(result.attempts) == 1


async def test_a_lone_surrogate_escape_parses(fake_cli: Factory, tmp_path: Path) -> None:
    stream = '{"type":"result","subtype":"success","is_error":false,"result":"a \\ud83d b"}\n'
    result = await replay_text(fake_cli, tmp_path, lines(INIT, stream), 0)
    assert result.success, result.error
    assert result.output == "a \ud83d b"


async def test_a_deeply_nested_structured_answer_parses(fake_cli: Factory, tmp_path: Path) -> None:
    depth = 600
    nested = '{"a":' * depth + "1" + "}" * depth
    line = '{"type":"result","subtype":"success","is_error":false,"result":"",'
    line += f'"num_turns":1,"structured_output":{nested}}}'
    result = await replay_text(fake_cli, tmp_path, lines(INIT, line), 0)
    assert result.success, result.error
    value, seen = result.structured_output, 0
    while isinstance(value, dict):
        value, seen = value["a"], seen + 1
    assert (seen, value) == (depth, 1)


async def test_session_id_comes_from_any_line(fake_cli: Factory, tmp_path: Path) -> None:
    status = {"type": "system", "subtype": "status", "status": "x", "session_id": "s-status"}
    result = await replay_text(fake_cli, tmp_path, lines(status), 3, num_retries=0)
    assert isinstance(result.error, ProcessCrashedError)
    assert result.session_id == "s-status"


async def test_a_failed_local_command_with_zero_turns_is_a_failure(
    fake_cli: Factory, tmp_path: Path
) -> None:
    message = synthetic("", "unknown")
    del message["error"], message["is_api_error_message"]
    message["local_command_source"] = (
        "<local-command-stderr>Error: Unknown skill</local-command-stderr>"
    )
    message["local_command_outcome"] = {"kind": "failed"}
    line = ok_result("", num_turns=0, total_cost_usd=0, local_command="skill")
    result = await replay_text(fake_cli, tmp_path, lines(INIT, message, line), 0, num_retries=2)
    assert type(result.error) is TaskFailedError
    assert "Error: Unknown skill" in str(result.error)
    assert len(result.attempts) == 1


async def test_zero_turns_and_no_answer_is_not_a_success(fake_cli: Factory, tmp_path: Path) -> None:
    preamble = synthetic("This skill needs your approval to run.", "unknown")
    del preamble["error"], preamble["is_api_error_message"]
    line = ok_result("", num_turns=0, total_cost_usd=0)
    result = await replay_text(fake_cli, tmp_path, lines(INIT, preamble, line), 0, num_retries=2)
    assert type(result.error) is TaskFailedError
    assert "needs your approval" in str(result.error)
    assert len(result.attempts) == 1


async def test_the_answer_only_in_structured_output_is_the_output(
    fake_cli: Factory, tmp_path: Path
) -> None:
    line = ok_result("", structured_output={"answer": 42})
    result = await replay_text(fake_cli, tmp_path, lines(INIT, line), 0)
    assert result.success
    assert json.loads(result.output) == {"answer": 42}


async def test_a_spurious_error_result_after_a_success_is_noise(
    fake_cli: Factory, tmp_path: Path
) -> None:
    noise = failed_result("", subtype="error_during_execution", num_turns=0, total_cost_usd=0)
    stream = lines(INIT, ok_result("done", num_turns=3, total_cost_usd=0.5), noise)
    result = await replay_text(fake_cli, tmp_path, stream, 1)
    assert result.success, result.error
    assert (result.output, result.num_turns, result.total_cost_usd) == ("done", 3, 0.5)


async def test_a_later_result_with_real_turns_is_the_answer(
    fake_cli: Factory, tmp_path: Path
) -> None:
    first = ok_result("interim", num_turns=2, total_cost_usd=0.1, usage={"output_tokens": 5})
    second = ok_result("final", num_turns=1, total_cost_usd=0.3, usage={"output_tokens": 7})
    second["result_index"], second["origin"] = 1, {"kind": "task-notification"}
    result = await replay_text(fake_cli, tmp_path, lines(INIT, first, second), 0)
    assert result.success
    assert (result.output, result.num_turns, result.total_cost_usd) == ("final", 3, 0.3)
    assert result.usage == {"output_tokens": 12}


async def test_a_cli_that_rejects_its_arguments_is_not_retried(
    fake_cli: Factory, tmp_path: Path
) -> None:
    stderr = "error: unknown option '--no-such-flag'\n"
    result = await replay_text(fake_cli, tmp_path, "", 1, num_retries=2, stderr=stderr)
    assert type(result.error) is CLIArgumentError
    assert "error: unknown option '--no-such-flag'" in str(result.error)
    assert len(result.attempts) == 1


# --- background work -------------------------------------------------------------------


def background_stream(pause: float) -> str:
    task = {"task_id": "b1", "task_type": "local_bash", "description": "bg"}
    first = ok_result("Started the job", num_turns=2, total_cost_usd=0.1, result_index=0)
    second = ok_result("The job finished", num_turns=1, total_cost_usd=0.2, result_index=1)
    second["origin"] = {"kind": "task-notification"}
    system = {"type": "system", "session_id": "s-init"}
    return lines(
        INIT,
        {**system, "subtype": "background_tasks_changed", "tasks": [task]},
        {**system, "subtype": "task_started", "task_id": "b1", "is_backgrounded": True},
        first,
        f"#sleep {pause}",
        {**system, "subtype": "task_updated", "task_id": "b1", "patch": {"status": "completed"}},
        {**system, "subtype": "task_notification", "task_id": "b1", "status": "completed"},
        {**system, "subtype": "background_tasks_changed", "tasks": []},
        INIT,
        second,
    )


async def test_pending_background_work_is_waited_for(
    fake_cli: Factory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI is silent for longer than both the result-exit grace and the idle
    # timeout while the job runs: neither may end it.
    result = await replay_text(
        fake_cli,
        tmp_path,
        background_stream(2.0),
        0,
        result_exit_grace=0.3,
        idle_timeout=0.5,
        stream_output=True,
    )
    assert result.success, result.error
    assert result.stopped_by is None
    assert (result.output, result.num_turns, result.total_cost_usd) == ("The job finished", 3, 0.2)
    shown = capsys.readouterr().err
    assert "background task started: b1" in shown and "background task completed: b1" in shown


async def test_the_total_timeout_still_bounds_background_work(
    fake_cli: Factory, tmp_path: Path
) -> None:
    result = await replay_text(
        fake_cli, tmp_path, background_stream(60), 0, timeout=1.5, kill_grace=0.5, num_retries=0
    )
    assert isinstance(result.error, TaskTimeoutError)
    assert result.stopped_by == "timeout"


# --- reset times in words ----------------------------------------------------------------


NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Claude AI usage limit reached|1755806400",
            datetime.fromtimestamp(1755806400, timezone.utc),
        ),
        ("limit reached|1755806400000", datetime.fromtimestamp(1755806400, timezone.utc)),
        # Lisbon is UTC+0 in winter: 1pm today is still ahead of 10:00 UTC.
        ("You've hit your limit · resets 1pm (Europe/Lisbon)", NOW.replace(hour=13)),
        # 9am Lisbon has passed today: the next one is tomorrow.
        (
            "You've hit your limit · resets 9am (Europe/Lisbon)",
            NOW.replace(day=1, month=12, hour=9),
        ),
        ("resets at 3:30pm (UTC)", NOW.replace(hour=15, minute=30)),
        ("resets 15:00 (Asia/Tokyo)", NOW.replace(day=1, month=12, hour=6)),
        ("limit will reset at 2026-12-01T05:00:00Z", datetime(2026, 12, 1, 5, tzinfo=timezone.utc)),
        ("resets Dec 3, 9am (America/New_York)", datetime(2026, 12, 3, 14, tzinfo=timezone.utc)),
        ("resets in 2h 30m", NOW + timedelta(hours=2, minutes=30)),
        ("usage limit reached, try again at 3pm (UTC)", NOW.replace(hour=15)),
        ("limit will reset at 2026-12-01 05:00 UTC", datetime(2026, 12, 1, 5, tzinfo=timezone.utc)),
        ("the limit was hit", None),
        ("resets 5 things", None),
    ],
)
def test_reset_times_in_the_common_wordings(text: str, expected: datetime | None) -> None:
    from cc_executor.result import parse_reset_time

    assert parse_reset_time(text, NOW) == expected


def test_a_reset_time_without_a_zone_is_the_next_such_local_hour() -> None:
    from cc_executor.result import parse_reset_time

    reset = parse_reset_time("Weekly limit reached ∙ resets 5am", NOW)
    assert reset is not None and reset.tzinfo is not None
    local = reset.astimezone()
    assert (local.hour, local.minute) == (5, 0)
    assert NOW < reset <= NOW + timedelta(days=1)


def test_a_past_reset_is_kept() -> None:
    from cc_executor.result import parse_reset_time

    reset = parse_reset_time("usage limit reached|1000000000", NOW)
    assert reset == datetime.fromtimestamp(1000000000, timezone.utc)
    assert ZoneInfo("UTC")  # zoneinfo data is present for the zone tests above


async def test_an_api_retry_for_authentication_without_a_status_stops_the_cli(
    fake_cli: Factory, tmp_path: Path
) -> None:
    retry = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "error_status": None,
        "error": "authentication_failed",
        "session_id": "s-init",
    }
    stream = lines(INIT, retry, "#sleep 60", ok_result())
    result = await replay_text(fake_cli, tmp_path, stream, 0, kill_grace=0.5, num_retries=2)
    assert isinstance(result.error, AuthenticationError)
    assert result.stopped_by == "auth_failed"
    assert len(result.attempts) == 1
