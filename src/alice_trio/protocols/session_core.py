"""The interactive session's turn state machine, sans I/O (no trio, no clock, no driver).

:class:`SessionCore` holds every piece of session state (active turn, outstanding enqueued
turns, the FIFO queue, the commands handed to the session's worker, a start or steer in flight,
a deferred interrupt, the thread id, closed/failed) and changes it only through its
*commands*. Each command either returns the *actions* the trio layer
(:class:`~alice_trio.sessions.session.InteractiveSession`) must execute — start a turn, steer
one, interrupt one, start a queued input, close the driver, fail pending turns — or raises a
typed error naming the phase and the command, like h11's ``LocalProtocolError``:

* misuse by the caller (submit on a closed session, steer without an active turn, steer on a
  provider that cannot) raises :class:`SessionClosedError`, :class:`NoActiveTurnError` or
  :class:`SteerUnsupportedError` with ``.state`` and ``.command``;
* a command the executing layer must never send in that phase (``started`` without a start in
  flight, ``take`` with nothing handed over) raises :class:`SessionStateError`: a bug, loudly.

**Phases** (:attr:`SessionCore.phase`): ``idle``, ``starting`` (a start in flight, no active
turn yet), ``running`` (a turn active), ``closed``, ``failed``. The public
:class:`SessionState` folds ``starting`` into ``running``.

**Transition table** (``TABLE``; phase × command → handler; a missing entry is illegal)::

    command        idle          starting             running              closed / failed
    submit         dispatch      dispatch | queue     dispatch | queue     SessionClosedError
    steer          NoActiveTurn  dispatch | unsupp.   dispatch | unsupp.   SessionClosedError
    take           decide        decide               decide               SessionClosedError
    withdraw       forget        forget               forget               forget
    started        -             active turn          -                    - (drops the turn)
    start_failed   -             idle / running       -                    ok
    steered        -             (steer in flight)    outstanding turn     ok
    steer_refused  queue (front) queue (front)        queue (front)        SessionClosedError
    interrupt      nothing       deferred             interrupt active     SessionClosedError
    event          thread id, a terminal event with a known turn id ends that turn
    close          closed        closed               closed               nothing
    failed         failed        failed, fail turns   failed, fail turns   nothing

*dispatch*: the command goes to the session's single worker task, which calls ``take`` when it
reaches it (in FIFO order) and then executes the decided action; *queue*: with steer mode
``queue_when_busy``/``interrupt_only`` input that arrives while busy is queued at once (it never
waits behind a slow start) — with any steer mode when the turn it would join is being
interrupted (input submitted right after :meth:`SessionCore.interrupt` starts the next turn once
that one ended; steered into it, the CLI refuses or drops it) — and a submit whose steer the
driver refused because the turn had already ended on the agent's side (``steer_refused``:
the terminal event is still on its way) is queued at the front the same way. A dispatched
command whose caller was cancelled before the worker took it is ``withdraw``-n and leaves no
trace; one the worker took runs to completion and is recorded (``started``/``steered``):
caller cancellation can never split a start from its bookkeeping (issue 12 item 1).

**Cancellation and errors**: the core never awaits; every command is atomic.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable
from typing import Any

import attrs

from ..errors import (
    ConfigError,
    NoActiveTurnError,
    SessionClosedError,
    SessionStateError,
    SteerUnsupportedError,
)
from ..models import RunRequest, TurnEvent

__all__ = [
    "TABLE",
    "Action",
    "CloseDriver",
    "Dispatch",
    "FailTurns",
    "InterruptTurn",
    "Phase",
    "Queued",
    "SessionCore",
    "SessionState",
    "StartQueued",
    "StartTurn",
    "SteerMode",
    "SteerTurn",
    "SubmitMode",
    "SubmitResult",
    "TurnRef",
    "steer_mode_of",
]

_FINISHED_MEMORY = 256  # terminal turn ids remembered (a fast turn can end before start returns)


class SteerMode(enum.Enum):
    """What the provider does with input that arrives while a turn runs (spec §2.6)."""

    NATIVE = "native"  # injected into the active turn
    NATIVE_ENQUEUE = "native_enqueue"  # appended; the provider takes it at its next boundary
    QUEUE_WHEN_BUSY = "queue_when_busy"  # the session queues it until the turn ends
    INTERRUPT_ONLY = "interrupt_only"  # no safe enqueue

    @property
    def native(self) -> bool:
        return self in (SteerMode.NATIVE, SteerMode.NATIVE_ENQUEUE)


class SubmitMode(enum.Enum):
    STARTED = "started"
    STEERED = "steered"
    QUEUED = "queued"


def _nonempty(instance: Any, attribute: Any, value: str) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must not be empty")


@attrs.frozen(kw_only=True)
class TurnRef:
    """A turn as the driver named it; ``turn_id`` is never empty (events are attributed by it,
    and an event without one belongs to no turn, spec §13.6)."""

    thread_id: str
    turn_id: str = attrs.field(validator=_nonempty)


@attrs.frozen(kw_only=True)
class SubmitResult:
    thread_id: str
    turn_id: str
    mode: SubmitMode
    queue_depth: int = 0


class SessionState(enum.Enum):
    IDLE = "idle"  # no turn running
    RUNNING = "running"  # a turn is active (or starting)
    CLOSED = "closed"  # closed by the owner
    FAILED = "failed"  # the driver ended by itself (crash, EOF) or failed to start


class Phase(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    CLOSED = "closed"
    FAILED = "failed"


# -- actions for the trio layer ---------------------------------------------------------------
@attrs.frozen
class Dispatch:
    """Hand the command to the worker; its caller waits for the worker's answer."""


