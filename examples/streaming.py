"""Live events: `cc_stream` yields typed events as the CLI prints them.

    python examples/streaming.py          # offline: the real CLI, a scripted model
    python examples/streaming.py --live   # the real model (needs credentials)
    python examples/streaming.py --keep   # keep its temp dir (removed at exit otherwise)

Text arrives in deltas (`StreamEvent.text_delta`) while the model writes; tool
calls come in complete `AssistantEvent`s, their results in `UserEvent`s, and
the `ResultEvent` ends the run. `stream.result` is the `TaskResult` afterwards.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from cc_executor import CCExecutorConfig, cc_stream
from cc_executor.events import AssistantEvent, InitEvent, ResultEvent, StreamEvent, UserEvent
from cc_executor.testing import ScriptedModel, text, tool_use

TASK = "Write poem.txt with a two-line poem about streams, then read it back to me."


async def main(live: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="cc-streaming-"))
    if "--keep" not in sys.argv:  # removed at exit; --keep keeps it
        atexit.register(shutil.rmtree, workdir, True)
    config = CCExecutorConfig(cwd=workdir, save_transcript=False, timeout=600)
    model = None
    if not live:
        poem = "Lines arrive one by one,\nparsed and typed before they're done.\n"
        model = ScriptedModel(
            [
                tool_use("Write", {"file_path": str(workdir / "poem.txt"), "content": poem}),
                # Five deltas, 50 ms apart: watch them arrive.
                text("Here it is: " + poem.replace("\n", " "), chunks=5, delay=0.05),
            ]
        ).start()
        config = model.config(cwd=workdir, save_transcript=False, timeout=600)
        print("Model: SCRIPTED (offline; the CLI is real). Use --live for the real model.\n")

    seen: Counter[str] = Counter()
    try:
        async with cc_stream(TASK, config) as stream:
            async for event in stream:
                seen[type(event).__name__] += 1
                if isinstance(event, InitEvent):
                    print(f"[init] session {event.session_id}, model {event.model}")
                elif isinstance(event, StreamEvent) and event.text_delta:
                    print(f"[delta] {event.text_delta!r}", flush=True)
                elif isinstance(event, AssistantEvent):
                    for call in event.tool_uses:
                        print(f"[tool call] {call.name} {call.input.get('file_path', '')}")
                elif isinstance(event, UserEvent) and event.tool_use_result is not None:
                    print("[tool result] received")
                elif isinstance(event, ResultEvent):
                    print(f"[result] {event.subtype}, {event.num_turns} turns")
    finally:
        if model is not None:
            model.close()
    result = stream.result
    print(f"\nevents by type: {dict(sorted(seen.items()))}")
    print(f"answer: {result.output}")
    print(f"poem.txt on disk: {(workdir / 'poem.txt').exists()}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(live="--live" in sys.argv)))
