"""A task list: steps that run strictly one after another, each a fresh Claude Code
instance, with a journal that lets a stopped list resume (see resume_pipeline.py).

    python examples/task_list.py          # offline: the real CLI, a scripted model
    python examples/task_list.py --live   # the real model (needs credentials)
    python examples/task_list.py --keep   # keep its temp dir (removed at exit otherwise)

The plan comes from a Markdown file (`load_task_list`); a last step is built at
run time from what the earlier steps returned. Step 2 may use Bash: its spec
allows it, the others may only edit files.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from cc_executor import CCExecutorConfig, StepEvent, TaskSpec, cc_execute_list, load_task_list
from cc_executor.testing import ScriptedModel, text, tool_use

PLAN = """\
# Greeter

Task 1: Create greet.py
Write greet.py, which prints "Hello, task lists!".

Task 2: Run it
Run `python3 greet.py` and report exactly what it printed.
"""


def on_step(event: StepEvent) -> None:
    cost = f"${event.total_cost_usd:.4f} spent so far"
    print(f"  step {event.index + 1}/{event.total} {event.status:<8} {event.label} ({cost})")


async def main(live: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cc-task-list-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, workdir, True)
    (workdir / "plan.md").write_text(PLAN)
    settings = dict(
        cwd=workdir, transcript_dir=workdir / "transcripts", state_dir=workdir / ".state"
    )
    config = CCExecutorConfig(timeout=600, **settings)
    model = None
    if not live:
        greet = "print('Hello, task lists!')\n"
        model = ScriptedModel(
            [
                tool_use("Write", {"file_path": str(workdir / "greet.py"), "content": greet}),
                text("Created greet.py."),
                tool_use("Bash", {"command": "python3 greet.py", "description": "run it"}),
                text("It printed: Hello, task lists!"),
                text("greet.py greets; running it printed 'Hello, task lists!'."),
            ]
        ).start()
        config = model.config(timeout=120, **settings)
        print("Model: SCRIPTED (offline; the CLI is real). Use --live for the real model.\n")

    create, run = load_task_list(workdir / "plan.md")
    steps = [
        create,
        TaskSpec(run.prompt, name=run.name, allowed_tools=["Bash"]),
        lambda done: f"In one sentence, what does this project do? Step 2 said: {done[1].output}",
    ]
    try:
        results = await cc_execute_list(steps, config, run_id="greeter", on_step=on_step)
    finally:
        if model is not None:
            model.close()
    print()
    print(results.summary())
    print(f"\ngreet.py on disk: {(workdir / 'greet.py').read_text().strip()!r}")
    print(f"last answer: {results[-1].output}")
    for k in range(1, len(results)):  # step k got its prompt after step k-1 ended
        assert results[k].started_at >= results[k - 1].ended_at
    print(f"journal: {workdir / '.state' / 'state.db'} (run id 'greeter')")
    return 0 if results.success else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
