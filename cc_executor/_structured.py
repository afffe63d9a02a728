"""Structured answers: the schema sent to the CLI (`--json-schema`) and the check of
what comes back.

Three forms, chosen by the config:

- `return_json=True`: the model is asked for `result` and `summary` only
  (`RETURN_JSON_SCHEMA`); the library adds `files_created`, `files_modified`
  (from `_snapshot`, never from the model) and `execution_uuid`.
- `json_schema={...}`: the schema is sent as given and the answer validated with
  `jsonschema` (formats included, which the CLI does not check).
- `json_schema=Model` (a pydantic class): `Model.model_json_schema()` is sent and
  the answer goes through `Model.model_validate`, giving back an instance.

The CLI validates the answer too, but its word is not taken: every answer is
checked here again, and `result.classify` turns a failed check into
`StructuredOutputError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from ._snapshot import FileChanges
    from .config import CCExecutorConfig

__all__ = ["RETURN_JSON_SCHEMA", "StructuredCheck", "check", "check_schema", "schema_to_send"]

RETURN_JSON_SCHEMA: dict[str, Any] = {
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

STRUCTURED_TOOL = "StructuredOutput"


@dataclass
class StructuredCheck:
    """The outcome of checking one answer: `value` when valid, else `errors`."""

    raw: Any
    value: Any = None
    errors: list[str] = field(default_factory=list)


def schema_to_send(config: CCExecutorConfig) -> dict[str, Any] | None:
    if config.return_json:
        return RETURN_JSON_SCHEMA
    schema = config.json_schema
    if schema is None:
        return None
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def schema_arg(config: CCExecutorConfig) -> str | None:
    schema = schema_to_send(config)
    return None if schema is None else json.dumps(schema, separators=(",", ":"))


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError if `schema` is not a valid JSON schema for an object answer."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if schema.get("type", "object") != "object":
        raise ValueError(
            f"the answer is a JSON object (the CLI's StructuredOutput tool takes one): use "
            f'"type": "object" and put the value in a property, not "type": {schema["type"]!r}'
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON schema: {exc.message}") from None


def _validate_dict(schema: dict[str, Any], raw: Any) -> list[str]:
    from jsonschema.validators import validator_for

    cls = validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    return [f"{_pointer(e.absolute_path)}: {e.message}" for e in errors]


def _pointer(path: Any) -> str:
    parts = [str(p) for p in path]
    return "/" + "/".join(parts) if parts else "(root)"


def check(
    config: CCExecutorConfig,
    answer: Any,
    last_attempt: Any,
    changes: FileChanges,
    execution_uuid: str,
) -> StructuredCheck:
    """Check the CLI's `structured_output` (`answer`) against what the config asked for.

    `last_attempt` is the input of the model's last `StructuredOutput` call, kept
    as `raw` when the CLI passed no answer on (it rejected them all, or none came).
    """
    if answer is None:
        return StructuredCheck(
            raw=last_attempt,
            errors=[
                "no structured output: the model never called StructuredOutput with an "
                "answer the CLI accepted"
            ],
        )
    schema = config.json_schema
    if config.return_json:
        errors = _validate_dict(RETURN_JSON_SCHEMA, answer)
        if errors:
            return StructuredCheck(raw=answer, errors=errors)
        value = {
            "result": answer["result"],
            "summary": answer["summary"],
            "files_created": list(changes.created),
            "files_modified": list(changes.modified),
            "execution_uuid": execution_uuid,
        }
        return StructuredCheck(raw=answer, value=value)
    if isinstance(schema, dict):
        errors = _validate_dict(schema, answer)
        return StructuredCheck(raw=answer, value=None if errors else answer, errors=errors)
    assert schema is not None and issubclass(schema, BaseModel)
    try:
        return StructuredCheck(raw=answer, value=schema.model_validate(answer))
    except ValidationError as exc:
        errors = [f"{_pointer(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        return StructuredCheck(raw=answer, errors=errors)
