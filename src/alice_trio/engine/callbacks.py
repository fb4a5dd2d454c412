"""Delivering events to the caller's callbacks without ever stalling the pipe reader.

The stdout reader hands events to :class:`CallbackDispatcher` with :meth:`offer`, which never
waits while the buffer has room. A separate task (:meth:`run`) calls ``on_progress`` /
``on_raw_event`` (sync or async). Progress and terminal events are never dropped: when the
buffer is full the reader waits for room (backpressure), so a stuck callback can delay the run
but never lose a reply. Purely informational raw events (reasoning, tool use, unknown lines, …)
are shed — dropped, counted and reported once — only when the consumer **really lags**: the
buffer is full *and* the delivery task is blocked inside an async callback that made no progress
while the reader gave it three scheduling rounds. A full buffer alone is not lag: a burst of
50,000 events can fill it faster than the delivery task is scheduled, and a callback that
keeps up (any sync callback, an async one that only checkpoints) then loses nothing — the
reader yields until there is room. Everything offered before :meth:`close` is delivered before
:meth:`run` returns.

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
from typing import Any

import trio

from ..models import (
    EventKind,
    ProgressCallback,
    RawEvent,
    RawEventCallback,
    TurnEvent,
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


def progress_text(event: TurnEvent) -> str | None:
    """The ``on_progress`` text of an event, or None when it is not a progress event."""
    if event.kind is EventKind.ASSISTANT_TEXT:
        return event.text.strip() or None
    if event.kind is EventKind.FILE_CHANGE:
        text = event.text.strip()
        return f"[file_change] {text}" if text else None
    if event.kind is EventKind.RETRY:
        return event.text.strip() or None
    return None


class CallbackDispatcher:
    """Buffer between the stdout reader and the caller's callbacks (see module docstring)."""

    def __init__(
        self,
        on_progress: ProgressCallback | None,
        on_raw_event: RawEventCallback | None,
        buffer: int = 4096,
    ) -> None:
        self.on_progress = on_progress
        self.on_raw_event = on_raw_event
        self.active = on_progress is not None or on_raw_event is not None
        size = buffer if buffer > 0 else math.inf
        self._send, self._recv = trio.open_memory_channel[TurnEvent](size)
        self.dropped = 0
        self.delivered = 0  # events handed to the callbacks (the consumer's progress)
        self._in_callback = False  # the delivery task awaits an async callback

    def wants(self, event: TurnEvent) -> bool:
        if not self.active or event.kind in _SILENT:
            return False
        if progress_text(event) is not None and self.on_progress is not None:
            return True
        return self.on_raw_event is not None

    async def offer(self, event: TurnEvent) -> None:
        """Queue ``event``. With the buffer full: wait for room (progress/terminal events, or
        while the consumer keeps up), or shed a sheddable event when the consumer lags (see the
        module docstring). Cancellable like any checkpoint; the event is then not queued. Once
        the delivery task has ended (a callback raised: its runner reports that), events are
        dropped instead of raising ``BrokenResourceError`` into the reader."""
        if not self.wants(event):
            return
        try:
            await self._offer(event)
        except trio.BrokenResourceError:
            return

    async def _offer(self, event: TurnEvent) -> None:
        try:
            self._send.send_nowait(event)
            return
        except trio.WouldBlock:
            pass
        if event.kind not in _SHEDDABLE:
            await self._send.send(event)
            return
        seen, stalled = self.delivered, 0
        while True:
            await trio.lowlevel.checkpoint()  # the delivery task's turn
            try:
                self._send.send_nowait(event)
                return
            except trio.WouldBlock:
                pass
            # no progress over several scheduling rounds (trio orders a batch at random, so
            # one round without progress is no evidence)
            stalled = stalled + 1 if self._in_callback and self.delivered == seen else 0
            if stalled >= _LAG_ROUNDS:  # blocked in a slow callback: it lags
                self.dropped += 1
                return
            seen = self.delivered

    def close(self) -> None:
        """No more events: :meth:`run` returns once the queued ones are delivered."""
        self._send.close()

    async def run(self) -> None:
        """Deliver queued events until :meth:`close`. A callback's exception propagates."""
        async with self._recv:
            async for event in self._recv:
                await self._deliver(event)
                # drain what is already queued without a scheduler round trip per event
                for _ in range(_DRAIN_BATCH):
                    try:
                        event = self._recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    await self._deliver(event)
            if self.dropped and self.on_raw_event is not None:
                await self._call(
                    self.on_raw_event,
                    RawEvent(
                        kind="dropped",
                        detail=f"{self.dropped} informational events dropped: callback too slow",
                    ),
                )

    async def _deliver(self, event: TurnEvent) -> None:
        text = progress_text(event)
        if text is not None and self.on_progress is not None:
            await self._call(self.on_progress, text)
            if event.kind is not EventKind.RETRY:
                self.delivered += 1
                return
        if self.on_raw_event is not None:
            await self._call(self.on_raw_event, event.to_raw_event())
        self.delivered += 1

    async def _call(self, callback: Any, arg: object) -> None:
        """Call ``callback(arg)`` (sync or async); a stray ``Cancelled`` becomes
        :class:`CallbackCancelled` (see the module docstring)."""
        try:
            await self._await(callback(arg))
        except trio.Cancelled as exc:
            if trio.current_effective_deadline() == -math.inf:
                raise  # a scope around us is cancelled: a real cancellation
            raise CallbackCancelled(f"callback raised trio.Cancelled: {exc!r}") from exc

    async def _await(self, result: object) -> None:
        if result is not None and inspect.isawaitable(result):
            self._in_callback = True
            try:
                await result
            finally:
                self._in_callback = False
