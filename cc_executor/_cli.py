"""`cc-execute`: the command line (Typer for the arguments, Rich for the output).

Subcommands: `run`, `list`, `doctor`, `history`, `show`, `demo`, `scripted-model`, `mcp`,
`prompt`, `ui`, `worker`. Each is a
function decorated with `@app.command()`; adding one is that function and, if
it can fail, an `exit_code_for` of its error. Exit codes come from one table,
`EXIT_CODES`, through one function, `exit_code_for`, and the `--help` text is
built from the same table.

Only the `cc-execute` script imports this module: `import cc_executor` loads
neither Typer nor Rich.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import shlex
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from ._help import placeholders_in_words
from ._log import log_to_stderr
from ._version import __version__
from ._worker_cli import worker_command
from .config import CCExecutorConfig
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    BillingError,
    BudgetExceededError,
    CCExecutorError,
    CLIArgumentError,
    CLINotFoundError,
    ConfigError,
    DependencyFailedError,
    IdleTimeoutError,
    MaxTurnsError,
    MergeConflictError,
    OverloadedError,
    PermissionDeniedError,
    ProcessCrashedError,
    RateLimitError,
    RunLockedError,
    StateStoreError,
    StepSkippedError,
    StructuredOutputError,
    TaskFailedError,
    TaskTimeoutError,
)
from .pipeline import TaskListResult

if TYPE_CHECKING:
    from ._history import HistoryRecord

__all__ = ["EXIT_CODES", "app", "exit_code_for", "main"]

EXIT_CODES: tuple[tuple[int, type[BaseException] | None, str], ...] = (
    (0, None, "success"),
    (1, TaskFailedError, "other failures: a list that did not finish, a failed doctor check"),
    (2, ConfigError, "bad option, argument or input file; nothing ran"),
    (3, CLINotFoundError, "no `claude` CLI found; nothing ran"),
    (4, TaskTimeoutError, "the task ran past --timeout"),
    (5, IdleTimeoutError, "the CLI printed nothing for idle_timeout"),
    (6, ProcessCrashedError, "the CLI exited or was killed without a result"),
    (7, APIError, "the API refused the request (other status, or no connection)"),
    (8, AuthenticationError, "401/403: credentials refused"),
    (9, RateLimitError, "429 or a plan's usage limit"),
    (10, OverloadedError, "529: the API is overloaded"),
    (11, BadRequestError, "400: the request was invalid"),
    (12, MaxTurnsError, "--max-turns reached"),
    (13, BudgetExceededError, "--max-budget / --max-cost reached"),
    (14, PermissionDeniedError, "a tool call was denied"),
    (15, StructuredOutputError, "the JSON answer is missing or invalid"),
    (16, CLIArgumentError, "the CLI refused its arguments or input (see its stderr)"),
    (17, BillingError, "the account cannot pay for the request"),
    (18, StateStoreError, "state.db cannot be read or written (corrupt, disk full, ...)"),
    (19, RunLockedError, "the run id is being run by another call"),
    (20, StepSkippedError, "a step of a task graph never started (the list stopped)"),
    (21, DependencyFailedError, "a step of a task graph was skipped: a dependency failed"),
    (22, MergeConflictError, "isolated steps' work conflicts; nothing was merged"),
    (130, KeyboardInterrupt, "Ctrl-C; every process of the task was ended"),
)
_CODE_OF: dict[type[BaseException], int] = {
    cls: code for code, cls, _ in EXIT_CODES if cls is not None
}


def exit_code_for(error: BaseException | None) -> int:
    """The exit code for `error`: its class's code, or its nearest base class's; 0 for None."""
    if error is None:
        return 0
    for cls in type(error).__mro__:
        if cls in _CODE_OF:
            return _CODE_OF[cls]
    return 1


_EXIT_HELP = "\n".join(
    ["[bold]Exit codes[/bold]"]
    + [
        f"{code:>3}  {cls.__name__ if cls else '-'}: {meaning}".replace("[", "\\[")
        for code, cls, meaning in EXIT_CODES
    ]
)


placeholders_in_words()


def _set_log_level(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> None:
    """-v (INFO), -vv (DEBUG), -q (ERROR only), --log-level NAME: the library's log on
    stderr. The last one given wins; without any, the log stays off."""
    if value is None or value == 0 or value is False:
        return
    if param.name == "verbose":
        level = "DEBUG" if value >= 2 else "INFO"
    else:
        level = "ERROR" if param.name == "quiet" else value
    try:
        log_to_stderr(str(level))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), ctx=ctx) from None


def _logging(
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            show_default=False,
            expose_value=False,
            callback=_set_log_level,
            help="Log what the library does on stderr (-v: INFO, -vv: DEBUG).",
        ),
    ] = 0,
    quiet: Annotated[
        bool,
        typer.Option(
            "-q",
            "--quiet",
            expose_value=False,
            callback=_set_log_level,
            help="Log only errors on stderr.",
        ),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            expose_value=False,
            callback=_set_log_level,
            help="The library's log level on stderr: DEBUG, INFO, WARNING, ERROR, off.",
        ),
    ] = None,
) -> None:
    """Only its parameters are used: the logging options every subcommand takes."""


def _log_options() -> list[Any]:
    options = typer.Typer(add_completion=False)  # as `app`: no completion options
    options.command()(_logging)
    return list(typer.main.get_command(options).params)


class _Group(typer.core.TyperGroup):
    """Adds -v / -q / --log-level to the group and to every subcommand (`mcp` has its own
    --log-level), so they work before or after the subcommand's name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_log_options())
        for name, command in self.commands.items():
            if name != "mcp":
                command.params.extend(_log_options())
            command.help = _unwrapped(command.help)


