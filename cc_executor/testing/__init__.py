"""Test helpers for code that runs Claude Code: a scripted Messages API server.

See `ScriptedModel`.
"""

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
    "structured_output",
    "text",
    "tool_use",
    "tool_uses",
]
