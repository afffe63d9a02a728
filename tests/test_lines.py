"""The stream path: cutting stdout into lines (`LineSplitter`), reading a line into an
event (`LineReader`, which must agree with `parse_event` on every line), the lazily typed
`EventBatch`, and a run over long lines end to end (issue 19)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from cc_executor import CCExecutorConfig, cc_run, cc_stream
from cc_executor._lines import EventBatch, LineReader, LineSplitter, split_lines
from cc_executor._secrets import MASK
from cc_executor._transcript import read_transcript
from cc_executor.events import (
    Event,
    InvalidLineError,
    ResultEvent,
    StreamEvent,
    UnknownEvent,
    parse_event,
)

from .conftest import ROOT

Factory = Callable[..., CCExecutorConfig]

# --- LineSplitter -------------------------------------------------------------------


def split(stream: bytes, chunks: Iterable[int], max_line: int) -> list[tuple[bytes, bool]]:
    """Feed `stream` to a splitter in chunks of the given sizes (cycled), then end it."""
    splitter = LineSplitter(max_line)
    sizes = list(chunks)
    out: list[tuple[bytes, bool]] = []
    pos = i = 0
    while pos < len(stream):
        size = sizes[i % len(sizes)]
        out += splitter.feed(stream[pos : pos + size])
        pos += size
        i += 1
    return out + splitter.end()


def check_blocks(stream: bytes, blocks: list[tuple[bytes, bool]], max_line: int) -> None:
    """What every consumer relies on: the blocks are the stream (a last line gets its
    newline), a parsed block is whole lines, a line within the limit lies whole in one
    parsed block, and the pieces of a line over the limit are unparsed and hold nothing
    else."""
    expected = stream + (b"\n" if stream and not stream.endswith(b"\n") else b"")
    assert b"".join(block for block, _ in blocks) == expected
    assert all(block and (block.endswith(b"\n") or not parse) for block, parse in blocks)
    spans, pos = [], 0
    for block, parse in blocks:
        spans.append((pos, pos + len(block), parse))
        pos += len(block)
    start = 0
    while start < len(expected):
        end = expected.index(b"\n", start) + 1
        over = [s for s in spans if s[0] < end and s[1] > start]
        if end - start - 1 <= max_line:
            assert len(over) == 1 and over[0][2], (start, end, over)
        else:
            assert all(not p and a >= start and b <= end for a, b, p in over), (start, end)
        start = end


def random_stream(rng: random.Random, max_line: int) -> bytes:
    lines = []
    for _ in range(rng.randrange(1, 40)):
        kind = rng.random()
        if kind < 0.15:
            size = 0  # an empty line
        elif kind < 0.8:
            size = rng.randrange(1, 300)
        elif kind < 0.95:
            size = rng.randrange(300, 300 + 3 * max_line)
        else:
            size = max_line + rng.randrange(0, 2)  # at the limit, and one past it
        body = bytes(rng.choice(b'{}":, abc\r\xff\x00') for _ in range(size))
        lines.append(body + (b"\r\n" if rng.random() < 0.2 else b"\n"))
    stream = b"".join(lines)
    return stream[:-1] if rng.random() < 0.3 else stream  # a last line without newline


@pytest.mark.parametrize("seed", range(300))
def test_random_streams_split_into_whole_lines_whatever_the_chunks(seed: int) -> None:
    rng = random.Random(seed)
    max_line = rng.choice([1, 7, 100, 1000])
    stream = random_stream(rng, max_line)
    chunks = [rng.randrange(1, 2 * max_line + 50) for _ in range(rng.randrange(1, 6))]
    check_blocks(stream, split(stream, chunks, max_line), max_line)


def test_a_line_cut_at_every_chunk_boundary() -> None:
    stream = b'{"a": 1}\n{"b": 2}\n{"c": 3}\n'
    for size in range(1, len(stream) + 1):
        blocks = split(stream, [size], 1 << 20)
        check_blocks(stream, blocks, 1 << 20)
        assert [line for b, _ in blocks for line in b.splitlines()] == stream.splitlines()


@pytest.mark.parametrize("chunk", [65536, 1 << 20, 999_983])
def test_a_line_longer_than_the_chunk_comes_alone_and_whole(chunk: int) -> None:
    long = b'{"type": "result", "result": "' + b"x" * (3 << 20) + b'"}'
    stream = b'{"a": 1}\n' + long + b'\n{"b": 2}\n{"c": 3}\n'
    blocks = split(stream, [chunk], 256 << 20)
    check_blocks(stream, blocks, 256 << 20)
    assert (long + b"\n", True) in blocks  # one block, one line: read without a split
    assert split_lines(long + b"\n") == (long + b"\n",)


def test_a_last_line_without_newline_gets_one() -> None:
    assert split(b'{"a": 1}\n{"b": 2}', [4], 100) == [(b'{"a": 1}\n', True), (b'{"b": 2}\n', True)]
    assert LineSplitter(100).end() == []


def test_crlf_and_empty_lines_pass_through_and_parse() -> None:
    stream = b'{"type": "x"}\r\n\n\r\n{"type": "y"}\n'
    blocks = split(stream, [5], 100)
    assert b"".join(b for b, _ in blocks) == stream
    items = [item for b, _ in blocks for item in LineReader().read_block(b)[0]]
    assert [item.type for item in items] == ["x", "y"]  # type: ignore[union-attr]


def test_a_line_over_the_limit_is_passed_on_unparsed_and_the_next_one_parses() -> None:
    stream = b"a" * 250 + b"\n" + b'{"b": 2}\n' + b"c" * 120
    blocks = split(stream, [64], 100)
    check_blocks(stream, blocks, 100)
    assert [b for b, parse in blocks if parse] == [b'{"b": 2}\n']
    assert blocks[-1] == (b"\n", False)  # the unended last line is ended, unparsed


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        LineSplitter(0)


# --- LineReader agrees with parse_event ---------------------------------------------


def read_line(line: bytes, eager: bool = False) -> Event | dict[str, object]:
    """What a run's reader makes of one line (a block of one line, as read from stdout)."""
    reader = LineReader()
    reader.eager = eager
    items, invalid = reader.read_block(line + b"\n")
    if invalid:
        assert invalid == [line] and items == []
        raise InvalidLineError(line, "read_block")
    (item,) = items
    return item


