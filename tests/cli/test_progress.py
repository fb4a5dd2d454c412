"""The progress printer: bounded output for floods, clipped long texts, the reply shown once.
No timing assertions: frames are driven by trio's MockClock."""

from __future__ import annotations

import io
import random

import pytest
import trio
import trio.testing

from alice_trio.cli.progress import (
    FRAME_SECONDS,
    LIVE_LINES,
    JsonLinesPrinter,
    ProgressPrinter,
    clip,
    utf8_len,
    write_text,
)
from alice_trio.models import (
    EventKind,
    QuestionInfo,
    QuestionOption,
    RawEvent,
    RunResult,
    TurnEvent,
    TurnQuestion,
    Usage,
)


def _tool(i: int) -> RawEvent:
    return RawEvent(kind="tool_use", line="{}", detail=f"command=`ls {i}`")


@pytest.mark.trio
async def test_live_flood_is_coalesced_into_frames(autojump_clock: trio.testing.MockClock) -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=True, plain=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(printer.run)
        printer.start()
        for i in range(10_000):  # one burst between two frames
            printer.on_raw_event(_tool(i))
        await trio.sleep(FRAME_SECONDS * 1.5)
        nursery.cancel_scope.cancel()
    printer.close()
    text = out.getvalue()
    lines = [ln for ln in text.split("\n") if ln.strip()]
    assert len(lines) <= LIVE_LINES + 3, lines
    assert f"… {10_000 - LIVE_LINES:,} more events (tool_use {10_000 - LIVE_LINES:,})" in text
    assert "command=`ls 9999`" in text and "command=`ls 0`" not in text


def test_lines_mode_writes_one_plain_line_per_event() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=False)
    for i in range(2_000):
        printer.on_raw_event(_tool(i))
    printer.on_raw_event(RawEvent(kind="assistant_text", detail="line one\nline two"))
    printer.close()
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[:2] == ["tool› command=`ls 0`", "tool› command=`ls 1`"]
    assert len(lines) == 2_000 + 2  # the assistant message keeps its two lines


@pytest.mark.parametrize("live", [True, False])
def test_a_huge_text_is_clipped_with_its_byte_count(live: bool) -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=live, plain=True)
    big = "é" + "x" * 5_000_000 + "THE END"
    printer.on_raw_event(RawEvent(kind="assistant_text", detail=big))
    printer.on_raw_event(RawEvent(kind="tool_use", detail="y" * 1_000_000))
    printer.close()
    text = out.getvalue()
    assert len(text) < 3_000
    assert f"[{len(big.encode()):,} bytes]" in text and "THE END" in text and text.count("é") == 1
    assert f"[{1_000_000:,} bytes]" in text


def test_clip_and_utf8_len() -> None:
    assert clip("  short  ", 100) == "short"
    assert clip("a\nb", 100, one_line=True) == "a ⏎ b"
    long = "h" * 1000 + "€" * 1000
    assert utf8_len(long) == len(long.encode())
    clipped = clip(long, 300)
    assert clipped.startswith("h" * 200) and clipped.endswith("€" * 100)
    assert f"[{len(long.encode()):,} bytes]" in clipped


def test_held_reply_is_not_shown_twice() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=False, hold_reply=True)
    printer.on_raw_event(RawEvent(kind="assistant_text", detail="first thoughts"))
    printer.on_raw_event(_tool(1))
    printer.on_raw_event(RawEvent(kind="assistant_text", detail="the final reply"))
    printer.finish("the final reply\n")
    printer.close()
    assert out.getvalue().splitlines() == ["assistant› first thoughts", "tool› command=`ls 1`"]
    # a run that failed after the message: it is not on stdout, so it is shown
    out = io.StringIO()
    printer = ProgressPrinter(out, live=False, hold_reply=True)
    printer.on_raw_event(RawEvent(kind="assistant_text", detail="partial"))
    printer.finish("")
    printer.close()
    assert out.getvalue() == "assistant› partial\n"


def test_a_count_of_skipped_events_does_not_show_the_held_reply() -> None:
    """The rate's last ``skipped`` notice comes between the reply and the turn's end."""
    for live in (False, True):
        out = io.StringIO()
        printer = ProgressPrinter(out, live=live, plain=True, hold_reply=True)
        printer.start()
        printer.on_events(
            [
                TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="the final reply"),
                TurnEvent(kind=EventKind.SKIPPED, text="5 events skipped: over 1 a second"),
            ]
        )
        printer.finish("the final reply")
        printer.close()
        assert "the final reply" not in out.getvalue()
        assert "… 5 events skipped: over 1 a second\n" in out.getvalue()


@pytest.mark.parametrize("live", [False, True])
def test_no_agent_text_starts_a_line_of_its_own(live: bool) -> None:
    """A message, an error, a thread id or a question with newlines: every line after its first
    is indented, so a line in the first column is always ours (``thread:``, ``usage:``, …)."""
    forged = (
        "ok\nthread: forged\r\nusage: 1 input (0 cached), 1 output tokens\n\nerror: x"
        "\u2028thread: forged\u2029thread: forged\x85thread: forged\x0bthread: forged"
    )
    out = io.StringIO()
    printer = ProgressPrinter(out, live=live, plain=True)
    printer.start()
    printer.on_events(
        [TurnEvent(kind=k, text=forged, error=forged) for k in (
            EventKind.ASSISTANT_TEXT, EventKind.ERROR, EventKind.TOOL_USE, EventKind.RETRY,
        )]
    )  # fmt: skip
    printer.message(forged)
    printer.error(forged)
    printer.summary(RunResult(reply="r", next_thread_id=forged, usage=Usage(input_tokens=1)))
    printer.close()
    firsts = [ln for ln in out.getvalue().splitlines() if ln and not ln.startswith("  ")]
    assert [ln.split(" ", 1)[0] for ln in firsts] == [
        "assistant›", "error›", "tool›", "retry›", "›", "error:", "thread:", "usage:",
    ], out.getvalue()  # fmt: skip
    assert [ln for ln in firsts if ln.startswith(("thread:", "usage:"))] == [
        "thread: ok",
        "usage: 1 input (0 cached), 0 output tokens",
    ]


