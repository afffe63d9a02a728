"""Quickstart: run one Claude Code task and read what came back.

    python examples/quickstart.py          # offline: the real CLI, a scripted model
    python examples/quickstart.py --live   # the real model (needs credentials)
    python examples/quickstart.py --keep   # keep its temp dir (removed at exit otherwise)

Offline, the model's answers come from `cc_executor.testing.ScriptedModel`, a
local Messages API on 127.0.0.1; the `claude` CLI itself is real and really
writes the file. Nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from cc_executor import CCExecutorConfig, TaskFailedError, cc_execute, cc_run
from cc_executor.testing import ScriptedModel, text, tool_use

TASK = "Create hello.py that prints 'Hello from cc_executor', then say what you did."


async def main(live: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cc-quickstart-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, workdir, True)
    transcripts = Path(os.getcwd(), "transcripts")
    config = CCExecutorConfig(cwd=workdir, transcript_dir=transcripts, timeout=600)
    model = None
    if not live:
        model = ScriptedModel(
            [
                tool_use(
                    "Write",
                    {
                        "file_path": str(workdir / "hello.py"),
                        "content": "print('Hello from cc_executor')\n",
                    },
                ),
                text("I created hello.py, which prints 'Hello from cc_executor'."),
            ]
        ).start()
        config = model.config(cwd=workdir, transcript_dir=transcripts, timeout=600)
        print("Model: SCRIPTED (offline; the CLI is real). Use --live for the real model.\n")

    try:
        # 1. The simplest call: the answer text, or a typed exception.
        try:
            answer = await cc_execute(TASK, config, stream=True)
        except TaskFailedError as err:
            print(f"Task failed: {type(err).__name__}: {err}")
            print(f"Transcript: {err.result.transcript_path}")
            return 1
        print(f"\nAnswer: {answer}")
        print(f"hello.py on disk: {(workdir / 'hello.py').read_text().strip()!r}")

        # 2. The full record, without exceptions.
        if model is not None:
            model.add(text("hello.py is in place."))
        result = await cc_run("Check that hello.py exists.", config)
        print(
            f"\nSecond run: success={result.success} turns={result.num_turns} "
            f"cost=${result.total_cost_usd or 0:.4f} session={result.session_id}"
        )
        print(f"Transcript: {result.transcript_path}")
        return 0 if result.success else 1
    finally:
        if model is not None:
            model.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
