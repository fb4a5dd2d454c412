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
* **Conversations the agent cannot resume** (``session.resumable`` false: an ACP agent whose
  ``initialize`` offers no ``loadSession``) are never closed to make room, nor by ``idle_ttl``
  — closing one would lose it, and its next run would fail to resume — unless
  ``ScalingConfig.close_unresumable`` allows it (then its thread id is not remembered: its next
  run without one starts afresh). A new conversation that finds the bound taken only by such
  conversations fails at once with :class:`ConversationLimitError` (room would never come).

* **A bound held by the runs a callback waits for**: a run started from a callback or approver
  of other runs (their turns wait for it to return) that finds a bound (``max_turns``, or no
  room for its conversation) held only by those runs — and by conversations that may not be
  closed — gets :class:`ConfigError` at once: room would never come. Where any other run holds
  part of the bound, it waits like any run.

Cancellation: waiting is cancellable and leaves nothing behind (the FIFO ticket is removed).
"""

from __future__ import annotations

import collections
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from ..errors import ConfigError, ConversationLimitError
from ..models import RunRequest
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
        self._turn_holders: dict[object, str] = {}  # turn token → its run's holder name
        self.recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.resume_ids: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.evicted = 0
        self.waited_turns = 0
        self._queue: collections.deque[object] = collections.deque()
        self._opening = 0
        self._changed = trio.Event()

    # -- turns --------------------------------------------------------------------------------
    @asynccontextmanager
    async def turn(
        self,
        notice: Callable[[str], Awaitable[None]] | None = None,
        *,
        holder: str = "",
        chain: frozenset[str] = frozenset(),
        provider: str = "",
    ) -> AsyncIterator[None]:
        """Hold a turn slot for the body (FIFO; see the module docstring) in the name of
        ``holder`` (the run's key, or a name of its own). A run that must wait first tells
        ``notice`` (the backend's delivery to the run's progress callback, which raises what
        the run then raises); one started from a callback or approver of the runs in ``chain``
        gets :class:`ConfigError` instead when only those runs hold the slots (room would
        never come: their turns wait for it)."""
        token = object()
        try:
            self.turns.acquire_on_behalf_of_nowait(token)
        except trio.WouldBlock:
            self._refuse_held_by_chain(
                "max_turns", self._turn_holders.values(), holder, chain, provider
            )
            self.waited_turns += 1
            stats = self.turns.statistics()
            if notice is not None:
                await notice(
                    f"[waiting] {stats.borrowed_tokens} turns running, "
                    f"{stats.tasks_waiting} waiting before this one"
                )
            await self.turns.acquire_on_behalf_of(token)
        self._turn_holders[token] = holder
        try:
            yield
        finally:
            del self._turn_holders[token]
            self.turns.release_on_behalf_of(token)
            self.notify()

    @staticmethod
    def _refuse_held_by_chain(
        bound: str, holders: Iterable[str], holder: str, chain: frozenset[str], provider: str
    ) -> None:
        """:class:`ConfigError` when every holder of ``bound`` is a run in ``chain`` (the runs
        waiting for the callback or approver that started this one): see :meth:`turn`."""
        held = sorted(set(holders))
        if not chain or not held or not chain.issuperset(held):
            return
        names = ", ".join(repr(h) if not h.startswith("\0") else "a run" for h in held)
        what = f"conversation {holder!r}" if holder and not holder.startswith("\0") else "a run"
        raise ConfigError(
            f"SessionBackend.run of {what} from a callback or approver of {names} would wait "
            f"forever: {bound} is held by that run, whose turn cannot end before the callback "
            f"returned; raise {bound}, or run it after that run returned",
            provider=provider,
        )

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
    async def conversation(
        self, backend: SessionBackend, *, holder: str = "", chain: frozenset[str] = frozenset()
    ) -> AsyncIterator[None]:
        """Admit one new conversation of ``backend`` for the body (which opens it). Started
        from a callback or approver of the runs in ``chain``: :class:`ConfigError` when room
        could only come from those runs' conversations (see :meth:`turn`)."""
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
                    self._check_room(backend, limit)
                    if chain and not self._opening:
                        self._refuse_room_held_by_chain(backend, holder, chain)
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

    def _refuse_room_held_by_chain(
        self, backend: SessionBackend, holder: str, chain: frozenset[str]
    ) -> None:
        """No room, none opening: :class:`ConfigError` when every live conversation is one
        of a run in ``chain`` or one the backend may not close (room would never come)."""
        live = [e for e in backend._sessions.values() if not e.session.closed]
        if all(e.key in chain or not self.closable(e) for e in live):
            scaling = self.scaling
            bound = (
                "max_conversations"
                if scaling.max_conversations == self.max_conversations
                else "max_processes"
            )
            held = [e.key for e in live if e.key in chain]
            self._refuse_held_by_chain(bound, held, holder, chain, backend.provider.name)

    def closable(self, entry: Any) -> bool:
        """Whether the backend may close ``entry``'s conversation by itself (idle close, room
        for another): the agent can resume it, or the scaling allows losing it."""
        return bool(entry.session.resumable or self.scaling.close_unresumable)

    def _check_room(self, backend: SessionBackend, limit: int) -> None:
        """:class:`ConversationLimitError` when room can never come: every live conversation
        is one the backend may not close (none opening, none that could become idle)."""
        sessions = list(backend._sessions.values())
        if self._opening or len(sessions) < limit:
            return
        if any(self.closable(e) or e.session.closed for e in sessions):
            return
        raise ConversationLimitError(
            f"max_conversations ({limit}) reached by conversations the agent cannot resume "
            "(closing one would lose it): raise the bound, or allow closing them with "
            "ScalingConfig(close_unresumable=True)",
            provider=backend.provider.name,
        )

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
            if entry.current is not None or key in backend._in_use or not self.closable(entry):
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
        self.remember(entry)
        del self.recent[key]
        backend._drop(entry, graceful=True)
        self.evicted += 1
        return entry

    def remember(self, entry: Any) -> None:
        """``entry``'s conversation was closed under it (made room, or its process died): its
        key's next run without a thread id resumes its thread — if the agent can resume it."""
        key, thread_id = entry.key, entry.session.thread_id
        if not thread_id or not entry.session.resumable:
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
