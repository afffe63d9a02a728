"""A pydantic model as the answer's schema: you get an instance, validators included.

    python examples/pydantic_schema.py          # offline: the real CLI, a scripted model
    python examples/pydantic_schema.py --live   # the real model (needs credentials)
    python examples/pydantic_schema.py --keep   # keep its temp dir (removed at exit otherwise)

`json_schema=Release` sends `Release.model_json_schema()` to the CLI, which makes
the model answer through its StructuredOutput tool; the library then runs
`Release.model_validate` on the answer, so rules a JSON schema cannot express
(the validator below) are enforced too. The first scripted answer breaks that
rule, to show the error you get.
"""

from __future__ import annotations

import asyncio
import atexit
import re
import shutil
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, field_validator

from cc_executor import CCExecutorConfig, StructuredOutputError, cc_execute
from cc_executor.testing import ScriptedModel, structured_output

TASK = "Draft the release notes for the changes in this repository."


class Release(BaseModel):
    version: str
    changes: list[str]

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not re.fullmatch(r"\d+\.\d+\.\d+", value):
            raise ValueError("must look like 1.2.3")
        return value


async def main(live: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cc-pydantic-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, workdir, True)
    config = CCExecutorConfig(cwd=workdir, save_transcript=False, timeout=600)
    model = None
    if not live:
        model = ScriptedModel(
            [
                structured_output({"version": "next", "changes": ["Faster startup"]}),
                structured_output({"version": "1.4.0", "changes": ["Faster startup", "A CLI"]}),
            ]
        ).start()
        config = model.config(cwd=workdir, save_transcript=False, timeout=600)
        print("Model: SCRIPTED (offline; the CLI is real). Use --live for the real model.\n")
    try:
        for attempt in (1, 2):
            try:
                release = await cc_execute(TASK, config, json_schema=Release)
            except StructuredOutputError as err:
                print(f"attempt {attempt}: rejected: {err.validation_errors} (raw: {err.raw!r})")
                continue
            print(f"attempt {attempt}: {release!r}")
            print(f"  an instance of Release: {isinstance(release, Release)}")
            return 0
        return 1
    finally:
        if model is not None:
            model.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
