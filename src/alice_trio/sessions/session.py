"""One conversation over one session driver: submit, steer, queue, interrupt, events.

:func:`open_session` is an async context manager that owns the driver's process/connection and
the nursery its tasks run in::

    async with open_session("claude", config, initial=request) as session:
        submitted = await session.submit(request)      # started / steered / queued
        async for event in session.events():
            ...

**State.** Every piece of turn state (active turn, outstanding enqueued turns, queue, a start in
flight, a deferred interrupt, thread id, closed/failed) lives in the pure
:class:`~alice_trio.protocols.session_core.SessionCore`; this module executes the actions its
transition table decides and assigns no state of its own. With steer mode
``native``/``native_enqueue`` input that arrives while a turn runs goes to the driver
(``steer_turn``); when the driver gives it a turn id of its own (enqueue-style providers), that
turn is *outstanding* and becomes the active turn when the one before it ends. Otherwise input
is queued (FIFO) and started when the active turn ends; a queued input without a thread id
inherits the thread id of the turn that just finished.

**Cancel safety.** Driver calls run in tasks the session owns, never in the caller's task: one
*worker* task executes starts and steers in FIFO order, an interrupt runs in a task of its own.
``submit``/``steer`` hand the command over and wait for its answer. A caller cancelled before the
worker took the command withdraws it (no trace); once taken it runs to completion and is
recorded (the turn exists and will end), and the caller gets its ``trio.Cancelled``. So a
cancelled call never leaves the driver and the session disagreeing about which turn runs
(issue 12 item 1: a start split between bookkeeping and write credited the next reply to a
turn that never ran).

**Events.** The driver's reader awaits :meth:`InteractiveSession._emit` for every event: the core
updates the state synchronously (no lock, no I/O) and the event then goes into a bounded
channel (``buffer``); a slow consumer applies backpressure to the driver, nothing is dropped.
A terminal event ends a turn only when its turn id is a pending one (an event without a turn id
never ends anything, §13.6). While :func:`open_session` is still opening nobody can read, so
events that do not fit then are dropped (no turn exists yet) and one ``unknown`` event counts
them, instead of holding the driver's reader until the start timeout. :meth:`events` returns
that channel's :class:`~alice_trio.sessions.event_stream.EventStream`: breaking out of
``async for`` or cancelling mid-iteration is harmless; it has one reader at a time (a second
task reading while one waits raises :class:`~alice_trio.errors.SessionError` rather than
silently taking half the events).

**Closing.** Leaving the context closes the session; closed is sticky (every later call raises
:class:`SessionClosedError`). After a finished turn the driver closes gracefully (EOF, short
grace); with a turn running, on error, or when the caller is cancelled, the process group is
killed at once. When the driver ends by itself (the CLI crashed), every pending turn gets an
``error`` event (:meth:`InteractiveSession.turn_error` gives the typed error behind it), the
state becomes ``FAILED`` and the event channel ends.

**The agent process died** (killed, crashed): the same on every driver. Input it can no longer
take — written once the process is gone, whether or not the session noticed yet — raises
:class:`TransportClosedError` from ``submit``/``steer`` (provider, how the process ended, stderr
tail; no turn and no event exist for it), and so does every later ``submit``/``steer``/
``interrupt`` (the driver's own failure instead when it failed with one, e.g.
:class:`LineTooLongError`); a turn already running ends with an ``error`` event whose
``turn_error`` is that :class:`TransportClosedError`. :class:`SessionClosedError` stays the
answer for a session its owner closed.

**Errors.** Every method raises an :class:`~alice_trio.errors.AliceError`, bare
``trio.Cancelled``, or (from ``open_session``) the body's own exception — never a group.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import attrs
import trio

from ..engine.workspace import TurnFiles, watch_turn
from ..errors import (
    AliceError,
    EmptyPromptError,
    NoActiveTurnError,
    ProtocolError,
    RunTimeoutError,
    SessionClosedError,
    TransportClosedError,
)
from ..event_check import malformed
from ..models import EventKind, RunRequest, TurnEvent
from ..protocols.session_core import (
    Action,
    CloseDriver,
    FailTurns,
    InterruptTurn,
    Queued,
    SessionCore,
    SessionState,
    StartQueued,
    StartTurn,
    SteerTurn,
)
from ..protocols.turn_outcome import clone_error
from ..providers.base import CLIConfig, Provider, RunLimits
from ..validation import callback, instance
from ._groups import single_exception
from .approval import Approver
from .arguments import buffer_size, checked, finite_seconds, request_arg, resolve_provider
from .driver import SessionDriver, SteerMode, SubmitMode, SubmitResult, TurnRef
from .event_stream import EventStream
from .same_run import check_same_run, current_run
from .starting import StartedFlag

__all__ = ["DEFAULT_START_TIMEOUT", "InteractiveSession", "SessionState", "open_session"]

DEFAULT_BUFFER = 128
DEFAULT_START_TIMEOUT = 60.0  # seconds a CLI may take to start and finish its handshake
_T = TypeVar("_T")


@attrs.define(eq=False)
class _Command:
    """A ``submit``/``steer`` (or a queued input's start) handed to the session's worker."""

    kind: str
    request: RunRequest
    done: trio.Event = attrs.Factory(trio.Event)
    taken: bool = False
    withdrawn: bool = False
    result: SubmitResult | None = None
    error: AliceError | None = None

    def answer(self, result: SubmitResult | None = None, error: AliceError | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


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
        workspace: str = "",
        limits: RunLimits | None = None,
    ) -> None:
        self.driver = driver
        self.workspace = workspace
        self._limits = limits if limits is not None else RunLimits()
        self._files: TurnFiles | None = None  # the running turn's file changes (workspace.py)
        self.provider = provider
        self._nursery = nursery
        self._core = SessionCore(driver.steer_mode, provider=provider, thread_id=thread_id)
        self._send, self._recv = trio.open_memory_channel[TurnEvent](buffer)
        self._events = EventStream(self._recv, provider=provider)
        self._to_worker, self._commands = trio.open_memory_channel[_Command](math.inf)
        self._queued_ids = itertools.count(1)
        self.driver_done = trio.Event()
        self._opened_in = current_run()  # commands from another trio.run are refused
        self._readable = False  # open_session handed the session over: events() has a reader
        self._shed = 0  # events that did not fit before that (see _deliver)
        self._ended: AliceError | None = None  # the typed error of the driver's own end

    # -- read-only state (all of it lives in the core) --------------------------------------------
    @property
    def steer_mode(self) -> SteerMode:
        return self._core.steer_mode

    @property
    def state(self) -> SessionState:
        return self._core.state

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def busy(self) -> bool:
        return self._core.busy

    @property
    def active_turn(self) -> TurnRef | None:
        return self._core.active

    @property
    def outstanding_turns(self) -> tuple[TurnRef, ...]:
        return tuple(self._core.outstanding)

    @property
    def queue_depth(self) -> int:
        return len(self._core.queue)

    @property
    def thread_id(self) -> str:
        return self._core.thread_id

    @property
    def failure(self) -> BaseException | None:
        """The error the driver failed with (None while it runs or when it ended quietly)."""
        return self._core.failure

    @property
    def resumable(self) -> bool:
        """Whether the agent can resume this conversation by its thread id once it is closed
        (the driver's optional ``resumable``; True when the driver does not say). False for an
        ACP agent without ``loadSession``: closing such a conversation loses it."""
        return getattr(self.driver, "resumable", True) is not False

    def turn_error(self, turn_id: str) -> AliceError | None:
        """The typed error behind turn ``turn_id``'s ``error`` event, when one is known: the
        driver's failure that ended it, or the driver's own record (``driver.turn_error``)."""
        known = self._core.turn_errors.get(turn_id)
        if isinstance(known, AliceError):
            return known
        lookup = getattr(self.driver, "turn_error", None)
        found = lookup(turn_id) if callable(lookup) else None
        return found if isinstance(found, AliceError) else None

    def stderr_tail(self) -> str:
        """The driver's ``stderr_tail()`` (optional); one that raises or returns no string
        gives a note of that instead — it is read while an error is being built, which it must
        not replace with its own."""
        fn = getattr(self.driver, "stderr_tail", None)
        if not callable(fn):
            return ""
        try:
            tail = fn()
        except Exception as exc:
            return f"(the driver's stderr_tail() raised {exc!r:.200})"
        return tail if isinstance(tail, str) else ""

    def events(self) -> EventStream:
        """The outbound event stream (always the same one; ends when the session closes). One
        reader at a time: a task reading while another task waits for an event raises
        :class:`~alice_trio.errors.SessionError` (:mod:`alice_trio.sessions.event_stream`).
        Raises :class:`ConfigError` outside the ``trio.run`` that opened the session."""
        check_same_run(self._opened_in, "InteractiveSession.events", self.provider)
        return self._events

    # -- commands -------------------------------------------------------------------------------
    async def submit(self, request: RunRequest) -> SubmitResult:
        """Start a turn, steer the active one, or queue ``request`` (see the module docstring).

        Raises :class:`EmptyPromptError`, :class:`SessionClosedError`, or the driver's error
        (the session stays usable unless the driver ended). Cancel-safe (module docstring).
        Always a checkpoint: a cancelled caller gets ``trio.Cancelled`` before anything is done
        (not the state error of a session its own cancellation ended), and a loop of submits
        that only queue never starves the other tasks.
        """
        await trio.lowlevel.checkpoint()
        check_same_run(self._opened_in, "InteractiveSession.submit", self.provider)
        request = request_arg("submit", request)
        if not request.prompt:
            raise EmptyPromptError(provider=self.provider)
        with self._ended_errors():
            decision = self._core.submit(request)
            if isinstance(decision, Queued):
                return decision.result
            return await self._hand_over("submit", request)

    async def steer(self, request: RunRequest) -> SubmitResult:
        """Inject ``request`` into the active turn; never starts or queues a turn.

        Raises :class:`EmptyPromptError`, :class:`SessionClosedError`,
        :class:`NoActiveTurnError` or :class:`SteerUnsupportedError`. Cancel-safe; always a
        checkpoint (see :meth:`submit`).
        """
        await trio.lowlevel.checkpoint()
        check_same_run(self._opened_in, "InteractiveSession.steer", self.provider)
        request = request_arg("steer", request)
        if not request.prompt:
            raise EmptyPromptError(provider=self.provider)
        with self._ended_errors():
            self._core.steer(request)
            return await self._hand_over("steer", request)

    async def interrupt(self) -> None:
        """Ask the driver to stop the active turn (its terminal event ends it; the active turn
        is not cleared here). Without an active turn this does nothing; during a start the
        interrupt is applied as soon as the turn is known. Raises :class:`SessionClosedError`
        or the driver's error. The request runs in a session task: a cancelled caller leaves
        it to complete. Always a checkpoint (see :meth:`submit`), also without a turn to stop."""
        await trio.lowlevel.checkpoint()
        check_same_run(self._opened_in, "InteractiveSession.interrupt", self.provider)
        with self._ended_errors():
            decision = self._core.interrupt()
            if decision is not None:
                await self._owned(self.driver.interrupt_turn, decision.turn)

    async def aclose(self, *, graceful: bool = True) -> None:
        """Close the session (idempotent): no more commands, queued input is dropped, then the
        driver is closed (gracefully only when no turn is running). Always a checkpoint, taken
        after the session is marked closed (a cancelled caller still closes it)."""
        check_same_run(self._opened_in, "InteractiveSession.aclose", self.provider)
        self._stop_watching()
        awaited = False
        for action in self._core.close(graceful):
            if isinstance(action, CloseDriver):
                awaited = True
                await self._call(self.driver.aclose, graceful=action.graceful)
        if not awaited:
            await trio.lowlevel.checkpoint()

    @contextmanager
    def _ended_errors(self) -> Iterator[None]:
        """A command refused because the driver ended by itself (the agent process died)
        raises the typed error of that end, not :class:`SessionClosedError` (which stays the
        answer for a session its owner closed)."""
        try:
            yield
        except SessionClosedError as exc:
            if not self._core.failed:
                raise
            raise self._ended_error() from exc

    def _ended_error(self) -> AliceError:
        """The error of the driver's own end: its failure, else how its process ended
        (the driver's optional ``exit_error``), else a :class:`TransportClosedError`."""
        failure = self._core.failure
        if isinstance(failure, AliceError):
            return clone_error(failure)
        if isinstance(self._ended, AliceError):
            return clone_error(self._ended)
        return TransportClosedError(
            f"{self.provider or 'agent'} process ended: the session is over",
            provider=self.provider, stderr_tail=self.stderr_tail(),
        )  # fmt: skip

    # -- executing the core's decisions ---------------------------------------------------------
    async def _hand_over(self, kind: str, request: RunRequest) -> SubmitResult:
        command = _Command(kind, request)
        try:
            self._to_worker.send_nowait(command)
        except trio.ClosedResourceError:  # the worker is gone: the session is ending
            self._execute(self._core.withdraw())
            raise SessionClosedError(provider=self.provider) from None
        try:
            await command.done.wait()
        except BaseException:
            if not command.taken and not command.withdrawn:
                command.withdrawn = True  # never executed: no trace
                self._execute(self._core.withdraw())
            raise
        if command.error is not None:
            raise command.error
        assert command.result is not None
        return command.result

    def _execute(self, actions: list[Action]) -> None:
        """Carry out the core's synchronous actions (never blocks)."""
        for action in actions:
            if isinstance(action, StartQueued):
                try:
                    self._to_worker.send_nowait(_Command("queued", action.request))
                except trio.ClosedResourceError:
                    self._core.withdraw()
            elif isinstance(action, InterruptTurn):
                self._nursery.start_soon(self._interrupt_quietly, action.turn)

    async def _work(self) -> None:
        """The worker: takes handed-over commands in FIFO order and runs them to completion."""
        current: _Command | None = None
        try:
            async for command in self._commands:
                if command.withdrawn:
                    continue
                current = command
                command.taken = True
                await self._run_command(command)
                current = None
        finally:
            closed = SessionClosedError(provider=self.provider)
            if current is not None:
                current.answer(error=closed)
            while True:
                try:
                    left = self._commands.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
                left.answer(error=closed)
            self._commands.close()

    async def _run_command(self, command: _Command) -> None:
        try:
            decision = self._core.take(command.kind, command.request)
        except AliceError as exc:
            command.answer(error=exc)
            return
        if isinstance(decision, Queued):  # the turn it would join is being interrupted
            command.answer(result=decision.result)
        elif isinstance(decision, StartTurn):
            await self._start(command, decision.request)
        elif isinstance(decision, SteerTurn):
            try:
                ref = self._ref(
                    await self._call(self.driver.steer_turn, decision.target, decision.request),
                    "steer_turn",
                )
            except BaseException as exc:
                if isinstance(exc, NoActiveTurnError) and command.kind != "steer":
                    # a submit raced the turn's end on the agent's side: it gets a turn of its
                    # own once that turn's terminal event arrived (the core queues it first)
                    try:
                        queued, actions = self._core.steer_refused(decision.request)
                    except AliceError as closed:
                        command.answer(error=closed)
                        return
                    command.answer(result=queued.result)
                    self._execute(actions)
                    return
                self._core.steer_failed()
                if not isinstance(exc, AliceError):
                    raise
                command.answer(error=exc)
                return
            self._core.steered(ref)
            command.answer(
                SubmitResult(thread_id=ref.thread_id, turn_id=ref.turn_id, mode=SubmitMode.STEERED)
            )

    async def _watch_files(self) -> None:
        if self._files is None:
            self._files = await watch_turn(
                self.workspace,
                enabled=self._limits.file_changes,
                max_files=self._limits.file_changes_max_files,
            )

    def _stop_watching(self) -> None:
        files, self._files = self._files, None
        if files is not None:
            files.close()

    async def _start(self, command: _Command, request: RunRequest) -> None:
        try:
            await self._watch_files()
            ref = self._ref(await self._call(self.driver.start_turn, request), "start_turn")
        except BaseException as exc:
            if not self._core.busy:
                self._stop_watching()
            actions = self._core.start_failed()
            if not isinstance(exc, AliceError):
                raise
            command.answer(error=exc)
            if command.kind == "queued" and not self._core.closed:
                # whoever queued it learns through the event stream; the id is unique so no
                # other turn's consumer takes it for its own (§13.6)
                await self._emit(
                    TurnEvent(
                        kind=EventKind.ERROR, error=exc.message, thread_id=request.thread_id,
                        turn_id=f"queued-start-{next(self._queued_ids)}", provider=self.provider,
                    )
                )  # fmt: skip
            self._execute(actions)
            return
        actions = self._core.started(ref)
        if self._core.failed:  # the driver ended meanwhile: the turn was dropped, never ends
            command.answer(error=self._ended_error())
            return
        command.answer(
            SubmitResult(thread_id=ref.thread_id, turn_id=ref.turn_id, mode=SubmitMode.STARTED)
        )
        self._execute(actions)

    async def _call(self, fn: Callable[..., Awaitable[_T]], *args: Any, **kw: Any) -> _T:
        """A driver call; a driver bug (an exception outside the error tree) becomes a
        :class:`ProtocolError` with the original as its cause."""
        try:
            with single_exception():
                return await fn(*args, **kw)
        except (AliceError, trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise ProtocolError(
                f"{self.provider or 'session'} driver failed: {exc!r}", provider=self.provider
            ) from exc

    def _ref(self, ref: object, call: str) -> TurnRef:
        """What ``start_turn``/``steer_turn`` returned, when it is a :class:`TurnRef` of two
        strings; else :class:`ProtocolError` (the command fails as if the call had raised —
        not an ``AttributeError`` from inside the session, nor a turn id that no event
        names)."""
        if isinstance(ref, TurnRef) and isinstance(ref.thread_id, str):
            if isinstance(ref.turn_id, str):
                return ref
        raise ProtocolError(
            f"{self.provider or 'session'} driver's {call} returned {ref!r:.80}, not a TurnRef "
            "of a thread id and a turn id",
            provider=self.provider,
        )

    async def _owned(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run a driver call in a session task and wait for it; a cancelled caller stops
        waiting, the call completes."""
        done = trio.Event()
        box: list[AliceError] = []

        async def runner() -> None:
            try:
                await self._call(fn, *args)
            except AliceError as exc:
                box.append(exc)
            finally:
                done.set()

        self._nursery.start_soon(runner)
        await done.wait()
        if box:
            raise box[0]

    async def _interrupt_quietly(self, ref: TurnRef) -> None:
        try:
            await self._call(self.driver.interrupt_turn, ref)
        except AliceError:
            pass

    async def _emit(self, event: TurnEvent) -> None:
        """The driver's ``emit``: file changes made workspace-relative; before the event that
        ends a turn, the ``file_change`` event of what no tool reported (the workspace snapshot,
        :mod:`alice_trio.engine.workspace`); then the state update and delivery with
        backpressure. An event that is no well-formed ``TurnEvent`` (a field of the wrong type:
        :mod:`alice_trio.event_check`) is refused with :class:`ProtocolError`: the driver fails, the
        caller gets a typed error instead of an ``AttributeError`` from deep inside."""
        why = malformed(event)
        if why is not None:
            raise ProtocolError(
                f"{self.provider or 'session'} driver emitted a malformed event: {why}",
                provider=self.provider,
            )
        files = self._files
        if files is not None:
            if event.kind is EventKind.FILE_CHANGE:
                event = files.event(event)
            elif event.kind.terminal and self._ends_a_turn(event.turn_id):
                self._files = None
                end = await files.end(
                    provider=self.provider, thread_id=event.thread_id, turn_id=event.turn_id
                )
                if end is not None:
                    await self._deliver(end)
                await self._deliver(event)
                if self._core.busy:  # an enqueued turn took over: watch it from here
                    await self._watch_files()
                return
        await self._deliver(event)

    def _ends_a_turn(self, turn_id: str) -> bool:
        """A terminal event for ``turn_id`` ends a pending turn, or the one being started (a
        fast driver may end it before ``start_turn`` returned its id)."""
        pending = self._core.pending_turns()
        if any(t.turn_id == turn_id for t in pending):
            return True
        return bool(turn_id) and self._core.starting and not pending

    async def _deliver(self, event: TurnEvent) -> None:
        self._execute(self._core.event(event))
        try:
            if self._core.closed and not self._core.failed:
                # closed by its owner: nobody reads any more; never block the driver's reader
                self._send.send_nowait(event)
            elif not self._readable:
                # still opening: nobody can read yet, so waiting here would hold the driver's
                # reader — and the handshake answer or the EOF behind it — until the start
                # timeout (a CLI printing more than ``buffer`` stray lines first never started).
                # No turn exists yet, so nothing shed here is progress or a turn's end.
                try:
                    self._send.send_nowait(event)
                except trio.WouldBlock:
                    self._shed += 1
            else:
                if self._shed:
                    shed, self._shed = self._shed, 0
                    await self._send.send(
                        TurnEvent(
                            kind=EventKind.UNKNOWN, provider=self.provider,
                            text=f"dropped {shed} events the agent sent while the session was "
                            "opening (more than the event buffer holds)",
                        )
                    )  # fmt: skip
                await self._send.send(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _run_driver(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Run the driver; when it ends, fail pending turns and end the event stream."""
        status = StartedFlag(task_status)
        failure: AliceError | None = None
        try:
            await self._call(self.driver.run, self._emit, task_status=status)
            if not status.done:  # closed (or ended) while it started: not trio's RuntimeError
                raise SessionClosedError(
                    f"{self.provider or 'agent'} session ended before it started",
                    provider=self.provider,
                )
        except AliceError as exc:
            if not status.done:
                raise  # a start failure goes to whoever opened the session
            failure = exc
        finally:
            self.driver_done.set()
            self._driver_ended(failure)

    def _driver_ended(self, failure: AliceError | None) -> None:
        self._stop_watching()
        typed = failure
        if typed is None:  # it ended quietly: how its process ended, when the driver knows
            lookup = getattr(self.driver, "exit_error", None)
            found = lookup() if callable(lookup) else None
            typed = found if isinstance(found, AliceError) else None
        agent = self.provider or "agent"
        if failure is not None:
            reason = str(failure)
        elif typed is not None:
            reason = f"{agent} process ended during the turn: {typed.message}"
        else:
            reason = f"{agent} process ended during the turn"
        if typed is None:
            typed = TransportClosedError(
                reason, provider=self.provider, stderr_tail=self.stderr_tail()
            )
        self._ended = typed
        for action in self._core.fail(reason, failure, typed):
            if isinstance(action, FailTurns):
                for ref in action.turns:
                    event = TurnEvent(
                        kind=EventKind.ERROR, error=action.reason, thread_id=ref.thread_id,
                        turn_id=ref.turn_id, provider=self.provider,
                    )  # fmt: skip
                    try:
                        self._send.send_nowait(event)
                    except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                        break  # nobody reads: the consumer sees the end of the stream instead
        self._send.close()


@asynccontextmanager
async def open_session(
    provider: str | Provider,
    config: CLIConfig | None = None,
    *,
    initial: RunRequest,
    driver: SessionDriver | None = None,
    buffer: int = DEFAULT_BUFFER,
    approver: Approver | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> AsyncIterator[InteractiveSession]:
    """Open an interactive session for ``provider`` (see the module docstring).

    ``initial`` is the first request: drivers whose process flags are fixed at start (model,
    resume thread, workspace) take them from it; it is *not* submitted. ``driver`` overrides
    the registry lookup (tests, custom drivers). Raises what the driver's start raises
    (:class:`CLINotFoundError`, :class:`ProtocolError`, …) before yielding. ``approver``
    decides the agent's approval requests and questions (:mod:`alice_trio.sessions.approval`);
    a driver whose protocol has none rejects it with :class:`ConfigError`. A driver that has not
    started (process spawned, handshake done) within ``start_timeout`` seconds is killed and
    :class:`RunTimeoutError` is raised.

    Cancel-safe: cancelled while opening, the process is killed and ``trio.Cancelled``
    propagates; the body's own exception comes out as itself, never in a group.
    """
    from .registry import checked_driver, create_driver

    what = "open_session"
    buffer = checked(what, "buffer", buffer_size, buffer)
    start_timeout = checked(what, "start_timeout", finite_seconds, start_timeout)
    checked(what, "initial", instance(RunRequest, "a RunRequest"), initial)
    checked(what, "approver", callback, approver)
    with single_exception():
        cfg_now: CLIConfig | None = config
        if driver is None:
            prov, cfg_now = resolve_provider(what, provider, config)
            driver = create_driver(prov, cfg_now, initial, approver=approver)
            name = prov.name
        else:
            driver = checked_driver(driver, "open_session's driver is")
            name = provider if isinstance(provider, str) else provider.name
        async with trio.open_nursery() as nursery:
            session = InteractiveSession(
                driver, nursery, provider=name, thread_id=initial.thread_id, buffer=buffer,
                workspace=initial.workspace_dir or (cfg_now.workspace_dir if cfg_now else ""),
                limits=cfg_now.limits if cfg_now else None,
            )  # fmt: skip
            with trio.move_on_after(start_timeout) as starting:
                await nursery.start(session._run_driver)
            if starting.cancelled_caught:
                raise RunTimeoutError(
                    f"{name} session did not start within {start_timeout:g} s",
                    provider=name, stderr_tail=session.stderr_tail(),
                )  # fmt: skip
            if session.failure is not None and session.driver_done.is_set():
                raise session.failure
            nursery.start_soon(session._work)
            session._readable = True
            graceful = True
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
                    session._core.close(False)
                nursery.cancel_scope.cancel()
