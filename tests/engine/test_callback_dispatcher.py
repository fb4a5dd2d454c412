"""The callback dispatcher's queue: backpressure, shedding, order (no timing asserts)."""

from __future__ import annotations

import pytest
import trio

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
        for i in range(50):
            if not d.offer_nowait(tool(i)):
                await d.offer(tool(i))
            if not d.offer_line(f"line {i}"):
                await d.offer_line_wait(f"line {i}")
        release.set()
        for i in range(3):
            await d.offer(text(i))
        d.close()
    assert progress == ["text 0", "text 1", "text 2"]
    assert d.dropped > 0
    assert raw[-1].kind == "dropped" and str(d.dropped) in raw[-1].detail


async def test_no_callback_queues_nothing():
    d = CallbackDispatcher(None, None)
    assert d.offer_nowait(tool(1)) and d.offer_line("x")
    d.close()
    await d.run()
    assert d.delivered == 0


async def test_offer_after_close_is_refused():
    d = CallbackDispatcher(None, lambda e: None)
    d.close()
    with pytest.raises(trio.ClosedResourceError):
        d.offer_nowait(tool(1))
