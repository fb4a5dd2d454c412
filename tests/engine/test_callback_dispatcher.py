"""The callback dispatcher's queue: backpressure, shedding, order (no timing asserts)."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from alice_trio.engine.callbacks import CallbackDispatcher
from alice_trio.models import EventKind, RawEvent, TurnEvent


def tool(i: int) -> TurnEvent:
    return TurnEvent(kind=EventKind.TOOL_USE, text=f"tool {i}", raw=f"line {i}")


def text(i: int) -> TurnEvent:
    return TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=f" text {i} ", raw=f"line {i}")


async def _produce(d: CallbackDispatcher, events: list[TurnEvent]) -> None:
    for event in events:
        if not d.offer_nowait(event):
            await d.offer(event)
    d.close()


async def test_a_small_buffer_and_sync_callbacks_lose_nothing_and_keep_order():
    progress: list[str] = []
    raw: list[RawEvent] = []
    d = CallbackDispatcher(progress.append, raw.append, buffer=4)
    events = [text(i) if i % 3 == 0 else tool(i) for i in range(3000)]
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        await _produce(d, events)
    assert progress == [f"text {i}" for i in range(0, 3000, 3)]
    assert [e.detail for e in raw] == [f"tool {i}" for i in range(3000) if i % 3]
    assert d.dropped == 0 and d.delivered == 3000


async def test_a_stuck_async_callback_sheds_informational_events_never_progress():
    progress: list[str] = []
    raw: list[RawEvent] = []
    release = trio.Event()

    async def slow_raw(event: RawEvent) -> None:
        raw.append(event)
        await release.wait()

    d = CallbackDispatcher(progress.append, slow_raw, buffer=2)
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        for i in range(50):  # a read chunk's batch: the raw line, then its event
            line = d.line_event(f"line {i}")
            assert line is not None
            batch: list[TurnEvent | RawEvent] = [line, tool(i)]
            if not d.offer_batch_nowait(batch):
                await d.offer_batch(batch)
        release.set()
        for i in range(3):
            await d.offer(text(i))
        d.close()
    assert progress == ["text 0", "text 1", "text 2"]
    assert d.dropped > 0
    assert raw[-1].kind == "dropped" and str(d.dropped) in raw[-1].detail
    assert (raw[0].kind, raw[0].line) == ("stdout_line", "line 0")  # a chunk's line comes first


async def test_no_callback_queues_nothing():
    d = CallbackDispatcher(None, None)
    assert d.offer_nowait(tool(1)) and d.line_event("x") is None
    d.close()
    await d.run()
    assert d.delivered == 0


async def test_offer_after_close_is_refused():
    d = CallbackDispatcher(None, lambda e: None)
    d.close()
    with pytest.raises(trio.ClosedResourceError):
        d.offer_nowait(tool(1))


def done() -> TurnEvent:
    return TurnEvent(kind=EventKind.TURN_COMPLETED, raw="done")


async def test_batches_larger_than_the_buffer_keep_order_and_stay_bounded():
    """A batch (one read chunk's events) is queued as far as there is room; the rest waits:
    never more than ``buffer`` events offered and undelivered, every progress event delivered
    in order, ``on_events`` called with lists, never with more than the buffer holds."""
    calls: list[list[TurnEvent]] = []
    high = 0

    async def on_events(events) -> None:
        calls.append(list(events))
        await trio.lowlevel.checkpoint()  # slower than the reader: it only checkpoints

    d = CallbackDispatcher(None, None, buffer=16, on_events=on_events)
    sent = [text(i) for i in range(50 * 40)]
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        for start in range(0, len(sent), 50):
            batch = sent[start : start + 50]
            if not d.offer_batch_nowait(batch):
                await d.offer_batch(batch)
            high = max(high, d.pending)
        await d.offer(done())
        d.close()
    got = [e for call in calls for e in call]
    assert got == [*sent, done()]
    assert high <= 16 and max(len(call) for call in calls) <= 16
    assert d.dropped == 0 and d.delivered == len(sent) + 1


async def test_a_lagging_batch_consumer_sheds_only_informational_events():
    """A blocked async ``on_events``: tool events of the following batches are shed (counted,
    reported once at the end as an ``unknown`` event); progress and the terminal event are
    delivered, in order."""
    calls: list[list[TurnEvent]] = []
    release = trio.Event()

    async def on_events(events) -> None:
        calls.append(list(events))
        await release.wait()

    async def release_when_stuck() -> None:
        # the reader waits for room for a progress event, the consumer for `release`
        await trio.testing.wait_all_tasks_blocked()
        release.set()

    d = CallbackDispatcher(None, None, buffer=4, on_events=on_events, provider="fake")
    sent = [text(i) if i % 10 == 0 else tool(i) for i in range(400)]
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        n.start_soon(release_when_stuck)
        for start in range(0, len(sent), 40):
            batch = sent[start : start + 40]
            if not d.offer_batch_nowait(batch):
                await d.offer_batch(batch)
        await d.offer(done())
        d.close()
    got = [e for call in calls for e in call]
    notice = got.pop()
    assert notice.kind is EventKind.SKIPPED and notice.provider == "fake"
    assert notice.text == f"{d.dropped} informational events dropped: callback too slow"
    assert d.dropped > 0 and len(got) == len(sent) + 1 - d.dropped
    assert [e for e in got if e.kind is EventKind.ASSISTANT_TEXT] == sent[::10]
    assert got[-1] == done()
    assert got == [e for e in [*sent, done()] if e in got]  # a subsequence: order kept


async def test_on_events_gets_the_bookkeeping_events_raw_callbacks_do_not():
    batches: list[list[TurnEvent]] = []
    raw: list[RawEvent] = []
    d = CallbackDispatcher(None, raw.append, on_events=batches.append)
    started = TurnEvent(kind=EventKind.THREAD_STARTED, thread_id="t1")
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        assert d.offer_batch_nowait([started, tool(1), done()])
        d.close()
    assert [e for b in batches for e in b] == [started, tool(1), done()]
    assert [e.kind for e in raw] == ["tool_use", "turn_completed"]


async def test_only_progress_queues_only_progress_events():
    """With only ``on_progress``, other events take no room and are never counted as shed."""
    release = trio.Event()
    got: list[str] = []

    async def slow(t: str) -> None:
        got.append(t)
        await release.wait()

    d = CallbackDispatcher(slow, None, buffer=2)
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        for i in range(100):
            await d.offer_batch([tool(i), tool(i)])
        assert d.pending == 0 and d.dropped == 0
        release.set()
        await d.offer_batch([text(1), tool(2), text(3)])
        d.close()
    assert got == ["text 1", "text 3"] and d.dropped == 0
