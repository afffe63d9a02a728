"""Test helpers for code that runs Claude Code: a scripted Messages API server.

See `ScriptedModel`.
"""

from ._requests import SIDE_REPLY_TEXT, RecordedRequest, extract_prompt, is_main_request
from ._server import ScriptedModel
from ._turns import (
    EXHAUSTED_TEXT,
    BigTextTurn,
    HangTurn,
    HttpErrorTurn,
    TextTurn,
    ToolCall,
    ToolUseTurn,
    Turn,
    big_text,
    hang,
    http_error,
    structured_output,
    text,
    tool_use,
    tool_uses,
)

__all__ = [
    "BigTextTurn",
    "EXHAUSTED_TEXT",
    "HangTurn",
    "HttpErrorTurn",
    "RecordedRequest",
    "SIDE_REPLY_TEXT",
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
    "structured_output",
    "text",
    "tool_use",
    "tool_uses",
]
