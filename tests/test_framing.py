"""The line framer against a reference model: any chunking of any stream gives the lines that
splitting the whole stream gives, oversized lines are reported with their full size and head,
and the buffer never holds more than the limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alice_trio.framing import LineFramer, OversizedLine, decode_line


def reference(stream: bytes, limit: int) -> list[bytes | OversizedLine]:
    """What the framer must produce for ``stream`` fed whole, then EOF."""
    pieces = stream.split(b"\n")
    last = pieces.pop()  # after the final newline: the unterminated rest
    out: list[bytes | OversizedLine] = []
    for piece in [*pieces, *([last] if last else [])]:
        if len(piece) > limit:
            out.append(OversizedLine(len(piece), piece[:200]))
        else:
            out.append(piece[:-1] if piece.endswith(b"\r") else piece)
    return out


def frame(chunks: list[bytes], limit: int) -> list[bytes | OversizedLine]:
    framer = LineFramer(limit)
    out: list[bytes | OversizedLine] = []
    for chunk in chunks:
        out += framer.feed(chunk)
        assert framer.buffered <= limit
    return out + framer.feed_eof()


lines = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.builds(lambda n, b: b * n, st.integers(0, 700), st.sampled_from([b"x", b"\r", b"ab"])),
    ),
    max_size=12,
)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    parts = draw(lines)
    stream = b"\n".join(parts) + draw(st.sampled_from([b"", b"\n", b"\r\n"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@given(data=chunked(), limit=st.sampled_from([1, 2, 3, 10, 200, 201, 650, 10_000]))
def test_any_chunking_matches_the_reference(data: tuple[bytes, list[bytes]], limit: int) -> None:
    stream, chunks = data
    assert frame(chunks, limit) == reference(stream, limit)


@pytest.mark.parametrize("limit", [5, 6])
def test_limit_is_inclusive(limit: int) -> None:
    assert frame([b"12345\n123456\n"], limit) == reference(b"12345\n123456\n", limit)
    assert frame([b"12345\n"], 5) == [b"12345"]
    assert frame([b"12345", b"\n"], 5) == [b"12345"]  # a partial line at the limit is kept
    assert frame([b"123", b"45", b"\n"], 5) == [b"12345"]
    assert frame([b"123456\n"], 5) == [OversizedLine(6, b"123456")]


def test_oversized_line_across_chunks_keeps_size_and_head() -> None:
    big = bytes(range(256)).replace(b"\n", b"-") * 4
    out = frame([big[:100], big[100:700], big[700:], b"\nnext\n"], 300)
    assert out == [OversizedLine(len(big), big[:200]), b"next"]


def test_crlf_and_eof() -> None:
    assert frame([b"a\r\nb\r", b"\n\r\nc"], 10) == [b"a", b"b", b"", b"c"]
    framer = LineFramer(4)
    assert framer.feed(b"") == []
    assert framer.feed_eof() == []
    with pytest.raises(RuntimeError, match=r"^feed\(\) after feed_eof\(\)$"):
        framer.feed(b"x")


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^max_line_bytes must be positive$"):
        LineFramer(0)


def test_decode_line_replaces_invalid_utf8() -> None:
    assert decode_line(b"caf\xe9 \xe2\x82") == "caf\ufffd \ufffd"


def eager_frame(chunks: list[bytes], limit: int) -> list[bytes | OversizedLine]:
    framer = LineFramer(limit, eager=True)
    out: list[bytes | OversizedLine] = []
    for chunk in chunks:
        out += framer.feed(chunk)
    return out + framer.feed_eof()


@given(data=chunked(), limit=st.sampled_from([1, 3, 10, 200, 650]))
def test_eager_reports_each_oversized_line_once(data: tuple[bytes, list[bytes]], limit: int):
    """Eager mode gives the same lines; an oversized one is reported once, early (a lower
    bound of its size, its head a prefix of the full head) or at its newline."""
    stream, chunks = data
    expected = reference(stream, limit)
    got = eager_frame(chunks, limit)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, OversizedLine):
            assert isinstance(g, OversizedLine)
            assert limit < g.size <= e.size and e.head.startswith(g.head)
            assert g.complete == (g.size == e.size) or not g.complete
        else:
            assert g == e


def test_an_endless_line_is_reported_before_its_newline():
    framer = LineFramer(10, eager=True)
    assert framer.feed(b"x" * 8) == []
    assert framer.feed(b"x" * 8) == [OversizedLine(16, b"x" * 16, complete=False)]
    assert framer.feed(b"x" * 1000) == []  # dropped, not reported again
    assert framer.feed(b"x\nok\n") == [b"ok"]
    assert LineFramer(10).feed(b"x" * 16) == []  # the default waits for the newline
