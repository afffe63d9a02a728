"""`CCExecutorConfig`: every option of a run, validated once, frozen.

Defaults are safe for an unattended run: the agent may edit files inside `cwd`
(`permission_mode="acceptEdits"`) and nothing more; a denied tool fails the
task; every process the task started is ended when it ends. Anything that
widens what the agent may do is an option the caller writes down.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ._structured import check_schema
from .errors import ConfigError

__all__ = [
    "CCExecutorConfig",
    "Effort",
    "MetadataValue",
    "PermissionMode",
    "RetryBackoff",
    "SettingSource",
    "check_prompt",
    "check_text",
    "project_folder_name",
    "project_records_dir",
    "records_home",
]

PermissionMode = Literal[
    "acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "manual", "plan"
]

SettingSource = Literal["user", "project", "local"]
"""A settings file set the CLI may load: ``~/.claude/settings.json`` and ``~/.claude/CLAUDE.md``
(user), ``.claude/settings.json`` and ``CLAUDE.md`` of the project (project),
``.claude/settings.local.json`` (local)."""

Effort = Literal["low", "medium", "high", "xhigh", "max"]

MetadataValue = StrictStr | StrictInt | StrictFloat | StrictBool
"""A `metadata` value: text, a number or a boolean (stored as JSON)."""

# Flags the library sets itself; passing them through extra_args would break parsing.
_RESERVED_FLAGS = frozenset(
    {
        "-p",
        "--print",
        "--output-format",
        "--input-format",
        "--verbose",
        "--include-partial-messages",
    }
)


class RetryBackoff(BaseModel):
    """Waits between attempts after a transient failure: `initial` seconds, doubling
    each retry up to `max`, plus a random 0..`jitter` seconds.

    `retry_backoff=` also takes a number (the initial wait) or a tuple
    `(initial, max, jitter)`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial: Annotated[float, Field(ge=0)] = 5.0
    max: Annotated[float, Field(ge=0)] = 120.0
    jitter: Annotated[float, Field(ge=0)] = 1.0

    @model_validator(mode="before")
    @classmethod
    def _simple_forms(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"initial": data, "max": max(float(data), 120.0)}
        if isinstance(data, (tuple, list)):
            if len(data) != 3:
                raise ValueError("give (initial, max, jitter) in seconds, e.g. (5, 120, 1)")
            return dict(zip(("initial", "max", "jitter"), data, strict=True))
        return data

    @model_validator(mode="after")
    def _max_not_below_initial(self) -> RetryBackoff:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max:g}) must be >= initial ({self.initial:g})")
        return self


Callback = Callable[..., Any]


