"""Run one task list in a process of its own, for the tests of run locks.

argv[1] is a JSON object: config (CCExecutorConfig fields), prompts, run_id, and
`probe_first`: try once without waiting and report whether the run id was held.
Prints one JSON line: {"was_locked", "restored", "outputs", "pid"}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from cc_executor import CCExecutorConfig, RunLockedError, cc_execute_list


async def main() -> None:
    args = json.loads(sys.argv[1])
    config = CCExecutorConfig(**args["config"])
    was_locked = None
    if args.get("probe_first"):
        try:
            await cc_execute_list([], config, run_id=args["run_id"])
            was_locked = False
        except RunLockedError as exc:
            was_locked = exc.holder_pid
    outcome = await cc_execute_list(
        args["prompts"], config, run_id=args["run_id"], wait_for_lease=args.get("wait", 0)
    )
    print(
        json.dumps(
            {
                "was_locked": was_locked,
                "restored": outcome.restored,
                "outputs": [r.output for r in outcome.results],
                "pid": os.getpid(),
            }
        ),
        flush=True,
    )


asyncio.run(main())
