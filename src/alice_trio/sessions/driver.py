"""The contract between the interactive session core and one provider's protocol driver.

A *driver* speaks one CLI's interactive protocol (codex app-server JSON-RPC, claude
bidirectional stream-json, ACP, legacy kimi wire, opencode serve HTTP+SSE). The *session*
(:mod:`alice_trio.sessions.session`) owns the nursery, the turn state (active turn, queue,
steer/queue/interrupt decisions) and the outbound event stream; it knows no provider by name.

Lifecycle: the session calls ``await nursery.start(driver.run, emit)``. ``run`` spawns the
process (or connects), performs the handshake, calls ``task_status.started()`` and then keeps
reading, turning protocol messages into :class:`~alice_trio.models.TurnEvent` and awaiting
``emit(event)`` for each (``emit`` applies backpressure; it never drops). ``run`` returns when
the process/connection ends (the session then fails pending work with
:class:`~alice_trio.errors.TransportClosedError`) and must leave nothing running when cancelled.

The session calls ``start_turn``/``steer_turn``/``interrupt_turn`` from tasks it owns, one start
or steer at a time: a caller's cancellation never interrupts a driver call half-way, so a driver
may keep bookkeeping and write in one call without guarding against being cancelled between them
(it is still cancelled when the session closes). A ``TurnRef`` always has a turn id.

A driver whose protocol cannot resume a closed conversation by its thread id sets
``resumable = False`` once it knows (ACP without ``loadSession``); the backend then never closes
that conversation by itself (docs/scaling.md). A driver without the attribute is resumable.

Every event carries the ``turn_id`` of the turn that caused it — including output produced for
steered or enqueued input — so the session never attributes a reply to the wrong turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import trio

from ..errors import AliceError
from ..models import RunRequest, TurnEvent
from ..protocols.session_core import SteerMode, SubmitMode, SubmitResult, TurnRef

__all__ = [
    "Emit",
    "SessionDriver",
    "SteerMode",
    "SubmitMode",
    "SubmitResult",
    "TurnErrors",
    "TurnRef",
]

Emit = Callable[[TurnEvent], Awaitable[None]]


class TurnErrors:
    """The typed errors behind failed turns' ``error`` events, by turn id, for a driver's
    ``turn_error`` (the session's :meth:`~alice_trio.sessions.session.InteractiveSession.turn_error`
    asks it); only the last ``keep`` turns are remembered."""

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._by_turn: dict[str, AliceError] = {}

    def record(self, turn_id: str, error: AliceError) -> None:
        self._by_turn[turn_id] = error
        while len(self._by_turn) > self._keep:
            del self._by_turn[next(iter(self._by_turn))]

    def get(self, turn_id: str) -> AliceError | None:
        return self._by_turn.get(turn_id)


@runtime_checkable
class SessionDriver(Protocol):
    """One provider's interactive protocol (see module docstring)."""

    steer_mode: SteerMode

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        """Spawn/connect, handshake, ``task_status.started()``, then pump events until EOF."""
        ...

    async def start_turn(self, request: RunRequest) -> TurnRef:
        """Start a turn; returns once the provider accepted it (not when it completes)."""
        ...

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        """Inject ``request`` into the active turn (NATIVE / NATIVE_ENQUEUE only). Returns the
        ref whose events will carry the answer (a new turn id for enqueue-style providers)."""
        ...

    async def interrupt_turn(self, turn: TurnRef) -> None:
        """Ask the provider to stop ``turn``; the terminal event arrives through ``emit``."""
        ...

    async def aclose(self, *, graceful: bool) -> None:
        """End the process/connection: graceful = EOF + short grace; else kill at once."""
        ...