class CCExecutorConfig(BaseModel):
    """Options of one Claude Code run.

    Any field can also be passed as a keyword to `cc_execute`, `cc_run` and
    `cc_stream`, overriding the value in `config`. An unknown name or a bad value
    raises `ConfigError` naming the field and what it accepts.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        arbitrary_types_allowed=True,
    )

    # -- time limits --
    timeout: Annotated[float, Field(gt=0)] | Literal["auto"] = Field(
        3600.0,
        description=(
            'Total seconds before the task is ended; "auto" predicts it from the history of '
            "similar tasks (else the agent, else a heuristic)."
        ),
    )
    idle_timeout: float | None = Field(
        900.0, gt=0, description="Seconds without any output line before the task is ended."
    )
    kill_grace: float = Field(
        5.0,
        ge=0,
        description="Seconds between SIGTERM (the CLI ends its own tools) and SIGKILL of the tree.",
    )
    result_exit_grace: float = Field(
        3.0, ge=0, description="Seconds the CLI may take to exit after printing its result."
    )

    # -- what runs, where --
    cli_path: Path | None = Field(
        None, description="The `claude` executable; else $CC_EXECUTOR_CLI, else `claude` on PATH."
    )
    cwd: Path | None = Field(None, description="Working directory of the task (default: current).")
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables merged over the inherited environment."
    )

    # -- the model and the agent --
    model: str | None = None
    fallback_model: str | tuple[str, ...] | None = Field(
        None, description="One model, or several in order (`--fallback-model a,b`)."
    )
    permission_mode: PermissionMode = "acceptEdits"
    allowed_tools: tuple[str, ...] | None = None
    disallowed_tools: tuple[str, ...] | None = None
    max_turns: int | None = Field(None, ge=1)
    max_budget_usd: float | None = Field(None, gt=0)
    system_prompt: str | None = None
    append_system_prompt: str | None = None
    mcp_config: str | Path | dict[str, Any] | None = Field(
        None, description="Path to an MCP config file, a JSON string, or a dict."
    )
    add_dirs: tuple[Path, ...] = ()
    resume: str | None = Field(None, description="Session id to resume (`--resume=<id>`).")
    continue_conversation: bool = Field(
        False, description="Continue the most recent session in cwd (`--continue`)."
    )
    fork_session: bool = Field(
        False,
        description="With resume/continue_conversation: a new session id (`--fork-session`).",
    )
    session_id: str | None = Field(
        None, description="The new session's id, a UUID (`--session-id=<uuid>`)."
    )
    setting_sources: tuple[SettingSource, ...] = Field(
        (),
        description=(
            "Settings files the CLI loads (`--setting-sources=user,project,local`). "
            "Default (): none, as the Agent SDK: a run does not depend on the machine's "
            "~/.claude (hooks, permissions, CLAUDE.md, env)."
        ),
    )
    settings: str | Path | dict[str, Any] | None = Field(
        None,
        description="Settings for this run: a dict, a JSON text or a file (`--settings`).",
    )
    agents: dict[str, dict[str, Any]] | None = Field(
        None,
        description=("Subagents by name, each {description, prompt, tools?, model?} (`--agents`)."),
    )
    tools: Literal["default"] | tuple[str, ...] | None = Field(
        None,
        description='Built-in tools offered at all (`--tools=`): names, () for none, "default".',
    )
    effort: Effort | None = Field(None, description="Effort level (`--effort`).")
    max_thinking_tokens: int | None = Field(
        None, ge=0, description="Thinking token budget (`--max-thinking-tokens`)."
    )
    plugins: tuple[Path, ...] = Field(
        (),
        description=(
            'Local plugins: folders (or .zip), or {"type": "local", "path": ...} '
            "(`--plugin-dir` each)."
        ),
    )
    strict_mcp_config: bool = Field(
        False, description="Use only the MCP servers given here (`--strict-mcp-config`)."
    )
    mcp_servers: dict[str, dict[str, Any]] | str | Path | None = Field(
        None,
        description=(
            "MCP servers by name ({name: {command, args, env} | {type, url, headers}}), "
            "or an MCP config file / JSON text (`--mcp-config`)."
        ),
    )
    extra_args: tuple[str, ...] = Field((), description="More CLI flags, passed as given.")

    # -- what the library does around the run --
    stream_output: bool = Field(
        False,
        validation_alias=AliasChoices("stream_output", "stream"),
        description="Print a live view (text, tool calls, retries, cost) to stderr.",
    )
    save_transcript: bool = True
    transcript_dir: Path | None = Field(
        None,
        description=(
            "Transcript folder: default $CC_EXECUTOR_TRANSCRIPT_DIR, else the project's "
            "records folder (see `records_home`) / transcripts."
        ),
    )
    on_permission_denied: Literal["fail", "warn"] = "fail"
    metadata: dict[str, MetadataValue] = Field(
        default_factory=dict,
        description=(
            "Your labels for the task ({name: text, number or bool}): kept in the history, "
            "journal and transcript header, given to callbacks; filter and sum cost by them."
        ),
    )

    # -- execution history and timeout prediction (state_dir: see task lists) --
    history_url: str | None = Field(
        None, description='Redis URL ("redis://host:6379/0") for a shared history, else SQLite.'
    )
    record_history: bool = Field(True, description="Record every finished task in the history.")
    history_max_per_class: int = Field(
        100, ge=1, description="Newest records kept per prompt class; older ones are dropped."
    )
    agent_predict_timeout: bool = Field(
        False,
        description='With timeout="auto" and no usable history: ask Claude for an estimate.',
    )
    auto_timeout_min: float = Field(60.0, gt=0, description='Lower bound of a "auto" timeout.')
    auto_timeout_max: float = Field(3600.0, gt=0, description='Upper bound of a "auto" timeout.')
    keep_background_processes: bool = Field(
        False,
        description=(
            "Let processes a task left running in the background outlive it "
            "(after a normal exit only; timeouts and cancellation always end them)."
        ),
    )

    # -- structured answers and file changes --
    return_json: bool = Field(
        False,
        description=(
            "Answer as {result, summary, files_created, files_modified, execution_uuid}: "
            "the model gives result and summary, the library the rest."
        ),
    )
    json_schema: dict[str, Any] | type[BaseModel] | None = Field(
        None,
        description="A JSON schema (dict) or a pydantic model class the answer must match.",
    )
    snapshot_files: bool | Literal["auto", "git", "walk"] = Field(
        True,
        description=(
            "Record cwd and add_dirs before and after the run to find the files it "
            "created, modified and deleted, and the diff: True / 'auto' — with git where "
            "a root is in a git work tree (and TaskResult.diff), else by walking it; "
            "'git' — the same, warning when git cannot follow a root; 'walk' — always "
            "walk (no diff); False — from the file tools' calls only."
        ),
    )
    snapshot_ignore: tuple[str, ...] = Field(
        (".git", "node_modules", "__pycache__", ".venv"),
        description="File or directory names (globs allowed) the snapshot skips; .git always.",
    )

    # -- task lists; state_dir also holds the SQLite execution history --
    state_dir: Path | None = Field(
        None,
        description=(
            "Folder of the embedded state file state.db (task-list journal and SQLite "
            "history); None keeps neither. Not given: the project's records folder, "
            "<records_home()>/projects/<cwd as a folder name>, resolved when the config is "
            "built."
        ),
    )
    max_total_cost_usd: float | None = Field(
        None, gt=0, description="No step of a list starts once its steps cost this much."
    )
    max_total_duration: float | None = Field(
        None, gt=0, description="No step of a list starts after this many seconds."
    )
    isolation: Literal["none", "worktree", "copy"] = Field(
        "none",
        description=(
            "Task lists: where each step works. none: in cwd, shared; worktree: its own git "
            "worktree and branch, merged at the end (cwd in a git repository); copy: its own "
            "copy of cwd, nothing merged back. See docs/graphs.md."
        ),
    )
    isolation_merge: Literal["auto", "branch"] = Field(
        "auto",
        description=(
            'isolation="worktree": on success merge the final state into the checked-out '
            "branch (auto) or leave it on the branch cc-executor/<run_id>/result (branch)."
        ),
    )
    prestart: bool = Field(
        True,
        description=(
            "Task lists: spawn the next step's CLI while a step runs; it waits for its prompt "
            "(~120-240 MB while idle) and is used only if nothing it read at start changed. "
            "A single call never pre-starts. False on a step: that step is not pre-started."
        ),
    )
    mcp_prestart_pool: int = Field(
        0,
        ge=0,
        le=8,
        description=(
            "MCP server: CLIs kept pre-started for execute_task calls with the server's "
            "options (each ~120 MB while idle); 0 keeps none."
        ),
    )

    # -- failures and retries --
    num_retries: int = Field(
        2, ge=0, description="Retries after a transient failure (0: one attempt only)."
    )
    retry_backoff: RetryBackoff = Field(
        default_factory=RetryBackoff,
        description="Wait between attempts: RetryBackoff, a number, or (initial, max, jitter).",
    )
    retry_strategy: Literal["resume", "restart"] = Field(
        "resume",
        description="resume: continue the failed attempt's session (--resume); restart: anew.",
    )
    max_limit_wait: float = Field(
        6 * 3600.0,
        ge=0,
        description="Longest wait for a rate or usage limit's reset before failing.",
    )
    cli_max_retries: int | None = Field(
        3,
        ge=0,
        description="CLAUDE_CODE_MAX_RETRIES for the CLI's own API retries; None: its default.",
    )
    success_callback: tuple[Callback, ...] = Field(
        (), description="Called (sync or async) with the TaskResult of each successful task."
    )
    failure_callback: tuple[Callback, ...] = Field(
        (), description="Called (sync or async) with the TaskResult of each failed task."
    )
    on_event: Callback | None = Field(
        None, description="Called (sync or async) with every typed event, RetryEvent included."
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc) from None

    @field_validator("extra_args")
    @classmethod
    def _no_reserved_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arg in value:
            flag = arg.split("=", 1)[0]
            if flag in _RESERVED_FLAGS:
                raise ValueError(
                    f"{flag} is set by cc_executor itself (it reads stream-json); remove it"
                )
        return value

    @field_validator("system_prompt", "append_system_prompt")
    @classmethod
    def _readable_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            check_text(value, str(info.field_name))
        return value

    @field_validator("session_id", "resume")
    @classmethod
    def _session_ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if not value.strip() or value != value.strip() or "\0" in value:
            raise ValueError("give a session id (no spaces around it), or None")
        if info.field_name == "session_id":
            try:
                uuid.UUID(value)
            except ValueError:
                raise ValueError("the CLI takes a UUID here, e.g. str(uuid.uuid4())") from None
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "default":
            raise ValueError(
                'give a list of built-in tool names (["Read", "Edit"]), [] for none, or "default"'
            )
        return value

    @field_validator("agents")
    @classmethod
    def _agent_definitions(
        cls, value: dict[str, dict[str, Any]] | None
    ) -> dict[str, dict[str, Any]] | None:
        for name, agent in (value or {}).items():
            missing = [k for k in ("description", "prompt") if not isinstance(agent.get(k), str)]
            if not name.strip() or missing:
                raise ValueError(
                    f"agent {name!r} needs a non-empty name, a description and a prompt "
                    'as text: {"reviewer": {"description": "Reviews code", "prompt": "You ..."}}'
                )
        return value

    @field_validator("plugins", mode="before")
    @classmethod
    def _plugin_paths(cls, value: Any) -> Any:
        if isinstance(value, (str, Path, dict)):
            value = [value]
        out = []
        for plugin in value or ():
            if isinstance(plugin, dict):
                if plugin.get("type", "local") != "local" or "path" not in plugin:
                    raise ValueError(
                        f"{plugin!r}: only local plugins, as a path or "
                        '{"type": "local", "path": "..."}'
                    )
                plugin = plugin["path"]
            path = Path(plugin).expanduser().absolute()
            if not path.exists():
                raise ValueError(f"plugin {str(path)!r} does not exist; give its folder or .zip")
            out.append(path)
        return tuple(out)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_shape(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("give a dict of name → text, number or bool, e.g. {'team': 'ml'}")
        for key, item in value.items():
            if not isinstance(key, str) or not key.strip():
                raise ValueError(f"metadata names must be non-empty text, not {key!r}")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"metadata[{key!r}] is {item}: not JSON; give a finite number")
            if not isinstance(item, (str, int, float, bool)):
                raise ValueError(
                    f"metadata[{key!r}] is a {type(item).__name__}: give text, a number or a "
                    "bool (stored as JSON, filtered by equality)"
                )
        return value

    @model_validator(mode="after")
    def _session_options(self) -> CCExecutorConfig:
        if self.fork_session and not (self.resume or self.continue_conversation):
            raise ConfigError(
                "fork_session=True forks an existing session: also give resume=<session id> "
                "or continue_conversation=True",
                field="fork_session",
            )
        if self.mcp_servers is not None and self.mcp_config is not None:
            raise ConfigError(
                "mcp_servers and mcp_config both given: give the servers once, in "
                "mcp_servers (the Agent SDK's name) — a {name: server} dict or a file",
                field="mcp_servers",
            )
        if self.session_id and self.retry_strategy == "restart" and self.num_retries:
            raise ConfigError(
                "session_id with retry_strategy='restart': a retry would start a new "
                "session under the same id, which the CLI refuses. Use "
                "retry_strategy='resume' or num_retries=0",
                field="session_id",
            )
        return self

    @field_validator("fallback_model")
    @classmethod
    def _fallback_names(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(value, str) and not value.strip():
            raise ValueError("give a model name, or a list of them")
        if isinstance(value, tuple) and (
            not value or any(not n.strip() or "," in n for n in value)
        ):
            raise ValueError("give a list of model names, none empty or holding a comma")
        return value

    @field_validator("success_callback", "failure_callback", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if callable(value) else value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_number_or_auto(cls, value: Any) -> Any:
        if value == "auto":
            return value
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = float("nan")
        if isinstance(value, bool) or not seconds > 0:
            raise ValueError('must be a number of seconds > 0 or "auto"')
        return seconds

    @field_validator("auto_timeout_max")
    @classmethod
    def _bounds_ordered(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("auto_timeout_min")
        if low is not None and value < low:
            raise ValueError(f"must be >= auto_timeout_min ({low:g}); raise it or lower the min")
        return value

    @field_validator("history_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError('must be a Redis URL like "redis://127.0.0.1:6379/0" (or None)')
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"invalid environment variable name {name!r}")
        return value

    @field_validator("json_schema", mode="before")
    @classmethod
    def _schema_kind(cls, value: Any) -> Any:
        if value is None or isinstance(value, dict):
            if value is not None:
                check_schema(value)
            return value
        if isinstance(value, type) and issubclass(value, BaseModel):
            try:
                schema = value.model_json_schema()
            except Exception as exc:  # pydantic's own errors for types it cannot describe
                raise ValueError(
                    f"{value.__name__} has no JSON schema: {type(exc).__name__}: {exc}"
                ) from None
            check_schema(schema)
            return value
        raise ValueError(
            "json_schema takes a JSON schema as a dict or a pydantic model class "
            f"(a subclass of pydantic.BaseModel), not {type(value).__name__}"
        )

    @field_validator("snapshot_files", mode="before")
    @classmethod
    def _file_changes_mode(cls, value: Any) -> Any:
        if isinstance(value, bool) or value in ("auto", "git", "walk"):
            return value
        raise ValueError(
            f"snapshot_files takes True (or 'auto': git in a git work tree, else a walk), "
            f"'git', 'walk' or False (file tool calls only), not {value!r}"
        )

    @field_validator("snapshot_ignore")
    @classmethod
    def _ignore_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or "/" in name or os.sep in name:
                raise ValueError(
                    f"{name!r} is not a file or directory name; give names or glob patterns "
                    "such as 'build' or '*.log' (matched at any depth)"
                )
        return value

    @field_validator("return_json", "json_schema")
    @classmethod
    def _one_answer_form(cls, value: Any, info: ValidationInfo) -> Any:
        if not value:
            return value
        if info.field_name == "json_schema" and info.data.get("return_json"):
            raise ValueError(
                "return_json=True and json_schema= both given: choose one (return_json is the "
                "built-in schema {result, summary} plus the files; json_schema is your own)"
            )
        if any(arg.split("=", 1)[0] == "--json-schema" for arg in info.data.get("extra_args", ())):
            raise ValueError(
                f"--json-schema in extra_args conflicts with {info.field_name}; "
                "remove it from extra_args"
            )
        return value

    @model_validator(mode="after")
    def _default_state_dir(self) -> CCExecutorConfig:
        # Not given (None given means none): the project's folder in the per-user records.
        if "state_dir" not in self.model_fields_set:
            object.__setattr__(self, "state_dir", project_records_dir(self.task_cwd()))
        return self

    def task_cwd(self) -> Path:
        """The task's working directory, resolved: `cwd`, else the current directory."""
        try:
            return (self.cwd or Path.cwd()).expanduser().resolve()
        except OSError as exc:  # the current directory was removed
            raise ConfigError(
                f"cannot resolve the task's working directory: {exc}; pass cwd=",
                field="cwd",
            ) from exc

    def with_overrides(self, **overrides: Any) -> CCExecutorConfig:
        """A copy with `overrides` applied and validated (ConfigError on a bad one)."""
        if not overrides:
            return self
        unknown = [k for k in overrides if k not in _ACCEPTED_NAMES]
        if unknown:
            raise unknown_option_error(unknown[0])
        values: dict[str, Any] = {name: getattr(self, name) for name in self.model_fields_set}
        if "stream" in overrides:
            overrides["stream_output"] = overrides.pop("stream")
        values.update(overrides)
        return CCExecutorConfig(**values)

    def resolved_transcript_dir(self) -> Path:
        """Where this config's runs write transcripts: `transcript_dir`, else
        $CC_EXECUTOR_TRANSCRIPT_DIR, else `<project records folder>/transcripts`."""
        return self.given_transcript_dir() or project_records_dir(self.task_cwd()) / "transcripts"

    def given_transcript_dir(self) -> Path | None:
        """`transcript_dir`, else $CC_EXECUTOR_TRANSCRIPT_DIR, made absolute; None when
        neither is set (the default layout, `<records_home()>/projects/*/transcripts`).
        A transcript must be under it (or that layout) to be trusted: `verify_execution`,
        `cc-execute show`."""
        given = self.transcript_dir or os.environ.get("CC_EXECUTOR_TRANSCRIPT_DIR")
        return Path(given).expanduser().absolute() if given else None

    def fallback_model_arg(self) -> str | None:
        if isinstance(self.fallback_model, tuple):
            return ",".join(self.fallback_model)
        return self.fallback_model

    def mcp_config_arg(self) -> str | None:
        """The value of ``--mcp-config``: from `mcp_servers` (a {name: server} dict becomes
        ``{"mcpServers": {...}}``) or `mcp_config`; JSON text or a file's path."""
        if isinstance(self.mcp_servers, dict):
            return json.dumps({"mcpServers": self.mcp_servers})
        given = self.mcp_config if self.mcp_servers is None else self.mcp_servers
        if given is None:
            return None
        if isinstance(given, dict):
            return json.dumps(given)
        return str(given)


