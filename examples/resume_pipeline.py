"""Resume a task list: run it again with the same run_id and the steps that finished
are restored from the journal, not run again.

    python examples/resume_pipeline.py          # offline: the real CLI, a scripted model
    python examples/resume_pipeline.py --live   # the real model (needs credentials)
    python examples/resume_pipeline.py --keep   # keep its temp dir (removed at exit otherwise)

Offline, the scripted API is overloaded (HTTP 529) when step 2 starts, and
retries are off, so the first run stops there. The second run, same list and
same run_id, restores step 1 (no request reaches the model for it) and runs
steps 2 and 3. The same happens after a crash of the orchestrator itself: every
step boundary is committed to `state_dir/state.db` before the list moves on.
With --live the first run usually succeeds, and the second restores everything.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from cc_executor import CCExecutorConfig, cc_execute_list
from cc_executor.testing import ScriptedModel, http_error, text, tool_use

RUN_ID = "nightly-docs"


async def main(live: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cc-resume-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, workdir, True)
    steps = [
        "Write outline.md: three headings for a guide to this project.",
        "Write guide.md from outline.md, one paragraph per heading.",
        "Proofread guide.md and say what you changed.",
    ]
    # num_retries=0 and cli_max_retries=0: one overload ends the step at once.
    settings = dict(
        cwd=workdir,
        state_dir=workdir / ".state",
        transcript_dir=workdir / "transcripts",
        num_retries=0,
        cli_max_retries=0,
    )
    config = CCExecutorConfig(timeout=600, **settings)
    model = None
    if not live:
        outline = "# Install\n# Use\n# Test\n"
        guide = "# Install\npip install it.\n# Use\nCall it.\n# Test\nmake test.\n"
        model = ScriptedModel(
            [
                # first run
                tool_use("Write", {"file_path": str(workdir / "outline.md"), "content": outline}),
                text("Wrote outline.md."),
                http_error(529, "Overloaded"),
                # second run: step 1 is restored and asks nothing
                tool_use("Write", {"file_path": str(workdir / "guide.md"), "content": guide}),
                text("Wrote guide.md."),
                text("Nothing to change."),
            ]
        ).start()
        config = model.config(timeout=120, **settings)
        print("Model: SCRIPTED (offline; the CLI is real). Use --live for the real model.\n")
    try:
        first = await cc_execute_list(steps, config, run_id=RUN_ID)
        print("First run:")
        print(first.summary())
        requests_before = len(model.prompts) if model else 0

        second = await cc_execute_list(steps, config, run_id=RUN_ID)
        print("\nSecond run, same run_id:")
        print(second.summary())
        if model is not None:
            # One entry per step (a step with a tool call sends its prompt twice).
            asked = list(dict.fromkeys(p[:40] for p in model.prompts[requests_before:]))
            print(f"\nprompts the model saw in the second run: {asked}")
    finally:
        if model is not None:
            model.close()
    restored = [i + 1 for i in second.restored]  # `restored` holds 0-based indices
    print(f"restored steps: {restored}, success: {second.success}")
    print(f"guide.md on disk: {(workdir / 'guide.md').exists()}")
    return 0 if second.success else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
