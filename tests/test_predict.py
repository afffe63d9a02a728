"""Timeout prediction: sources in order (history → agent → heuristic), clamping, the agent
call through the real CLI, and the orchestration helpers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cc_executor import (
    CCExecutorConfig,
    ConfigError,
    TaskTimeoutError,
    cc_execute,
    cc_execute_list,
    cc_run,
    cc_stream,
    get_execution_history,
    get_task_complexity,
    predict_timeout,
    suggest_execution_strategy,
)
from cc_executor._history import record_history
from cc_executor._predict import (
    HEURISTIC_SAFETY,
    HISTORY_SAFETY,
    _percentile,
    predict_from_history,
)
from cc_executor._transcript import read_transcript
from cc_executor.testing import ScriptedModel, hang, http_error, structured_output, text

from .test_history import fake_result

ESTIMATE_PROMPT_START = "Estimate how long an autonomous Claude Code agent"


@pytest.fixture
def model(claude_cli: str) -> Any:
    with ScriptedModel() as m:
        yield m


def auto(model: ScriptedModel, tmp_path: Path, **kw: Any) -> CCExecutorConfig:
    return model.config(cwd=tmp_path, transcript_dir=tmp_path / "transcripts", timeout="auto", **kw)


async def test_explicit_timeout_is_reported_as_explicit(
    model: ScriptedModel, tmp_path: Path
) -> None:
    model.add(text("ok"))
    result = await cc_run("hello", model.config(cwd=tmp_path, timeout=42))
    assert (result.timeout_s, result.timeout_source) == (42, "explicit")
    assert len(model.prompts) == 1


async def test_no_history_and_no_agent_gets_the_heuristic(
    model: ScriptedModel, tmp_path: Path
) -> None:
    task = "Implement a parser in parser.py, then add tests in test_parser.py"
    model.add(text("done"))
    result = await cc_run(task, auto(model, tmp_path))
    assert result.success and result.timeout_source == "heuristic"
    expected = get_task_complexity(task).estimated_seconds * HEURISTIC_SAFETY
    assert result.timeout_s == min(max(expected, 60), 3600)
    assert model.prompts == [task]  # no agent call
    header = read_transcript(result.transcript_path)[0]  # type: ignore[arg-type]
    assert header["timeout_s"] == result.timeout_s and header["timeout_source"] == "heuristic"


async def test_agent_prediction_through_the_real_cli(model: ScriptedModel, tmp_path: Path) -> None:
    task = "Refactor utils.py into a package"
    model.add(structured_output({"seconds": 200, "reason": "one module, a few tests"}), text("ok"))
    result = await cc_run(task, auto(model, tmp_path, agent_predict_timeout=True))
    assert result.success
    assert (result.timeout_s, result.timeout_source) == (400, "agent")  # 200 s × 2

    estimate_request, task_request = model.main_requests
    assert estimate_request.prompt.startswith(ESTIMATE_PROMPT_START)
    assert f"<task>\n{task}\n</task>" in estimate_request.prompt
    offered = {t["name"] for t in estimate_request.body["tools"]}
    assert "StructuredOutput" in offered and not offered & {"Bash", "Write", "Edit", "Read"}
    assert task_request.prompt == task
    # The estimate ran as its own run: --max-turns 1, no tools, a JSON schema.
    headers = [read_transcript(p)[0] for p in sorted((tmp_path / "transcripts").iterdir())]
    argv = next(h["argv"] for h in headers if h["execution_uuid"] != result.execution_uuid)
    assert argv[argv.index("--max-turns") + 1] == "1"
    assert argv[argv.index("--tools") + 1] == ""
    assert json.loads(argv[argv.index("--json-schema") + 1])["required"] == ["seconds", "reason"]
    # ... and it is not part of the execution history.
    assert [r.execution_uuid for r in await get_execution_history()] == [result.execution_uuid]


async def test_agent_prediction_keeps_the_tasks_callbacks_and_answer_format_to_the_task(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """The estimate call is the library's: the task's return_json and callbacks skip it."""
    seen: list[str] = []
    model.add(
        structured_output({"seconds": 200, "reason": "small"}),
        structured_output({"result": "done", "summary": "did it"}),
    )
    config = auto(
        model,
        tmp_path,
        agent_predict_timeout=True,
        return_json=True,
        success_callback=lambda r: seen.append(r.task),
    )
    result = await cc_run("Refactor utils.py into a package", config)
    assert result.success, result.error
    assert (result.timeout_s, result.timeout_source) == (400, "agent")
    assert result.structured["result"] == "done"
    assert seen == ["Refactor utils.py into a package"]


async def test_agent_estimate_is_clamped(model: ScriptedModel, tmp_path: Path) -> None:
    model.add(structured_output({"seconds": 1e9, "reason": "forever"}), text("ok"))
    config = auto(model, tmp_path, agent_predict_timeout=True, auto_timeout_max=500)
    result = await cc_run("Rewrite the kernel", config)
    assert (result.timeout_s, result.timeout_source) == (500, "agent")


async def test_agent_without_an_estimate_falls_back_to_the_heuristic(
    model: ScriptedModel, tmp_path: Path
) -> None:
    task = "Review app.py"
    model.add(text("About five minutes, I think."), text("reviewed"))
    result = await cc_run(task, auto(model, tmp_path, agent_predict_timeout=True))
    assert result.success and result.output == "reviewed"
    assert result.timeout_source == "heuristic"
    assert model.prompts[0].startswith(ESTIMATE_PROMPT_START) and model.prompts[1] == task


async def test_history_comes_first_and_the_agent_is_not_asked(
    model: ScriptedModel, tmp_path: Path
) -> None:
    for i in range(3):
        model.add(text(f"{i} lines"))
        await cc_execute(f"Count the lines in data{i}.txt", model.config(cwd=tmp_path))
    past = await get_execution_history()
    task = "Count the lines in data9.txt"
    # The value: p95 × safety of the past durations (no floor, to see it unclamped).
    prediction = await predict_timeout(task, model.config(cwd=tmp_path), auto_timeout_min=0.1)
    expected = _percentile([r.duration_s for r in past], 95) * HISTORY_SAFETY
    assert prediction.source == "history" and prediction.samples == 3
    assert prediction.seconds == pytest.approx(expected, abs=0.06)
    # A run: history wins over the agent, which is never asked.
    model.add(text("4 lines"))
    result = await cc_run(task, auto(model, tmp_path, agent_predict_timeout=True))
    assert result.success and result.timeout_source == "history"
    assert result.timeout_s == 60  # clamped to auto_timeout_min
    assert not any(p.startswith(ESTIMATE_PROMPT_START) for p in model.prompts)


async def test_a_predicted_timeout_is_enforced_and_then_learned_from(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """History of 0.5 s runs → ~1 s timeout; a hanging run is ended at it, and the
    timed-out run makes the next prediction longer."""
    config = CCExecutorConfig(auto_timeout_min=1.0, kill_grace=0.5)
    for i in range(3):
        await record_history(fake_result(f"ping host {i}", seconds=0.5, start=i), config)
    model.add(hang())
    config_auto = auto(model, tmp_path, auto_timeout_min=1.0, kill_grace=0.5)
    result = await cc_run("ping host 7", config_auto)
    assert isinstance(result.error, TaskTimeoutError)
    assert (result.timeout_s, result.timeout_source) == (1.0, "history")
    assert result.error.timeout_s == 1.0
    again = await predict_timeout("ping host 8", config)
    assert again.source == "history" and again.seconds > result.timeout_s


def records(durations: list[float], task: str = "run the test suite for module {i}") -> list[Any]:
    from cc_executor._history import record_from_result

    config = CCExecutorConfig()
    return [
        record_from_result(fake_result(task.format(i=i), seconds=d, start=i), config)
        for i, d in enumerate(durations)
    ]


def test_history_prediction_is_clamped_to_the_bounds() -> None:
    slow = predict_from_history("run the test suite for module 9", records([900.0] * 5), high=1000)
    fast = predict_from_history("run the test suite for module 9", records([2.0] * 5), low=60)
    assert slow is not None and slow.seconds == 1000
    assert fast is not None and fast.seconds == 60


def test_history_prediction_is_a_high_percentile_times_the_safety_factor() -> None:
    durations = [100.0, 110, 120, 130, 140, 150, 160, 170, 180, 400]
    prediction = predict_from_history("run the test suite for module 3", records(durations))
    assert prediction is not None and prediction.samples == 10
    assert prediction.seconds == round(_percentile(durations, 95) * HISTORY_SAFETY, 1)


def test_dissimilar_or_too_little_history_gives_no_history_prediction() -> None:
    history = records([100.0] * 5, task="translate the README into French, part {i}")
    assert predict_from_history("implement a JSON parser in parser.py", history) is None
    assert predict_from_history("run the test suite for module 1", records([100.0] * 2)) is None


def test_a_similar_run_that_timed_out_counts_double() -> None:
    history = records([10.0] * 4)
    from cc_executor._history import record_from_result

    timed_out = fake_result(
        "run the test suite for module 99", seconds=300, start=50, success=False
    )
    timed_out.error = TaskTimeoutError("t", timeout_s=300)
    history.append(record_from_result(timed_out, CCExecutorConfig()))
    prediction = predict_from_history("run the test suite for module 5", history, low=1)
    assert prediction is not None and "hit their timeout" in prediction.reason
    assert prediction.seconds > 600 * 0.8 * HISTORY_SAFETY


async def test_cc_stream_resolves_auto_too(model: ScriptedModel, tmp_path: Path) -> None:
    model.add(text("hi"))
    async with cc_stream("say hi", auto(model, tmp_path)) as stream:
        async for _ in stream:
            pass
    assert stream.result.timeout_source == "heuristic" and stream.result.timeout_s == 90


def test_complexity_grows_with_verbs_files_and_steps() -> None:
    small = get_task_complexity("What does this repository do?")
    medium = get_task_complexity("Add a --verbose flag to cli.py")
    large = get_task_complexity(
        "1. Implement a cache layer in cache.py\n2. Refactor api.py to use it\n"
        "3. Write tests in test_cache.py\n4. Document it in README.md"
    )
    assert (small.level, medium.level, large.level) == ("simple", "moderate", "complex")
    assert small.estimated_seconds < medium.estimated_seconds < large.estimated_seconds
    assert any("implement" in r for r in large.reasons)
    assert any("4 steps" in r for r in large.reasons)
    assert json.loads(large.model_dump_json())["level"] == "complex"


def test_complexity_uses_history_when_given() -> None:
    history = records([50.0, 60, 70, 80])
    c = get_task_complexity("run the test suite for module 12", history=history)
    assert c.estimated_seconds == 65 and c.reasons == ["median of 4 similar past runs"]


def test_strategy_orders_dependent_tasks_and_groups_the_rest() -> None:
    tasks = [
        "Implement a tokenizer in lexer.py",
        "What is the license of this project?",
        "Write user docs in docs/usage.md",
        "Then add tests for the result of step 1",
        "Fix the typo in docs/usage.md",
    ]
    s = suggest_execution_strategy(tasks)
    by_index = {t.index: t for t in s.tasks}
    assert [t.task for t in s.tasks] == tasks
    assert by_index[1].method == "direct" and by_index[0].method == "fresh_instance"
    assert by_index[3].depends_on == [0, 1, 2]
    assert by_index[4].depends_on == [2]
    assert s.concurrent_groups == [[0, 1, 2], [3, 4]]
    assert all(t.timeout_source == "heuristic" and t.timeout_s >= 60 for t in s.tasks)
    stage_max = [max(by_index[i].estimated_seconds for i in g) for g in s.concurrent_groups]
    assert s.total_estimated_seconds == pytest.approx(sum(stage_max))
    assert s.sequential_estimated_seconds == pytest.approx(
        sum(t.estimated_seconds for t in s.tasks)
    )
    assert json.loads(s.model_dump_json())["concurrent_groups"] == [[0, 1, 2], [3, 4]]


def test_strategy_takes_timeouts_from_history_when_given() -> None:
    s = suggest_execution_strategy(
        ["run the test suite for module 4", "say hello"], history=records([200.0] * 5)
    )
    assert [t.timeout_source for t in s.tasks] == ["history", "heuristic"]
    assert s.tasks[0].timeout_s == round(200 * HISTORY_SAFETY, 1)


def test_bad_inputs_raise_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError) as err:
        CCExecutorConfig(timeout="soon")
    assert err.value.field == "timeout" and '"auto"' in str(err.value)
    with pytest.raises(ConfigError) as err:
        CCExecutorConfig(auto_timeout_min=100, auto_timeout_max=10)
    assert err.value.field == "auto_timeout_max"
    with pytest.raises(ConfigError) as err:
        CCExecutorConfig(history_url="localhost:6379")
    assert err.value.field == "history_url"
    with pytest.raises(ConfigError, match="list of str"):
        suggest_execution_strategy("one task")


def _retrying(model: ScriptedModel, tmp_path: Path, retries: int, **kw: Any) -> CCExecutorConfig:
    """timeout="auto" predicted by the agent; the library's retries only, at once."""
    return auto(
        model,
        tmp_path,
        agent_predict_timeout=True,
        num_retries=retries,
        retry_backoff=(0, 0, 0),
        cli_max_retries=0,
        **kw,
    )


