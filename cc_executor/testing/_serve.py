"""`cc-execute scripted-model [SCRIPT]`: the scripted Messages API as a command.

Serves `ScriptedModel` on 127.0.0.1 in the foreground until SIGTERM, SIGINT or SIGHUP,
and prints, once it listens, the ``export NAME=value`` lines that point any
``claude`` or ``cc-execute`` started from that shell at it. Everything else
goes to stderr, so the standard output can be sourced as is.

A SCRIPT is a YAML or JSON list of turns, each a mapping with one key named
after the `cc_executor.testing` function that builds it::

    - tool_use: {name: Write, input: {file_path: hello.py, content: "print(1)\\n"}}
    - text: Created hello.py
    - tool_uses: [{name: Read, input: {file_path: a.txt}}, {name: Read, input: {file_path: b.txt}}]
    - structured_output: {language: python, files: 2}
    - http_error: 529                     # or {status: 429, retry_after: 1, times: 2}
    - hang: 30                            # or null: never answer
    - big_text: 0.5                       # megabytes
    - text: {text: slowly, chunks: 3, delay: 0.2}

A mapping value gives the function's keyword arguments (except for
``structured_output``, whose value is the data, and ``tool_uses``, a list of
``{name, input}``); any other value is its one positional argument. The file
may also be a mapping with the list under ``turns``. Without a SCRIPT every
request gets a short text answer.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from ._server import ScriptedModel
from ._turns import (
    TextTurn,
    Turn,
    big_text,
    hang,
    http_error,
    structured_output,
    text,
    tool_use,
    tool_uses,
)

__all__ = ["load_script", "serve", "shell_env"]

_BUILDERS: Mapping[str, Callable[..., Turn]] = {
    "text": text,
    "tool_use": tool_use,
    "tool_uses": tool_uses,
    "structured_output": structured_output,
    "http_error": http_error,
    "hang": hang,
    "big_text": big_text,
}

# What `ScriptedModel.env` sets besides HOME: a shell keeps its own HOME, and
# the CLI gets a fresh configuration folder instead.
_SHELL_VARS = (
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)


def load_script(path: Path) -> list[Turn]:
    """The turns of a YAML/JSON script file (see the module docstring).

    Raises:
        ValueError: the file cannot be read, or an item is not a known turn; the
            message names the item (1-based) and the valid turn names.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: not a readable YAML/JSON script: {exc}") from None
    if isinstance(data, dict) and set(data) == {"turns"}:
        data = data["turns"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: a script is a list of turns (or a mapping with `turns:`)")
    return [_turn(item, f"{path}: turn {n}") for n, item in enumerate(data, 1)]


def _turn(item: Any, where: str) -> Turn:
    names = ", ".join(_BUILDERS)
    if not isinstance(item, dict) or len(item) != 1:
        raise ValueError(f"{where}: give one of {names} as the only key, e.g. `- text: Hello`")
    [(name, value)] = item.items()
    build = _BUILDERS.get(name)
    if build is None:
        raise ValueError(f"{where}: unknown turn {name!r}; the turns are {names}")
    try:
        if name == "structured_output" or not isinstance(value, (dict, list)):
            return build(value)
        if name == "tool_uses":
            calls = [(c["name"], c.get("input", {})) for c in value]
            return build(calls)
        if isinstance(value, dict):
            return build(**value)
        return build(value)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ValueError(f"{where} ({name}): {exc}") from None


class _AnswerEveryRequest(ScriptedModel):
    """No script: every main request gets a short, numbered text answer; one that offers
    the ``StructuredOutput`` tool (``--json``, ``--schema``) gets a call of it with the
    smallest answer its schema accepts, strings holding that text."""

    def _next_turn(self, body: Any = None) -> tuple[Turn, bool]:
        turn, exhausted = super()._next_turn(body)
        if not exhausted:
            return turn, False
        n = len(self.main_requests) + 1
        answer = f"Hello from the scripted model (answer {n}); no real model was asked."
        tools = body.get("tools") if isinstance(body, dict) else None
        for tool in tools if isinstance(tools, list) else []:
            if isinstance(tool, dict) and tool.get("name") == "StructuredOutput":
                schema = tool.get("input_schema") or {}
                return structured_output(_smallest(schema, schema, answer)), False
        return TextTurn(text=answer), False


def _smallest(schema: Any, root: Any, text: str) -> Any:
    """The smallest value `schema` accepts, for the common keywords (no pattern/format)."""
    if not isinstance(schema, dict):
        return text
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _smallest(target, root, text)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _smallest(schema[key][0], root, text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {k: _smallest(properties.get(k, {}), root, text) for k in schema.get("required", [])}
    if kind == "array":
        return [_smallest(schema.get("items", {}), root, text)] * schema.get("minItems", 0)
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    return {"boolean": False, "null": None}.get(kind, text)


def shell_env(model: ScriptedModel, config_dir: Path) -> dict[str, str]:
    """The variables a shell exports to send `claude` runs to `model`: `ScriptedModel.env`
    without HOME (the shell keeps its own), with a fresh ``CLAUDE_CONFIG_DIR``."""
    env = model.env()
    return {
        **{name: env[name] for name in _SHELL_VARS},
        "CLAUDE_CONFIG_DIR": str(config_dir),
    }


def serve(
    script: Path | None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Serve until SIGTERM, SIGINT or SIGHUP (the terminal closed); returns the exit status
    (0: stopped by a signal), the config folder and the HOMEs handed out removed.

    Raises `ValueError` for a bad script, before anything listens or is printed.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    turns = load_script(script) if script is not None else None
    stop = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    # Blocked before the server thread starts, so the signals wait for sigwait below
    # (the thread inherits the mask) instead of interrupting a request.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    model = ScriptedModel(turns) if turns is not None else _AnswerEveryRequest()
    config_dir = Path(tempfile.mkdtemp(prefix="cc-scripted-config-"))
    try:
        model.start()
        env = shell_env(model, config_dir)
        lines = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        stdout.write(lines)  # one write: a reader of the file sees all of it or nothing
        stdout.flush()
        what = f"{len(turns)} turn(s) from {script}" if turns is not None else "a short text"
        print(
            f"scripted model on {model.url}: answers {what}; the export lines above point "
            f"`claude` and `cc-execute` at it. Stop it with Ctrl-C or kill {os.getpid()}.",
            file=stderr,
            flush=True,
        )
        received = signal.sigwait(stop)
        print(
            f"scripted model stopped ({signal.Signals(received).name}); "
            f"{len(model.main_requests)} main request(s) answered",
            file=stderr,
            flush=True,
        )
        return 0
    finally:
        model.close()
        shutil.rmtree(config_dir, ignore_errors=True)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
