"""Tests that kill the mutation survivors of engine/callbacks.py (docs/mutation-testing.md).

The dispatcher's guarantees that no other test pinned: the buffer is ``buffer`` events (a
default of 4096; ``<= 0`` unbounded, 1 is one event), a batch that fits is queued at once and
the buffer is used to its last slot, a consumer that was not scheduled yet is not lagging,
every callback gets its events when several listen (``on_events`` only typed ones, a retry
notice reaches ``on_raw_event`` too), a sync callback may return a value, the ``delivered``
count is exact (bookkeeping events included, and while an async callback runs), file changes
are progress text, and back-to-back batches merge up to 512 events. No timing assertions.
"""

from __future__ import annotations

import trio
import trio.lowlevel
import trio.testing

from alice_trio.engine.callbacks import CallbackDispatcher, progress_text
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.models import EventKind, RawEvent, TurnEvent


def tool(i: int) -> TurnEvent:
    return TurnEvent(kind=EventKind.TOOL_USE, text=f"tool {i}", raw=f"line {i}")


def text(i: int) -> TurnEvent:
    return TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=f"text {i}", raw=f"line {i}")


def started() -> TurnEvent:
    return TurnEvent(kind=EventKind.TURN_STARTED, turn_id="t1")


def done() -> TurnEvent:
    return TurnEvent(kind=EventKind.TURN_COMPLETED, raw="done")


async def _stuck_consumer(d: CallbackDispatcher, nursery: trio.Nursery) -> None:
    """Start ``d.run`` and wait until it is blocked inside its first (async) callback."""
    nursery.start_soon(d.run)
    await trio.testing.wait_all_tasks_blocked()


# -- the buffer's size ---------------------------------------------------------------------------


async def test_the_default_buffer_holds_4096_events() -> None:
    release = trio.Event()

    async def stuck(t: str) -> None:
        await release.wait()

    d = CallbackDispatcher(stuck, None)
    async with trio.open_nursery() as n:
        assert d.offer_batch_nowait([text(0)])
        await _stuck_consumer(d, n)  # holds event 0: it counts until delivered
        assert d.offer_batch_nowait([text(i) for i in range(1, 4096)])
        assert d.pending == 4096
        assert not d.offer_batch_nowait([text(4096)])  # full
        release.set()
        d.close()


async def test_a_buffer_of_zero_is_unbounded_and_of_one_holds_one_event() -> None:
    release = trio.Event()

    async def stuck(t: str) -> None:
        await release.wait()

    unbounded = CallbackDispatcher(stuck, None, buffer=0)
    assert unbounded.offer_batch_nowait([text(i) for i in range(10_000)])
    assert unbounded.pending == 10_000
    one = CallbackDispatcher(stuck, None, buffer=1)
    assert one.offer_batch_nowait([text(0)])
    assert not one.offer_batch_nowait([text(1)])
    assert one.pending == 1


async def test_a_batch_that_exactly_fits_is_queued_at_once_also_after_deliveries() -> None:
    got: list[str] = []
    d = CallbackDispatcher(got.append, None, buffer=4)
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        for round_ in range(3):  # `delivered` grows: only the undelivered count takes room
            batch = [text(4 * round_ + i) for i in range(4)]
            assert d.offer_batch_nowait(batch)
            await trio.testing.wait_all_tasks_blocked()
            assert d.pending == 0 and d.delivered == 4 * (round_ + 1)
        d.close()
    assert got == [f"text {i}" for i in range(12)]


async def test_the_reader_fills_the_last_free_slot_before_it_waits() -> None:
    """Backpressure starts at a full buffer, not one event before it."""
    release = trio.Event()
    got: list[str] = []

    async def slow(t: str) -> None:
        got.append(t)
        await release.wait()

    d = CallbackDispatcher(slow, None, buffer=2)

    async def reader() -> None:
        await d.offer_batch([text(1), text(2), text(3)])
        d.close()

    async with trio.open_nursery() as n:
        assert d.offer_batch_nowait([text(0)])
        await _stuck_consumer(d, n)  # one slot free
        n.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert d.pending == 2  # text 1 took the last slot; the reader waits for room
        release.set()
    assert got == [f"text {i}" for i in range(4)]


