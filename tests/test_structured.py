"""Structured answers: return_json, json_schema as a dict or a pydantic class.

Real CLI against the scripted model, except where a CLI that does not check its
own output is needed (the fake CLI's `structured_unchecked` mode).
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from cc_executor import (
    CCExecutorConfig,
    ConfigError,
    StructuredOutputError,
    TaskFailedError,
    cc_execute,
    cc_run,
)
from cc_executor.result import classify
from cc_executor.testing import ScriptedModel, http_error, structured_output, text, tool_use


def _sent_schema(model: ScriptedModel) -> dict[str, Any]:
    """The input_schema of the StructuredOutput tool the CLI offered the model."""
    tools = model.main_requests[0].body["tools"]
    (tool,) = [t for t in tools if t["name"] == "StructuredOutput"]
    schema: dict[str, Any] = tool["input_schema"]
    return schema


class Release(BaseModel):
    name: str
    version: int
    tags: list[str]
    date: dt.date


async def test_return_json_files_come_from_what_happened_not_from_the_model(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path, transcripts: Path
) -> None:
    model.add(
        tool_use("Write", {"file_path": str(workdir / "a.txt"), "content": "from Write\n"}),
        tool_use("Bash", {"command": "echo from-bash > b.txt", "description": "write b"}),
        # A claimed edit of a file that does not exist: the tool fails, nothing is written.
        tool_use(
            "Edit", {"file_path": str(workdir / "c.txt"), "old_string": "x", "new_string": "y"}
        ),
        structured_output({"result": "ok", "summary": "Created a.txt, b.txt and c.txt"}),
    )
    answer = await cc_execute("make the files", config, return_json=True)

    assert (workdir / "a.txt").read_text() == "from Write\n"
    assert (workdir / "b.txt").read_text() == "from-bash\n"
    assert not (workdir / "c.txt").exists()
    (transcript,) = transcripts.iterdir()
    assert answer == {
        "result": "ok",
        "summary": "Created a.txt, b.txt and c.txt",
        "files_created": ["a.txt", "b.txt"],
        "files_modified": [],
        "execution_uuid": transcript.stem.split("_", 1)[1],
    }
    uuid.UUID(answer["execution_uuid"])
    # The model was asked for result and summary only: the file lists are never its word.
    assert _sent_schema(model) == {
        "type": "object",
        "properties": {
            "result": {
                "type": "string",
                "description": "The outcome of the task: the answer asked for.",
            },
            "summary": {"type": "string", "description": "A short summary of what was done."},
        },
        "required": ["result", "summary"],
        "additionalProperties": False,
    }


async def test_return_json_refuses_file_lists_from_the_model(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    """A model that adds its own files_created is told off by the CLI and must answer again."""
    model.add(
        structured_output({"result": "r", "summary": "s", "files_created": ["made-up.txt"]}),
        structured_output({"result": "r", "summary": "s"}),
    )
    result = await cc_run("x", config, return_json=True)
    assert result.success, result.error
    assert result.structured["files_created"] == []
    rejection = model.main_requests[1].body["messages"][-1]["content"][0]
    assert rejection["is_error"] is True and "additional properties" in rejection["content"]


async def test_pydantic_class_round_trip(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    model.add(
        structured_output({"name": "cc", "version": 3, "tags": ["a", "b"], "date": "2026-01-02"})
    )
    release = await cc_execute("describe the release", config, json_schema=Release)
    assert release == Release(name="cc", version=3, tags=["a", "b"], date=dt.date(2026, 1, 2))
    assert isinstance(release, Release)
    assert _sent_schema(model) == Release.model_json_schema()


async def test_dict_schema_answer_is_returned_as_a_dict(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "words": {"type": "array"}},
        "required": ["n"],
    }
    model.add(structured_output({"n": 7, "words": ["x"]}))
    result = await cc_run("count", config, json_schema=schema)
    assert result.success, result.error
    assert result.structured == {"n": 7, "words": ["x"]}
    assert result.structured_output == {"n": 7, "words": ["x"]}
    assert _sent_schema(model) == schema


async def test_answer_the_cli_accepted_but_the_schema_forbids_raises(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    """CLI 2.1.328 does not check `format`; the library does, so the bad date is caught."""
    schema = {
        "type": "object",
        "properties": {"due": {"type": "string", "format": "date"}},
        "required": ["due"],
    }
    model.add(structured_output({"due": "next tuesday"}))
    with pytest.raises(StructuredOutputError) as info:
        await cc_execute("when?", config, json_schema=schema)
    err = info.value
    assert err.raw == {"due": "next tuesday"}
    assert err.validation_errors == ["/due: 'next tuesday' is not a 'date'"]
    assert err.result.structured_output == {"due": "next tuesday"}  # what the CLI passed on
    assert err.result.structured is None
    assert isinstance(err, TaskFailedError)


async def test_pydantic_validation_failure_raises_with_the_raw_answer(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(structured_output({"name": "cc", "version": 1, "tags": [], "date": "2026-02-30"}))
    result = await cc_run("x", config, json_schema=Release)
    assert isinstance(result.error, StructuredOutputError)
    assert result.error.raw["date"] == "2026-02-30"
    assert len(result.error.validation_errors) == 1
    assert result.error.validation_errors[0].startswith("/date: ")
    assert result.structured is None and not result.success


async def test_cli_gives_up_after_repeated_invalid_answers(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    """The CLI re-asks 5 times, then ends with error_max_structured_output_retries."""
    model.add(*[structured_output({"name": "cc", "version": "three"})] * 5)
    with pytest.raises(StructuredOutputError) as info:
        await cc_execute("x", config, json_schema=Release)
    err = info.value
    assert err.result.subtype == "error_max_structured_output_retries"
    assert err.raw == {"name": "cc", "version": "three"}
    assert "must be integer" in err.validation_errors[0]
    assert len(model.main_requests) == 5 and not model.exhausted


async def test_no_structured_answer_at_all_raises(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(text("I refuse to use tools"), text("still no"))
    with pytest.raises(StructuredOutputError) as info:
        await cc_execute("x", config, return_json=True)
    assert info.value.raw is None
    assert "no structured output" in info.value.validation_errors[0]


async def test_library_checks_even_when_the_cli_passes_an_invalid_answer(
    fake_cli: Callable[..., CCExecutorConfig],
) -> None:
    bad = {"result": 42}
    config = fake_cli("structured_unchecked", env={"FAKE_CLI_STRUCTURED": json.dumps(bad)})
    with pytest.raises(StructuredOutputError) as info:
        await cc_execute("x", config, return_json=True)
    assert info.value.raw == bad
    assert sorted(info.value.validation_errors) == [
        "(root): 'summary' is a required property",
        "/result: 42 is not of type 'string'",
    ]
    # The error survives pickling (e.g. across process pools) with its data.
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.raw == bad and copy.validation_errors == info.value.validation_errors


def test_structured_output_retries_subtype_maps_to_structured_output_error() -> None:
    from cc_executor.events import ResultEvent

    event = ResultEvent(
        type="result",
        subtype="error_max_structured_output_retries",
        is_error=True,
        terminal_reason="structured_output_retry_exhausted",
        errors=["Failed to provide valid structured output after 5 attempts"],
    )
    error = classify(
        result=event,
        exit_code=1,
        stopped_by=None,
        api_retries=[],
        timeout_s=10,
        idle_timeout_s=None,
        on_permission_denied="fail",
        stderr_tail="",
    )
    assert isinstance(error, StructuredOutputError)
    assert error.validation_errors == ["Failed to provide valid structured output after 5 attempts"]


@pytest.mark.parametrize(
    ("overrides", "field", "hint"),
    [
        ({"json_schema": 3}, "json_schema", "pydantic model class"),
        (
            {"json_schema": Release(name="x", version=1, tags=[], date="2026-01-01")},
            "json_schema",
            "not Release",
        ),
        ({"json_schema": {"type": "string"}}, "json_schema", '"type": "object"'),
        (
            {"json_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}},
            "json_schema",
            "not a valid JSON schema",
        ),
        ({"return_json": True, "json_schema": Release}, "json_schema", "choose one"),
        ({"return_json": True, "extra_args": ["--json-schema", "{}"]}, "return_json", "extra_args"),
        ({"snapshot_ignore": ["build/out"]}, "snapshot_ignore", "glob"),
        ({"snapshot_files": "snapshot"}, "snapshot_files", "'walk'"),
    ],
)
def test_bad_structured_options_are_config_errors(
    overrides: dict[str, Any], field: str, hint: str
) -> None:
    with pytest.raises(ConfigError) as info:
        CCExecutorConfig(**overrides)
    assert info.value.field == field
    assert hint in str(info.value)


def test_the_schema_goes_to_the_cli_as_json_schema() -> None:
    from cc_executor._command import build_args

    args = build_args(CCExecutorConfig(json_schema=Release))
    assert json.loads(args[args.index("--json-schema") + 1]) == Release.model_json_schema()
    assert "--json-schema" not in build_args(CCExecutorConfig())


async def test_files_of_every_attempt_count_when_a_task_is_retried(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    """Attempt 1 writes a.txt and meets a 529; the resumed attempt 2 appends to it and
    writes b.txt: the task created both, and the answer says so."""
    model.add(
        tool_use("Write", {"file_path": str(workdir / "a.txt"), "content": "one\n"}),
        http_error(529, "Overloaded"),
        tool_use("Bash", {"command": "echo two >> a.txt && echo b > b.txt", "description": "b"}),
        structured_output({"result": "ok", "summary": "both"}),
    )
    result = await cc_run("x", config, return_json=True, cli_max_retries=0, retry_backoff=(0, 0, 0))
    assert result.success, result.error
    assert [a.error_type for a in result.attempts] == ["OverloadedError", None]
    assert (workdir / "a.txt").read_text() == "one\ntwo\n"
    assert result.files_created == ["a.txt", "b.txt"] and result.files_modified == []
    assert result.structured["files_created"] == ["a.txt", "b.txt"]
    assert result.structured["files_modified"] == []


@pytest.mark.parametrize(
    ("fmt", "bad", "good"),
    [
        ("date-time", "next tuesday", "2026-01-02T03:04:05Z"),
        ("uri", "not a uri", "https://example.org/x"),
        ("email", "nobody", "a@example.org"),
        ("ipv4", "300.1.1.1", "10.0.0.1"),
    ],
)
def test_the_library_checks_string_formats(fmt: str, bad: str, good: str) -> None:
    """The CLI does not check `format`; the library's own check does, for the common ones."""
    from cc_executor._structured import _validate_dict

    schema = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}}
    assert _validate_dict(schema, {"v": good}) == []
    assert _validate_dict(schema, {"v": bad}) == [f"/v: {bad!r} is not a {fmt!r}"]