def _unwrapped(help_text: str | None) -> str | None:
    """A docstring's paragraphs as one line each (Rich markup mode keeps a docstring's
    line breaks, which then break lines mid-sentence at the terminal's width); an
    indented paragraph (a code example, its lines starting with `$ `: Typer removes the
    indentation) keeps its lines."""
    if help_text is None:
        return None
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(
        textwrap.dedent(p) if p.startswith(" ") else " ".join(p.split("\n")) for p in paragraphs
    )


app = typer.Typer(
    cls=_Group,
    name="cc-execute",
    help="Run Claude Code tasks and task lists unattended, and trust what comes back.",
    epilog=_EXIT_HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def main() -> None:
    """The `cc-execute` console script."""
    app(prog_name="cc-execute")


def _version_callback(value: bool) -> None:
    if value:
        print(f"cc-execute (cc_executor) {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Run Claude Code tasks and task lists unattended, and trust what comes back."""


def _fail(
    error: BaseException,
    *,
    as_json: bool = False,
    extra: dict[str, Any] | None = None,
    shown: bool = False,
) -> NoReturn:
    """Report `error` (stderr, or a JSON object on stdout with `as_json`) and exit with its
    code; `shown`: a live view's closing line said the whole message already."""
    code = exit_code_for(error)
    if as_json:
        record = {"error": type(error).__name__, "message": str(error), "exit_code": code}
        print(json.dumps({**record, **(extra or {})}, ensure_ascii=False))
    elif not shown:
        err.print(Text(f"✗ {type(error).__name__}: {error}", style="red"))
        if isinstance(error, PermissionDeniedError) and error.tools:
            # The message names the Python options; say the command's own.
            flags = " ".join(f"--allow-tool {shlex.quote(t)}" for t in error.tools)
            err.print(Text(f"  On the command line: {flags}, or --permission-mode MODE."))
    raise typer.Exit(code)


def _config(**overrides: Any) -> CCExecutorConfig:
    """A config from the options that were given (None: not given)."""
    return CCExecutorConfig(**{k: v for k, v in overrides.items() if v is not None})


def _require_cli(config: CCExecutorConfig) -> None:
    """Fail now (exit 3, the places looked at and the fix) when no `claude` can be found,
    before anything that looks like a run is printed."""
    from ._command import find_cli

    try:
        find_cli(config)
    except CLINotFoundError as exc:
        _fail(exc)


def _timeout(value: str | None) -> float | str | None:
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise ConfigError(
            f'--timeout takes seconds or "auto", got {value!r}', field="timeout"
        ) from None


def _load_schema(path: Path) -> Any:
    """A JSON schema from a .json file (or .yaml / .yml)."""
    import yaml

    try:
        content = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            return yaml.safe_load(content)
        return json.loads(content)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"--schema {path}: not a readable JSON schema: {exc}") from None


# ------------------------------------------------------------------------------ run

_PERMISSION_HELP = "acceptEdits (default), auto, bypassPermissions, default, dontAsk, manual, plan."


@app.command()
def run(
    task: Annotated[
        str,
        typer.Argument(metavar="TASK", help="The task for Claude Code; '-' reads it from stdin."),
    ],
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Answer as JSON (return_json): result, summary, files_created, "
            "files_modified, execution_uuid. A failure prints {error, message, exit_code, …}.",
        ),
    ] = False,
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema",
            metavar="FILE",
            help="A JSON (or YAML) schema file the answer must match; prints it as JSON.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option(metavar="SECONDS", help='Seconds, or "auto" (predicted).')
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="The model, e.g. sonnet or opus.")
    ] = None,
    cwd: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Working directory of the task.", file_okay=False),
    ] = None,
    allow_tool: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-tool", metavar="TOOL", help="Allow a tool (repeatable): Bash, 'Bash(git:*)', …"
        ),
    ] = None,
    permission_mode: Annotated[
        str | None, typer.Option(metavar="MODE", help=_PERMISSION_HELP)
    ] = None,
    max_turns: Annotated[
        int | None, typer.Option(metavar="N", help="Stop after this many turns.")
    ] = None,
    max_budget: Annotated[
        float | None, typer.Option(metavar="USD", help="Stop once the task has cost this many USD.")
    ] = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="A live view of the run on stderr.")
    ] = False,
) -> None:
    """Run one task; print its answer (or its JSON). The exit code says how it ended."""
    from ._api import cc_run, run_blocking

    as_json = json_output or schema is not None
    if task == "-":
        # Bytes that are not UTF-8 stay visible (as surrogates) for the prompt check to name.
        task = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    try:
        config = _config(
            timeout=_timeout(timeout),
            model=model,
            cwd=cwd,
            allowed_tools=allow_tool or None,
            permission_mode=permission_mode,
            max_turns=max_turns,
            max_budget_usd=max_budget,
            stream_output=stream or None,
            json_schema=_load_schema(schema) if schema is not None else None,
            return_json=(json_output and schema is None) or None,
        )
        from ._command import find_cli

        find_cli(config)
        result = run_blocking(cc_run(task, config))
    except KeyboardInterrupt:
        err.print("✗ interrupted: the task's CLI and every process it started were ended")
        raise typer.Exit(130) from None
    except CCExecutorError as exc:  # nothing started: no session, no transcript
        _fail(exc, as_json=as_json, extra={"session_id": None, "transcript_path": None})
    facts = (
        f"{result.num_turns or 0} turn(s) · {result.duration_s:.1f}s · "
        f"${result.total_cost_usd or 0:.4f} · transcript {result.transcript_path or '-'}"
    )
    if result.error is not None:
        if not stream:  # the live view's last line said it already
            err.print(Text(facts, style="dim"))
        from ._display import closing_line

        _fail(
            result.error,
            shown=stream and f"{result.error_type}: {result.error} · " in closing_line(result),
            as_json=as_json,
            extra={
                "session_id": result.session_id,
                "transcript_path": str(result.transcript_path or "") or None,
            },
        )
    if as_json:
        answer = result.structured
        if hasattr(answer, "model_dump"):
            answer = answer.model_dump(mode="json")
        print(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        print(result.output)
    if not stream:
        err.print(Text(f"✓ {facts}", style="dim"))


# ----------------------------------------------------------------------------- list


@app.command("list")
def list_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="A Markdown or YAML task list.", exists=True, dir_okay=False
        ),
    ],
    run_id: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="Resume this run (it must exist in the state dir): steps that finished are "
            "restored, the rest run.",
        ),
    ] = None,
    new_run_id: Annotated[
        str | None,
        typer.Option(
            metavar="ID", help="Start a new run under this id (default: a new generated id)."
        ),
    ] = None,
    continue_on_failure: Annotated[
        bool, typer.Option("--continue-on-failure", help="Run every step even after a failure.")
    ] = False,
    max_concurrency: Annotated[
        int,
        typer.Option(
            metavar="N", help="Steps of a task graph (steps with depends_on) that run at once."
        ),
    ] = 3,
    max_cost: Annotated[
        float | None,
        typer.Option(metavar="USD", help="USD: no step starts once the list has spent this much."),
    ] = None,
    cwd: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Working directory of the steps.", file_okay=False),
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="The model of every step.")
    ] = None,
    allow_tool: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-tool",
            metavar="TOOL",
            help="Allow a tool in every step (repeatable): Bash, 'Bash(git:*)', …",
        ),
    ] = None,
    permission_mode: Annotated[
        str | None, typer.Option(metavar="MODE", help=_PERMISSION_HELP)
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Folder of the journal (default: this project's records folder)."
        ),
    ] = None,
    isolation: Annotated[
        str | None,
        typer.Option(
            metavar="MODE",
            help="worktree: each step in its own git worktree and branch, the result merged "
            "into the checked-out branch; copy: each step in a copy of the directory "
            "(docs/graphs.md). Default: none.",
        ),
    ] = None,
) -> None:
    """Run a task list, one step after another, with a live progress view.

    Steps with `depends_on` (YAML) or a `Depends on: Task N` line (Markdown) make it a
    task graph: each step starts once those finished, up to 3 at once. Ctrl-C stops it
    cleanly; `--run-id` resumes it where it stopped.
    """
    from ._policy import check_list_options
    from .pipeline import generate_run_id, load_task_list

    try:
        specs = load_task_list(file)
        check_list_options(max_concurrency=max_concurrency, run_id=run_id or new_run_id)
        config = _config(
            cwd=cwd,
            model=model,
            allowed_tools=allow_tool or None,
            permission_mode=permission_mode,
            state_dir=state_dir,
            max_total_cost_usd=max_cost,
            isolation=isolation,
        )
        _check_run_id(config.state_dir, resume=run_id, new=new_run_id)
    except CCExecutorError as exc:
        _fail(exc)
    _require_cli(config)
    run_id = run_id or new_run_id or generate_run_id()
    # The options that were given, so the resumed run reads the same journal (the default
    # one is --cwd's project's) and runs the remaining steps as the first run would have.
    given = [
        *(["--cwd", str(cwd)] if cwd is not None else []),
        *(["--state-dir", str(state_dir)] if state_dir is not None else []),
        *(["--model", model] if model is not None else []),
        *(arg for tool in allow_tool or [] for arg in ("--allow-tool", tool)),
        *(["--permission-mode", permission_mode] if permission_mode is not None else []),
        *(["--max-cost", str(max_cost)] if max_cost is not None else []),
        *(["--continue-on-failure"] if continue_on_failure else []),
        *(["--max-concurrency", str(max_concurrency)] if max_concurrency != 3 else []),
    ]
    resume = shlex.join(["cc-execute", "list", str(file), *given, "--run-id", run_id])
    code, _ = _run_list(
        specs,
        config,
        run_id=run_id,
        title=f"task list {file}",
        stop_on_failure=not continue_on_failure,
        resume_hint=resume,
        max_concurrency=max_concurrency,
    )
    raise typer.Exit(code)


