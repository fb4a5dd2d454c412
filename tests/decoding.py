"""The engine's stdout path without a process, for decoder tests: bytes chunks → LineFramer →
a provider decoder → events, then ``finish()``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

from alice_trio.framing import LineFramer, OversizedLine, decode_line
from alice_trio.models import TurnEvent, Usage
from alice_trio.providers.base import DecodeOutcome, Decoder


def feed_chunks(decoder: Decoder, chunks: Iterable[bytes]) -> tuple[list[TurnEvent], DecodeOutcome]:
    """Feed raw stdout ``chunks`` (any split) through a framer into ``decoder``, like the engine
    does, and return every event and the decoder's outcome."""
    framer = LineFramer()
    events: list[TurnEvent] = []
    lines: list[bytes | OversizedLine] = []
    for chunk in chunks:
        lines += framer.feed(chunk)
    lines += framer.feed_eof()
    for line in lines:
        assert not isinstance(line, OversizedLine)
        events += decoder.feed(decode_line(line))
    return events, decoder.finish()


def split_at(data: bytes, cuts: Iterable[int] | None) -> list[bytes]:
    """``data`` cut at the given offsets (out-of-range ones ignored)."""
    bounds = [0, *sorted(c for c in (cuts or ()) if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def json_lines(lines: Iterable[Any]) -> bytes:
    """Stdout of JSON lines: each item is a line, JSON-encoded unless it is a string already."""
    return ("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n").encode()


def assert_outcome(
    out: DecodeOutcome,
    reply: str,
    thread: str,
    usage: tuple[int, int, int],
    error: str,
    status: int | None,
    interrupted: bool,
    terminal: bool,
    *,
    reply_prefix: bool = False,
) -> None:
    """One recorded transcript's expected outcome: ``reply`` (a prefix with ``reply_prefix``),
    thread id, ``(input, cached input, output)`` tokens, an ``error`` substring ("" = none),
    HTTP status, interrupted and terminal flags."""
    if reply_prefix:
        assert out.result.reply.startswith(reply)
    else:
        assert out.result.reply == reply
    assert out.result.next_thread_id == thread
    assert out.result.usage == Usage(
        input_tokens=usage[0], cached_input_tokens=usage[1], output_tokens=usage[2]
    )
    if error:
        assert error in out.error
    else:
        assert out.error == ""
    assert out.status == status
    assert out.interrupted is interrupted
    assert out.terminal is terminal
