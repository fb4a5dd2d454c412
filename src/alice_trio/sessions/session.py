"""One conversation over one session driver: submit, steer, queue, interrupt, events.

:func:`open_session` is an async context manager that owns the driver's process/connection and
the nursery its tasks run in::

    async with open_session("claude", config, initial=request) as session:
        submitted = await session.submit(request)      # started / steered / queued
        async for event in session.events():
            ...

**Turn state.** At most one turn is *active*. With steer mode ``native``/``native_enqueue``
input that arrives while a turn runs goes to the driver (``steer_turn``); when the driver gives
it a turn id of its own (enqueue-style providers), that turn is *outstanding* and becomes the
active turn when the one before it ends, so the session is busy until every steered input was
answered. Otherwise input is queued (FIFO) and started when the active turn ends; a queued
input without a thread id inherits the thread id of the turn that just finished.

**Events.** The driver's reader awaits :meth:`InteractiveSession._emit` for every event: the
state update happens synchronously (no lock, no I/O) and the event then goes into a bounded
channel (``buffer``); a slow consumer applies backpressure to the driver, nothing is dropped.
A terminal event clears the active turn only when its turn id is the active one (an event
without a turn id never clears anything, §13.6). :meth:`events` returns that channel: breaking
out of ``async for`` or cancelling mid-iteration is harmless.

**Locking.** Driver calls that start or steer a turn are serialized by one trio lock, which the
event path never takes (§13.8: the reader can always make progress). A queued start marks the
session busy *before* it awaits the lock, so a concurrent submit queues behind it instead of
starting a second turn (§13.7).

**Closing.** Leaving the context closes the session; closed is sticky (every later call raises
:class:`SessionClosedError`). After a finished turn the driver closes gracefully (EOF, short
grace); with a turn still running, on error, or when the caller is cancelled, the process group
is killed at once. When the driver ends by itself (the CLI crashed), every pending turn gets an
``error`` event, the session state becomes ``FAILED`` and the event channel ends.
"""

from __future__ import annotations

import collections
import enum
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..errors import (
    AliceError,
    EmptyPromptError,
    NoActiveTurnError,
    SessionClosedError,
    SteerUnsupportedError,
)
from ..models import EventKind, RunRequest, TurnEvent
from ..providers.base import CLIConfig, Provider
from ..providers.registry import get_provider
from ._groups import single_exception
from .approval import Approver
from .driver import SessionDriver, SteerMode, SubmitMode, SubmitResult, TurnRef

__all__ = ["InteractiveSession", "SessionState", "open_session"]

DEFAULT_BUFFER = 128
_FINISHED_MEMORY = 256  # terminal turn ids remembered (a fast turn can end before start returns)
_NATIVE = (SteerMode.NATIVE, SteerMode.NATIVE_ENQUEUE)


class SessionState(enum.Enum):
    IDLE = "idle"  # no turn running
    RUNNING = "running"  # a turn is active (or starting)
    CLOSED = "closed"  # closed by the owner
    FAILED = "failed"  # the driver ended by itself (crash, EOF) or failed to start