def _check_run_id(state_dir: Path | None, *, resume: str | None, new: str | None) -> None:
    """`--run-id` must name a run of the journal, `--new-run-id` must not (ConfigError: exit 2)."""
    from ._journal import run_ids
    from ._statestore import db_path

    if resume is not None and new is not None:
        raise ConfigError("give --run-id (resume a run) or --new-run-id (start one), not both")
    if resume is None and new is None:
        return
    where = db_path(state_dir) if state_dir is not None else None
    try:
        known = run_ids(state_dir) if state_dir is not None else []
    except Exception as exc:  # sqlite3 / OS errors: the journal cannot be read
        raise ConfigError(f"cannot read the runs in {where}: {exc}", field="state_dir") from exc
    if resume is not None and resume not in known:
        listed = ", ".join(known[:10]) + (
            f" (and {len(known) - 10} more)" if len(known) > 10 else ""
        )
        runs = f"runs there, newest first: {listed}" if known else "it holds no run yet"
        raise ConfigError(
            f"--run-id {resume}: no such run in {where} ({runs}). To start a new run under "
            f"this id use --new-run-id {resume}; another journal: the --cwd or --state-dir "
            "the run was started with.",
            field="run_id",
        )
    if new is not None and new in known:
        raise ConfigError(
            f"--new-run-id {new}: that run already exists in {where}; resume it with "
            f"--run-id {new}, or choose another id",
            field="run_id",
        )