@attrs.frozen
class Queued:
    """Answered at once: the input waits in the queue."""

    result: SubmitResult


@attrs.frozen
class StartTurn:
    request: RunRequest


@attrs.frozen
class SteerTurn:
    target: TurnRef
    request: RunRequest


@attrs.frozen
class InterruptTurn:
    turn: TurnRef


@attrs.frozen
class StartQueued:
    """A queued input is next: hand it to the worker (nobody waits for the answer)."""

    request: RunRequest


@attrs.frozen
class CloseDriver:
    graceful: bool


@attrs.frozen
class FailTurns:
    """The driver ended: each pending turn gets an ``error`` event with ``reason``."""

    turns: tuple[TurnRef, ...]
    reason: str


Action = (
    Dispatch
    | Queued
    | StartTurn
    | SteerTurn
    | InterruptTurn
    | StartQueued
    | CloseDriver
    | FailTurns
)


def steer_mode_of(value: object) -> SteerMode:
    """A driver's ``steer_mode`` as a :class:`SteerMode`: the member itself or its value (the
    ``"native"`` a :class:`~alice_trio.providers.record.SessionSpec` spells); anything else is a
    :class:`ConfigError` naming it, raised when the session opens — not an ``AttributeError``
    at the first input sent while a turn runs."""
    if isinstance(value, SteerMode):
        return value
    try:
        return SteerMode(value)
    except (ValueError, TypeError):
        names = ", ".join(mode.value for mode in SteerMode)
        raise ConfigError(
            f"a session driver's steer_mode must be a SteerMode ({names}), got {value!r:.60}"
        ) from None