async def test_events_no_callback_takes_are_dropped_without_taking_room() -> None:
    """Only ``on_progress`` listens: a non-progress batch is accepted (True) and takes no room,
    and a mixed one queues only its progress events."""
    release = trio.Event()
    got: list[str] = []

    async def slow(t: str) -> None:
        got.append(t)
        await release.wait()

    d = CallbackDispatcher(slow, None, buffer=2)
    async with trio.open_nursery() as n:
        await _stuck_consumer(d, n)
        assert d.offer_batch_nowait([tool(0), tool(1), tool(2)])
        assert d.pending == 0
        assert d.offer_batch_nowait([tool(3), text(4), tool(5), text(6)])
        assert d.pending == 2
        release.set()
        d.close()
    assert got == ["text 4", "text 6"] and d.dropped == 0


# -- lag is a callback that makes no progress, not a consumer scheduled late -------------------


async def test_a_consumer_that_starts_late_is_not_lagging() -> None:
    """The buffer is full and the delivery task has not run yet (it is not inside a callback):
    the reader waits for it however many scheduling rounds pass, it sheds nothing."""
    raw: list[RawEvent] = []
    d = CallbackDispatcher(None, raw.append, buffer=2)

    async def reader() -> None:
        await d.offer_batch([tool(i) for i in range(10)])
        d.close()

    async with trio.open_nursery() as n:
        n.start_soon(reader)
        for _ in range(50):  # many rounds with a full buffer and nobody delivering
            await trio.lowlevel.checkpoint()
        assert d.pending == 2
        n.start_soon(d.run)
    assert [e.detail for e in raw] == [f"tool {i}" for i in range(10)]
    assert d.dropped == 0


# -- every callback gets its events -------------------------------------------------------------


async def test_on_events_with_on_progress_both_get_everything_and_the_count_is_exact() -> None:
    batches: list[list[TurnEvent]] = []
    progress: list[str] = []
    d = CallbackDispatcher(progress.append, None, on_events=batches.append)
    sent = [started(), tool(0), text(1), tool(2), tool(3), text(4), done()]
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        assert d.offer_batch_nowait(list(sent))
        d.close()
    assert [e for b in batches for e in b] == sent
    assert progress == ["text 1", "text 4"]
    assert d.delivered == len(sent) and d.pending == 0


async def test_stdout_lines_reach_on_raw_event_only_on_events_gets_typed_events() -> None:
    """``raw_lines``: a batch mixes the ``stdout_line`` raw events with the decoded ones."""
    batches: list[list[TurnEvent]] = []
    raw: list[RawEvent] = []
    d = CallbackDispatcher(None, raw.append, on_events=batches.append)
    batch: list[TurnEvent | RawEvent] = []
    for i, event in enumerate([tool(0), text(1), done()]):
        line = d.line_event(f'{{"n": {i}}}')
        assert line is not None
        batch += [line, event]
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        assert d.offer_batch_nowait(batch)
        d.close()
    assert [e for b in batches for e in b] == [tool(0), text(1), done()]
    assert [(e.kind, e.line) for e in raw] == [
        ("stdout_line", '{"n": 0}'), ("tool_use", "line 0"),
        ("stdout_line", '{"n": 1}'), ("assistant_text", "line 1"),
        ("stdout_line", '{"n": 2}'), ("turn_completed", "done"),
    ]  # fmt: skip
    assert d.delivered == 6


def test_no_raw_callback_means_no_line_events() -> None:
    assert CallbackDispatcher(print, None, on_events=print).line_event("x") is None


