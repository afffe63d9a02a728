"""`cc_executor.compat.execute_task_via_websocket`: the seed orchestrator's call works
unchanged (issue 17, "Seed callers")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cc_executor import CCExecutorConfig
from cc_executor._transcript import read_transcript
from cc_executor.compat import execute_task_via_websocket
from cc_executor.testing import ScriptedModel, http_error, text, tool_use


def test_the_seed_call_runs_the_task_with_its_tools(
    model: ScriptedModel, config: CCExecutorConfig, workdir: Path
) -> None:
    model.add(tool_use("Write", {"file_path": str(workdir / "a.txt"), "content": "hi\n"}))
    model.add(text("Wrote a.txt"))
    result = execute_task_via_websocket(
        "write a.txt", timeout=120, tools=["Write", "Edit"], config=config
    )
    assert result["success"] is True and result["exit_code"] == 0
    assert result["output"] == "Wrote a.txt" and result["error"] is None
    assert (workdir / "a.txt").read_text() == "hi\n"
    assert result["files_created"] == ["a.txt"]
    assert result["session_id"] and result["total_cost_usd"] is not None
    assert isinstance(result["execution_uuid"], str) and result["duration_s"] > 0
    header, _, _ = read_transcript(Path(result["transcript_path"]))
    assert header is not None
    argv = header["argv"]
    allowed = [argv[i + 1] for i, a in enumerate(argv) if a == "--allowedTools"]
    assert allowed == ["Write", "Edit"]
    json.dumps(result)  # plain data, as the websocket gave


def test_a_failed_task_is_a_dict_with_its_error(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(http_error(400, "scripted bad request", times=None))
    result = execute_task_via_websocket("x", config=config, num_retries=0)
    assert result["success"] is False and result["exit_code"] not in (0, None)
    assert result["error_type"] == "BadRequestError" and result["error"]


def test_it_works_where_an_event_loop_is_running(
    model: ScriptedModel, config: CCExecutorConfig
) -> None:
    model.add(text("from inside a loop"))

    async def main() -> dict[str, object]:
        return execute_task_via_websocket("x", config=config)

    assert asyncio.run(main())["output"] == "from inside a loop"
