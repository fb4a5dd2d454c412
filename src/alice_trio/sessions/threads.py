"""One conversation per thread in a :class:`~alice_trio.sessions.backend.SessionBackend`:
which session key holds each thread, and the hand-over when another key resumes it.

A thread (codex thread, ACP session, opencode session, claude session id) is open in at most
one conversation of a backend at a time. Two conversations on one thread would mean two
copies of it in the agent (gemini loads a second copy, each with its own history), a refused
resume (codex: "already has an active writer"; gemini: a second ``session/load`` on the
process that holds it), or two session keys reading each other's turns. So a run of key B
that opens a conversation on thread T while key A holds T (its conversation is open, or being
opened):

* waits while A's conversation is **busy** (a run of A uses it, or A is still opening it) —
  turns of one thread are serialised, like runs of one key;
* closes A's conversation when it is **idle** (gracefully: the agent releases or parks the
  thread, so B's resume is routed to the process that still holds it), remembers T for A's
  next run (which resumes it the same way, handing it back), waits until it is gone, then
  opens B's on T.

A conversation the agent cannot resume (``session.resumable`` false) is not closed for another
key unless ``ScalingConfig.close_unresumable`` allows it: B's run fails at once with
:class:`~alice_trio.errors.ResumeUnsupportedError` instead (waiting would never end).

A run started from a callback or approver of the run that holds T busy (``chain``: the runs
waiting for that callback) would wait for a turn that cannot end before the callback returned:
it fails at once with :class:`~alice_trio.errors.ConfigError` instead.

Cancellation: waiting is cancellable and leaves nothing held (the opening mark is removed and
the waiters woken).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..errors import ConfigError, ResumeUnsupportedError

if TYPE_CHECKING:
    from .backend import Entry, SessionBackend

__all__ = ["ThreadHolders"]


class _Opening:
    """Key ``key`` is opening a conversation on the thread (until ``done``)."""

    __slots__ = ("done", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.done = trio.Event()


def _nothing(entry: Entry) -> None:
    return None


class ThreadHolders:
    """thread id → the backend entry (or opening run) that holds it (see the module)."""

    def __init__(self) -> None:
        self._holders: dict[str, Entry | _Opening] = {}
        self._changed = trio.Event()

    def holder(self, thread: str) -> Entry | _Opening | None:
        """The entry (or opening run) holding ``thread``, or None."""
        return self._holders.get(thread)

    def notify(self) -> None:
        """A run ended or a conversation closed: waiters look again."""
        self._changed.set()
        self._changed = trio.Event()

    def hold(self, entry: Entry) -> None:
        """``entry``'s conversation is on its session's thread (learned at open or after a
        turn): registered unless another holds that thread."""
        thread = entry.session.thread_id
        if thread and thread not in self._holders:
            self._holders[thread] = entry
            entry.threads.add(thread)

    def let_go(self, entry: Entry) -> None:
        """``entry``'s conversation ended: its threads are free."""
        for thread in entry.threads:
            if self._holders.get(thread) is entry:
                del self._holders[thread]
        entry.threads.clear()
        self.notify()

    @asynccontextmanager
    async def opening(
        self,
        backend: SessionBackend,
        key: str,
        thread: str,
        chain: frozenset[str] = frozenset(),
    ) -> AsyncIterator[Callable[[Entry], None]]:
        """Hold ``thread`` for ``key``'s conversation being opened in the body (nothing when
        ``thread`` is ""): waits for, or closes, the conversation holding it (see the module).
        ``chain``: the session keys of the runs waiting for the callback or approver this run
        is started from (:class:`ConfigError` when one of them holds ``thread`` busy).
        The body calls the yielded function with its opened entry, which then holds it."""
        if not thread:
            yield _nothing
            return
        mark = await self._take(backend, key, thread, chain)

        def opened(entry: Entry) -> None:
            if self._holders.get(thread) is mark:
                self._holders[thread] = entry
                entry.threads.add(thread)

        try:
            yield opened
        finally:
            if self._holders.get(thread) is mark:
                del self._holders[thread]
            mark.done.set()
            self.notify()

    async def _take(
        self, backend: SessionBackend, key: str, thread: str, chain: frozenset[str]
    ) -> _Opening:
        while True:
            holder = self._holders.get(thread)
            if holder is None:
                mark = self._holders[thread] = _Opening(key)
                return mark
            if isinstance(holder, _Opening):
                await holder.done.wait()
                continue
            live = backend._sessions.get(holder.key)
            if live is holder:
                dead = holder.session.closed  # its process ended under it, between runs
                if not dead and not backend.admission.closable(holder):  # would never end
                    raise ResumeUnsupportedError(
                        f"{backend.provider.name}: thread {thread!r} is open in conversation "
                        f"{holder.key!r}, and the agent cannot resume it once closed there: "
                        "run that conversation's key, or allow closing it with "
                        "ScalingConfig(close_unresumable=True)",
                        provider=backend.provider.name,
                    )
                if holder.current is not None or holder.key in backend._in_use:
                    if holder.key in chain:  # its turn waits for this run: it never ends
                        raise ConfigError(
                            f"SessionBackend.run of conversation {key!r} from a callback or "
                            f"approver of {holder.key!r} would wait forever: thread {thread!r} "
                            f"is open in conversation {holder.key!r}, whose turn cannot end "
                            "before the callback returned; run it after that run returned",
                            provider=backend.provider.name,
                        )
                    await self._changed.wait()  # busy: its run ends, then look again
                    continue
                # its next run resumes the thread (a dead one's too, as SessionBackend.run
                # does): a dead one is dropped here as well, not left holding the thread
                # until its idle timer (or for good, when it has none)
                backend.admission.remember(holder)
                backend._drop(holder, graceful=not dead)
            await holder.host_done.wait()
            if self._holders.get(thread) is holder:  # its task let go of it (normally)
                del self._holders[thread]
