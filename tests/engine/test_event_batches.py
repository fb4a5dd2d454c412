"""``RunRequest.on_events``: the run's typed events, in order, a batch per read chunk — through
the one-shot engine with the fake CLI (no timing assertions)."""

from __future__ import annotations

import attrs
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.models import EventKind, RawEvent, RunRequest, TurnEvent

from fake_provider import FAST, PROVIDER, FakeConfig


def cfg(*args: str, **kw) -> FakeConfig:
    kw.setdefault("limits", FAST)
    return FakeConfig(args=tuple(args), **kw)


async def test_a_burst_arrives_in_a_few_batches_in_order_beside_the_raw_events():
    calls: list[list[TurnEvent]] = []
    raw: list[RawEvent] = []
    result = await run_oneshot(
        PROVIDER,
        cfg("--burst", "5000", "--text", "final"),
        RunRequest(
            user_text="hi", on_events=lambda e: calls.append(list(e)), on_raw_event=raw.append
        ),
    )
    assert result.reply == "final"
    events = [e for call in calls for e in call]
    assert all(type(e) is TurnEvent for e in events)
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.THREAD_STARTED and events[0].thread_id == "thread-1"
    assert kinds[1:5001] == [EventKind.UNKNOWN] * 5000
    assert [f'"seq": {i}' in e.raw for i, e in enumerate(events[1:5001])] == [True] * 5000
    assert kinds[5001:] == [EventKind.ASSISTANT_TEXT, EventKind.TURN_COMPLETED]
    assert len(calls) < 100  # one call per read chunk (or per wake-up), not one per event
    # on_raw_event sees the same events, one by one, less the thread_started bookkeeping
    assert [r.kind for r in raw] == [e.kind.value for e in events[1:]]


async def test_a_slow_async_batch_consumer_loses_no_progress_and_no_terminal_event():
    got: list[TurnEvent] = []

    async def slow(events) -> None:
        await trio.sleep(0.001)
        got.extend(events)

    limits = attrs.evolve(FAST, callback_buffer=8)
    result = await run_oneshot(
        PROVIDER,
        cfg("--lines", "300", "--text", "final", limits=limits),
        RunRequest(user_text="hi", on_events=slow),
    )
    assert result.reply == "final"
    texts = [e.text for e in got if e.kind is EventKind.ASSISTANT_TEXT]
    assert texts == [f"line {i} " + "x" * 250 for i in range(300)] + ["final"]
    assert got[-1].kind is EventKind.TURN_COMPLETED
