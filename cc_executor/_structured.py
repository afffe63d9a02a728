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

import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from referencing import Registry

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
    """Raise ValueError if `schema` is not a valid, fully resolvable JSON schema for an
    object answer.

    Every `$ref` (and `$dynamicRef` / `$recursiveRef`) must point inside the schema
    itself, or to a metaschema bundled with `jsonschema`: a `$ref` to a missing `$defs`
    entry, or to any other document (``https://…``, ``file:…``, ``other.json``), is
    refused here, so nothing schema-related can fail after a paid run. Nothing is ever
    fetched: the registry's retrieve function refuses every URI.
    """
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if schema.get("type", "object") != "object":
        raise ValueError(
            f"the answer is a JSON object (the CLI's StructuredOutput tool takes one): use "
            f'"type": "object" and put the value in a property, not "type": {schema["type"]!r}'
        )
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON schema: {exc.message}") from None
    _check_refs(schema, cls)


class _RemoteRefRefused(LookupError):
    """Raised by the registry's retrieve function: cc_executor never fetches a schema."""


def _refuse(uri: str) -> Any:
    raise _RemoteRefRefused(uri)


@functools.cache
def _registry() -> Registry[Any]:
    """The metaschemas bundled with jsonschema, and nothing that could be fetched."""
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
    from referencing import Registry

    refusing: Registry[Any] = Registry(retrieve=_refuse)  # type: ignore[call-arg]
    return refusing.combine(REGISTRY)


def _check_refs(schema: dict[str, Any], cls: Any) -> None:
    from referencing import Resource
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import specification_with

    # The dialect the validator class speaks (validator_for read "$schema", if any).
    spec = specification_with(cls.ID_OF(cls.META_SCHEMA) or "")
    root: Resource[Any] = spec.create_resource(schema)
    base = root.id() or ""
    registry = _registry().with_resource(base, root).crawl()
    pending = [(root, registry.resolver(base_uri=base))]
    while pending:
        resource, resolver = pending.pop()
        resolver = resolver.in_subresource(resource)
        contents = resource.contents
        if isinstance(contents, dict):
            for key in ("$ref", "$dynamicRef", "$recursiveRef"):
                ref = contents.get(key)
                if not isinstance(ref, str):
                    continue
                try:
                    resolver.lookup(ref)
                except Unresolvable as exc:
                    remote = _caused_by_refusal(exc)
                else:
                    continue
                if remote:
                    raise ValueError(
                        f"{key} {ref!r} points outside the schema, and cc_executor never "
                        "fetches schemas (no network or file access): copy the referenced "
                        'schema under "$defs" and refer to it as "#/$defs/<name>"'
                    )
                raise ValueError(
                    f"{key} {ref!r} points to nothing in the schema: add the definition "
                    'it names (under "$defs") or fix the reference'
                )
        pending.extend((sub, resolver) for sub in resource.subresources())


def _caused_by_refusal(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _RemoteRefRefused):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _validate_dict(schema: dict[str, Any], raw: Any) -> list[str]:
    """What is wrong with `raw` against `schema`, one line each. Never raises: a schema
    that cannot be applied is reported as a problem of the answer's check."""
    from jsonschema.validators import validator_for

    try:
        cls = validator_for(schema)
        validator = cls(schema, format_checker=cls.FORMAT_CHECKER, registry=_registry())
        errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
        return [f"{_pointer(e.absolute_path)}: {e.message}" for e in errors]
    except Exception as exc:  # e.g. a reference the config check let through
        return [f"(schema): the answer could not be checked: {type(exc).__name__}: {exc}"]


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
    except Exception as exc:  # a validator of the caller's model raised something else
        return StructuredCheck(
            raw=answer, errors=[f"(root): {schema.__name__} raised {type(exc).__name__}: {exc}"]
        )
