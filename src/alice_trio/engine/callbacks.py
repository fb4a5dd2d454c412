"""Delivering events to the caller's callbacks without ever stalling the pipe reader.

The stdout reader hands events to :class:`CallbackDispatcher` with :meth:`offer`, which never
waits while the buffer has room. A separate task (:meth:`run`) calls ``on_progress`` /
``on_raw_event`` (sync or async). Progress and terminal events are never dropped: when the
buffer is full the reader waits for room (backpressure), so a stuck callback can delay the run
but never lose a reply. Purely informational raw events (reasoning, tool use, unknown lines, the
``stdout_line`` events of ``RunRequest.raw_lines``, …) are shed — dropped, counted and reported
once — only when the consumer **really lags**: the buffer is full *and* the delivery task is
blocked inside an async callback that made no progress while the reader gave it three scheduling
rounds. A full buffer alone is not lag: a burst of 50,000 events can fill it faster than the
delivery task is scheduled, and a callback that keeps up (any sync callback, an async one that
only checkpoints) then loses nothing — the reader yields until there is room. Everything
offered before :meth:`close` is delivered before :meth:`run` returns.

A callback's exception propagates out of :meth:`run` (the engines make it a
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
    ProgressCallback,
    RawEvent,
    RawEventCallback,
    TurnEvent,
    call_maybe_async,
)

__all__ = ["CallbackCancelled", "CallbackDispatcher", "progress_text"]


class CallbackCancelled(Exception):
    """A callback raised ``trio.Cancelled`` that no cancelled scope asked for (``__cause__``)."""


#: events that only feed ``on_raw_event`` and may be shed when the consumer is too slow
_SHEDDABLE = frozenset(
    {
        EventKind.REASONING,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.UNKNOWN,
        EventKind.USAGE,
        EventKind.USER_TEXT,
    }
)
#: events delivered back to back (no checkpoint between them when the callbacks are sync)
_DRAIN_BATCH = 512
#: scheduling rounds without progress inside an async callback that make the consumer lagging
_LAG_ROUNDS = 3
#: events that are bookkeeping only and never reach a callback
_SILENT = frozenset({EventKind.THREAD_STARTED, EventKind.TURN_STARTED})
#: the same two, compared by identity on the hot path (a frozenset lookup of an enum member
#: calls ``Enum.__hash__``, a Python function)
_THREAD_STARTED, _TURN_STARTED = EventKind.THREAD_STARTED, EventKind.TURN_STARTED
assert _SILENT == {_THREAD_STARTED, _TURN_STARTED}
#: module globals: ~10x cheaper to read than ``EventKind.X`` (3.11's enum class lookup)
_ASSISTANT_TEXT, _RETRY, _FILE_CHANGE = (
    EventKind.ASSISTANT_TEXT, EventKind.RETRY, EventKind.FILE_CHANGE
)  # fmt: skip


def progress_text(event: TurnEvent) -> str | None:
    """The ``on_progress`` text of an event, or None when it is not a progress event."""
    kind = event.kind
    if kind is _ASSISTANT_TEXT or kind is _RETRY:
        return event.text.strip() or None  # the same object when there is nothing to strip
    if kind is _FILE_CHANGE:
        text = event.text.strip()
        return f"[file_change] {text}" if text else None
    return None


#: what the queue holds: the event and its progress text (None: not a progress event)
_Entry = tuple[TurnEvent | RawEvent, str | None]


class CallbackDispatcher:
    """Buffer between the stdout reader and the caller's callbacks (see module docstring).

    One producer (the stdout reader: :meth:`offer_nowait` / :meth:`offer` / :meth:`offer_line`)
    and one consumer (:meth:`run`). The queue is a plain deque bounded by ``buffer`` entries
    (``buffer`` <= 0: unbounded); queueing an event while there is room costs no checkpoint and
    no coroutine."""

    def __init__(
        self,
        on_progress: ProgressCallback | None,
        on_raw_event: RawEventCallback | None,
        buffer: int = 4096,
    ) -> None:
        self.on_progress = on_progress
        self.on_raw_event = on_raw_event
        self.active = on_progress is not None or on_raw_event is not None
        self._capacity: float = buffer if buffer > 0 else math.inf
        self._queue: deque[_Entry] = deque()
        self._closed = False
        self._wake: trio.Event | None = None  # the consumer waits for an entry
        self._room: trio.Event | None = None  # the producer waits for room
        self.dropped = 0
        self.delivered = 0  # events handed to the callbacks (the consumer's progress)
        self._in_callback = False  # the delivery task awaits an async callback

    def _entry(self, event: TurnEvent) -> _Entry | None:
        """The queue entry of ``event``, or None when no callback wants it."""
        if not self.active or event.kind in _SILENT:
            return None
        text = progress_text(event) if self.on_progress is not None else None
        if text is None and self.on_raw_event is None:
            return None
        return (event, text)

    def wants(self, event: TurnEvent) -> bool:
        return self._entry(event) is not None

    def _push(self, entry: _Entry) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the dispatcher is closed")
        self._queue.append(entry)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    def offer_nowait(self, event: TurnEvent) -> bool:
        """Queue ``event`` if there is room (or drop it when no callback wants it) and return
        True; False when the buffer is full: the caller then awaits :meth:`offer`. Never
        checkpoints. (The hot path: :meth:`_entry` and :meth:`_push` inlined.)"""
        kind = event.kind
        if not self.active or kind is _THREAD_STARTED or kind is _TURN_STARTED:  # _SILENT
            return True
        text = progress_text(event) if self.on_progress is not None else None
        if text is None and self.on_raw_event is None:
            return True
        queue = self._queue
        if len(queue) >= self._capacity:
            return False
        if self._closed:
            raise trio.ClosedResourceError("the dispatcher is closed")
        queue.append((event, text))
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()
        return True

    async def offer(self, event: TurnEvent) -> None:
        """Queue ``event``. With the buffer full: wait for room (progress/terminal events, or
        while the consumer keeps up), or shed a sheddable event when the consumer lags (see the
        module docstring). Cancellable like any checkpoint; the event is then not queued."""
        entry = self._entry(event)
        if entry is not None:
            await self._offer_entry(entry, sheddable=event.kind in _SHEDDABLE)

    def offer_line(self, line: str) -> bool:
        """The raw ``stdout_line`` event of one protocol line (``raw_lines``), queued if there
        is room; False when the buffer is full (then :meth:`offer_line_wait`)."""
        if self.on_raw_event is None:
            return True
        if len(self._queue) < self._capacity:
            self._push((RawEvent(kind="stdout_line", line=line), None))
            return True
        return False

    async def offer_line_wait(self, line: str) -> None:
        """:meth:`offer_line` for a full buffer: informational, shed when the consumer lags."""
        if self.on_raw_event is not None:
            await self._offer_entry((RawEvent(kind="stdout_line", line=line), None), sheddable=True)

    async def _offer_entry(self, entry: _Entry, *, sheddable: bool) -> None:
        queue = self._queue
        if len(queue) < self._capacity:
            self._push(entry)
            return
        if not sheddable:
            while len(queue) >= self._capacity:
                self._room = room = trio.Event()
                await room.wait()
            self._push(entry)
            return
        seen, stalled = self.delivered, 0
        while True:
            await trio.lowlevel.checkpoint()  # the delivery task's turn
            if len(queue) < self._capacity:
                self._push(entry)
                return
            # no progress over several scheduling rounds (trio orders a batch at random, so
            # one round without progress is no evidence)
            stalled = stalled + 1 if self._in_callback and self.delivered == seen else 0
            if stalled >= _LAG_ROUNDS:  # blocked in a slow callback: it lags
                self.dropped += 1
                return
            seen = self.delivered

    def close(self) -> None:
        """No more events: :meth:`run` returns once the queued ones are delivered."""
        self._closed = True
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    async def run(self) -> None:
        """Deliver queued events until :meth:`close`. A callback's exception propagates.

        Up to ``_DRAIN_BATCH`` queued events are delivered back to back, then the task
        checkpoints (the reader's turn); it sleeps while the queue is empty."""
        queue = self._queue
        on_progress, on_raw_event = self.on_progress, self.on_raw_event
        retry = EventKind.RETRY
        while True:
            if not queue:
                if self._closed:
                    break
                self._wake = wake = trio.Event()
                await wake.wait()
                continue
            for _ in range(_DRAIN_BATCH):
                if not queue:
                    break
                event, text = queue.popleft()
                room = self._room
                if room is not None:
                    self._room = None
                    room.set()
                if text is not None and on_progress is not None:
                    try:
                        result = on_progress(text)
                        if result is not None and inspect.isawaitable(result):
                            await self._await(result)
                    except trio.Cancelled as exc:
                        _stray(exc)
                    if event.kind is not retry:
                        self.delivered += 1
                        continue
                if on_raw_event is not None:
                    raw = event if isinstance(event, RawEvent) else event.to_raw_event()
                    try:
                        result = on_raw_event(raw)
                        if result is not None and inspect.isawaitable(result):
                            await self._await(result)
                    except trio.Cancelled as exc:
                        _stray(exc)
                self.delivered += 1
            await trio.lowlevel.checkpoint()
        if self.dropped and on_raw_event is not None:
            await call_maybe_async(
                on_raw_event,
                RawEvent(
                    kind="dropped",
                    detail=f"{self.dropped} informational events dropped: callback too slow",
                ),
            )

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
