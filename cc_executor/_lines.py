"""Lines → events: the CLI's stdout cut into whole lines, and each line read into an event.

This is the hot path of every run (a partial-message stream is thousands of lines a
second), so it is built to touch each byte as few times as it can:

- `LineSplitter` cuts the chunks the pipe gives into blocks of whole lines, copying
  at most a chunk at a time; a line longer than a chunk grows in one `bytearray`
  and is handed on alone, a block of one line that is read without a split (copy).
- `LineReader` parses a line with pydantic-core's JSON reader into a dict (several times
  faster than `json.loads`) and types it at once, except a `stream_event` line: the
  run's outcome never depends on one, so its dict waits in an `EventBatch` and becomes
  a `StreamEvent` only when a consumer reads it (`cc_stream`, `on_event`, ...). A
  `cc_run` without `on_event` never builds them. Any line the fast reader refuses goes
  through `parse_event`, whose result (or `InvalidLineError`) is the reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from pydantic_core import from_json

from .events import Event, InvalidLineError, UnknownEvent, parse_event, parse_object

__all__ = ["EventBatch", "LineReader", "LineSplitter", "split_lines"]

# Lines growing past this size are handed on alone (one line, one block), so the block
# is never split (a copy) to read it.
_ALONE = 1 << 20


class LineSplitter:
    """Cuts a byte stream into blocks of whole lines. Pure: no I/O, fed chunk by chunk.

    `feed(chunk)` and `end()` return `(block, parse)` pairs in stream order. A block
    holds one or more complete lines, each ending in b"\\n" (a CR before it is kept);
    the bytes of every block, joined, are the stream (plus a b"\\n" after a last line
    that had none). `parse` is False for the pieces of a line longer than
    `max_line_bytes`: they are passed on (for the transcript) but not to be parsed.
    """

    __slots__ = ("_max", "_oversized", "_pending")

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be >= 1, got {max_line_bytes}")
        self._max = max_line_bytes
        self._pending = bytearray()
        self._oversized = False  # inside a line already passed on unparsed

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """The blocks that `data` completes (none while a line is still growing)."""
        out: list[tuple[bytes, bool]] = []
        start, size = 0, len(data)
        if self._oversized:  # the rest of a line over the limit, up to its newline
            first = data.find(b"\n")
            if first < 0:
                if data:
                    out.append((data, False))
                return out
            out.append((data[: first + 1], False))
            self._oversized = False
            start = first + 1
        cut = data.rfind(b"\n", start)
        pending = self._pending
        if cut < 0:
            pending += data if start == 0 else data[start:]
            self._check_pending(out)
            return out
        if pending:  # the first line began in an earlier chunk
            first = data.find(b"\n", start)
            pending += data[start : first + 1]
            start = first + 1
            fits = len(pending) - 1 <= self._max
            if len(pending) >= _ALONE or not fits:
                # A long line ends here: handed on alone. Its bytearray is dropped as
                # soon as copied, so the copy does not raise the peak above two lines'
                # worth, which reading the line into a str needs anyway.
                out.append((bytes(pending), fits))
                self._pending = pending = bytearray()
        if start <= cut:
            if size > self._max:  # a chunk bigger than the limit: look at each line
                self._split_by_limit(out, data, start, cut)
            elif pending:
                pending += data[start : cut + 1]
                out.append((bytes(pending), True))
                pending.clear()
            else:
                out.append(
                    (data if start == 0 and cut + 1 == size else data[start : cut + 1], True)
                )
        elif pending:
            out.append((bytes(pending), True))
            pending.clear()
        if cut + 1 < size:
            pending += data[cut + 1 :]
            self._check_pending(out)
        return out

    def end(self) -> list[tuple[bytes, bool]]:
        """The last line, if the stream ended without a newline (one is added to it)."""
        pending, self._pending = self._pending, bytearray()
        oversized, self._oversized = self._oversized, False
        if not pending:  # a line over the limit gets its newline, so the next record is apart
            return [(b"\n", False)] if oversized else []
        pending += b"\n"
        return [(bytes(pending), not oversized)]

    def _check_pending(self, out: list[tuple[bytes, bool]]) -> None:
        if len(self._pending) > self._max:
            out.append((bytes(self._pending), False))
            self._pending = bytearray()
            self._oversized = True

    def _split_by_limit(
        self, out: list[tuple[bytes, bool]], data: bytes, start: int, cut: int
    ) -> None:
        if self._pending:  # a line begun in an earlier chunk, within the limit
            out.append((bytes(self._pending), True))
            self._pending.clear()
        while start <= cut:
            end = data.find(b"\n", start) + 1
            out.append((data[start:end], end - start - 1 <= self._max))
            start = end


def split_lines(block: bytes) -> Sequence[bytes]:
    """The lines of a block (their b"\\n" removed, or kept on a block of one long line:
    JSON allows it, and a 100 MB line is not copied to drop one byte)."""
    if len(block) >= _ALONE and block.find(b"\n") == len(block) - 1:
        return (block,)
    return block.split(b"\n")


class LineReader:
    """Reads one run's lines into events. It starts lazy (`stream_event` lines wait
    as dicts); once a consumer has typed one of them, it types every line as
    it comes (`parse_event`): a consumer that reads them reads them all, and typing a
    line at once costs less than the fast reader plus typing its dict later. Long lines
    always take the fast reader (`parse_event` would hold a third copy of them)."""

    __slots__ = ("eager", "waiting")

    def __init__(self) -> None:
        self.eager = False
        self.waiting = False  # a stream_event line read and not yet typed

    def batch(self, items: list[Event | dict[str, Any]]) -> Sequence[Event]:
        """What a consumer gets for the items of `read_block`: an `EventBatch` while
        some wait to be typed, else the list itself (all typed: less work per event)."""
        if not self.waiting:
            return items  # type: ignore[return-value]  # no dict in it
        return EventBatch(items, self)

    def read_block(self, block: bytes) -> tuple[list[Event | dict[str, Any]], list[bytes]]:
        """Every line of `block` read, blank lines skipped: the items in order (events,
        and the dicts of `stream_event` lines while lazy), and the lines that are not
        JSON objects (`parse_event` raised `InvalidLineError` for them).

        A line goes to pydantic-core's JSON reader; a JSON object is typed with
        `parse_object`, except a `stream_event` line's, kept as it is. Anything the fast
        reader refuses, or that is not an object, goes through `parse_event`, which
        decides. Once `eager`, lines shorter than a chunk go straight to `parse_event`.
        """
        items: list[Event | dict[str, Any]] = []
        invalid: list[bytes] = []
        append = items.append
        eager = self.eager
        self.waiting = False
        for line in split_lines(block):
            if not eager or len(line) >= _ALONE:
                try:
                    data = from_json(line)
                except ValueError:
                    data = None
                if type(data) is dict:
                    if data.get("type") == "stream_event":
                        append(data)
                        self.waiting = True
                        continue
                    try:
                        append(parse_object(data, line))
                    except InvalidLineError:
                        invalid.append(line)
                    continue
            if not line or line.isspace():  # the fast reader refuses them: checked here
                continue
            try:
                append(parse_event(line))
            except InvalidLineError:
                invalid.append(line)
        return items, invalid


class EventBatch(Sequence[Event]):
    """The events of one block of output, in order; `stream_event` lines are typed on
    first access (then kept), and that access turns `reader` eager. Reads like a list:
    `len`, indexing, slicing, iteration."""

    __slots__ = ("_items", "_reader")

    def __init__(
        self, items: list[Event | dict[str, Any]], reader: LineReader | None = None
    ) -> None:
        self._items = items
        self._reader = reader

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._items)))]
        item = self._items[index]
        if type(item) is dict:
            item = self._items[index] = _stream_event(item)
            if self._reader is not None:
                self._reader.eager = True
        return item  # type: ignore[return-value]  # a dict is never left here

    def __iter__(self) -> Iterator[Event]:
        for i in range(len(self._items)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (EventBatch, list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"EventBatch({list(self)!r})"


def _stream_event(data: dict[str, Any]) -> Event:
    """A `stream_event` object, typed. Its declared fields are all optional, so only a
    field of the wrong shape can fail, and `parse_object` drops such a field; the
    `UnknownEvent` is for what cannot happen (a line cc_executor already counted valid)."""
    try:
        return parse_object(data, b"")
    except ValueError:
        return UnknownEvent.model_validate(data)
