"""What every agent process that hosts conversations has in common (:class:`ProcessHost`), and
the base of the drivers that wrap another driver (:class:`DriverWrapper`).

A host's pool interface: ``run`` (spawn, report started, live until the process ends; a
failure after started is kept in :attr:`ProcessHost.failure`), ``aclose``, the state below, and
``on_empty`` (called when its last conversation detached). Subclasses:
:class:`~alice_trio.sessions.host.AgentHost` (JSON-RPC routing) and
:class:`~alice_trio.sessions.shared_opencode.ServeHost` (``opencode serve``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from ..errors import AliceError, SessionClosedError, TransportClosedError
from ..models import RunRequest
from ..providers.base import Invocation
from ..transports.process import AgentProcess
from ._groups import single_exception
from .driver import SessionDriver, SteerMode, TurnRef
from .wait_any import wait_any

__all__ = ["DriverWrapper", "ProcessHost"]


class ProcessHost:
    """State shared by hosts. ``capacity`` bounds the conversations on it (:attr:`full`): the
    live ones, or — for an agent that cannot forget a conversation and keeps it in memory —
    every one it opened; such a host then takes no new ones and closes when its last one
    detached."""

    #: what the process is (for messages): "agent process", "server process"
    kind = "agent process"

    def __init__(
        self,
        invocation: Invocation,
        *,
        name: str,
        key: Hashable = None,
        capacity: int = 32,
        close_grace: float = 2.0,
    ) -> None:
        self.invocation = invocation
        self.name = name
        self.key = key
        self.capacity = capacity
        self.close_grace = close_grace
        self.process: AgentProcess | None = None
        self.failure: BaseException | None = None
        #: when the start must have finished (the pool's ``start_timeout``; trio time)
        self.start_deadline = math.inf
        self.links: set[Any] = set()
        self.opened = 0
        self.started = trio.Event()
        self.done = trio.Event()
        self.closing = False
        #: called when the last conversation detached (the pool retires or idles the host)
        self.on_empty: Callable[[Any], None] | None = None
        self._scope: trio.CancelScope | None = None
        self._detached = trio.Event()  # set (and replaced) each time a conversation detached

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.started.is_set() and not self.done.is_set() and not self.closing

    @property
    def full(self) -> bool:
        """No new conversation here: ``capacity`` reached — counting the live conversations
        when the agent frees a closed one (:attr:`frees`), else every one it ever opened."""
        return (self.load if self.frees else self.opened) >= self.capacity

    @property
    def frees(self) -> bool:
        """The agent forgets a conversation when it is closed (its memory comes back)."""
        return True

    @property
    def load(self) -> int:
        return len(self.links)

    def holds(self, key: str) -> bool:
        """A live conversation here has route key ``key``."""
        return False

    def has_parked(self, key: str) -> bool:
        """The process still holds closed conversation ``key``."""
        return False

    def stderr_tail(self) -> str:
        return self.process.stderr_tail() if self.process is not None else ""

    def ended_error(self) -> TransportClosedError:
        """What the conversations of a host that ended are told (typed, with the tail)."""
        proc = self.process
        status = proc.exit_description() if proc is not None else "not started"
        detail = f": {self.failure}" if self.failure is not None else ""
        return TransportClosedError(
            f"{self.name} {self.kind} ended ({status}){detail}",
            provider=self.name,
            stderr_tail=self.stderr_tail(),
        )

    @contextmanager
    def _lifetime(self) -> Iterator[None]:
        """The body of a subclass's ``run``: cancellable through ``_scope`` (:meth:`aclose`), one
        exception at a time, never a group. A failure before :attr:`started` is set propagates
        (typed) — so does a close before it (:class:`SessionClosedError`: a caller waiting for
        the start, e.g. ``nursery.start(host.run)``, never sees it return unstarted); after it,
        a failure is kept in :attr:`failure` and ``run`` returns. :attr:`done` is set on every
        way out."""
        try:
            with single_exception(), trio.CancelScope() as scope:
                self._scope = scope
                yield
            if not self.started.is_set():
                raise SessionClosedError(
                    f"{self.name} {self.kind} was closed while it started", provider=self.name
                )
        except AliceError as exc:
            if not self.started.is_set():
                raise
            self.failure = exc
        finally:
            self.done.set()

    def _emptied(self) -> None:
        detached, self._detached = self._detached, trio.Event()
        detached.set()
        if not self.links and self.on_empty is not None:
            self.on_empty(self)

    async def released(self, key: str) -> None:
        """Return once no live conversation here holds route key ``key`` (it closed: its
        thread is parked here or released), or the process ended. Cancellable."""
        while key and self.holds(key) and not self.done.is_set():
            await wait_any(self._detached, self.done)


class DriverWrapper:
    """A :class:`SessionDriver` around ``driver``: turns go to it, anything else a caller
    asks for (``reply_question``, ``mapper``, …) too. Subclasses give ``run`` and ``aclose``."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.steer_mode: SteerMode = driver.steer_mode
        self._turns: SessionDriver = driver

    def stderr_tail(self) -> str:
        fn = getattr(self.driver, "stderr_tail", None)
        return fn() if callable(fn) else ""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "driver":
            raise AttributeError(name)
        return getattr(self.driver, name)

    async def start_turn(self, request: RunRequest) -> TurnRef:
        return await self._turns.start_turn(request)

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        return await self._turns.steer_turn(turn, request)

    async def interrupt_turn(self, turn: TurnRef) -> None:
        await self._turns.interrupt_turn(turn)
