"""Admission control for a :class:`~alice_trio.sessions.backend.SessionBackend`: how many
conversations live and how many turns run at once, so a burst cannot take the host down.

* **Turns** (``max_turns``): a run holds a turn slot from before its conversation is opened
  until its turn ended; the rest wait in FIFO order (a :class:`trio.CapacityLimiter` is fair).
  A run that has to wait tells its ``on_progress`` callback once:
  ``[waiting] N turns running, M waiting before this one``.
* **Conversations** (``max_conversations``; for a provider whose conversations need a process
  each, ``max_processes`` bounds them too): a new conversation is admitted in FIFO order when
  the backend holds fewer; otherwise the least recently used *idle* conversation is closed
  (gracefully) to make room, and the new one starts once it is gone (at most ``EVICT_WAIT``).
  Its thread id is remembered, and its next run without a thread id resumes it (so is the
  thread id of a conversation whose process died under it). When every conversation is busy
  the new one waits until a run ends. A conversation whose next run holds its key but still
  waits for a turn slot is idle here (closed only when no other is): pinning it deadlocked
  ``max_turns`` with this bound.

Cancellation: waiting is cancellable and leaves nothing behind (the FIFO ticket is removed).
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from ..models import RunRequest, call_maybe_async
from .pool import ScalingConfig

if TYPE_CHECKING:
    from .backend import SessionBackend

__all__ = ["Admission"]

#: thread ids of closed conversations remembered for their next run
RESUME_MEMORY = 4096
#: how long a new conversation waits for the one closed to make room to be gone
EVICT_WAIT = 10.0


class Admission:
    """See the module docstring. ``shared``: the provider's conversations share processes."""

    def __init__(self, scaling: ScalingConfig, *, shared: bool) -> None:
        self.scaling = scaling
        limit = scaling.max_conversations
        if not shared and scaling.max_processes:
            limit = min(limit, scaling.max_processes) if limit else scaling.max_processes
        self.max_conversations = limit
        self.turns = trio.CapacityLimiter(scaling.max_turns or math.inf)
        self.recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.resume_ids: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.evicted = 0
        self.waited_turns = 0
        self._queue: collections.deque[object] = collections.deque()
        self._opening = 0
        self._changed = trio.Event()

    # -- turns --------------------------------------------------------------------------------
    @asynccontextmanager
    async def turn(self, request: RunRequest) -> AsyncIterator[None]:
        """Hold a turn slot for the body (FIFO; see the module docstring)."""
        token = object()
        try:
            self.turns.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            self.waited_turns += 1
            stats = self.turns.statistics()
            if request.on_progress is not None:
                await call_maybe_async(
                    request.on_progress,
                    f"[waiting] {stats.borrowed_tokens} turns running, "
                    f"{stats.tasks_waiting} waiting before this one",
                )
            await self.turns.acquire_on_behalf_of(token)
        try:
            yield
        finally:
            self.turns.release_on_behalf_of(token)
            self.notify()

    # -- conversations ------------------------------------------------------------------------
    def touch(self, key: str) -> None:
        """``key`` ran now (most recently used)."""
        self.recent[key] = None
        self.recent.move_to_end(key)

    def resume(self, key: str, request: RunRequest) -> RunRequest:
        """A request for a conversation that was closed to make room resumes its thread."""
        thread_id = self.resume_ids.pop(key, "")
        if thread_id and not request.thread_id:
            return request.evolve(thread_id=thread_id)
        return request

    @asynccontextmanager
    async def conversation(self, backend: SessionBackend) -> AsyncIterator[None]:
        """Admit one new conversation of ``backend`` for the body (which opens it)."""
        limit = self.max_conversations
        if not limit:
            yield
            return
        ticket = object()
        self._queue.append(ticket)
        evicted: Any = None
        try:
            while True:
                if self._queue[0] is ticket:
                    if len(backend._sessions) + self._opening < limit:
                        break
                    evicted = self._evict(backend)
                    if evicted is not None:
                        break
                changed = self._changed
                await changed.wait()
            if evicted is not None:  # its conversation is gone before the new one starts
                with trio.move_on_after(EVICT_WAIT):
                    await evicted.host_done.wait()
        finally:
            self._queue.remove(ticket)
            self.notify()
        self._opening += 1
        try:
            yield
        finally:
            self._opening -= 1
            self.notify()

    def evict_one(self, backend: SessionBackend) -> bool:
        """Close the least recently used idle conversation of ``backend``; True if one was."""
        return self._evict(backend) is not None

    def _evict(self, backend: SessionBackend) -> Any:
        """The entry :meth:`evict_one` closed, or None. Idle means no run uses it: the least
        recently used one nobody waits for, else one whose next run still waits for a turn
        slot (that run resumes its thread on a new conversation; never pinned, or the turn
        slots and the conversations wait for each other)."""
        sessions = backend._sessions
        waited_for: list[tuple[str, Any]] = []
        for key in list(self.recent):
            entry = sessions.get(key)
            if entry is None:
                if key not in backend._locks:
                    del self.recent[key]
                continue
            if entry.current is not None or key in backend._in_use:
                continue
            lock = backend._locks.get(key)
            if lock is not None and lock.locked():
                waited_for.append((key, entry))
                continue
            return self._close(backend, key, entry)
        if waited_for:
            return self._close(backend, *waited_for[0])
        return None

    def _close(self, backend: SessionBackend, key: str, entry: Any) -> Any:
        self.remember(key, entry.session.thread_id)
        del self.recent[key]
        backend._drop(entry, graceful=True)
        self.evicted += 1
        return entry

    def remember(self, key: str, thread_id: str) -> None:
        """``key``'s conversation was closed under it (made room, or its process died): its
        next run without a thread id resumes ``thread_id``."""
        if not thread_id:
            return
        self.resume_ids[key] = thread_id
        self.resume_ids.move_to_end(key)
        while len(self.resume_ids) > RESUME_MEMORY:
            self.resume_ids.popitem(last=False)

    def forget(self, key: str, backend: Any) -> None:
        """A conversation of ``backend`` ended (a hook of the backend's session task)."""
        if key not in backend._sessions:
            self.recent.pop(key, None)
        self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
