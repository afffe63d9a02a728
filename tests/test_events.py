"""Level 1: parsing real CLI output and classifying it. No processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cc_executor import (
    AuthenticationError,
    BadRequestError,
    MaxTurnsError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    TaskFailedError,
    UnknownEvent,
    parse_event,
)
from cc_executor.events import (
    ApiRetryEvent,
    AssistantEvent,
    BackgroundTasksChangedEvent,
    CompactBoundaryEvent,
    HookResponseEvent,
    HookStartedEvent,
    InitEvent,
    InvalidLineError,
    PermissionDeniedEvent,
    ResultEvent,
    StatusEvent,
    StreamEvent,
    TaskNotificationEvent,
    TaskProgressEvent,
    TaskStartedEvent,
    TaskUpdatedEvent,
    TextBlock,
    ThinkingTokensEvent,
    ToolUseBlock,
    UnknownBlock,
    UserEvent,
)
from cc_executor.result import classify

from .conftest import FIXTURES


def load(name: str) -> list[object]:
    return [parse_event(line) for line in (FIXTURES / f"{name}.jsonl").read_bytes().splitlines()]


def result_of(events: list[object]) -> ResultEvent | None:
    found = [e for e in events if isinstance(e, ResultEvent)]
    return found[-1] if found else None


def classify_fixture(name: str, **kw: object) -> TaskFailedError | None:
    events = load(name)
    args: dict[str, object] = {
        "result": result_of(events),
        "exit_code": 0,
        "stopped_by": None,
        "api_retries": [e for e in events if isinstance(e, ApiRetryEvent)],
        "timeout_s": 60.0,
        "idle_timeout_s": 30.0,
        "on_permission_denied": "fail",
        "stderr_tail": "",
    }
    args.update(kw)
    return classify(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.jsonl")), ids=lambda p: p.stem)
def test_every_fixture_line_parses_to_a_known_event(path: Path) -> None:
    for line in path.read_bytes().splitlines():
        event = parse_event(line)
        assert not isinstance(event, UnknownEvent), f"{path.name}: {line[:200]!r}"
        assert event.type == json.loads(line)["type"]


def test_init_event_fields() -> None:
    init = load("tool_write_accept_edits")[0]
    assert isinstance(init, InitEvent)
    assert init.session_id and init.claude_code_version == "2.1.328"
    assert "Write" in init.tools
    assert init.model_extra is not None and "slash_commands" in init.model_extra


def test_tool_use_and_tool_result_are_typed() -> None:
    events = load("tool_write_accept_edits")
    assistant = next(e for e in events if isinstance(e, AssistantEvent))
    (tool,) = assistant.tool_uses
    assert isinstance(tool, ToolUseBlock)
    assert tool.name == "Write" and tool.input["file_path"] == "/workspace/hello.py"
    assert any(isinstance(e, UserEvent) for e in events)


def test_partial_messages_give_text_deltas_in_order() -> None:
    events = load("partial_messages")
    deltas = [e.text_delta for e in events if isinstance(e, StreamEvent) and e.text_delta]
    assert "".join(deltas) == "one two three four"
    assert len(deltas) == 4


def test_unknown_type_and_subtype_keep_raw_data() -> None:
    event = parse_event(b'{"type": "telemetry", "payload": {"a": 1}}')
    assert isinstance(event, UnknownEvent)
    assert event.raw == {"type": "telemetry", "payload": {"a": 1}}
    event = parse_event('{"type": "system", "subtype": "brand_new_subtype", "x": 2}')
    assert isinstance(event, UnknownEvent) and event.subtype == "brand_new_subtype"


def test_unknown_content_block_does_not_hide_known_ones() -> None:
    line = (
        '{"type":"assistant","message":{"content":['
        '{"type":"server_tool_use","id":"a"},{"type":"text","text":"hi"}]}}'
    )
    event = parse_event(line)
    assert isinstance(event, AssistantEvent)
    assert isinstance(event.message.content[0], UnknownBlock)
    assert isinstance(event.message.content[1], TextBlock)
    assert event.text == "hi"


@pytest.mark.parametrize("line", [b"not json", b"42", b"[1, 2]", b'{"type": ', b"\xff\xfe"])
def test_non_object_lines_raise_invalid_line(line: bytes) -> None:
    with pytest.raises(InvalidLineError):
        parse_event(line)


def test_permission_denied_fixture_is_a_failure_by_default() -> None:
    events = load("permission_denied_default_mode")
    assert any(isinstance(e, PermissionDeniedEvent) for e in events)
    result = result_of(events)
    assert result is not None and result.subtype == "success" and not result.is_error
    err = classify_fixture("permission_denied_default_mode")
    assert isinstance(err, PermissionDeniedError)
    assert err.tools == ["Write"]
    assert "allowed_tools=['Write']" in str(err)
    assert classify_fixture("permission_denied_default_mode", on_permission_denied="warn") is None


def test_success_subtype_with_is_error_is_a_failure() -> None:
    err = classify_fixture("api_error_400", exit_code=1)
    assert isinstance(err, BadRequestError)
    assert err.status_code == 400
    assert "scripted bad request" in str(err)


def test_max_turns_fixture() -> None:
    assert isinstance(classify_fixture("max_turns_exceeded", exit_code=1), MaxTurnsError)


@pytest.mark.parametrize("name", ["api_error_500_then_ok", "api_error_529_then_ok"])
def test_one_retry_then_success_is_success(name: str) -> None:
    events = load(name)
    assert len([e for e in events if isinstance(e, ApiRetryEvent)]) == 1
    assert classify_fixture(name) is None


def test_structured_output_is_carried() -> None:
    result = result_of(load("structured_output"))
    assert result is not None and result.structured_output == {"name": "Ada"}


def test_auth_stop_maps_to_authentication_error_with_status() -> None:
    err = classify_fixture("api_error_401_retries", stopped_by="auth_failed", exit_code=-15)
    assert isinstance(err, AuthenticationError) and err.status_code == 401


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (429, RateLimitError),
        (529, OverloadedError),
        (403, AuthenticationError),
        (400, BadRequestError),
    ],
)
def test_api_error_status_maps_to_its_class(status: int, cls: type[Exception]) -> None:
    result = ResultEvent.model_validate(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "terminal_reason": "api_error",
            "api_error_status": status,
            "result": f"API Error: {status}",
        }
    )
    err = classify(
        result=result,
        exit_code=1,
        stopped_by=None,
        api_retries=[],
        timeout_s=1,
        idle_timeout_s=None,
        on_permission_denied="fail",
        stderr_tail="",
    )
    assert type(err) is cls


# --- tolerant reading of other CLI versions' shapes ---------------------------------


@pytest.mark.parametrize(
    ("line", "cls", "checks"),
    [
        (
            {"subtype": "hook_started", "hook_id": "h1", "hook_name": "SessionStart:startup"},
            HookStartedEvent,
            {"hook_name": "SessionStart:startup"},
        ),
        (
            {"subtype": "hook_response", "hook_id": "h1", "exit_code": 0, "outcome": "success"},
            HookResponseEvent,
            {"exit_code": 0, "outcome": "success"},
        ),
        (
            {"subtype": "task_started", "task_id": "b1", "is_backgrounded": True},
            TaskStartedEvent,
            {"task_id": "b1", "is_backgrounded": True},
        ),
        (
            {"subtype": "task_progress", "task_id": "a1", "last_tool_name": "Read"},
            TaskProgressEvent,
            {"last_tool_name": "Read"},
        ),
        (
            {"subtype": "task_updated", "task_id": "b1", "patch": {"status": "completed"}},
            TaskUpdatedEvent,
            {"patch": {"status": "completed"}},
        ),
        (
            {"subtype": "task_notification", "task_id": "b1", "status": "completed"},
            TaskNotificationEvent,
            {"status": "completed"},
        ),
        (
            {"subtype": "background_tasks_changed", "tasks": [{"task_id": "b1"}]},
            BackgroundTasksChangedEvent,
            {"tasks": [{"task_id": "b1"}]},
        ),
        (
            {"subtype": "compact_boundary", "compact_metadata": {"trigger": "auto"}},
            CompactBoundaryEvent,
            {"compact_metadata": {"trigger": "auto"}},
        ),
        (
            {"subtype": "thinking_tokens", "estimated_tokens": 50},
            ThinkingTokensEvent,
            {"estimated_tokens": 50},
        ),
        (
            {"subtype": "status", "status": None, "compact_result": "success"},
            StatusEvent,
            {"compact_result": "success"},
        ),
    ],
)
def test_system_subtypes_seen_in_the_field_are_typed(
    line: dict[str, object], cls: type, checks: dict[str, object]
) -> None:
    event = parse_event(json.dumps({"type": "system", "session_id": "s", **line}))
    assert type(event) is cls
    for name, value in checks.items():
        assert getattr(event, name) == value


def test_nulls_in_optional_fields_give_their_defaults() -> None:
    event = parse_event(
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "result": "ok",
                "usage": None,
                "modelUsage": None,
                "permission_denials": [{"tool_name": None, "tool_input": None}],
                "errors": None,
                "num_turns": None,
                "total_cost_usd": None,
            }
        )
    )
    assert isinstance(event, ResultEvent)
    assert (event.usage, event.model_usage, event.errors) == ({}, {}, [])
    assert event.permission_denials[0].tool_input == {}
    assistant = parse_event(
        '{"type":"assistant","message":{"content":null,"usage":null},"parent_tool_use_id":null}'
    )
    assert isinstance(assistant, AssistantEvent) and assistant.message.content == []


def test_an_optional_field_of_an_unexpected_shape_does_not_lose_the_line() -> None:
    event = parse_event(
        '{"type":"result","subtype":"success","is_error":false,"result":"ok",'
        '"total_cost_usd":"n/a","usage":[1],"duration_ms":{"x":1}}'
    )
    assert isinstance(event, ResultEvent) and event.result == "ok"
    assert event.total_cost_usd is None and event.usage == {}
    # A field that decides the outcome is never guessed at.
    assert isinstance(
        parse_event('{"type":"result","subtype":"success","is_error":"perhaps"}'), UnknownEvent
    )


def test_result_without_subtype_and_the_fields_of_newer_clis() -> None:
    event = parse_event(
        '{"type":"result","is_error":true,"result":"x","result_index":1,'
        '"origin":{"kind":"task-notification"}}'
    )
    assert isinstance(event, ResultEvent)
    assert (event.subtype, event.is_error, event.result_index) == (None, True, 1)
    assert event.origin == {"kind": "task-notification"}


def test_the_synthetic_assistant_line_carries_its_error_kind() -> None:
    event = parse_event(
        '{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text",'
        '"text":"Not logged in"}]},"error":"authentication_failed","is_api_error_message":true}'
    )
    assert isinstance(event, AssistantEvent) and event.error == "authentication_failed"


def test_lone_surrogates_and_deep_nesting_parse_as_json_loads_does() -> None:
    event = parse_event(b'{"type":"result","subtype":"success","result":"\\ud83d"}')
    assert isinstance(event, ResultEvent) and event.result == "\ud83d"
    depth = 800
    line = '{"type":"result","subtype":"success","structured_output":' + "[" * depth
    line += "]" * depth + "}"
    json.loads(line)  # within the standard library's limit...
    assert isinstance(parse_event(line), ResultEvent)  # ...so within ours
    too_deep = '{"type":"result","structured_output":' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(InvalidLineError):
        parse_event(too_deep)