def _estimates(model: ScriptedModel) -> list[Any]:
    return [r for r in model.main_requests if r.prompt.startswith(ESTIMATE_PROMPT_START)]


async def test_the_timeout_is_predicted_once_per_task_not_once_per_attempt(
    model: ScriptedModel, tmp_path: Path
) -> None:
    """A retry carries the task's timeout: with the agent predicting, a second estimate
    would be one more paid call per retry."""
    model.add(
        structured_output({"seconds": 200, "reason": "small"}),
        http_error(529, "Overloaded", times=2),
        text("second time lucky"),
    )
    result = await cc_run("Refactor utils.py into a package", _retrying(model, tmp_path, 2))
    assert result.success, result.error
    assert len(_estimates(model)) == 1
    assert len(model.main_requests) == 4  # the estimate, then three attempts
    assert [a.number for a in result.attempts] == [1, 2, 3]
    assert (result.timeout_s, result.timeout_source) == (400, "agent")
    # Every attempt ran with that timeout (the transcript header of each says so).
    headers = [read_transcript(a.transcript_path)[0] for a in result.attempts]  # type: ignore[arg-type]
    assert [(h["timeout_s"], h["timeout_source"]) for h in headers] == [(400, "agent")] * 3


async def test_a_list_step_predicts_its_timeout_once_across_its_retries(
    model: ScriptedModel, tmp_path: Path
) -> None:
    model.add(
        structured_output({"seconds": 200, "reason": "small"}),
        http_error(529, "Overloaded"),
        text("done"),
    )
    config = _retrying(model, tmp_path, 1, state_dir=None)
    out = await cc_execute_list(["Refactor utils.py into a package"], config)
    assert out.success, out.summary()
    assert len(_estimates(model)) == 1 and len(model.main_requests) == 3
    assert [a.number for a in out[0].attempts] == [1, 2]
