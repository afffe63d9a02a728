"""Test helpers for code that runs Claude Code: a scripted Messages API server
(`ScriptedModel`), a Node-free stand-in CLI replaying a recorded run (`replay_cli`),
a switch that removes retry waits (`set_testing`), and a pytest plugin
(`cc_executor.testing.pytest_plugin`: the ``scripted_model`` fixture).
"""

from ._mode import is_testing, set_testing
from ._replay_cli import replay_cli
from ._server import (
    EXHAUSTED_TEXT,
    SIDE_REPLY_TEXT,
    BigTextTurn,
    HangTurn,
    HttpErrorTurn,
    RecordedRequest,
    ScriptedModel,
    TextTurn,
    ToolCall,
    ToolUseTurn,
    Turn,
    big_text,
    extract_prompt,
    hang,
    http_error,
    is_main_request,
    structured_output,
    text,
    tool_use,
    tool_uses,
)

__all__ = [
    "EXHAUSTED_TEXT",
    "SIDE_REPLY_TEXT",
    "BigTextTurn",
    "HangTurn",
    "HttpErrorTurn",
    "RecordedRequest",
    "ScriptedModel",
    "TextTurn",
    "ToolCall",
    "ToolUseTurn",
    "Turn",
    "big_text",
    "extract_prompt",
    "hang",
    "http_error",
    "is_main_request",
    "is_testing",
    "replay_cli",
    "set_testing",
    "structured_output",
    "text",
    "tool_use",
    "tool_uses",
]