class SessionCore:
    """The session's state and transitions (see the module docstring)."""

    def __init__(
        self, steer_mode: SteerMode | str, *, provider: str = "", thread_id: str = ""
    ) -> None:
        self.steer_mode = steer_mode_of(steer_mode)
        self.provider = provider
        self.thread_id = thread_id
        self.active: TurnRef | None = None
        self.outstanding: list[TurnRef] = []
        self.queue: collections.deque[RunRequest] = collections.deque()
        self.handed: int = 0  # commands given to the worker and not yet taken
        self.starting = False
        self.steering = False
        self.interrupt_pending = False
        #: pending turns that take no more input: interrupted, or refused a steer as over
        self.interrupted: set[str] = set()
        self.closed = False
        self.failed = False
        self.failure: BaseException | None = None
        #: turn id → the typed error that ended it (the driver's failure), most recent last
        self.turn_errors: dict[str, BaseException] = {}
        self._finished: collections.deque[str] = collections.deque(maxlen=_FINISHED_MEMORY)

    # -- read-only -------------------------------------------------------------------------------
    @property
    def phase(self) -> Phase:
        if self.failed:
            return Phase.FAILED
        if self.closed:
            return Phase.CLOSED
        if self.starting:
            return Phase.STARTING
        if self.active is not None:
            return Phase.RUNNING
        return Phase.IDLE

    @property
    def busy(self) -> bool:
        """A turn runs, starts, is awaited, or a command waits for the worker."""
        return (
            self.active is not None
            or self.starting
            or self.steering
            or bool(self.outstanding)
            or self.handed > 0
        )

    @property
    def state(self) -> SessionState:
        if self.failed:
            return SessionState.FAILED
        if self.closed:
            return SessionState.CLOSED
        return SessionState.RUNNING if self.busy else SessionState.IDLE

    def pending_turns(self) -> tuple[TurnRef, ...]:
        return tuple(t for t in (self.active, *self.outstanding) if t is not None)

    # -- the table -------------------------------------------------------------------------------
    def _apply(self, command: str, *args: Any) -> Any:
        handler = TABLE.get((self.phase, command))
        if handler is None:
            raise SessionStateError(
                f"session core: cannot {command} in state {self.phase.value}",
                state=self.phase.value,
                command=command,
                provider=self.provider,
            )
        return handler(self, *args)

    def submit(self, request: RunRequest) -> Dispatch | Queued:
        """Input from the caller: hand it to the worker, or queue it at once."""
        result: Dispatch | Queued = self._apply("submit", request)
        return result

    def steer(self, request: RunRequest) -> Dispatch:
        """Input that must join the active turn."""
        result: Dispatch = self._apply("steer", request)
        return result

    def withdraw(self) -> list[Action]:
        """A handed-over command's caller was cancelled before the worker took it."""
        result: list[Action] = self._apply("withdraw")
        return result

    def take(self, command: str, request: RunRequest) -> StartTurn | SteerTurn | Queued:
        """The worker reached a handed-over ``submit``/``steer``/``queued`` command: decide."""
        if command not in ("submit", "steer", "queued"):
            raise SessionStateError(
                f"session core: unknown command {command!r}", state=self.phase.value,
                command=command, provider=self.provider,
            )  # fmt: skip
        result: StartTurn | SteerTurn | Queued = self._apply("take", command, request)
        return result

    def started(self, ref: TurnRef) -> list[Action]:
        """The driver accepted the start: ``ref`` is the new turn."""
        result: list[Action] = self._apply("started", ref)
        return result

    def start_failed(self) -> list[Action]:
        result: list[Action] = self._apply("start_failed")
        return result

    def steered(self, ref: TurnRef) -> None:
        self._apply("steered", ref)

    def steer_failed(self) -> None:
        self._apply("steer_failed")

    def steer_refused(self, request: RunRequest) -> tuple[Queued, list[Action]]:
        """The driver refused a *submit*'s steer because the turn already ended on the
        agent's side (its terminal event is on its way): the input is queued at the front and
        starts once that turn ended."""
        result: tuple[Queued, list[Action]] = self._apply("steer_refused", request)
        return result

    def interrupt(self) -> InterruptTurn | None:
        """Interrupt the active turn; during a start the interrupt waits for the turn id."""
        result: InterruptTurn | None = self._apply("interrupt")
        return result

    def event(self, event: TurnEvent) -> list[Action]:
        """A driver event: thread id; a terminal event of a known turn ends that turn."""
        result: list[Action] = self._apply("event", event)
        return result

    def close(self, graceful: bool) -> list[Action]:
        """The owner closes: sticky; queued input is dropped; the driver is closed gracefully
        only when nothing runs."""
        result: list[Action] = self._apply("close", graceful)
        return result

    def fail(
        self,
        reason: str,
        failure: BaseException | None = None,
        turn_error: BaseException | None = None,
    ) -> list[Action]:
        """The driver ended by itself (``failure``: the error it raised, None when it just
        ended): pending turns fail with ``reason``, ``turn_error`` recorded as their cause."""
        result: list[Action] = self._apply("fail", reason, failure, turn_error)
        return result

    # -- handlers --------------------------------------------------------------------------------
    def _closed_error(self, command: str) -> SessionClosedError:
        return SessionClosedError(
            f"interactive session is closed: cannot {command} in state {self.phase.value}",
            state=self.phase.value, command=command, provider=self.provider,
        )  # fmt: skip

    def _illegal(self, command: str, why: str) -> SessionStateError:
        return SessionStateError(
            f"session core: cannot {command} in state {self.phase.value}: {why}",
            state=self.phase.value, command=command, provider=self.provider,
        )  # fmt: skip

    def _submit(self, request: RunRequest) -> Dispatch | Queued:
        if self.busy and (not self.steer_mode.native or self._target_interrupted()):
            return self._queue(request)  # pure state: never waits behind a slow start
        self.handed += 1
        return Dispatch()

    def _target_interrupted(self) -> bool:
        """The turn a steer would join is being interrupted (see the module docstring)."""
        target = self.outstanding[-1] if self.outstanding else self.active
        if target is None:  # a start in flight: interrupted once it is known
            return self.starting and self.interrupt_pending
        return target.turn_id in self.interrupted

    def _queue(self, request: RunRequest, *, front: bool = False) -> Queued:
        if front:
            self.queue.appendleft(request)
        else:
            self.queue.append(request)
        thread = self.active.thread_id if self.active is not None else self.thread_id
        return Queued(
            SubmitResult(
                thread_id=thread, turn_id="", mode=SubmitMode.QUEUED, queue_depth=len(self.queue)
            )
        )

    def _steer(self, request: RunRequest) -> Dispatch:
        if self.active is None and not self.starting:
            raise NoActiveTurnError(state=self.phase.value, command="steer", provider=self.provider)
        if not self.steer_mode.native:
            raise SteerUnsupportedError(
                state=self.phase.value, command="steer", provider=self.provider
            )
        self.handed += 1
        return Dispatch()

    def _steer_idle(self, request: RunRequest) -> Dispatch:
        raise NoActiveTurnError(state=self.phase.value, command="steer", provider=self.provider)

    def _withdraw(self) -> list[Action]:
        if self.handed <= 0:
            raise self._illegal("withdraw", "nothing handed over")
        self.handed -= 1
        return self._next_queued()

    def _take(self, command: str, request: RunRequest) -> StartTurn | SteerTurn | Queued:
        if self.handed <= 0:
            raise self._illegal("take", "nothing handed over")
        self.handed -= 1
        if self.closed:
            raise self._closed_error(command if command != "queued" else "start")
        if command == "steer":
            if self.active is None:  # the turn ended while the steer waited for the worker
                raise NoActiveTurnError(
                    state=self.phase.value, command="steer", provider=self.provider
                )
            return self._begin_steer(request)
        if command == "queued" and not request.thread_id and self.thread_id:
            request = request.evolve(thread_id=self.thread_id)  # inherits the finished turn's
        if self.active is None and not self.outstanding:
            self.starting = True
            return StartTurn(request)
        if self.steer_mode.native and self.active is not None and not self._target_interrupted():
            return self._begin_steer(request)
        return self._queue(request, front=command == "queued")

    def _begin_steer(self, request: RunRequest) -> SteerTurn:
        assert self.active is not None
        self.steering = True
        latest = self.outstanding[-1] if self.outstanding else self.active
        return SteerTurn(latest, request)

    def _started(self, ref: TurnRef) -> list[Action]:
        if not self.starting:
            raise self._illegal("started", "no start in flight")
        self.starting = False
        if ref.thread_id:
            self.thread_id = ref.thread_id
        if ref.turn_id in self._finished or self.closed:
            # it ended before the driver's answer arrived (or the session closed meanwhile)
            self.interrupt_pending = False
            return self._next_queued()
        self.active = ref
        if self.interrupt_pending:
            self.interrupt_pending = False
            self.interrupted.add(ref.turn_id)
            return [InterruptTurn(ref)]
        return []

    def _start_failed(self) -> list[Action]:
        if not self.starting:
            raise self._illegal("start_failed", "no start in flight")
        self.starting = False
        self.interrupt_pending = False
        return self._next_queued()

    def _steered(self, ref: TurnRef) -> None:
        if not self.steering:
            raise self._illegal("steered", "no steer in flight")
        self.steering = False
        known = {t.turn_id for t in self.pending_turns()}
        if self.closed or ref.turn_id in known or ref.turn_id in self._finished:
            return
        if self.active is None:
            self.active = ref
        else:
            self.outstanding.append(ref)

    def _steer_failed(self) -> None:
        if not self.steering:
            raise self._illegal("steer_failed", "no steer in flight")
        self.steering = False

    def _steer_refused(self, request: RunRequest) -> tuple[Queued, list[Action]]:
        self._steer_failed()
        target = self.outstanding[-1] if self.outstanding else self.active
        if target is not None:  # over on the agent's side: later input queues behind this one
            self.interrupted.add(target.turn_id)
        return self._queue(request, front=True), self._next_queued()

    def _steer_refused_closed(self, request: RunRequest) -> tuple[Queued, list[Action]]:
        self._steer_failed()
        raise self._closed_error("submit")

    def _interrupt(self) -> InterruptTurn | None:
        if self.active is not None:
            self.interrupted.add(self.active.turn_id)
            return InterruptTurn(self.active)
        return None

    def _interrupt_starting(self) -> None:
        self.interrupt_pending = True
        return None

    def _interrupt_idle(self) -> None:
        return None

    def _event(self, event: TurnEvent) -> list[Action]:
        if event.thread_id:
            self.thread_id = event.thread_id
        if not event.kind.terminal:
            return []
        # a turn id is never empty (TurnRef), so an event without one matches no turn (§13.6)
        tid = event.turn_id
        if tid not in self._finished:
            self._finished.append(tid)
        self.interrupted.discard(tid)
        self.outstanding = [t for t in self.outstanding if t.turn_id != tid]
        if self.active is not None and self.active.turn_id == tid:
            self.active = self.outstanding.pop(0) if self.outstanding else None
        return self._next_queued()

    def _event_after_close(self, event: TurnEvent) -> list[Action]:
        if event.kind.terminal and event.turn_id:
            self.outstanding = [t for t in self.outstanding if t.turn_id != event.turn_id]
            if self.active is not None and self.active.turn_id == event.turn_id:
                self.active = self.outstanding.pop(0) if self.outstanding else None
        return []

    def _close(self, graceful: bool) -> list[Action]:
        idle = not self.busy
        self.closed = True
        self.queue.clear()
        return [CloseDriver(graceful=graceful and idle)]

    def _close_again(self, graceful: bool) -> list[Action]:
        return []

    def _fail(
        self, reason: str, failure: BaseException | None, turn_error: BaseException | None
    ) -> list[Action]:
        was_closed = self.closed
        if not was_closed:
            self.failed = True
            self.failure = failure
        self.closed = True
        self.queue.clear()
        pending = self.pending_turns()
        self.active = None
        self.outstanding = []
        self.interrupt_pending = False
        self.interrupted.clear()
        if not pending or was_closed:
            return []
        if turn_error is not None:
            for ref in pending:
                self.turn_errors[ref.turn_id] = turn_error
            while len(self.turn_errors) > _FINISHED_MEMORY:
                del self.turn_errors[next(iter(self.turn_errors))]
        return [FailTurns(pending, reason)]

    def _fail_again(
        self, reason: str, failure: BaseException | None, turn_error: BaseException | None
    ) -> list[Action]:
        self.active = None
        self.outstanding = []
        return []

    def _next_queued(self) -> list[Action]:
        if self.closed or self.busy or not self.queue:
            return []
        self.handed += 1  # busy from now on: a concurrent submit queues behind (§13.7)
        return [StartQueued(self.queue.popleft())]