class InteractiveSession:
    """A conversation over one :class:`SessionDriver` (see the module docstring)."""

    def __init__(
        self,
        driver: SessionDriver,
        nursery: trio.Nursery,
        *,
        provider: str = "",
        thread_id: str = "",
        buffer: int = DEFAULT_BUFFER,
    ) -> None:
        self.driver = driver
        self.provider = provider
        self._nursery = nursery
        self._send, self._recv = trio.open_memory_channel[TurnEvent](buffer)
        self._op_lock = trio.Lock()
        self._active: TurnRef | None = None
        self._outstanding: list[TurnRef] = []
        self._queue: collections.deque[RunRequest] = collections.deque()
        self._starting = 0
        self._finished: collections.deque[str] = collections.deque(maxlen=_FINISHED_MEMORY)
        self._closed = False
        self._failed = False
        self._interrupt_pending = False
        self._queued_ids = itertools.count(1)
        self.thread_id = thread_id
        self.driver_done = trio.Event()
        self.failure: BaseException | None = None

    # -- read-only state ------------------------------------------------------------------------
    @property
    def steer_mode(self) -> SteerMode:
        return self.driver.steer_mode

    @property
    def state(self) -> SessionState:
        if self._failed:
            return SessionState.FAILED
        if self._closed:
            return SessionState.CLOSED
        return SessionState.RUNNING if self.busy else SessionState.IDLE

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def busy(self) -> bool:
        return self._active is not None or self._starting > 0 or bool(self._outstanding)

    @property
    def active_turn(self) -> TurnRef | None:
        return self._active

    @property
    def outstanding_turns(self) -> tuple[TurnRef, ...]:
        return tuple(self._outstanding)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def stderr_tail(self) -> str:
        fn = getattr(self.driver, "stderr_tail", None)
        return fn() if callable(fn) else ""

    def events(self) -> trio.MemoryReceiveChannel[TurnEvent]:
        """The outbound event stream (one consumer; ends when the session closes)."""
        return self._recv

    # -- commands -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(provider=self.provider)

    async def submit(self, request: RunRequest) -> SubmitResult:
        """Start a turn, steer the active one, or queue ``request`` (see the module docstring).

        Raises :class:`EmptyPromptError`, :class:`SessionClosedError`, or the driver's error
        (the session stays usable unless the driver ended).
        """
        if not request.prompt:
            raise EmptyPromptError(provider=self.provider)
        self._check_open()
        if self.busy and self.steer_mode not in _NATIVE:
            return self._enqueue(request)  # pure state: never waits behind a slow start
        async with self._op_lock:
            self._check_open()
            if not self.busy:
                ref = await self._start(request)
                return SubmitResult(
                    thread_id=ref.thread_id, turn_id=ref.turn_id, mode=SubmitMode.STARTED
                )
            if self.steer_mode in _NATIVE and self._active is not None:
                ref = await self._steer_locked(request)
                return SubmitResult(
                    thread_id=ref.thread_id, turn_id=ref.turn_id, mode=SubmitMode.STEERED
                )
            return self._enqueue(request)

    def _enqueue(self, request: RunRequest) -> SubmitResult:
        self._queue.append(request)
        return SubmitResult(
            thread_id=self._active.thread_id if self._active else self.thread_id,
            turn_id="",
            mode=SubmitMode.QUEUED,
            queue_depth=len(self._queue),
        )

    async def steer(self, request: RunRequest) -> SubmitResult:
        """Inject ``request`` into the active turn; never starts or queues a turn.

        Raises :class:`EmptyPromptError`, :class:`SessionClosedError`,
        :class:`NoActiveTurnError` or :class:`SteerUnsupportedError`.
        """
        if not request.prompt:
            raise EmptyPromptError(provider=self.provider)
        self._check_open()
        async with self._op_lock:
            self._check_open()
            if self._active is None:
                raise NoActiveTurnError(provider=self.provider)
            if self.steer_mode not in _NATIVE:
                raise SteerUnsupportedError(provider=self.provider)
            ref = await self._steer_locked(request)
            return SubmitResult(
                thread_id=ref.thread_id, turn_id=ref.turn_id, mode=SubmitMode.STEERED
            )

    async def interrupt(self) -> None:
        """Ask the driver to stop the active turn (its terminal event ends it; the active turn
        is not cleared here). Without an active turn this does nothing; during a start the
        interrupt is applied as soon as the turn is known. Raises :class:`SessionClosedError`."""
        self._check_open()
        active = self._active
        if active is None:
            if self._starting:
                self._interrupt_pending = True
            return
        await self.driver.interrupt_turn(active)

    async def aclose(self, *, graceful: bool = True) -> None:
        """Close the session (idempotent): no more commands, queued input is dropped, then the
        driver is closed (gracefully only when no turn is running)."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        await self.driver.aclose(graceful=graceful and not self.busy)

    # -- internals ------------------------------------------------------------------------------
    async def _start(self, request: RunRequest) -> TurnRef:
        """Start a turn (caller holds the op lock)."""
        self._starting += 1
        try:
            ref = await self.driver.start_turn(request)
        finally:
            self._starting -= 1
        if ref.thread_id:
            self.thread_id = ref.thread_id
        if ref.turn_id not in self._finished and not self._closed:
            self._active = ref
            if self._interrupt_pending:
                self._interrupt_pending = False
                self._nursery.start_soon(self._interrupt_quietly, ref)
        else:
            self._interrupt_pending = False
            self._maybe_start_queued()
        return ref

    async def _steer_locked(self, request: RunRequest) -> TurnRef:
        active = self._active
        if active is None:  # the turn ended while we waited for the lock
            raise NoActiveTurnError(provider=self.provider)
        latest = self._outstanding[-1] if self._outstanding else active
        ref = await self.driver.steer_turn(latest, request)
        known = {active.turn_id, *(t.turn_id for t in self._outstanding)}
        if ref.turn_id and ref.turn_id not in known and ref.turn_id not in self._finished:
            if self._active is None:
                self._active = ref
            else:
                self._outstanding.append(ref)
        return ref

    async def _interrupt_quietly(self, ref: TurnRef) -> None:
        try:
            await self.driver.interrupt_turn(ref)
        except AliceError:
            pass

    def _on_event(self, event: TurnEvent) -> None:
        """Synchronous state update for one driver event (never blocks, never does I/O)."""
        if event.thread_id:
            self.thread_id = event.thread_id
        if not event.kind.terminal or not event.turn_id:
            return
        tid = event.turn_id
        self._finished.append(tid)
        self._outstanding = [t for t in self._outstanding if t.turn_id != tid]
        if self._active is not None and self._active.turn_id == tid:
            self._active = self._outstanding.pop(0) if self._outstanding else None
        self._maybe_start_queued()

    def _maybe_start_queued(self) -> None:
        if self._closed or self.busy or not self._queue:
            return
        self._starting += 1  # busy from now on: a concurrent submit queues behind (§13.7)
        self._nursery.start_soon(self._start_queued)

    async def _start_queued(self) -> None:
        marked = True  # _maybe_start_queued counted this start in ``_starting``
        try:
            async with self._op_lock:
                self._starting -= 1
                marked = False
                if self._closed or not self._queue:
                    return
                request = self._queue.popleft()
                if not request.thread_id and self.thread_id:
                    request = request.evolve(thread_id=self.thread_id)
                try:
                    await self._start(request)
                except AliceError as exc:
                    # whoever queued it learns through the event stream; the id is unique so
                    # no other turn's consumer takes it for its own (§13.6)
                    await self._emit(
                        TurnEvent(
                            kind=EventKind.ERROR,
                            error=exc.message,
                            thread_id=request.thread_id,
                            turn_id=f"queued-start-{next(self._queued_ids)}",
                            provider=self.provider,
                        )
                    )
                    self._maybe_start_queued()
        finally:
            if marked:
                self._starting -= 1

    async def _emit(self, event: TurnEvent) -> None:
        """The driver's ``emit``: update the state, then deliver with backpressure."""
        self._on_event(event)
        try:
            if self._closed and not self._failed:
                # closed by its owner: nobody reads any more; never block the driver's reader
                self._send.send_nowait(event)
            else:
                await self._send.send(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _run_driver(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Run the driver; when it ends, fail pending turns and end the event stream."""
        status = _StartedFlag(task_status)
        try:
            with single_exception():
                await self.driver.run(self._emit, task_status=status)
        except AliceError as exc:
            if not status.done:
                raise  # a start failure goes to whoever opened the session
            self.failure = exc
        finally:
            self.driver_done.set()
            with trio.CancelScope(shield=True):
                await self._driver_ended()

    async def _driver_ended(self) -> None:
        was_closed = self._closed
        if not was_closed:
            self._failed = True
        self._closed = True
        self._queue.clear()
        pending = [t for t in (self._active, *self._outstanding) if t is not None]
        self._active = None
        self._outstanding = []
        if pending and not was_closed:
            reason = (
                str(self.failure)
                if self.failure is not None
                else f"{self.provider or 'agent'} process ended during the turn"
            )
            for ref in pending:
                event = TurnEvent(
                    kind=EventKind.ERROR,
                    error=reason,
                    thread_id=ref.thread_id,
                    turn_id=ref.turn_id,
                    provider=self.provider,
                )
                try:
                    self._send.send_nowait(event)
                except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                    break  # nobody reads: the consumer sees the end of the stream instead
        self._send.close()


class _StartedFlag:
    """A task status that remembers whether the driver reported itself started."""

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self.inner = inner
        self.done = False

    def started(self, value: None = None) -> None:
        self.done = True
        self.inner.started(value)


def _resolve(provider: str | Provider, config: CLIConfig | None) -> tuple[Provider, CLIConfig]:
    prov = get_provider(provider) if isinstance(provider, str) else provider
    cfg = config if config is not None else prov.config_class()
    return prov, cfg


@asynccontextmanager
async def open_session(
    provider: str | Provider,
    config: CLIConfig | None = None,
    *,
    initial: RunRequest,
    driver: SessionDriver | None = None,
    buffer: int = DEFAULT_BUFFER,
    approver: Approver | None = None,
) -> AsyncIterator[InteractiveSession]:
    """Open an interactive session for ``provider`` (see the module docstring).

    ``initial`` is the first request: drivers whose process flags are fixed at start (model,
    resume thread, workspace) take them from it; it is *not* submitted. ``driver`` overrides
    the registry lookup (tests, custom drivers). Raises what the driver's start raises
    (:class:`CLINotFoundError`, :class:`ProtocolError`, …) before yielding. ``approver``
    decides the agent's approval requests and questions (:mod:`alice_trio.sessions.approval`);
    a driver whose protocol has none rejects it with :class:`ConfigError`.
    """
    from .registry import create_driver

    if driver is None:
        prov, cfg = _resolve(provider, config)
        driver = create_driver(prov, cfg, initial, approver=approver)
        name = prov.name
    else:
        name = provider if isinstance(provider, str) else provider.name
    graceful = True
    # the owner's own exception (or the driver's start error) comes out as itself
    with single_exception():
        async with trio.open_nursery() as nursery:
            session = InteractiveSession(
                driver, nursery, provider=name, thread_id=initial.thread_id, buffer=buffer
            )
            await nursery.start(session._run_driver)
            if session.failure is not None and session.driver_done.is_set():
                raise session.failure
            try:
                yield session
            except BaseException:
                graceful = False
                raise
            finally:
                if graceful:
                    try:
                        await session.aclose(graceful=True)
                    except AliceError:
                        pass
                else:
                    # cancelled or failing owner: no grace, the process group dies now
                    session._closed = True
                    session._queue.clear()
                nursery.cancel_scope.cancel()
