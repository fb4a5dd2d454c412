"""``RunRequest.informational_rate``: the rate's windows and notices (pure, with the time given),
the dispatcher under trio's MockClock, and one-shot runs through the fake CLI (no timing
assertions: what is checked holds however slow the machine)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from alice_trio.engine.callbacks import CallbackDispatcher
from alice_trio.engine.event_rate import INFORMATIONAL, WINDOW, EventRate, skipped_notice
from alice_trio.engine.oneshot import run_oneshot
from alice_trio.models import EventKind, RawEvent, RunRequest, TurnEvent

from fake_provider import FAST, PROVIDER, FakeConfig

_NOTICE = re.compile(r"([\d,]+) events skipped: over ([\d,]+) a second \((.*)\)$")


def _ev(kind: EventKind, n: int = 0) -> TurnEvent:
    return TurnEvent(kind=kind, text=f"{kind.value} {n}")


def _counts(notice: TurnEvent) -> tuple[int, Counter[str]]:
    m = _NOTICE.match(notice.text)
    assert m, notice.text
    kinds = Counter(
        {k: int(n.replace(",", "")) for k, n in (p.rsplit(" ", 1) for p in m[3].split(", "))}
    )
    return int(m[1].replace(",", "")), kinds


def test_the_first_rate_events_of_a_window_pass_and_the_rest_are_said_once() -> None:
    rate = EventRate(2)
    tools = [_ev(EventKind.TOOL_USE, i) for i in range(5)]
    assert rate.filter([*tools], 0.0) == tools[:2]
    assert rate.filter([_ev(EventKind.ASSISTANT_TEXT)], 0.5) == [_ev(EventKind.ASSISTANT_TEXT)]
    # the next window: the notice first, then its own first two
    out = rate.filter([_ev(EventKind.REASONING, 9), *tools], WINDOW + 0.1)
    assert [e.kind for e in out] == [EventKind.SKIPPED, EventKind.REASONING, EventKind.TOOL_USE]
    assert out[0].text == "3 events skipped: over 2 a second (tool_use 3)"
    # the terminal event takes the count of its own window with it (4 + 5)
    end = _ev(EventKind.TURN_COMPLETED)
    out = rate.filter([*tools, end], WINDOW + 0.2)
    assert out == [skipped_notice({"tool_use": 9}, "over 2 a second"), end]
    assert rate.total_skipped == 12 and rate.skipped == {}


def test_counts_from_a_quiet_decoder_are_said_once_a_window_like_the_others() -> None:
    """What a quiet decoder counted goes into the same notice: not before an event let through
    in the same window, before the first one of a later window."""
    rate = EventRate(2)
    tools = [_ev(EventKind.TOOL_USE, i) for i in range(2)]
    assert rate.filter([*tools], 0.0) == tools
    tally = {"tool_use": 5, "reasoning": 1}
    rate.count(tally)
    assert tally == {} and rate.total_skipped == 6
    rate.count({"tool_use": 1})
    assert rate.total_skipped == 7
    message = _ev(EventKind.ASSISTANT_TEXT)
    assert rate.filter([message], 0.5) == [message]  # the same window: no notice yet
    out = rate.filter([tools[0]], WINDOW + 0.5)
    assert out == [skipped_notice({"tool_use": 6, "reasoning": 1}, "over 2 a second"), tools[0]]


def test_kinds_counted_as_often_are_named_in_their_names_order() -> None:
    notice = skipped_notice({"usage": 2, "unknown": 2, "tool_use": 9}, "why")
    assert notice.text == "13 events skipped: why (tool_use 9, unknown 2, usage 2)"


def test_a_notice_names_the_four_commonest_kinds() -> None:
    counts = {"tool_use": 5, "reasoning": 7, "unknown": 1, "usage": 1, "tool_result": 3}
    notice = skipped_notice(counts, "why", provider="p")
    assert notice.kind is EventKind.SKIPPED and notice.provider == "p"
    assert notice.text == (
        "17 events skipped: why (reasoning 7, tool_use 5, tool_result 3, unknown 1, …)"
    )


def test_a_rate_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, 0.5, True, "3"):
        with pytest.raises(ValueError, match=re.escape(f"rate must be an int > 0, got {bad!r}")):
            EventRate(bad)  # type: ignore[arg-type]


def test_a_request_rate_is_a_count() -> None:
    from alice_trio.errors import ConfigError

    for bad in (-1, 1.5, "10", True):
        with pytest.raises(ConfigError, match="informational_rate"):
            RunRequest(user_text="x", informational_rate=bad)  # type: ignore[arg-type]


_KINDS = [
    EventKind.TOOL_USE, EventKind.REASONING, EventKind.UNKNOWN, EventKind.ASSISTANT_TEXT,
    EventKind.FILE_CHANGE, EventKind.RETRY, EventKind.TURN_STARTED,
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    rate=st.integers(1, 5),
    batches=st.lists(
        st.tuples(
            st.floats(0, 1.5),  # time since the batch before
            st.lists(st.sampled_from([*_KINDS, "stdout_line"]), max_size=12),
        ),
        max_size=20,
    ),
    terminal=st.sampled_from([EventKind.TURN_COMPLETED, EventKind.ERROR, None]),
)
def test_nothing_but_informational_events_is_held_back_and_every_one_is_counted(
    rate: int, batches: list[tuple[float, list[EventKind | str]]], terminal: EventKind | None
) -> None:
    """Against a model of the windows: the same events pass, in order; every informational
    event passes or is counted in exactly one notice; at most one notice per window, none at
    the end of an output, and the terminal event takes the count with it."""
    limiter = EventRate(rate)
    now, window_end, left = 0.0, float("-inf"), 0
    offered: list[TurnEvent | RawEvent] = []
    expected: list[TurnEvent | RawEvent] = []
    delivered: list[TurnEvent | RawEvent] = []
    windows_of_notices: list[float] = []
    seq = 0
    plan = [*batches, (0.0, [terminal])] if terminal else batches
    for dt, kinds in plan:
        now += dt
        batch: list[TurnEvent | RawEvent] = []
        for kind in kinds:
            seq += 1
            event: TurnEvent | RawEvent = (
                RawEvent(kind="stdout_line", line=str(seq))
                if kind == "stdout_line"
                else _ev(kind, seq)  # type: ignore[arg-type]
            )
            batch.append(event)
        offered += batch
        if now >= window_end:  # the model: windows start at a batch, last WINDOW
            window_end, left = now + WINDOW, rate
        for event in batch:
            value = event.kind if isinstance(event, RawEvent) else event.kind.value
            if value in INFORMATIONAL:
                if left <= 0:
                    continue
                left -= 1
            expected.append(event)
        out = limiter.filter(batch, now)
        assert out[-1:] != [] or not [e for e in expected if e in batch]
        if out:
            assert not (isinstance(out[-1], TurnEvent) and out[-1].kind is EventKind.SKIPPED)
        for event in out:
            if isinstance(event, TurnEvent) and event.kind is EventKind.SKIPPED:
                windows_of_notices.append(window_end)
        delivered += out
    assert [e for e in delivered if e.kind is not EventKind.SKIPPED] == expected
    # every informational event delivered or counted once (the rest still pending)
    informational = Counter(
        e.kind if isinstance(e, RawEvent) else e.kind.value
        for e in offered
        if (e.kind if isinstance(e, RawEvent) else e.kind.value) in INFORMATIONAL
    )
    passed = Counter(
        e.kind if isinstance(e, RawEvent) else e.kind.value
        for e in expected
        if (e.kind if isinstance(e, RawEvent) else e.kind.value) in INFORMATIONAL
    )
    noticed: Counter[str] = Counter()
    for e in delivered:
        if isinstance(e, TurnEvent) and e.kind is EventKind.SKIPPED:
            total, kinds = _counts(e)
            assert total == sum(kinds.values()) > 0
            noticed += kinds
    assert passed + noticed + Counter(limiter.skipped) == informational
    assert limiter.total_skipped == sum((informational - passed).values())
    if terminal is not None:
        assert limiter.skipped == {}  # said before the terminal event
        assert delivered[-1].kind is terminal
    # one notice per window at most, but for the one before the terminal event
    body = windows_of_notices[:-1] if terminal is not None else windows_of_notices
    assert len(body) == len(set(body))


async def test_the_dispatcher_lets_through_rate_events_a_second_and_says_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under MockClock: two floods a few seconds apart, each shows its first events and the
    count of the others; the count of the last comes out at close."""
    got: list[TurnEvent] = []
    d = CallbackDispatcher(None, None, 4096, got.extend, provider="fake", rate=3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(d.run)
        assert d.wants_informational()
        assert d.offer_batch_nowait([_ev(EventKind.TOOL_USE, i) for i in range(10)])
        assert not d.wants_informational()  # the window is full: a decoder may stay quiet
        tally = {"tool_use": 40}
        d.count_skipped(tally)  # what a quiet decoder did not build
        assert tally == {}
        await trio.sleep(5)
        assert d.wants_informational()  # a new window
        assert d.offer_batch_nowait([_ev(EventKind.REASONING, i) for i in range(4)])
        d.close()
    texts = [e.text if e.kind is EventKind.SKIPPED else e.kind.value for e in got]
    assert texts == [
        "tool_use", "tool_use", "tool_use",
        "47 events skipped: over 3 a second (tool_use 47)",
        "reasoning", "reasoning", "reasoning",
        "1 events skipped: over 3 a second (reasoning 1)",
    ]  # fmt: skip
    assert all(e.provider == "fake" for e in got if e.kind is EventKind.SKIPPED)


async def test_a_progress_only_dispatcher_wants_no_informational_event() -> None:
    d = CallbackDispatcher(lambda _t: None, None, 4096, None, rate=3)
    assert not d.wants_informational() and d.rate is None
    tally = {"tool_use": 4}
    d.count_skipped(tally)
    assert tally == {}
    nobody = CallbackDispatcher(None, None, 4096, None)
    assert not nobody.wants_informational()
    every = CallbackDispatcher(None, None, 4096, lambda _e: None)
    assert every.wants_informational() and every.rate is None


def _cfg(*args: str) -> FakeConfig:
    return FakeConfig(args=tuple(args), limits=FAST)


async def test_a_one_shot_flood_at_a_rate_keeps_the_result_and_counts_every_event() -> None:
    got: list[TurnEvent] = []
    raw: list[RawEvent] = []
    result = await run_oneshot(
        PROVIDER,
        _cfg("--burst", "5000", "--text", "final"),
        RunRequest(
            user_text="hi", on_events=got.extend, on_raw_event=raw.append, informational_rate=7
        ),
    )
    assert result.reply == "final"
    kinds = [e.kind for e in got]
    assert kinds[0] is EventKind.THREAD_STARTED
    # the last count goes out before the terminal event at the latest (checked by the sum)
    assert kinds[-1] is EventKind.TURN_COMPLETED and EventKind.ASSISTANT_TEXT in kinds[-3:]
    shown = [e for e in got if e.kind is EventKind.UNKNOWN]
    counted = [_counts(e) for e in got if e.kind is EventKind.SKIPPED]
    assert counted, "5,000 events in one second of the run's clock"
    assert len(shown) + sum(total for total, _ in counted) == 5000
    assert all(set(kinds) == {"unknown"} for _, kinds in counted)
    # the burst's events that pass are its first ones of their second, in order
    seqs = [int(re.search(r'"seq": (\d+)', e.raw)[1]) for e in shown]  # type: ignore[index]
    assert seqs == sorted(seqs) and seqs[:7] == list(range(7))
    # on_raw_event sees the same (less the bookkeeping), the notices as "skipped"
    assert [r.kind for r in raw] == [e.kind.value for e in got[1:]]


async def test_a_one_shot_run_without_a_rate_gets_every_event() -> None:
    got: list[TurnEvent] = []
    await run_oneshot(
        PROVIDER,
        _cfg("--burst", "3000", "--text", "ok"),
        RunRequest(user_text="hi", on_events=got.extend),
    )
    assert sum(e.kind is EventKind.UNKNOWN for e in got) == 3000
    assert not any(e.kind is EventKind.SKIPPED for e in got)