def _closed(command: str) -> Callable[..., Any]:
    def refuse(core: SessionCore, *args: Any) -> Any:
        raise core._closed_error(command)

    return refuse


_P = Phase
_LIVE = (_P.IDLE, _P.STARTING, _P.RUNNING)
_ENDED = (_P.CLOSED, _P.FAILED)

#: (phase, command) → handler; a pair that is not here raises SessionStateError
TABLE: dict[tuple[Phase, str], Callable[..., Any]] = {}
for _phase in _LIVE:
    TABLE[_phase, "submit"] = SessionCore._submit
    TABLE[_phase, "take"] = SessionCore._take
    TABLE[_phase, "withdraw"] = SessionCore._withdraw
    TABLE[_phase, "event"] = SessionCore._event
    TABLE[_phase, "close"] = SessionCore._close
    TABLE[_phase, "fail"] = SessionCore._fail
    TABLE[_phase, "steered"] = SessionCore._steered
    TABLE[_phase, "steer_failed"] = SessionCore._steer_failed
    TABLE[_phase, "steer_refused"] = SessionCore._steer_refused
TABLE[_P.IDLE, "steer"] = SessionCore._steer_idle
TABLE[_P.STARTING, "steer"] = SessionCore._steer
TABLE[_P.RUNNING, "steer"] = SessionCore._steer
TABLE[_P.STARTING, "started"] = SessionCore._started
TABLE[_P.STARTING, "start_failed"] = SessionCore._start_failed
TABLE[_P.IDLE, "interrupt"] = SessionCore._interrupt_idle
TABLE[_P.STARTING, "interrupt"] = SessionCore._interrupt_starting
TABLE[_P.RUNNING, "interrupt"] = SessionCore._interrupt
for _phase in _ENDED:
    for _command in ("submit", "steer", "interrupt"):
        TABLE[_phase, _command] = _closed(_command)
    TABLE[_phase, "take"] = SessionCore._take  # answers SessionClosedError, counts the handover
    TABLE[_phase, "withdraw"] = SessionCore._withdraw
    TABLE[_phase, "event"] = SessionCore._event_after_close
    TABLE[_phase, "close"] = SessionCore._close_again
    TABLE[_phase, "fail"] = SessionCore._fail_again
    TABLE[_phase, "steered"] = SessionCore._steered
    TABLE[_phase, "steer_failed"] = SessionCore._steer_failed
    TABLE[_phase, "steer_refused"] = SessionCore._steer_refused_closed
    TABLE[_phase, "started"] = SessionCore._started  # checks a start is in flight; drops it
    TABLE[_phase, "start_failed"] = SessionCore._start_failed
del _phase, _command
