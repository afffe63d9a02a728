"""json_schema references: resolved and checked when the config is built, never fetched.

A `$ref` to a missing `$defs` entry, or to any other document, is a ConfigError before
the CLI starts (the scripted model sees no request); nothing schema-related raises an
untyped error after a paid run.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, model_validator

from cc_executor import CCExecutorConfig, ConfigError, StructuredOutputError, cc_run
from cc_executor._structured import _validate_dict
from cc_executor.testing import ScriptedModel, structured_output


class _SilentServer:
    """A loopback socket that accepts connections and never answers; counts accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)  # never read, never answered, never closed

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[_SilentServer]:
    server = _SilentServer()
    yield server
    server.close()


def _with_ref(ref: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": {"$ref": ref}}, "required": ["a"]}


async def test_ref_to_a_missing_def_is_a_config_error_before_the_cli_starts(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(structured_output({"a": "x"}))
    schema = _with_ref("#/$defs/Missing")
    schema["$defs"] = {"Present": {"type": "string"}}
    with pytest.raises(ConfigError) as info:
        await cc_run("x", config, json_schema=schema)
    assert info.value.field == "json_schema"
    assert "'#/$defs/Missing'" in str(info.value)
    assert model.main_requests == []  # nothing was paid for


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_remote_ref_is_refused_without_connecting(
    model: ScriptedModel,
    config: CCExecutorConfig,
    silent_server: _SilentServer,
    scheme: str,
) -> None:
    """A host that accepts and never answers would hang a fetch: none is made."""
    model.add(structured_output({"a": "x"}))
    ref = f"{scheme}://127.0.0.1:{silent_server.port}/schema.json"
    with anyio.fail_after(60):  # a guard against a hang, not a speed claim
        with pytest.raises(ConfigError) as info:
            await cc_run("x", config, json_schema=_with_ref(ref), timeout=30)
    assert info.value.field == "json_schema"
    assert ref in str(info.value) and "never fetches" in str(info.value)
    assert silent_server.accepted == 0
    assert model.main_requests == []


@pytest.mark.parametrize(
    "ref",
    [
        "file:///etc/hostname",
        "other.json",
        "other.json#/$defs/A",
        "urn:example:thing",
        "//127.0.0.1:9/x.json",
    ],
)
def test_every_non_local_ref_is_refused(ref: str) -> None:
    with pytest.raises(ConfigError) as info:
        CCExecutorConfig(json_schema=_with_ref(ref))
    assert info.value.field == "json_schema"
    assert repr(ref) in str(info.value)


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "$defs": {"A": {"type": "string"}},
            "properties": {"a": {"$ref": "#/$defs/A"}},
        },
        {  # draft 7 spelling
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "definitions": {"A": {"type": "string"}},
            "properties": {"a": {"$ref": "#/definitions/A"}},
        },
        {  # an embedded resource, by relative and absolute id
            "$id": "https://example.invalid/root.json",
            "type": "object",
            "$defs": {"A": {"$id": "a.json", "type": "string"}},
            "properties": {
                "a": {"$ref": "a.json"},
                "b": {"$ref": "https://example.invalid/a.json"},
            },
        },
        {  # recursion through the root
            "type": "object",
            "properties": {"child": {"$ref": "#"}},
        },
    ],
)
def test_refs_inside_the_schema_are_accepted(schema: dict[str, Any]) -> None:
    assert CCExecutorConfig(json_schema=schema).json_schema == schema


def test_pydantic_model_schema_is_checked_too() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node] = []

    assert CCExecutorConfig(json_schema=Node).json_schema is Node


def test_validation_never_fetches_even_a_schema_that_skipped_the_config_check(
    silent_server: _SilentServer,
) -> None:
    """The run-time check has its own refusing registry (defence in depth): an error
    line, no exception, no connection."""
    ref = f"http://127.0.0.1:{silent_server.port}/schema.json"
    errors = _validate_dict(_with_ref(ref), {"a": 1})
    assert len(errors) == 1 and errors[0].startswith("(schema): the answer could not be checked")
    assert silent_server.accepted == 0


class _Exploding(BaseModel):
    a: str

    @model_validator(mode="after")
    def _boom(self) -> _Exploding:
        raise RuntimeError("validator bug")


async def test_a_model_validator_that_raises_gives_a_typed_error_with_the_result(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    """After a paid run nothing schema-related raises untyped: the result is kept."""
    model.add(structured_output({"a": "x"}))
    result = await cc_run("x", config, json_schema=_Exploding)
    assert isinstance(result.error, StructuredOutputError)
    assert result.error.raw == {"a": "x"}
    assert "RuntimeError: validator bug" in result.error.validation_errors[0]
    assert result.structured_output == {"a": "x"} and result.transcript_path is not None
    assert len(model.main_requests) == 1
