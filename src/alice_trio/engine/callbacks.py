"""Delivering events to the caller's callbacks without ever stalling the pipe reader.

The stdout reader hands events to :class:`CallbackDispatcher` a batch at a time (all the events
decoded from one read chunk: :meth:`~CallbackDispatcher.offer_batch_nowait`), which never waits
while the buffer has room. A separate task (:meth:`~CallbackDispatcher.run`) calls
``on_events`` once per batch and ``on_progress`` / ``on_raw_event`` once per event (each sync or
async), in the order the events were offered. The buffer is bounded in events: at most
``buffer`` events are offered and not yet delivered (queued, or in the delivery task's hands).
Progress and terminal events are never dropped: when the buffer is full the reader waits for
room (backpressure), so a stuck callback can delay the run but never lose a reply. Purely
informational events (reasoning, tool use, unknown lines, the ``stdout_line`` events of
``RunRequest.raw_lines``, …) are shed — dropped, counted and reported once — only when the
consumer **really lags**: the buffer is full *and* the delivery task is blocked inside an async
callback that made no progress while the reader gave it three scheduling rounds. A full buffer
alone is not lag: a burst of 50,000 events can fill it faster than the delivery task is
scheduled, and a callback that keeps up (any sync callback, an async one that only checkpoints)
then loses nothing — the reader yields until there is room. Everything offered before
:meth:`~CallbackDispatcher.close` is delivered before :meth:`~CallbackDispatcher.run` returns.

A callback's exception propagates out of :meth:`~CallbackDispatcher.run` (the engines make it a
:class:`~alice_trio.errors.CallbackError`). A ``trio.Cancelled`` that a callback raises while no
enclosing scope is cancelled was asked for by nobody: it is a callback failure, raised as
:class:`CallbackCancelled` (an ``Exception``, so it becomes a ``CallbackError`` like any other)
— never a cancellation the run would mistake for its own timeout. A ``Cancelled`` under a
cancelled scope is a real cancellation and propagates as itself.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Awaitable

import trio

from ..models import (
    EventKind,
    EventsCallback,
    ProgressCallback,
    RawEvent,
    RawEventCallback,
    TurnEvent,
    call_maybe_async,
)
from .event_rate import INFORMATIONAL, EventRate

__all__ = ["Batch", "CallbackCancelled", "CallbackDispatcher", "progress_text"]


class CallbackCancelled(Exception):
    """A callback raised ``trio.Cancelled`` that no cancelled scope asked for (``__cause__``)."""


#: events delivered back to back before the delivery task checkpoints (the reader's turn)
_DRAIN_BATCH = 512
#: scheduling rounds without progress inside an async callback that make the consumer lagging
_LAG_ROUNDS = 3
#: events that are bookkeeping only and never reach ``on_progress`` / ``on_raw_event``
#: (``on_events`` gets them: they carry the thread id)
_SILENT = frozenset({EventKind.THREAD_STARTED, EventKind.TURN_STARTED})
#: the same two, compared by identity on the hot path (a frozenset lookup of an enum member
#: calls ``Enum.__hash__``, a Python function)
_THREAD_STARTED, _TURN_STARTED = EventKind.THREAD_STARTED, EventKind.TURN_STARTED
assert _SILENT == {_THREAD_STARTED, _TURN_STARTED}
#: module globals: ~10x cheaper to read than ``EventKind.X`` (3.11's enum class lookup)
_ASSISTANT_TEXT, _RETRY, _FILE_CHANGE = (
    EventKind.ASSISTANT_TEXT, EventKind.RETRY, EventKind.FILE_CHANGE
)  # fmt: skip

#: what the queue holds: batches of events, in order (``RawEvent``: a ``stdout_line``)
Batch = list[TurnEvent | RawEvent]


def progress_text(event: TurnEvent) -> str | None:
    """The ``on_progress`` text of an event, or None when it is not a progress event."""
    kind = event.kind
    if kind is _ASSISTANT_TEXT or kind is _RETRY:
        return event.text.strip() or None  # the same object when there is nothing to strip
    if kind is _FILE_CHANGE:
        text = event.text.strip()
        return f"[file_change] {text}" if text else None
    return None


def _sheddable(event: TurnEvent | RawEvent) -> bool:
    """An informational event (:data:`~.event_rate.INFORMATIONAL`): shed when the consumer
    lags."""
    return type(event) is RawEvent or event.kind._value_ in INFORMATIONAL  # type: ignore[union-attr]


class CallbackDispatcher:
    """Buffer between the stdout reader and the caller's callbacks (see module docstring).

    One producer (the stdout reader: :meth:`offer_batch_nowait` / :meth:`offer_batch`, or one
    event at a time with :meth:`offer_nowait` / :meth:`offer`; a batch may hold the
    ``stdout_line`` raw events of :meth:`line_event`) and one consumer (:meth:`run`). The
    queue is a deque of batches, bounded by ``buffer`` undelivered events (``buffer`` <= 0:
    unbounded); queueing a batch while there is room costs no checkpoint and no coroutine. A
    queued batch belongs to the dispatcher: the producer builds a new list for the next one."""

    def __init__(
        self,
        on_progress: ProgressCallback | None,
        on_raw_event: RawEventCallback | None,
        buffer: int = 4096,
        on_events: EventsCallback | None = None,
        *,
        provider: str = "",
        rate: int = 0,
    ) -> None:
        self.on_progress = on_progress
        self.on_raw_event = on_raw_event
        self.on_events = on_events
        self.provider = provider  # names the run in the ``dropped`` notice of ``on_events``
        self.active = on_progress is not None or on_raw_event is not None or on_events is not None
        #: every event is wanted (not only the progress ones ``on_progress`` takes)
        self._every = on_raw_event is not None or on_events is not None
        self._capacity: float = buffer if buffer > 0 else math.inf
        self._queue: deque[Batch] = deque()
        self._offered = 0  # events queued so far; ``_offered - delivered`` are in the buffer
        self._mixed = False  # a batch may hold ``stdout_line`` raw events (``line_event``)
        self._closed = False
        self._wake: trio.Event | None = None  # the consumer waits for a batch
        self._room: trio.Event | None = None  # the producer waits for room
        self.dropped = 0
        self.delivered = 0  # events handed to the callbacks (the consumer's progress)
        self._in_callback = False  # the delivery task awaits an async callback
        #: ``RunRequest.informational_rate`` (only when informational events are wanted at all)
        self.rate = EventRate(rate, provider=provider) if rate > 0 and self._every else None

    @property
    def pending(self) -> int:
        """Events offered and not yet delivered (queued, or in the delivery task's hands):
        never more than ``buffer`` (but for the last ``skipped`` notice :meth:`close` adds)."""
        return self._offered - self.delivered

    # -- the producer ---------------------------------------------------------------------
    def _wanted(self, events: Batch) -> Batch:
        """``events`` less those no callback takes (only ``on_progress`` listens) and those
        over the informational rate (counted, and said in a ``skipped`` event)."""
        if self._every:
            rate = self.rate
            return events if rate is None else rate.filter(events, trio.current_time())
        return [e for e in events if type(e) is TurnEvent and progress_text(e) is not None]

    def wants_informational(self) -> bool:
        """Whether an informational event offered now would reach a callback: False when only
        ``on_progress`` (or nothing) listens, or the informational rate's window is full. The
        one-shot engine then lets a decoder skip building them (``quiet``)."""
        if not self._every:
            return False
        rate = self.rate
        return rate is None or rate.open(trio.current_time())

    def count_skipped(self, kinds: dict[str, int]) -> None:
        """Add what a quiet decoder did not build (kind → count; ``kinds`` is emptied): said in
        the next ``skipped`` event when a rate is set, else nobody wanted them."""
        if self.rate is not None:
            self.rate.count(kinds)
        else:
            kinds.clear()

    def _push(self, events: Batch) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the dispatcher is closed")
        self._queue.append(events)
        self._offered += len(events)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    def offer_batch_nowait(self, events: Batch) -> bool:
        """Queue all of ``events`` (the list is then the dispatcher's) when they fit in the
        buffer, or drop them when no callback wants them, and return True; False when they
        do not fit: the caller then awaits :meth:`offer_batch`. Never checkpoints."""
        if not self.active:
            return True
        if self.rate is not None:  # filtered once, when it surely fits (+1: a notice)
            if self._offered - self.delivered + len(events) + 1 > self._capacity:
                return False
            events = self._wanted(events)
        elif not self._every:
            events = self._wanted(events)
        if not events:
            return True
        if self._offered - self.delivered + len(events) > self._capacity:
            return False
        self._push(events)
        return True

    async def offer_batch(self, events: Batch) -> None:
        """Queue ``events`` in order, as many at a time as there is room for. With the buffer
        full: wait for room (progress/terminal events, or while the consumer keeps up), or shed
        a sheddable event when the consumer lags (see the module docstring). Cancellable like
        any checkpoint; the events not queued yet are then dropped."""
        if not self.active:
            return
        events = self._wanted(events)
        i, n = 0, len(events)
        while i < n:
            free = self._capacity - (self._offered - self.delivered)
            if free >= n - i:
                self._push(events[i:] if i else events)
                return
            if free >= 1:
                take = int(free)
                self._push(events[i : i + take])
                i += take
                continue
            if not _sheddable(events[i]):
                self._room = room = trio.Event()
                await room.wait()
                continue
            if not await self._room_or_lag():
                self.dropped += 1
                i += 1

    async def _room_or_lag(self) -> bool:
        """With the buffer full: True once there is room, False when the consumer lags."""
        seen, stalled = self.delivered, 0
        while True:
            await trio.lowlevel.checkpoint()  # the delivery task's turn
            if self._offered - self.delivered < self._capacity:
                return True
            # no progress over several scheduling rounds (trio orders a batch at random, so
            # one round without progress is no evidence)
            stalled = stalled + 1 if self._in_callback and self.delivered == seen else 0
            if stalled >= _LAG_ROUNDS:  # blocked in a slow callback: it lags
                return False
            seen = self.delivered

    def offer_nowait(self, event: TurnEvent) -> bool:
        """:meth:`offer_batch_nowait` of one event."""
        return self.offer_batch_nowait([event])

    async def offer(self, event: TurnEvent) -> None:
        """:meth:`offer_batch` of one event."""
        await self.offer_batch([event])

    def line_event(self, line: str) -> RawEvent | None:
        """The raw ``stdout_line`` event of one protocol line (``raw_lines``) for a batch, or
        None when no ``on_raw_event`` takes it."""
        if self.on_raw_event is None:
            return None
        self._mixed = True
        return RawEvent(kind="stdout_line", line=line)

    def close(self) -> None:
        """No more events: :meth:`run` returns once the queued ones are delivered (the last
        ``skipped`` notice first, when events were counted since the last one)."""
        if self.rate is not None and self.rate.skipped and not self._closed:
            self._push([self.rate.notice()])
        self._closed = True
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    # -- the consumer ---------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver queued events until :meth:`close`. A callback's exception propagates.

        Batches queued back to back are delivered together (``on_events`` gets them as one
        list) up to ``_DRAIN_BATCH`` events, then the task checkpoints (the reader's turn); it
        sleeps while the queue is empty."""
        queue = self._queue
        while True:
            if not queue:
                if self._closed:
                    break
                self._wake = wake = trio.Event()
                await wake.wait()
                continue
            batch = queue.popleft()
            if queue and len(batch) < _DRAIN_BATCH:
                batch = list(batch)
                while queue and len(batch) < _DRAIN_BATCH:
                    batch.extend(queue.popleft())
            try:
                await self._deliver(batch)
            except trio.Cancelled as exc:
                _stray(exc)
            room = self._room
            if room is not None:
                self._room = None
                room.set()
            await trio.lowlevel.checkpoint()
        if self.dropped:
            detail = f"{self.dropped} informational events dropped: callback too slow"
            if self.on_events is not None:
                notice = TurnEvent(kind=EventKind.SKIPPED, text=detail, provider=self.provider)
                await call_maybe_async(self.on_events, [notice])
            if self.on_raw_event is not None:
                await call_maybe_async(self.on_raw_event, RawEvent(kind="dropped", detail=detail))

    async def _deliver(self, batch: Batch) -> None:
        """One batch: ``on_events`` with its turn events, then ``on_progress`` /
        ``on_raw_event`` per event. ``delivered`` is current whenever a callback is awaited."""
        base = self.delivered
        on_events, on_progress, on_raw_event = self.on_events, self.on_progress, self.on_raw_event
        mixed = self._mixed
        if on_events is not None:
            events = [e for e in batch if type(e) is TurnEvent] if mixed else batch
            if events:
                result = on_events(events)  # type: ignore[arg-type]
                if result is not None and inspect.isawaitable(result):
                    await self._await(result)
            if on_progress is None and on_raw_event is None:
                self.delivered = base + len(batch)
                return
        done = 0
        for event in batch:
            if mixed and isinstance(event, RawEvent):
                raw = event
            else:
                kind = event.kind
                if kind is _THREAD_STARTED or kind is _TURN_STARTED:
                    done += 1
                    continue
                if on_progress is not None:
                    text = progress_text(event)  # type: ignore[arg-type]
                    if text is not None:
                        result = on_progress(text)
                        if result is not None and inspect.isawaitable(result):
                            self.delivered = base + done
                            await self._await(result)
                        if kind is not _RETRY or on_raw_event is None:
                            done += 1
                            continue
                if on_raw_event is None:
                    done += 1
                    continue
                raw = event.to_raw_event()  # type: ignore[union-attr]
            result = on_raw_event(raw)  # type: ignore[misc]
            if result is not None and inspect.isawaitable(result):
                self.delivered = base + done
                await self._await(result)
            done += 1
        self.delivered = base + done

    async def _await(self, result: Awaitable[object]) -> None:
        self._in_callback = True
        try:
            await result
        finally:
            self._in_callback = False


def _stray(exc: trio.Cancelled) -> None:
    """A ``Cancelled`` out of a callback: re-raised when a scope around us is cancelled (a real
    cancellation), else the callback's own failure, :class:`CallbackCancelled` (module doc)."""
    if trio.current_effective_deadline() == -math.inf:
        raise exc
    raise CallbackCancelled(f"callback raised trio.Cancelled: {exc!r}") from exc