def check_prompt(prompt: str, field: str = "task") -> None:
    """Raise `ConfigError` for a prompt the CLI cannot take: empty or blank (the CLI exits
    with "Input must be provided"), or holding a lone UTF-16 surrogate (not encodable as
    UTF-8; the position is named)."""
    if not prompt.strip():
        raise ConfigError(
            f"{field} is {'empty' if not prompt else 'blank (only whitespace)'}: the CLI needs "
            "a prompt. Give the task text.",
            field=field,
        )
    check_text(prompt, field)


def check_text(text: str, field: str) -> None:
    """Raise `ConfigError` if `text` holds a lone surrogate (U+D800–U+DFFF), naming where."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{field} holds a lone surrogate U+{ord(text[exc.start]):04X} at character "
            f"{exc.start} (of {len(text)}), which is not text the CLI can read: usually half "
            "of an emoji cut from a UTF-16 pair, or bytes decoded with "
            "errors='surrogateescape'. Remove it, or decode the source correctly "
            "(text.encode('utf-8', 'replace').decode() replaces it with '?').",
            field=field,
        ) from None


_ACCEPTED_NAMES = frozenset(CCExecutorConfig.model_fields) | {"stream"}

HOME_VAR = "CC_EXECUTOR_HOME"
_PROJECT_NAME_MAX = 200


def records_home() -> Path:
    """The per-user folder of cc_executor's records: $CC_EXECUTOR_HOME, else the
    platform's user state directory (``~/.local/state/cc_executor`` on Linux,
    ``~/Library/Application Support/cc_executor`` on macOS), from `platformdirs`.

    Outside every project, so an agent editing its project cannot reach its own
    records (transcripts, state.db) by listing its working directory.
    """
    home = os.environ.get(HOME_VAR)
    if home:
        return Path(home).expanduser().absolute()
    import platformdirs  # only when a default location is needed: `import cc_executor` stays lean

    return Path(platformdirs.user_state_dir("cc_executor", appauthor=False))


def project_folder_name(cwd: Path) -> str:
    """The folder name of project `cwd` (an absolute path), as Claude Code names its own
    project folders (``~/.claude/projects/-work-foo``): every character other than an
    ASCII letter or digit becomes ``-``. A name longer than 200 characters keeps its first
    200 and gains ``-`` and a hash of the whole path, so it stays unique and short."""
    name = re.sub(r"[^A-Za-z0-9]", "-", str(cwd))
    if len(name) > _PROJECT_NAME_MAX:
        digest = hashlib.sha256(str(cwd).encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = f"{name[:_PROJECT_NAME_MAX]}-{digest}"
    return name


def project_records_dir(cwd: Path) -> Path:
    """`<records_home()>/projects/<project_folder_name(cwd)>`: the default `state_dir`;
    its `transcripts` folder is the default transcript dir."""
    return records_home() / "projects" / project_folder_name(cwd)


def unknown_option_error(name: str, valid: Iterable[str] = _ACCEPTED_NAMES) -> ConfigError:
    """`ConfigError(field=name)` naming the 3 options of `valid` (the names accepted in that
    place) closest to `name`, closest first: "Unknown option 'timout'. Did you mean
    'timeout', 'idle_timeout' or 'max_turns'?" """
    close = [repr(c) for c in difflib.get_close_matches(name, sorted(valid), n=3, cutoff=0)]
    hint = f" Did you mean {', '.join(close[:-1])} or {close[-1]}?" if len(close) > 1 else ""
    if len(close) == 1:
        hint = f" Did you mean {close[0]}?"
    return ConfigError(f"Unknown option {name!r}.{hint}", field=name)


def config_error(exc: ValidationError) -> ConfigError:
    """Turn pydantic's ValidationError into a ConfigError naming the first bad field."""
    err = exc.errors(include_url=False)[0]
    given = err.get("ctx", {}).get("error")
    if isinstance(given, ConfigError):  # a check across fields that names its own field
        return given
    name = ".".join(str(p) for p in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        return unknown_option_error(name)
    lines = [f"Invalid value for {_problem(err)}."]
    # The others in the same words (pydantic's own text repeats the first and adds URLs).
    lines += [f"Also {_problem(e)}." for e in exc.errors(include_url=False)[1:]]
    return ConfigError(" ".join(lines), field=name.split(".")[0])


def _problem(err: Any) -> str:
    """`'field': what is wrong (got value)` for one pydantic error."""
    name = ".".join(str(p) for p in err["loc"]) or "config"
    if err["type"] == "extra_forbidden":
        return f"{name!r}: not an option"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "tuple_type":  # a tuple field: the user writes a list
        msg = msg.replace("a valid tuple", "a list")
    return f"{name!r}: {msg} (got {err.get('input')!r})"
