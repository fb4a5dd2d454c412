"""The decoder properties every provider shares, over one provider table (issue 13 item 5).

Fed the way the engine feeds it (raw stdout chunks → LineFramer → decoder), every one-shot
decoder

* gives the same events and outcome for any split of its stdout into chunks;
* keeps its verdict (reply, thread, usage, error, …) when junk lines (garbage, unknown event
  types, JSON that is not an object) are inserted anywhere, unknown fields are added to every
  event and a truncated line is left at the end;
* never raises on junk anywhere, on a stream cut at any byte, or on arbitrary bytes;
* reads a truncated last line as if it were absent.

What differs per provider is data, in :data:`TABLE`: its recorded transcripts, the junk it gets
(some junk is a known event for one provider and drift for another) and which fields of the
outcome a drifted stream must keep. Provider-specific behaviour stays in ``test_<provider>.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alice_trio.engine.event_rate import INFORMATIONAL
from alice_trio.framing import decode_line
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import DecodeOutcome, Decoder
from alice_trio.providers.registry import get_provider

from decoding import feed_chunks, split_at

ROOT = Path(__file__).resolve().parent.parent / "transcripts"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _one_line(s: str) -> bool:
    return "\n" not in s and "\r" not in s


#: junk every decoder must read as drift
_COMMON_JUNK = [
    "not json",
    "[1, 2]",
    "42",
    "null",
    '"text"',
    '{"type":null}',
    '{"type":["list"]}',
    '{"type":{"nested":true}}',
]
_unknown_key = st.text(alphabet="abcdefghij_", min_size=1, max_size=8).map(lambda s: "x_" + s)


@attrs.frozen(repr=False)
class Row:
    """One provider: ``files`` (every recorded stdout the properties run on), ``stable`` (the
    ones whose verdict junk must not change), ``junk`` (extra junk lines), ``nested`` (keys
    whose object also gets the unknown fields), ``same`` (the outcome fields a drifted stream
    keeps), ``junk_ok(outcome)`` (whether junk may be inserted into a stream with that base
    outcome), ``verdict`` (a cut stream without a result says so: an error or missing reply),
    ``reply_seen`` (the reply is a complete assistant message that was emitted; gemini streams
    deltas and emits the message only when it is complete)."""

    name: str
    files: tuple[Path, ...]
    stable: tuple[Path, ...]
    junk: tuple[str, ...] = ()
    text_junk: Callable[[str], bool] = _one_line
    nested: tuple[str, ...] = ()
    same: tuple[str, ...] = ("reply", "thread", "usage", "error", "status")
    junk_ok: Callable[[DecodeOutcome], bool] = lambda base: True
    verdict: bool = False
    reply_seen: bool = True

    def decoder(self) -> Decoder:
        provider = get_provider(self.name)
        return provider.new_decoder(RunRequest(user_text="x"), provider.config_class())

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__


def _files(base: Path, *patterns: str, without: tuple[str, ...] = ()) -> tuple[Path, ...]:
    found = [p for pattern in patterns for p in sorted(base.glob(pattern))]
    return tuple(p for p in found if p.is_file() and not any(w in str(p) for w in without))


_CODEX = ROOT / "codex"
_CLAUDE, _GEMINI = ROOT / "claude", ROOT / "gemini"
_KIMI, _OPENCODE = ROOT / "kimi", ROOT / "opencode"
_CODEX_STABLE = (
    "codex_exec_tool",
    "codex_exec_http500_retries",
    "codex_exec_unknown_model_warning",
    "codex_exec_tool_sleep_SIGTERM",
)

TABLE = [
    Row(
        "codex",
        files=_files(_CODEX, "*/stdout.raw", without=("alice",)),
        stable=tuple(_CODEX / c / "stdout.raw" for c in _CODEX_STABLE),
        junk=(
            '{"type":"item.completed","item":{"type":"mystery"}}',
            '{"type":"item.completed","item":null}',
            '{"type":"thread.started"}',
            '{"type":"x_future","x":1}',
        ),
        same=("reply", "thread", "usage", "goal_done", "error", "terminal"),
    ),
    Row(
        "claude",
        files=_files(_CLAUDE, "*.stdout", without=("bypass_as_root_refused",)),
        stable=_files(_CLAUDE, "*.stdout", without=("bypass_as_root_refused",)),
        junk=(
            '{"type":"brand_new_event","x":1}',
            '{"type":"system","subtype":"hook_started"}',
            '{"type":"stream_event","event":{}}',
            '{"type":"assistant"}',
            '{"type":"assistant","message":{"content":[1,null,{"type":"image"}]}}',
            '{"type":"user","message":{"content":[{"type":"tool_result","content":[{"a":1}]}]}}',
            '{"type":"user"}',
            '{"type":"system","subtype":"api_retry","attempt":"x","retry_delay_ms":"soon"}',
        ),
        same=("reply", "thread", "usage", "error", "interrupted"),
    ),
    Row(
        "gemini",
        files=_files(_GEMINI, "*.stdout"),
        stable=_files(_GEMINI, "*.stdout", without=("gemini_json", "gemini_text")),
        # tool_use / tool_result / thought are known gemini events: they end a message
        junk=(
            '{"type":"brand_new_event","x":1}',
            '{"type":"message","role":"system","content":"x"}',
        ),
        verdict=True,
        reply_seen=False,
    ),
    Row(
        "kimi",
        files=_files(_KIMI, "*.stdout", "alice/*.jsonl"),
        stable=_files(_KIMI, "*.stdout", "alice/*.jsonl"),
        junk=(
            '{"role": "x_new"}',
            '{"role": "meta", "type": "x_new"}',
            '{"role": "assistant", "content": 42, "tool_calls": "nope"}',
        ),
        # a plain-text line after a legacy "Error code:" line continues that error's text
        text_junk=lambda s: (
            _one_line(s) and not s.strip().startswith(("Error code", "Interrupted by user"))
        ),
        junk_ok=lambda base: not base.error,
        nested=("message",),
        same=("reply", "thread", "status", "error"),
    ),
    Row(
        "opencode",
        files=_files(
            _OPENCODE, "oc_run_*/stdout.raw", "repeats/oc_run_*/stdout.raw", "alice/*.jsonl"
        ),
        stable=_files(
            _OPENCODE, "oc_run_*/stdout.raw", "repeats/oc_run_*/stdout.raw", "alice/*.jsonl"
        ),
        junk=(
            '{"type": "x_new"}',
            '{"type": "text", "part": "not a dict"}',
            '{"type": "step_finish", "part": {"tokens": [1]}}',
        ),
        nested=("part",),
        same=("reply", "thread", "usage", "error", "status", "terminal"),
    ),
]


def decode(
    row: Row, data: bytes, cuts: list[int] | None = None
) -> tuple[list[TurnEvent], DecodeOutcome]:
    return feed_chunks(row.decoder(), split_at(data, cuts))


def _junk(row: Row) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=60).filter(row.text_junk),
        st.sampled_from(_COMMON_JUNK + list(row.junk)),
        st.builds(lambda t: json.dumps({"type": t, "x": 1}), _unknown_key),
    )


def _with_fields(line: str, extra: dict[str, Any], nested: tuple[str, ...]) -> str:
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    obj.update(extra)
    for key in nested:
        if isinstance(obj.get(key), dict):
            obj[key].update(extra)
    return json.dumps(obj, ensure_ascii=False)


def _summary(row: Row, out: DecodeOutcome) -> dict[str, Any]:
    values = {
        "reply": out.result.reply,
        "thread": out.result.next_thread_id,
        "usage": out.result.usage,
        "goal_done": out.result.goal_done,
        "error": out.error,
        "status": out.status,
        "interrupted": out.interrupted,
        "terminal": out.terminal,
    }
    return {k: values[k] for k in row.same}


def test_every_provider_has_transcripts() -> None:
    assert {row.name for row in TABLE} == {"codex", "claude", "gemini", "kimi", "opencode"}
    for row in TABLE:
        assert len(row.files) >= 4 and len(row.stable) >= 4, row.name


@pytest.mark.parametrize("row", TABLE, ids=str)
@SETTINGS
@given(data=st.data())
def test_any_chunking_gives_the_same_events(row: Row, data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(row.files), label="file").read_bytes()
    cuts = data.draw(st.lists(st.integers(0, max(1, len(raw))), max_size=30), label="cuts")
    assert decode(row, raw, cuts) == decode(row, raw)


@pytest.mark.parametrize("row", TABLE, ids=str)
@SETTINGS
@given(data=st.data())
def test_quiet_lines_lose_only_informational_events_and_count_them(
    row: Row, data: st.DataObject
) -> None:
    """``quiet`` (set by the engine while no callback would get an informational event), on
    any lines: the same outcome, the same other events in order; an informational event either
    built as ever or counted in ``skipped`` by its kind."""
    raw = data.draw(st.sampled_from(row.files), label="file").read_bytes()
    lines = [decode_line(x) for x in raw.split(b"\n")]
    quiet = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    loud, hushed = row.decoder(), row.decoder()
    assert hushed.quiet is False and hushed.skipped == {}  # type: ignore[attr-defined]
    for line, q in zip(lines, quiet, strict=True):
        hushed.quiet = q  # type: ignore[attr-defined]
        full, got = loud.feed(line), hushed.feed(line)
        if not q:
            assert got == full
            continue
        assert [e for e in full if e.kind._value_ not in INFORMATIONAL] == [
            e for e in got if e.kind._value_ not in INFORMATIONAL
        ]
        built = iter(got)
        missing = Counter(e.kind._value_ for e in full if e not in got)
        assert all(e in built for e in got)  # a subsequence of the full events
        assert set(missing) <= INFORMATIONAL
        assert Counter(hushed.skipped) == missing  # type: ignore[attr-defined]
        hushed.skipped.clear()  # type: ignore[attr-defined]
    assert hushed.finish() == loud.finish()


def test_a_quiet_codex_decoder_builds_no_tool_event() -> None:
    """The flood's line (the rendering benchmark's): counted, not built, the state kept."""
    decoder = get_provider("codex").new_decoder(
        RunRequest(user_text="x"), get_provider("codex").config_class()
    )
    decoder.quiet = True  # type: ignore[attr-defined]
    line = json.dumps(
        {"type": "item.completed",
         "item": {"type": "command_execution", "command": "ls", "exit_code": 0}}
    )  # fmt: skip
    assert decoder.feed(line) == [] and decoder.feed(line) == []
    assert decoder.skipped == {"tool_use": 2}  # type: ignore[attr-defined]
    decoder.quiet = False  # type: ignore[attr-defined]
    assert [e.kind for e in decoder.feed(line)] == [EventKind.TOOL_USE]


@pytest.mark.parametrize("row", TABLE, ids=str)
@SETTINGS
@given(data=st.data())
def test_junk_unknown_fields_and_a_truncated_tail_keep_the_verdict(
    row: Row, data: st.DataObject
) -> None:
    raw = data.draw(st.sampled_from(row.stable), label="file").read_bytes()
    lines = raw.decode("utf-8", "replace").split("\n")
    _, base = decode(row, raw)
    extra = data.draw(
        st.dictionaries(_unknown_key, st.none() | st.integers() | st.text(max_size=5), max_size=3),
        label="extra",
    )
    mutated = [_with_fields(line, extra, row.nested) for line in lines]
    if row.junk_ok(base):
        for pos, junk in data.draw(
            st.lists(st.tuples(st.integers(0), _junk(row)), max_size=6), label="junk"
        ):
            mutated.insert(pos % (len(mutated) + 1), junk)
    json_lines = [x for x in lines if x.startswith("{")]
    tail = ""
    if json_lines:
        last = data.draw(st.sampled_from(json_lines), label="tail of")
        tail = last[: data.draw(st.integers(1, max(1, len(last) - 1)), label="cut")]
    _, out = decode(row, ("\n".join(mutated) + "\n" + tail).encode())
    assert _summary(row, out) == _summary(row, base)


@pytest.mark.parametrize("row", TABLE, ids=str)
@SETTINGS
@given(data=st.data())
def test_junk_anywhere_never_raises(row: Row, data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(row.files), label="file").read_bytes()
    lines = raw.split(b"\n")
    for pos, junk in data.draw(st.lists(st.tuples(st.integers(0), _junk(row)), max_size=8)):
        lines.insert(pos % (len(lines) + 1), junk.encode())
    events, out = decode(row, b"\n".join(lines))
    assert isinstance(out, DecodeOutcome)
    assert all(isinstance(e, TurnEvent) for e in events)


@pytest.mark.parametrize("row", TABLE, ids=str)
@SETTINGS
@given(data=st.data())
def test_a_stream_cut_anywhere_never_raises(row: Row, data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(row.files), label="file").read_bytes()
    events, out = decode(row, raw[: data.draw(st.integers(0, len(raw)), label="cut")])
    assert isinstance(out, DecodeOutcome)
    # the reply, if any, is (the end of) a complete assistant message seen
    texts = [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT]
    if row.reply_seen and out.result.reply:
        assert any(out.result.reply.endswith(t) for t in texts)
    if row.verdict and not out.terminal:  # no result: a failure, or no reply at all
        assert out.error or (not out.result.reply and out.missing_reply)


@pytest.mark.parametrize("row", TABLE, ids=str)
@SETTINGS
@given(data=st.data())
def test_a_truncated_last_line_reads_as_absent(row: Row, data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(row.stable), label="file").read_text().rstrip("\n")
    head, _, last = text.rpartition("\n")
    if not last.startswith("{"):
        return
    cut = last[: data.draw(st.integers(0, len(last) - 1), label="keep")]
    _, expected = decode(row, head.encode())
    _, got = decode(row, (head + "\n" + cut).encode())
    assert (got.result.reply, got.result.next_thread_id) == (
        expected.result.reply,
        expected.result.next_thread_id,
    )


@pytest.mark.parametrize("row", TABLE, ids=str)
@settings(max_examples=100, deadline=None)
@given(blob=st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(row: Row, blob: bytes) -> None:
    _, out = decode(row, blob)
    assert isinstance(out, DecodeOutcome)
