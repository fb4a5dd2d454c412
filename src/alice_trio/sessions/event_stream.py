"""A session's outbound event stream: one reader at a time.

:meth:`~alice_trio.sessions.session.InteractiveSession.events` returns the session's one
:class:`EventStream`, every call the same. Every event goes to exactly one read, so two tasks
iterating it at once would split the events between them without a word (each missing what
the other got). Instead a task that reads while another task waits for an event raises
:class:`~alice_trio.errors.SessionError` at once and gets nothing: a second consumer is the
caller's misuse, seen on its first overlapping read. Reading from different tasks one after
the other is fine (``SessionBackend``'s runs do). For several consumers, read in one task and
fan the events out yourself.

``async for`` ends when the session's stream ends; breaking out of it or cancelling a read is
harmless (nothing is lost or consumed). ``aclose`` closes the reading side (the session's
driver then stops delivering; the session is not closed by it).
"""

from __future__ import annotations

import trio

from ..errors import SessionError
from ..models import TurnEvent

__all__ = ["EventStream"]


class EventStream(trio.abc.ReceiveChannel[TurnEvent]):
    """The receiving side of a session's events (see the module docstring)."""

    def __init__(self, channel: trio.MemoryReceiveChannel[TurnEvent], *, provider: str) -> None:
        self._channel = channel
        self._provider = provider
        self._reader: trio.lowlevel.Task | None = None

    async def receive(self) -> TurnEvent:
        """The next event; raises ``trio.EndOfChannel`` once the stream ended, and
        :class:`SessionError` when another task is waiting for an event already."""
        task = trio.lowlevel.current_task()
        if self._reader is not None and self._reader is not task:
            await trio.lowlevel.checkpoint()
            raise SessionError(
                f"another task is already reading this {self._provider or 'agent'} session's "
                "events: a session has one event reader at a time (every event goes to one read)",
                provider=self._provider,
            )
        self._reader = task
        try:
            return await self._channel.receive()
        finally:
            self._reader = None

    def receive_nowait(self) -> TurnEvent:
        """The next event if one is waiting (``trio.WouldBlock`` otherwise); never competes
        with a waiting reader (an event there would already have gone to it)."""
        return self._channel.receive_nowait()

    def statistics(self) -> trio.MemoryChannelStatistics:
        return self._channel.statistics()

    def clone(self) -> EventStream:
        """Refused: a clone would split the events like a second reader does."""
        raise SessionError(
            "a session's event stream cannot be cloned: it has one reader at a time",
            provider=self._provider,
        )

    async def aclose(self) -> None:
        await self._channel.aclose()

    def close(self) -> None:
        self._channel.close()