def _run_list(
    specs: list[Any],
    config: CCExecutorConfig,
    *,
    run_id: str,
    title: str,
    stop_on_failure: bool = True,
    resume_hint: str | None = None,
    on_event: Any = None,
    max_concurrency: int = 3,
) -> tuple[int, TaskListResult | None]:
    """Run a list under the progress view and print its summary: (exit code, the result)."""
    from ._api import run_blocking
    from ._progress import ListProgress
    from .pipeline import cc_execute_list

    view = ListProgress(out, total=len(specs), run_id=run_id, title=title, cwd=config.cwd)

    def events(event: Any) -> None:
        view.on_event(event)
        if on_event is not None:
            on_event(event)

    try:
        with view:
            results = run_blocking(
                cc_execute_list(
                    specs,
                    config.with_overrides(on_event=events),
                    run_id=run_id,
                    stop_on_failure=stop_on_failure,
                    on_step=view.on_step,
                    max_concurrency=max_concurrency,
                )
            )
    except KeyboardInterrupt:
        step = view.current
        where = f" during step {step.index + 1}/{len(specs)} ({step.label})" if step else ""
        err.print(
            Text(
                f"✗ interrupted{where}: its CLI and every process it started were ended.",
                style="red",
            )
        )
        if resume_hint:
            err.print(f"  Resume with: {resume_hint}")
        return exit_code_for(KeyboardInterrupt()), None
    except CCExecutorError as exc:
        err.print(Text(f"✗ {type(exc).__name__}: {exc}", style="red"))
        return exit_code_for(exc), None
    out.print()
    out.print(Text(results.summary()))
    if results.success:
        return 0, results
    if resume_hint:
        err.print(f"  Fix the cause, then resume with: {resume_hint}")
    return (exit_code_for(results.error) if results.error is not None else 1), results