async def test_a_retry_notice_reaches_on_progress_and_on_raw_event() -> None:
    progress: list[str] = []
    raw: list[RawEvent] = []
    d = CallbackDispatcher(progress.append, raw.append)
    retry = TurnEvent(kind=EventKind.RETRY, text="rate limited, retrying", raw="r")
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        assert d.offer_batch_nowait([retry, text(1), done()])
        d.close()
    assert progress == ["rate limited, retrying", "text 1"]
    assert [e.kind for e in raw] == ["retry", "turn_completed"]  # text is progress only


async def test_sync_callbacks_may_return_a_value() -> None:
    seen: list[object] = []

    def keep(item: object) -> int:
        seen.append(item)
        return len(seen)  # not None, not awaitable: ignored

    d = CallbackDispatcher(keep, keep, on_events=keep)
    async with trio.open_nursery() as n:
        n.start_soon(d.run)
        assert d.offer_batch_nowait([text(0), tool(1)])
        d.close()
    assert len(seen) == 3 and seen[1] == "text 0"
    assert isinstance(seen[2], RawEvent) and seen[2].detail == "tool 1"


# -- the delivered count ---------------------------------------------------------------------------


async def test_bookkeeping_events_count_as_delivered_and_never_shrink_the_buffer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    raw: list[RawEvent] = []
    d = CallbackDispatcher(None, raw.append, buffer=4)
    sent = [e for i in range(200) for e in (started(), tool(i))]
    # a miscount that shrinks the buffer leaves the reader waiting for room for good
    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            n.start_soon(d.run)
            for event in sent:
                if not d.offer_nowait(event):
                    await d.offer(event)
            await d.offer(done())
            d.close()
    assert [e.detail for e in raw[:-1]] == [f"tool {i}" for i in range(200)]
    assert d.delivered == len(sent) + 1 and d.pending == 0 and d.dropped == 0


async def test_delivered_counts_the_events_before_the_one_an_async_callback_holds() -> None:
    at_call: list[tuple[int, int]] = []

    async def on_raw(event: RawEvent) -> None:
        at_call.append((d.delivered, d.pending))
        await trio.lowlevel.checkpoint()

    d = CallbackDispatcher(None, on_raw, buffer=8)
    async with trio.open_nursery() as n:
        assert d.offer_batch_nowait([tool(i) for i in range(5)])
        n.start_soon(d.run)
        d.close()
    assert at_call == [(i, 5 - i) for i in range(5)]
    assert d.delivered == 5


# -- progress text and batches ---------------------------------------------------------------------


def test_a_file_change_is_progress_text_unless_it_says_nothing() -> None:
    change = FileChange(path="a.py", kind=FileChangeKind.MODIFIED)
    event = TurnEvent(kind=EventKind.FILE_CHANGE, text=" update a.py ", files=(change,))
    assert progress_text(event) == "[file_change] update a.py"
    blank = TurnEvent(kind=EventKind.FILE_CHANGE, text="  ", files=(change,))
    assert progress_text(blank) is None
    assert progress_text(TurnEvent(kind=EventKind.RETRY, text=" again ")) == "again"
    assert progress_text(tool(1)) is None


async def test_back_to_back_batches_merge_until_512_events() -> None:
    """Batches queued while the delivery task was away reach ``on_events`` together until the
    merged list holds 512 events or more; the next one starts a new call."""

    async def deliveries(sizes: list[int]) -> list[int]:
        calls: list[int] = []
        d = CallbackDispatcher(None, None, buffer=0, on_events=lambda e: calls.append(len(e)))
        for size in sizes:  # queued before the delivery task runs: back to back
            assert d.offer_batch_nowait([tool(i) for i in range(size)])
        d.close()
        await d.run()
        return calls

    assert await deliveries([512, 1]) == [512, 1]
    assert await deliveries([500, 12, 1]) == [512, 1]
    assert await deliveries([500, 11, 1, 3]) == [512, 3]
    assert await deliveries([100, 600, 5]) == [700, 5]
