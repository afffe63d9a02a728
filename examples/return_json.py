"""JSON answers: `return_json=True`, or a JSON schema as a dict — and the files a task
really changed.

    python examples/return_json.py          # offline: the real CLI, a scripted model
    python examples/return_json.py --live   # the real model (needs credentials)
    python examples/return_json.py --keep   # keep its temp dir (removed at exit otherwise)

Offline, the model's answers come from `cc_executor.testing.ScriptedModel`; the
`claude` CLI is real, really writes the files, and really checks the answers
against the schema (so does the library, again).
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from cc_executor import CCExecutorConfig, StructuredOutputError, cc_execute
from cc_executor.testing import ScriptedModel, structured_output, tool_use


async def main(live: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cc-return-json-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, workdir, True)
    (workdir / "app.py").write_text("print('app')\n")
    config = CCExecutorConfig(cwd=workdir, save_transcript=False, timeout=600)
    model = None
    if not live:
        model = ScriptedModel(
            [
                # 1. return_json: the model writes two files, one through Bash, and
                #    claims a third in its summary.
                tool_use("Write", {"file_path": str(workdir / "notes.md"), "content": "# Notes\n"}),
                tool_use("Bash", {"command": "echo 'x = 1' > util.py", "description": "util"}),
                structured_output(
                    {"result": "done", "summary": "Wrote notes.md, util.py and README.md"}
                ),
                # 2. json_schema as a dict.
                structured_output({"language": "python", "files": 3}),
            ]
        ).start()
        config = model.config(cwd=workdir, save_transcript=False, timeout=600)
        print("Model: SCRIPTED (offline; the CLI is real). Use --live for the real model.\n")
    try:
        report = await cc_execute(
            "Write notes.md with a heading and util.py defining x = 1.", config, return_json=True
        )
        print(f"return_json: {report}")
        print("  files_created come from what happened on disk, not from the summary.\n")

        facts = await cc_execute(
            "What language is this project in, and how many files does it have?",
            config,
            json_schema={
                "type": "object",
                "properties": {"language": {"type": "string"}, "files": {"type": "integer"}},
                "required": ["language", "files"],
            },
        )
        print(f"json_schema=dict: {facts}")
        return 0
    except StructuredOutputError as err:
        print(f"No valid structured answer: {err.validation_errors} (raw: {err.raw!r})")
        return 1
    finally:
        if model is not None:
            model.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