# --------------------------------------------------------------------------- doctor


@app.command()
def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="The checks as JSON.")] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Folder of the state store (default: this project's records)."
        ),
    ] = None,
) -> None:
    """Check this machine: the CLI, authentication, transcript dir, state store.

    Exits 1 when a required check fails; secrets are never printed.
    """
    from ._doctor import run_checks

    try:
        checks = run_checks(_config(state_dir=state_dir))
    except CCExecutorError as exc:
        _fail(exc, as_json=json_output)
    failed = any(c.status == "fail" for c in checks)
    if json_output:
        print(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        marks = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red")}
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark, style = marks[c.status]
            line = Text.assemble((mark, f"bold {style}"), f" {c.name.ljust(width)}  {c.detail}")
            if c.fix:
                line.append(f"\n  {' ' * width}  fix: {c.fix}", style=style)
            out.print(line)
    raise typer.Exit(1 if failed else 0)


# -------------------------------------------------------------------------- history


def _at_least_one(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"must be 1 or more, got {value}")
    return value


def cost_by(key: str, records: Sequence[Any]) -> list[tuple[str, int, float]]:
    """(value of metadata `key` as text, runs, summed cost in USD) per value, costliest
    first; records without `key` count under "(none)"."""
    sums: dict[str, tuple[int, float]] = {}
    for r in records:
        value = r.metadata.get(key)
        label = (
            "(none)"
            if key not in r.metadata
            else (value if isinstance(value, str) else json.dumps(value))
        )
        runs, cost = sums.get(label, (0, 0.0))
        sums[label] = (runs + 1, cost + (r.cost_usd or 0.0))
    return sorted(((k, n, c) for k, (n, c) in sums.items()), key=lambda row: (-row[2], row[0]))


def _print_cost_by(key: str, records: Sequence[Any], *, as_json: bool) -> None:
    rows = cost_by(key, records)
    if as_json:
        print(
            json.dumps([{key: v, "runs": n, "cost_usd": round(c, 6)} for v, n, c in rows], indent=2)
        )
        return
    if not rows:
        out.print("No runs recorded yet.")
        return
    table = Table(title=f"Cost by metadata {key!r} over {len(records)} run(s)")
    table.add_column(key)
    table.add_column("runs", justify="right")
    table.add_column("cost", justify="right")
    for value, runs, cost in rows:
        table.add_row(value, str(runs), f"${cost:.4f}")
    table.add_row("total", str(len(records)), f"${sum(c for _, _, c in rows):.4f}", style="bold")
    out.print(table)


@app.command()
def history(
    limit: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            callback=_at_least_one,
            help="How many runs, newest first (default 20; with --by: all).",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Folder of the SQLite history (default: this project's records)."
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Read the history from Redis (redis://host:6379/0)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="The records as JSON.")] = False,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            metavar="KEY",
            help="Sum cost (and count runs) per value of metadata KEY instead of listing runs.",
        ),
    ] = None,
) -> None:
    """Recent runs recorded by cc_run / cc_execute, as a table; `--by KEY`: cost per value
    of metadata KEY (runs without it under "(none)")."""
    from ._history import get_execution_history
    from ._statestore import db_path

    if limit is None:
        limit = 20 if by is None else 2**62

    if state_dir is None:
        state_dir = CCExecutorConfig().state_dir
        assert state_dir is not None
    if redis is None and not db_path(state_dir).exists():
        if json_output:
            print("[]")
        else:
            out.print(f"No history yet: {db_path(state_dir)} does not exist.")
        raise typer.Exit(0)
    try:
        records = asyncio.run(get_execution_history(limit, state_dir=state_dir, history_url=redis))
    except CCExecutorError as exc:
        _fail(exc, as_json=json_output)
    except Exception as exc:  # sqlite3 / Redis / OS errors: the store cannot be read
        where = redis or db_path(state_dir)
        _fail(ConfigError(f"cannot read the history in {where}: {exc}"), as_json=json_output)
    if by is not None:
        _print_cost_by(by, records, as_json=json_output)
        return
    tasks = [_history_task(r) for r in records]
    if json_output:
        from ._cost import json_cost

        rows = [
            r.model_dump(mode="json") | {"cost_usd": json_cost(r.cost_usd), "task": task}
            for r, task in zip(records, tasks, strict=True)
        ]
        print(json.dumps(rows, indent=2))
        return
    if not records:
        out.print("No runs recorded yet.")
        return
    if not out.is_terminal:  # a pipe or a file: every column, tab-separated, no table
        print("started\tstatus\ttime_s\tcost_usd\ttokens_in\ttokens_out\tturns\tmodel\ttask")
        for r, task in zip(records, tasks, strict=True):
            cells = [
                r.started_at.astimezone().isoformat(timespec="seconds"),
                "ok" if r.success else (r.error_type or "failed"),
                f"{r.duration_s:.1f}",
                f"{r.cost_usd or 0:.6f}",
                str(r.input_tokens or 0),
                str(r.output_tokens or 0),
                str(r.num_turns or 0),
                r.model or "-",
                " ".join(task.split()),
            ]
            print("\t".join(cells))
        return
    columns: dict[str, tuple[JustifyMethod, list[Text]]] = {
        "started": ("left", []),
        "status": ("left", []),
        "time": ("right", []),
        "cost": ("right", []),
        "tokens in/out": ("right", []),
        "turns": ("right", []),
        "model": ("left", []),
    }
    for r in records:
        status = Text("✓ ok", style="green") if r.success else Text(f"✗ {r.error_type}", "red")
        row = (
            Text(r.started_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")),
            status,
            Text(f"{r.duration_s:.1f}s"),
            Text(f"${r.cost_usd or 0:.4f}"),
            Text(f"{r.input_tokens or 0:,}/{r.output_tokens or 0:,}"),
            Text(str(r.num_turns or 0)),
            Text(r.model or "-"),
        )
        for (_, column), value in zip(columns.values(), row, strict=True):
            column.append(value)

    def width(name: str) -> int:  # the column, its padding and border
        return max(len(name), *(c.cell_len for c in columns[name][1])) + 3

    # Rich squeezes a table wider than the terminal down to a task column of width 0:
    # on a narrow terminal the least needed columns go instead (--json and a pipe keep
    # all), so the task keeps at least 24 characters.
    hidden = []
    for name in ("model", "turns", "tokens in/out", "started"):
        if sum(map(width, columns)) + 24 + 4 <= out.width:
            break
        del columns[name]
        hidden.append(name)
    note = f" · hidden to fit the terminal: {', '.join(hidden)}" if hidden else ""
    table = Table(title=f"{len(records)} most recent run(s), newest first{note}")
    for name, (justify, _) in columns.items():
        table.add_column(name, justify=justify, no_wrap=True)
    table.add_column("task", justify="left", min_width=24)
    for n, task in enumerate(tasks):
        table.add_row(*(column[n] for _, column in columns.values()), " ".join(task.split())[:200])
    out.print(table)


def _history_task(record: HistoryRecord) -> str:
    """The task as its transcript's header gives it (secrets masked, as in the whole
    transcript); the history stores only the normalized form, shown when no single
    transcript of the run is found (deleted, or on another machine)."""
    from ._transcript import find_transcripts

    found = find_transcripts(record.execution_uuid, CCExecutorConfig())
    if len(found) == 1:
        try:
            with open(found[0], "rb") as f:
                header = json.loads(f.readline())
        except (OSError, ValueError):
            header = None
        if isinstance(header, dict) and header.get("type") == "cc_executor.header":
            task = header.get("task")
            if isinstance(task, str) and task.strip():
                return task
    return record.normalized_prompt


# ----------------------------------------------------------------------------- show


@app.command()
def show(
    transcript: Annotated[
        Path | None,
        typer.Argument(
            metavar="TRANSCRIPT",
            help="A transcript file, under the transcript dir (default: this project's newest).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    transcript_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="The transcript dir to trust (default: $CC_EXECUTOR_TRANSCRIPT_DIR, else "
            "the per-user records).",
        ),
    ] = None,
) -> None:
    """Replay a transcript readably: turns, tool calls, results, cost.

    Only a transcript under the transcript dir is shown: a file elsewhere may be forged.
    """
    from ._replay import replay
    from ._secrets import find_secrets
    from ._transcript import trusted_transcript

    try:
        config = _config(transcript_dir=transcript_dir)
        if transcript is None:
            directory = config.resolved_transcript_dir()
            found = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
            if not found:
                raise ConfigError(f"no transcript in {directory}: give a transcript file")
            transcript = found[-1]
        transcript = trusted_transcript(transcript, config)
    except CCExecutorError as exc:
        _fail(exc)
    secrets = find_secrets(config)  # also masks what an older version left unmasked
    out.print(Text(f"transcript {transcript}", style="dim"))
    try:
        for line in replay(transcript):
            masked = secrets.mask(line.plain)
            out.print(line if masked == line.plain else Text(masked, style=line.style))
    except (OSError, ValueError) as exc:
        _fail(ConfigError(f"{transcript} is not a readable transcript: {exc}"))


# ----------------------------------------------------------------------------- demo


@app.command()
def demo(
    live: Annotated[
        bool,
        typer.Option("--live", help="The real model (needs credentials), not the scripted one."),
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="An empty or new folder for the demo, kept (default: a temp dir).",
        ),
    ] = None,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the temp dir (project, transcripts, journal)."),
    ] = False,
) -> None:
    """A real 3-step task list through the real CLI: write a project, run it, report.

    Without --live the model is scripted (cc_executor.testing), so it needs no
    credentials and no network. With --live the CLI uses its own credentials.
    """
    import shutil

    if directory is not None and directory.exists() and any(directory.iterdir()):
        _fail(ConfigError(f"--dir {directory} is not empty: give a new or empty folder"))
    _require_cli(CCExecutorConfig())
    root = (directory or Path(tempfile.mkdtemp(prefix="cc-execute-demo-"))).absolute()
    remove = directory is None and not keep
    try:
        _demo(root, live=live, remove=remove)
    finally:
        if remove:
            shutil.rmtree(root, ignore_errors=True)


def _demo(root: Path, *, live: bool, remove: bool) -> None:
    from ._demo import demo_steps, scripted_model
    from ._progress import tool_results
    from ._statestore import db_path
    from .events import AssistantEvent, UserEvent

    project, transcripts, state = root / "project", root / "transcripts", root / "state"
    project.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "cwd": project,
        "transcript_dir": transcripts,
        "state_dir": state,
    }
    model = None
    if live:
        out.print("Model: REAL (the CLI's own credentials); the list stops once it has cost $1.")
        config = CCExecutorConfig(timeout=600, max_total_cost_usd=1.0, **settings)
    else:
        model = scripted_model(project)
        config = model.config(timeout=120, **settings)
        out.print(
            Text(
                "Model: SCRIPTED — cc_executor.testing.ScriptedModel answers on 127.0.0.1. The "
                "claude CLI, its tools, the files and the processes are real; the model's "
                "answers are not. `cc-execute demo --live` runs the same list on the real model.",
                style="bold yellow",
            )
        )
    bash_ids: dict[str, str] = {}
    bash_runs: list[tuple[str, str]] = []

    def watch_bash(event: Any) -> None:
        if isinstance(event, AssistantEvent):
            for tool in event.tool_uses:
                if tool.name == "Bash":
                    bash_ids[tool.id] = str(tool.input.get("command", ""))
        elif isinstance(event, UserEvent):
            for tool_use_id, text, _ in tool_results(event):
                command = bash_ids.get(tool_use_id)
                if command is not None:
                    bash_runs.append((command, text.strip()))

    from .pipeline import generate_run_id

    run_id = generate_run_id()
    try:
        code, results = _run_list(
            demo_steps(), config, run_id=run_id, title="demo", on_event=watch_bash
        )
    finally:
        if model is not None:
            model.close()
    out.print()
    out.print(Text(f"Files in {project} (written by the CLI's tools):", style="bold"))
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        out.print(f"  {str(path.relative_to(project)):<16} {path.stat().st_size:>6} bytes")
    for command, printed in bash_runs:
        out.print(Text.assemble(("Bash ran ", "bold"), f"`{command}`, which printed: {printed}"))
    report = results[-1].structured if results and results.success else None
    if report is not None:
        out.print(Text("Report (return_json):", style="bold"))
        out.print(Text(json.dumps(report, indent=2, ensure_ascii=False)))
    files = sorted(transcripts.glob("*.jsonl")) if transcripts.is_dir() else []
    out.print(Text(f"Transcripts: {transcripts} ({len(files)} file(s))", style="bold"))
    if remove:
        out.print(f"All of {root} is removed now: `cc-execute demo --keep` keeps it.")
    else:
        if files:
            out.print(
                f"  replay one: cc-execute show --transcript-dir {shlex.quote(str(transcripts))} "
                f"{shlex.quote(str(files[0]))}"
            )
        out.print(f"Journal and history: {db_path(state)} (run {run_id})")
    if model is not None and code == 0:
        out.print(
            Text(
                "The model was SCRIPTED (no credentials, no network); everything else was real.",
                style="bold yellow",
            )
        )
    raise typer.Exit(code)