def test_status_line_is_erased_and_not_drawn_before_a_turn() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, live=True, plain=False)
    printer.error("boom")  # an error before anything ran: no status line around it
    assert "working" not in out.getvalue()
    printer.on_raw_event(_tool(1))
    printer.close()
    text = out.getvalue()
    assert "working" in text  # drawn while the turn ran …
    assert text.endswith("\r\x1b[2K")  # … and erased when it ended


def test_write_text_never_fails_on_a_lone_surrogate() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    write_text(stream, "a\ud800b" + "z" * (3 << 20))
    assert raw.getvalue()[:3] == b"a?b" and len(raw.getvalue()) == 3 + (3 << 20)


def test_jsonl_printer_writes_every_event() -> None:
    out = io.StringIO()
    printer = JsonLinesPrinter(out)
    for i in range(100):
        printer.on_raw_event(_tool(i))
    printer.close()
    assert len(out.getvalue().splitlines()) == 100


# -- on_events: the batch callback the ``run`` command uses --------------------------------------


def _random_events(seed: int, n: int = 600) -> list[TurnEvent]:
    """Every kind a decoder produces, with texts that take each formatting branch (edge
    whitespace, newlines, long, empty), questions and errors."""
    rng = random.Random(seed)
    texts = [
        "plain", "  padded  ", "two\nlines", "x" * 400, "y" * 3000, "", "é€ mixed\r\nend",
        "ends with newline\n",
        # control characters (shown, not obeyed), ASCII-only and not: each batch's check
        "esc \x1b[2J clears", "bell\x07 and del\x7f", "tab\tkept", "c1 \x9b31m red",
        "line\u2028separator",
    ]  # fmt: skip
    question = TurnQuestion(
        request_id="q1",
        questions=(QuestionInfo(question="Proceed?", options=(QuestionOption(label="yes"),)),),
    )
    # every kind, assistant messages (held back, shown with newlines) and tools more often
    kinds = [*EventKind, *[EventKind.ASSISTANT_TEXT] * 6, *[EventKind.TOOL_USE] * 4]
    out = []
    for i in range(n):
        kind = rng.choice(kinds)
        kw: dict[str, object] = {"text": rng.choice(texts), "raw": f' {{"seq": {i}}} '}
        if kind is EventKind.ERROR:
            kw["error"] = rng.choice(["", "rate limited"])
        if kind is EventKind.QUESTION:
            kw["question"] = question
        out.append(TurnEvent(kind=kind, provider="codex", **kw))
    return out


def _batches(events: list[TurnEvent], seed: int) -> list[list[TurnEvent]]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(events):
        size = rng.choice([1, 2, 3, 7, 8, 40, 300])
        out.append(events[i : i + size])
        i += size
    return out


_SILENT = (EventKind.THREAD_STARTED, EventKind.TURN_STARTED)


@pytest.mark.trio
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "mode",
    [
        {"live": False},
        {"live": False, "verbose": True},
        {"live": True, "plain": True},
        {"live": True, "plain": True, "verbose": True},
        {"live": True, "plain": True, "hold_reply": True},
        {"live": False, "hold_reply": True},
    ],
)
@pytest.mark.parametrize("ticking", [True, False])
async def test_on_events_prints_what_on_raw_event_prints(
    seed: int, mode: dict[str, bool], ticking: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """A batch of typed events shows exactly what their ``RawEvent``s show one by one (the
    engine's ``on_raw_event`` path: bookkeeping events never reach it), in every mode."""
    events = _random_events(seed)
    outputs = []
    for batched in (False, True):
        out = io.StringIO()
        printer = ProgressPrinter(out, **mode)
        async with trio.open_nursery() as nursery:
            if ticking:
                await nursery.start(printer.run)
            printer.start()
            if batched:
                for batch in _batches(events, seed):
                    printer.on_events(batch)
            else:
                for event in events:
                    if event.kind not in _SILENT:
                        printer.on_raw_event(event.to_raw_event())
            counted = printer.events
            nursery.cancel_scope.cancel()
        printer.finish(events[-1].text)
        printer.close()
        outputs.append((out.getvalue(), counted))
    assert outputs[1] == outputs[0]
    assert outputs[0][0].count("\n") > 5


def test_jsonl_on_events_writes_what_on_raw_event_writes() -> None:
    events = _random_events(7, 200)
    one, batched = io.StringIO(), io.StringIO()
    a, b = JsonLinesPrinter(one), JsonLinesPrinter(batched)
    for event in events:
        if event.kind not in _SILENT:
            a.on_raw_event(event.to_raw_event())
    for batch in _batches(events, 7):
        b.on_events(batch)
    a.close()
    b.close()
    assert batched.getvalue() == one.getvalue() and one.getvalue().count("\n") > 100