def corpus() -> list[bytes]:
    lines = [
        line
        for path in sorted((ROOT / "tests" / "fixtures").rglob("*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]
    edge = [
        b'{"type": "assistant", "message": {"content": [{"type": "text", "text": "\\ud83d"}]}}',
        b'{"type": "result", "result": "\\ud83d\\ude00", "is_error": null, "usage": null}',
        b'\xef\xbb\xbf{"type": "result", "subtype": "success"}',
        b'{"type": "result", "result": "\xff"}',
        b'{"type": "result", "result": "a\x01b"}',
        b'{"type": "result", "num_turns": NaN, "duration_ms": 1e400}',
        b'{"type": "result", "num_turns": 123456789012345678901234567890}',
        b'{"type": "result", "subtype": "a", "subtype": "b"}',
        b'{"type": "result", "is_error": "maybe"}',
        b'{"type": "stream_event", "event": "not a dict", "uuid": 5}',
        b'{"type": "stream_event", "event": {"type": "ping"}}\r',
        b'{"type": "system", "subtype": "brand_new"}',
        b'{"a": ' * 300 + b"1" + b"}" * 300,
        b'{"type": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"[1, 2]",
        b"42",
        b'"text"',
        b"not json at all",
        b'{"type": "assistant", "trunc',
        b"{}",
        b'{"type": null}',
    ]
    return lines + edge


def typed(item: Event | dict[str, object]) -> Event:
    return EventBatch([item])[0]


@pytest.mark.parametrize("line", corpus(), ids=lambda line: line[:40].decode("utf-8", "replace"))
@pytest.mark.parametrize("eager", [False, True], ids=["lazy", "eager"])
def test_the_reader_gives_what_parse_event_gives(line: bytes, eager: bool) -> None:
    try:
        expected: Event | None = parse_event(line)
    except InvalidLineError:
        expected = None  # then the reader must report the line as invalid
    try:
        got: Event | None = typed(read_line(line, eager))
    except InvalidLineError:
        got = None
    assert type(got) is type(expected)
    assert got == expected


@pytest.mark.parametrize("blank", [b"", b"  ", b"\r", b"\t \r"])
def test_blank_lines_are_skipped_not_invalid(blank: bytes) -> None:
    for eager in (False, True):
        reader = LineReader()
        reader.eager = eager
        assert reader.read_block(blank + b"\n" + blank + b"\n") == ([], [])


def test_only_stream_event_lines_wait_to_be_typed() -> None:
    assert isinstance(read_line(b'{"type": "stream_event", "event": {}}'), dict)
    assert isinstance(read_line(b'{"type": "result", "subtype": "success"}'), ResultEvent)
    assert isinstance(read_line(b'{"type": "later_cli_thing"}'), UnknownEvent)


def test_an_event_batch_reads_like_a_list_and_types_each_line_once() -> None:
    lines = [
        b'{"type": "stream_event", "event": {"type": "ping"}, "session_id": "s"}',
        b'{"type": "result", "subtype": "success", "result": "ok"}',
        b'{"type": "stream_event", "event": {"type": "message_stop"}}',
    ]
    batch = EventBatch([read_line(line) for line in lines])
    expected = [parse_event(line) for line in lines]
    assert len(batch) == 3
    assert isinstance(batch[0], StreamEvent) and batch[0] is batch[0]
    assert batch[-1] == expected[-1] and batch[1:] == expected[1:]
    assert list(batch) == expected and batch == expected
    assert [type(e) for e in reversed(batch)] == [StreamEvent, ResultEvent, StreamEvent]
    assert batch.index(expected[1]) == 1 and expected[2] in batch


def test_a_reader_types_every_line_at_once_after_a_consumer_read_one() -> None:
    lines = [line for line in corpus() if b"stream_event" in line]
    block = b"\n".join(lines) + b"\n"
    reader = LineReader()
    items, _ = reader.read_block(block)
    lazy = reader.batch(items)
    assert type(lazy) is EventBatch and all(type(item) is dict for item in items)
    assert not reader.eager
    first = lazy[0]
    assert reader.eager and isinstance(first, StreamEvent)
    eager, _ = reader.read_block(block)
    assert all(type(e) is StreamEvent for e in eager)
    assert reader.batch(eager) is eager  # all typed: the list itself
    assert eager == list(lazy) == [parse_event(line) for line in lines]
    long = b'{"type": "stream_event", "event": {"text": "' + b"t" * (2 << 20) + b'"}}\n'
    assert type(reader.read_block(long)[0][0]) is dict  # a long line keeps the fast reader


# --- end to end over long lines -----------------------------------------------------


async def test_a_secret_across_chunk_boundaries_of_a_long_line_is_masked(
    fake_cli: Factory, transcripts: Path
) -> None:
    """A 3 MB line read in many chunks, the secret every 65,521 bytes (so across the
    pipe's chunk boundaries, whatever they are): masked in the transcript, everywhere."""
    secret = 'Pa"ss\\Word-Quux-Zeta'
    env = {"FAKE_API_KEY": secret, "FAKE_CLI_BYTES": str(3 << 20)}
    result = await cc_run("x", fake_cli("long_line_secret", env=env))
    assert result.success, result.error
    count = result.output.count(secret)
    assert count > 40
    (path,) = transcripts.iterdir()
    data = path.read_bytes()
    assert secret.encode() not in data and json.dumps(secret)[1:-1].encode() not in data
    _, lines, footer = read_transcript(path)
    assert footer is not None and footer["invalid_lines"] == 0
    assert max(lines, key=len).count(MASK.encode()) == count


async def test_a_stream_of_long_and_short_lines_keeps_every_byte_and_event(
    fake_cli: Factory, transcripts: Path
) -> None:
    """Stream events between lines of several MB: every event arrives typed, in order,
    and the transcript holds the stdout byte for byte."""
    env = {"FAKE_CLI_BYTES": str(3 << 20)}
    events = []
    async with cc_stream("x", fake_cli("long_lines", env=env)) as stream:
        async for event in stream:
            events.append(event)
    assert stream.result.success, stream.result.error
    deltas = [e.text_delta for e in events if isinstance(e, StreamEvent)]
    assert deltas == [f"delta {i}" for i in range(6)]
    assert len(stream.result.output) == 3 << 20
    (path,) = transcripts.iterdir()
    _, lines, _ = read_transcript(path)
    assert [parse_event(line) for line in lines] == events