# --------------------------------------------------------------------- scripted-model


@app.command("scripted-model")
def scripted_model_command(
    script: Annotated[
        Path | None,
        typer.Argument(
            help="A YAML/JSON list of turns (text, tool_use, tool_uses, structured_output, "
            "http_error, hang, big_text); default: a short text answer to every request.",
            metavar="SCRIPT",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the scripted Messages API (cc_executor.testing) on 127.0.0.1, for trying
    `run` and `list` without an account, or for your own CI.

    Prints `export NAME=value` lines on stdout once it listens (everything else on
    stderr): source them in the shell that runs `claude` or `cc-execute`. Serves in the
    foreground until Ctrl-C or SIGTERM:

        $ cc-execute scripted-model > model.env &
        $ until [ -s model.env ] || ! kill -0 $!; do sleep 0.1; done; . ./model.env
    """
    from .testing._serve import serve

    try:
        code = serve(script)
    except ValueError as exc:
        _fail(ConfigError(str(exc)))
    raise typer.Exit(code)


# ----------------------------------------------------------------------------- orchestrators


def _mcp_serve(*args: Any, **kwargs: Any) -> None:
    from .mcp._main import serve

    serve(*args, **kwargs)


def _register_mcp() -> None:
    """`cc-execute mcp`: the server's own command (`cc_executor.mcp._main.serve`), its
    options and help as `python -m cc_executor.mcp` has them."""
    from .mcp._main import serve

    functools.update_wrapper(_mcp_serve, serve)
    app.command(name="mcp")(_mcp_serve)


_register_mcp()


@app.command()
def prompt() -> None:
    """Print the orchestrator prompt cc_execute.md (when and how to use the executor)."""
    from .prompts import orchestrator_prompt

    sys.stdout.write(orchestrator_prompt())


@app.command()
def ui(
    state_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Folder of the state store (default: this project's records)."
        ),
    ] = None,
    transcript_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="The transcript dir to read (default: $CC_EXECUTOR_TRANSCRIPT_DIR, else every "
            "project's transcripts).",
        ),
    ] = None,
    host: Annotated[
        str,
        typer.Option(metavar="ADDRESS", help="Address to listen on (beyond loopback: a token)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port (0: any free one).")] = 8765,
) -> None:
    """A read-only web dashboard of runs, steps and transcripts, live.

    Needs the extra: pip install 'cc_executor\\[ui]'. Reads the state store and
    the transcripts, writes nothing. On loopback by default; bound elsewhere,
    the printed URL carries an access token. Ctrl-C stops it.
    """
    from .ui import serve

    try:
        serve(state_dir, transcript_dir, host=host, port=port)
    except ConfigError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _serve_worker(*args: Any, **kwargs: Any) -> None:
    try:
        from .temporal import serve
    except ModuleNotFoundError as exc:
        from ._extras import install_command

        _fail(ConfigError(f"{exc}: install the extra: {install_command('temporal')}"))
    serve(*args, **kwargs)


app.command(name="worker")(worker_command(_serve_worker))


if __name__ == "__main__":
    main()
