"""The engine's stdout path without a process, for decoder tests: bytes chunks → LineFramer →
a provider decoder → events, then ``finish()``."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from alice_trio.framing import LineFramer, OversizedLine, decode_line
from alice_trio.models import TurnEvent
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
