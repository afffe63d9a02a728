"""Request classification: what the scripted model records of each request
(`RecordedRequest`, credentials redacted), the task prompt in it (`extract_prompt`), and
whether it is a main conversation request that consumes a turn (`is_main_request`) or a
side request answered without touching the script."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._turns import Turn

__all__ = [
    "RecordedRequest",
    "SIDE_REPLY_TEXT",
    "extract_prompt",
    "is_main_request",
]


# ------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the server received.

    Attributes:
        method: ``"POST"``, ``"HEAD"``, ...
        path: the path with its query string, e.g. ``"/v1/messages?beta=true"``.
        headers: request headers with lower-case names; the values of
            ``x-api-key`` and ``authorization`` are replaced by ``"[redacted]"``.
        body: the parsed JSON body, or ``None`` (no body, or not JSON).
        raw_body: the body bytes as received.
        received_at: ``time.time()`` when the request was read.
        is_main: true for a main conversation request (it consumed a turn of
            the script, or got the "script exhausted" reply).
        turn: the turn that answered it (``None`` for side requests).
        exhausted: true if it was answered because the script had run out.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes = field(repr=False)
    received_at: float
    is_main: bool
    turn: Turn | None = None
    exhausted: bool = False

    @property
    def consumed_turn(self) -> bool:
        """Alias of `is_main`: whether the request was answered from the script."""
        return self.is_main

    @property
    def prompt(self) -> str | None:
        """The prompt in this request's first user message (see `extract_prompt`)."""
        if not isinstance(self.body, Mapping):
            return None
        return extract_prompt(self.body)


def _text_blocks(content: Any) -> list[str] | None:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return None
    out: list[str] = []
    for block in content:
        if isinstance(block, Mapping) and block.get("type") == "text":
            value = block.get("text")
            if isinstance(value, str):
                out.append(value)
    return out


def extract_prompt(body: Mapping[str, Any]) -> str | None:
    """The prompt, verbatim, from a Messages API request body the CLI sent.

    The CLI puts the prompt in the first ``user`` message: zero or more
    ``<system-reminder>`` text blocks it adds itself, then the prompt as its
    own text block, byte for byte as written to the CLI's stdin. This returns
    the text of the blocks after the leading system reminders (joined with
    nothing in between, in the unlikely case there are several), or ``None``
    if the body has no user message.
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in messages:
        if isinstance(message, Mapping) and message.get("role") == "user":
            blocks = _text_blocks(message.get("content"))
            if blocks is None:
                return None
            start = 0
            # Skip the CLI's own reminders, but never the last block: that one is
            # the prompt even if the user's prompt itself starts like a reminder.
            while start < len(blocks) - 1 and blocks[start].startswith("<system-reminder>"):
                start += 1
            return "".join(blocks[start:])
    return None


_SIDE_MAX_TOKENS = 1024
SIDE_REPLY_TEXT = "(scripted model: side request)"
"""The text a side ``/v1/messages`` request (see `is_main_request`) gets."""


def is_main_request(method: str, path: str, body: Any) -> bool:
    """Whether a request belongs to the scripted conversation (consumes a turn).

    Main: ``POST /v1/messages`` (any query string) whose JSON body has a
    ``messages`` list, except helper calls the CLI may make on the side:

    - ``max_tokens <= 1`` (a quota or connectivity probe);
    - no ``tools`` offered and ``max_tokens <= 1024`` (small helper calls such
      as title or topic generation).

    CLI 2.1.328 with the environment from `ScriptedModel.env` makes no side
    calls at all: every request is a main one, including those of subagents
    (the ``Agent`` tool), which run concurrently with the main conversation.
    Real conversation requests offer tools or ask for thousands of output
    tokens (``--tools ""`` still sends ``max_tokens`` 8192 to 128000).
    """
    if method != "POST" or urlsplit(path).path.rstrip("/") != "/v1/messages":
        return False
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return False
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int):
        if max_tokens <= 1:
            return False
        if not body.get("tools") and max_tokens <= _SIDE_MAX_TOKENS:
            return False
    return True
