"""``Backend.run(request)`` over interactive sessions (spec §5, with §13.1/2/6/10/11/13 fixed).

::

    async with SessionBackend("claude", config) as backend:
        result = await backend.run(request)

**Lifecycle.** Enter the backend once at a time: a second ``async with`` of an open (or
opening) backend — nested, or from another task — raises :class:`ConfigError` before touching
anything, and the open backend goes on unharmed. After a full exit the backend can be entered
again (its host pool reopens; the sessions of the previous entry are gone). Bad constructor
arguments (provider, config of another provider's class, non-finite or negative seconds, a
``scaling`` that is not a :class:`ScalingConfig`) raise :class:`ConfigError` at construction.
Runs of tasks outside the ``async with`` may still be in progress when it exits: the close
ends the turns that run (their sessions are closed under them), a run still waiting for its
key's lock, a turn or conversation slot or its session's start raises
:class:`SessionClosedError` at once (it never opens a session), so does a run begun during the
close; after it, ``run`` raises :class:`ConfigError`.

**Session key.** ``request.env["ALICE_SESSION_KEY"]`` (trimmed), else ``request.thread_id``.
Runs with the same key are serialized by a per-key lock that is never replaced while anyone
holds or waits for it (§13.10); a request with neither key gets a fresh one-turn session.
A thread is open in one conversation at a time: a run of another key naming it waits while
its conversation is busy, then closes it and resumes the thread (:mod:`.threads`).

**Reuse.** After every run whose session is still alive — completed, interrupted, or refused
(a failed submit) — the session stays open for ``idle_ttl`` seconds; a timer task in the
backend's nursery closes it then, unless a run took it again (a generation counter, checked
under the same per-key lock). No run leaves a live session without its timer (issue 12 item 9)
— except a conversation the agent cannot resume (``session.resumable`` false: an ACP agent
without ``loadSession``), which the backend never closes by itself unless
``ScalingConfig.close_unresumable`` allows it (:mod:`~alice_trio.sessions.admission`).
A session whose process died is replaced on the next run, resuming by thread id (if the
agent can; a resume it cannot do is :class:`ResumeUnsupportedError`). A blank prompt is
refused before any session is looked up or spawned.

**One run.** ``submit`` the request, then follow the session's events: only events of the
submitted turn — and of turns steered into it with :meth:`steer` — count (an event with another
or no turn id is ignored, §13.6). The reply is the last complete assistant text, the thread id
the last one seen, the usage the last usage of each turn, summed over the turns. Progress and
raw events go through a :class:`~alice_trio.engine.callbacks.CallbackDispatcher`, so a slow
callback never stalls the driver's reader (§13.2).

**Endings** (the one mapping of :class:`~alice_trio.protocols.turn_outcome.TurnEnd`).
``turn_completed`` → the result. ``turn_interrupted`` → :class:`RunInterruptedError` (the
session is kept); ``error`` → the typed error behind it when the session knows one (the
driver's failure: :class:`LineTooLongError`, :class:`TransportClosedError`, …), else
:class:`AgentError` (status, stderr tail), and the session is dropped; the session closing under
the run → its typed failure, else :class:`TransportClosedError` with the stderr tail (§13.13);
the provider timeout → the turn is interrupted (``interrupt_deadline``), the session is dropped
and :class:`RunTimeoutError` is raised; the config's ``idle_timeout`` without an event of the
conversation (time its turn waits for the approver does not count) → the same, with
:class:`IdleTimeoutError`; the caller's cancellation → the same
interrupt-then-kill, then ``trio.Cancelled`` propagates. Every error carries the partial result.
A callback that raises fails the run with :class:`CallbackError` after the session is dropped.
A callback that runs its own conversation again (``run`` with the same key) gets
:class:`ConfigError` at once: that run would wait for the one delivering to the callback. So
does an approver that runs *or steers* the conversation whose turn waits for its answer (also
through a chain: an approver's run of another conversation whose approver comes back); the
approver's exception then declines the request like any approver failure. Other
conversations are open to both.

**Errors.** ``run``, ``steer`` and the context manager raise only :class:`AliceError`
subclasses, bare ``trio.Cancelled``, or the caller's own exception from the ``async with``
body — never an exception group (:mod:`alice_trio.errors`).
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any

import attrs
import trio

from ..engine.callbacks import CallbackDispatcher
from ..errors import (
    AgentError,
    AliceError,
    CallbackError,
    ConfigError,
    EmptyPromptError,
    IdleTimeoutError,
    NoActiveTurnError,
    RunTimeoutError,
    SessionClosedError,
    TransportClosedError,
)
from ..file_changes import FileChange, merge_changes
from ..models import EventKind, RunRequest, RunResult, TurnEvent, Usage, call_maybe_async
from ..protocols.turn_outcome import Ending, TurnEnd, clone_error
from ..providers.base import CLIConfig, Provider
from ..validation import callback, instance
from ._groups import single_exception
from .admission import Admission
from .approval import ApprovalRequest, Approver
from .arguments import checked, finite_seconds, request_arg, resolve_provider
from .driver import SessionDriver, SubmitResult
from .pool import HostPool, ScalingConfig
from .same_run import check_same_run, current_run
from .session import DEFAULT_START_TIMEOUT, InteractiveSession, open_session
from .threads import ThreadHolders

__all__ = ["SESSION_KEY_ENV", "SessionBackend", "session_key"]

SESSION_KEY_ENV = "ALICE_SESSION_KEY"

#: the (backend, conversation key) of every run whose callbacks the current task delivers
#: (set in a run's callback task; a run started from a callback inherits it): a callback that
#: runs its own conversation again would wait for itself (see ``_run``)
_CALLBACKS_OF: contextvars.ContextVar[frozenset[tuple[int, str]]] = contextvars.ContextVar(
    "alice_trio_session_callbacks_of", default=frozenset()
)
#: the (backend, conversation key) of every run whose turn waits for the approver the current
#: task runs (set around an approver call; carried on by the runs it starts, see
#: ``_Turn.chain``): the approver may neither run nor steer such a conversation — the turn
#: cannot go on (nor its run end) before the approver answered
_APPROVING_FOR: contextvars.ContextVar[frozenset[tuple[int, str]]] = contextvars.ContextVar(
    "alice_trio_session_approving_for", default=frozenset()
)


def session_key(request: RunRequest) -> str:
    return (request.env.get(SESSION_KEY_ENV) or "").strip() or request.thread_id


class _IdleWatch:
    """The idle watchdog of one run: ``seconds`` (the config's ``idle_timeout``; None: none)
    without an event of its conversation cancels the run's scope and sets :attr:`fired` —
    unless ``waiting()`` says the turn waits for the approver (a human may answer late: the turn
    waits with it, and the timer starts again)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.fired = False
        self._scope = trio.CancelScope()
        self._stopped = False

    def alive(self) -> None:
        if self.seconds is not None:
            self._scope.deadline = trio.current_time() + self.seconds

    def stop(self) -> None:
        self._stopped = True
        self._scope.cancel()

    async def watch(self, run_scope: trio.CancelScope, waiting: Callable[[], bool]) -> None:
        if self.seconds is None:
            return
        while not self._stopped:
            self._scope = trio.CancelScope(deadline=trio.current_time() + self.seconds)
            with self._scope:
                await trio.sleep_forever()
            if self._stopped:
                return
            if not waiting():
                self.fired = True
                run_scope.cancel()
                return


class _Asking:
    """The approver as the backend gives it to its drivers: it notes the requests waiting for
    an answer, so a run's idle watchdog does not fire while its turn waits for a human, and
    it calls the approver with the conversations waiting for it marked (``_APPROVING_FOR``,
    ``_CALLBACKS_OF``): running or steering one of them from the approver is a
    :class:`ConfigError` at once — which declines the request like any approver failure
    (:func:`~alice_trio.sessions.approval.ask`) — not a wait for itself."""

    def __init__(
        self, approver: Approver, running: Callable[[], list[_Turn]] | None = None
    ) -> None:
        self.approver = approver
        self.running = running or list  # the turns of the backend's runs in progress
        self.pending: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> Any:
        self.pending.append(request)
        approving, callbacks = _APPROVING_FOR.get(), _CALLBACKS_OF.get()
        for turn in self.running():
            if turn.asks(request):
                approving |= turn.approving
                callbacks |= turn.callbacks
        tokens = (_APPROVING_FOR.set(approving), _CALLBACKS_OF.set(callbacks))
        try:
            answer = self.approver(request)
            if inspect.isawaitable(answer):
                answer = await answer
            return answer
        finally:
            _CALLBACKS_OF.reset(tokens[1])
            _APPROVING_FOR.reset(tokens[0])
            self.pending.remove(request)

    def waiting(self, turn: _Turn) -> bool:
        """Whether a request of ``turn`` waits (see :meth:`_Turn.asks`)."""
        return any(turn.asks(request) for request in self.pending)


@attrs.define(eq=False)
class _Turn:
    """What one run collects from the events of its turn(s)."""

    provider: str
    awaited: set[str] = attrs.Factory(set)
    done: set[str] = attrs.Factory(set)
    reply: str = ""
    thread_id: str = ""
    usage: dict[str, Usage] = attrs.Factory(dict)
    error: TurnEvent | None = None
    interrupted: bool = False
    submit_error: AliceError | None = None
    files: list[FileChange] = attrs.Factory(list)
    steering: int = 0  # steer calls in flight: the run must not end under them
    finished: trio.Event = attrs.Factory(trio.Event)
    #: the conversations whose approver's answer (``approving``) or callbacks (``callbacks``)
    #: wait for this run: its run's own key and the chain it was started from
    approving: frozenset[tuple[int, str]] = frozenset()
    callbacks: frozenset[tuple[int, str]] = frozenset()

    def asks(self, request: ApprovalRequest) -> bool:
        """Whether ``request`` is of this turn (by turn id, else thread id); a request or a
        turn without ids counts as the turn's. While the run's submit is in flight (no turn
        id known yet: the agent may ask before ``submit`` returned) the thread decides."""
        if request.turn_id and self.awaited:
            return request.turn_id in self.awaited
        return not request.thread_id or not self.thread_id or request.thread_id == self.thread_id

    def check(self) -> None:
        if self.awaited and self.awaited <= self.done and not self.steering:
            self.finished.set()

    def partial(self) -> RunResult:
        total = Usage()
        for u in self.usage.values():
            total = total + u
        return RunResult(
            reply=self.reply,
            next_thread_id=self.thread_id,
            usage=total,
            file_changes=tuple(merge_changes(self.files)),
        )

    def take(self, event: TurnEvent) -> bool:
        """Apply ``event`` if it belongs to this run; True when it does (turn ids are never
        empty, so an event without one belongs to no run, §13.6)."""
        if event.turn_id not in self.awaited:
            return False
        if event.thread_id:
            self.thread_id = event.thread_id
        if event.usage is not None and event.usage.has_usage:
            self.usage[event.turn_id] = event.usage
        if event.kind is EventKind.ASSISTANT_TEXT and event.text.strip():
            self.reply = event.text.strip()
        elif event.kind is EventKind.FILE_CHANGE:
            self.files += event.files
        if event.kind.terminal:
            self.done.add(event.turn_id)
            if event.kind is EventKind.ERROR and self.error is None:
                self.error = event
            elif event.kind is EventKind.TURN_INTERRUPTED:
                self.interrupted = True
            self.check()
        return True


@attrs.define(eq=False)
class Entry:
    """One live conversation of a key (its session, idle timer, turn in progress, threads)."""

    key: str
    session: InteractiveSession
    close_requested: trio.Event = attrs.Factory(trio.Event)
    host_done: trio.Event = attrs.Factory(trio.Event)
    graceful: bool = True
    generation: int = 0
    current: _Turn | None = None
    timer: trio.CancelScope | None = None
    #: the threads this conversation holds in the backend (see :mod:`.threads`)
    threads: set[str] = attrs.Factory(set)


class SessionBackend:
    """Runs requests over reused interactive sessions (see the module docstring).

    ``provider`` is a registered name or a :class:`Provider`; ``config`` defaults to the
    provider's config class. ``driver_factory`` (tests) replaces the registry lookup:
    ``driver_factory(config, initial_request) -> SessionDriver``. ``approver`` decides approval
    requests and questions (see :func:`open_session`). ``interrupt_deadline``: on the caller's
    cancellation or the provider timeout, how long the turn's interrupt may take before the
    session's process group is killed (the caller waits at most this plus ``kill_grace``).
    ``start_timeout``: how long a new session's CLI may take to start and finish its handshake
    (:func:`open_session`), and a shared agent process its spawn and process-wide handshake
    (then it is killed and the run waiting for it raises :class:`RunTimeoutError`).
    ``scaling`` (:class:`~alice_trio.sessions.pool.ScalingConfig`): shared agent processes,
    the warm pool (one spare by default; none for a test's ``driver_factory`` unless asked)
    and admission bounds (:mod:`alice_trio.sessions.pool`, :mod:`alice_trio.sessions.admission`).
    """

    def __init__(
        self,
        provider: str | Provider,
        config: CLIConfig | None = None,
        *,
        idle_ttl: float = 30.0,
        interrupt_deadline: float = 1.0,
        driver_factory: Any = None,
        approver: Approver | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        scaling: ScalingConfig | None = None,
    ) -> None:
        what = "SessionBackend"
        self.provider, self.config = resolve_provider(what, provider, config)
        self.idle_ttl: float = checked(what, "idle_ttl", finite_seconds, idle_ttl)
        self.interrupt_deadline: float = checked(
            what, "interrupt_deadline", finite_seconds, interrupt_deadline
        )
        self.driver_factory = checked(what, "driver_factory", callback, driver_factory)
        self.approver = checked(what, "approver", callback, approver)
        # what the drivers get: the approver, noting which requests wait (see _IdleWatch)
        self._running: set[_Turn] = set()  # the turns of the runs in progress (see _Asking)
        self._asking = (
            _Asking(approver, lambda: list(self._running)) if approver is not None else None
        )
        self.start_timeout: float = checked(what, "start_timeout", finite_seconds, start_timeout)
        checked(what, "scaling", instance(ScalingConfig, "a ScalingConfig or None", optional=True),
                scaling)  # fmt: skip
        self._owner: trio.lowlevel.Task | None = None  # the task that entered (open/opening)
        self._opened_in: trio.lowlevel.TrioToken | None = None  # that task's trio.run
        self._locks: dict[str, trio.Lock] = {}
        self._in_use: set[str] = set()  # keys whose run is past admission (see _using)
        self._sessions: dict[str, Entry] = {}
        self._nursery: trio.Nursery | None = None
        self._stack: AsyncExitStack | None = None
        self._timers: set[trio.CancelScope] = set()
        self._run_ids = itertools.count()  # names of unkeyed runs (see _admit_and_run)
        self._threads = ThreadHolders()  # one conversation per thread (sessions/threads.py)
        # the runs not yet at their turn (waiting for their key's lock, admission or a session
        # start): the backend's close cancels them (see _run); set while __aexit__ runs
        self._waiting: set[trio.CancelScope] = set()
        self._closing = False
        # -- scaling hooks (sessions/pool.py, sessions/admission.py) --
        if scaling is None:
            scaling = ScalingConfig(warm=0) if driver_factory is not None else ScalingConfig()
        self.scaling = scaling
        self.pool = HostPool(
            self.provider, self.config, scaling=scaling, approver=self._asking,
            factory=driver_factory, idle_ttl=idle_ttl,
            on_pressure=lambda: self.admission.evict_one(self), start_timeout=self.start_timeout,
        )  # fmt: skip
        self.admission = Admission(scaling, shared=self.pool.shared)

    @property
    def name(self) -> str:
        return self.provider.name

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> SessionBackend:
        """Open the backend (its host pool and sessions' nursery). A backend that is open (or
        opening) refuses a second entry with :class:`ConfigError` before touching anything, so
        the open one is unharmed; after a full exit it can be entered again (a fresh pool)."""
        if self._owner is not None:
            raise ConfigError(
                "SessionBackend is already open: enter it once at a time "
                "(share the open backend, or make one per `async with`)"
            )
        self._owner = trio.lowlevel.current_task()
        self._opened_in = current_run()
        try:
            stack = AsyncExitStack()
            with single_exception():
                await stack.enter_async_context(self.pool)  # closed after the sessions' nursery
                self._nursery = await stack.enter_async_context(trio.open_nursery())
        except BaseException:
            self._owner = self._opened_in = None
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Close every session (gracefully unless the body failed) and wait for them; the
        body's own exception comes out as itself. Only the task that entered may exit."""
        if self._stack is None:
            raise ConfigError("SessionBackend.__aexit__ without a matching __aenter__")
        if self._owner is not trio.lowlevel.current_task():
            raise ConfigError(
                "SessionBackend.__aexit__ from another task than the one that entered it (its "
                "nursery must be exited by the task that opened it)"
            )
        failing = exc is not None
        self._closing = True  # no run starts a turn, opens a session or arms a timer now
        for gate in list(self._waiting):
            gate.cancel()  # their runs raise SessionClosedError
        for timer in list(self._timers):
            timer.cancel()
        for entry in list(self._sessions.values()):
            self._drop(entry, graceful=not failing)
        try:
            with single_exception():
                return bool(await self._stack.__aexit__(exc_type, exc, tb))
        finally:
            self._nursery = None
            self._stack = None
            self._owner = self._opened_in = None
            self._closing = False

    def open_sessions(self) -> list[str]:
        return sorted(self._sessions)

    # -- public API --------------------------------------------------------------------------
    async def run(self, request: RunRequest) -> RunResult:
        """Run one turn (see the module docstring for errors and cancellation)."""
        request = request_arg("SessionBackend.run", request)
        check_same_run(self._opened_in, "SessionBackend.run", self.provider.name)
        with single_exception():
            return await self._run(request)

    async def _run(self, request: RunRequest) -> RunResult:
        if self._nursery is None:
            raise ConfigError("use the SessionBackend as `async with SessionBackend(...)`")
        if self._closing:
            raise self._closed_error()
        if not request.prompt:  # before any session is looked up or spawned
            raise EmptyPromptError(provider=self.provider.name)
        # A run in a task outside the backend's ``async with`` may still wait for its key's
        # lock, a turn slot or its session when the backend closes: the close cancels this
        # scope, so such a run raises SessionClosedError instead of opening a session in (or
        # after) the closing nursery — a session nobody would close (the close waited for it).
        gate = trio.CancelScope()
        self._waiting.add(gate)
        try:
            with gate:
                return await self._admit_and_run(request, gate)
        finally:
            self._waiting.discard(gate)
        raise self._closed_error()

    def _closed_error(self) -> SessionClosedError:
        return SessionClosedError(
            f"{self.provider.name}: the SessionBackend closed before this run's turn started",
            provider=self.provider.name,
        )

    def _at_turn(self, gate: trio.CancelScope) -> None:
        """The run passed its waits: from here on the backend's close ends its turn (the
        session is dropped) instead of cancelling it."""
        self._waiting.discard(gate)
        if gate.cancel_called:  # closed while this task was about to resume
            raise self._closed_error()

    async def _admit_and_run(self, request: RunRequest, gate: trio.CancelScope) -> RunResult:
        request = request.evolve(provider=self.provider.name)
        key = session_key(request)
        self._refuse_own_approval(key, "run")
        if (id(self), key) in _CALLBACKS_OF.get():
            # the run delivering to this callback holds the conversation until its callbacks
            # returned: this run would wait for it, and it for this run (a hang, not a queue)
            raise ConfigError(
                f"SessionBackend.run of conversation {key!r} from a callback of that "
                "conversation's own run would wait for itself: steer the running turn "
                "(SessionBackend.steer) or run it after this run returned",
                provider=self.provider.name,
            )
        # the runs waiting for the callback or approver this run is started from: a bound
        # only they hold is refused at once (sessions/admission.py), not waited for forever
        chain = frozenset(k for b, k in _APPROVING_FOR.get() | _CALLBACKS_OF.get() if b == id(self))
        holder = key or f"\0run:{next(self._run_ids)}"  # the chains' name of an unkeyed run
        turn_slot = self.admission.turn(
            self._notice(request, key), holder=holder, chain=chain, provider=self.provider.name
        )
        if not key:
            async with turn_slot, self._open(request) as session:
                self._at_turn(gate)
                return await self._run_turn(Entry(key="", session=session), request, holder)
        lock = self._locks.setdefault(key, trio.Lock())
        try:
            async with lock, turn_slot, self._using(key):
                entry: Entry | None = self._sessions.get(key)
                if entry is not None and entry.session.closed:
                    self.admission.remember(entry)  # resumed below, if the agent can
                    self._drop(entry, graceful=False)
                    entry = None
                if entry is None:
                    request = self.admission.resume(key, request)
                    # another key's conversation on this thread is waited for or closed first
                    async with self._threads.opening(self, key, request.thread_id, chain) as opened:
                        async with self.admission.conversation(self, holder=key, chain=chain):
                            nursery = self._nursery
                            if nursery is None:  # unreachable: the close cancelled the gate
                                raise self._closed_error()
                            entry = await nursery.start(self._host, key, request)
                        opened(entry)
                    self._hold_thread(entry)
                assert entry is not None
                self._at_turn(gate)
                self.admission.touch(key)
                entry.generation += 1
                if entry.timer is not None:
                    entry.timer.cancel()  # reused: its idle close is off
                try:
                    return await self._run_turn(entry, request, holder)
                finally:
                    self._hold_thread(entry)  # a new conversation's thread, known now
                    self._arm_idle_close(entry)  # whatever the outcome, if it lives on
        finally:
            self._forget_lock(key, lock)

    async def steer(self, request: RunRequest) -> SubmitResult:
        """Steer the running turn of the request's session; its reply joins the running
        :meth:`run`'s result. Raises :class:`NoActiveTurnError` when no turn runs there, and
        what :meth:`InteractiveSession.steer` raises."""
        request = request_arg("SessionBackend.steer", request)
        check_same_run(self._opened_in, "SessionBackend.steer", self.provider.name)
        self._refuse_own_approval(session_key(request), "steer")
        entry = self._sessions.get(session_key(request))
        if entry is None or entry.current is None:
            raise NoActiveTurnError(provider=self.provider.name)
        turn = entry.current
        if turn.finished.is_set():
            raise NoActiveTurnError(provider=self.provider.name)
        turn.steering += 1
        try:
            with single_exception():
                submitted = await entry.session.steer(request.evolve(provider=self.provider.name))
            turn.awaited.add(submitted.turn_id)
        finally:
            turn.steering -= 1
            turn.check()
        return submitted

    def _notice(self, request: RunRequest, key: str) -> Callable[[str], Awaitable[None]] | None:
        """Deliver a notice of the run itself (``[waiting]`` for a turn slot) to its progress
        callback as its turn's events are delivered: the callback counts as one of ``key``'s
        (running that conversation again is :class:`ConfigError`, not a lock error) and an
        exception it raises fails the run with :class:`CallbackError`."""
        callback = request.on_progress
        if callback is None:
            return None
        name = self.provider.name

        async def notice(text: str) -> None:
            mark = _CALLBACKS_OF.set(_CALLBACKS_OF.get() | {(id(self), key)}) if key else None
            try:
                await call_maybe_async(callback, text)
            except Exception as exc:
                err = CallbackError(f"{name}: callback raised {exc!r}", provider=name)
                err.__cause__ = exc
                raise err from exc
            finally:
                if mark is not None:
                    _CALLBACKS_OF.reset(mark)

        return notice

    def _refuse_own_approval(self, key: str, what: str) -> None:
        """:class:`ConfigError` when the calling approver is awaited by ``key``'s run."""
        if key and (id(self), key) in _APPROVING_FOR.get():
            raise ConfigError(
                f"SessionBackend.{what} of conversation {key!r} from the approver its own turn "
                "waits for would wait for itself: answer the request, then run or steer the "
                "conversation after that run returned",
                provider=self.provider.name,
            )

    # -- sessions ----------------------------------------------------------------------------
    @asynccontextmanager
    async def _open(self, initial: RunRequest) -> AsyncIterator[InteractiveSession]:
        driver: SessionDriver | None = await self.pool.driver(initial)
        async with open_session(
            self.provider, self.config, initial=initial, driver=driver, approver=self._asking,
            start_timeout=self.start_timeout,
        ) as s:  # fmt: skip
            yield s

    async def _host(self, key: str, initial: RunRequest, *, task_status: Any) -> None:
        """Owns one session's context for its whole life (a task of the backend nursery)."""
        entry: Entry | None = None
        try:
            async with self._open(initial) as session:
                entry = Entry(key=key, session=session)
                self._sessions[key] = entry
                task_status.started(entry)
                if self._closing:  # started as the close began: the close did not see it
                    self._drop(entry, graceful=False)
                await entry.close_requested.wait()
                await session.aclose(graceful=entry.graceful)
        finally:
            if entry is not None:
                entry.host_done.set()
                if self._sessions.get(key) is entry:
                    del self._sessions[key]
                self._release(entry)
                self._threads.let_go(entry)
            self.admission.forget(key, self)
            self.pool.notify()  # a process slot may be free now (HostPool._acquire)

    async def _drop_and_wait(self, entry: Entry) -> None:
        """Kill ``entry``'s session and wait until its process group is reaped (shielded and
        bounded), so a failed or cancelled run returns with nothing of its session left."""
        self._drop(entry, graceful=False)
        if not entry.key:  # a one-turn session: the caller's ``async with`` closes it
            return
        with trio.CancelScope(shield=True), trio.move_on_after(10.0):
            await entry.host_done.wait()

    def _drop(self, entry: Entry, *, graceful: bool) -> None:
        """Close ``entry``'s session in the background (the host task does the work)."""
        if self._sessions.get(entry.key) is entry:
            del self._sessions[entry.key]
        entry.graceful = entry.graceful and graceful
        entry.close_requested.set()
        self._release(entry)

    def _release(self, entry: Entry) -> None:
        """Let go of what the backend keeps for ``entry`` once it left ``_sessions``, however
        it left (idle close, made room for another, process died, failed run, backend close):
        its idle timer (a sleeping task holding the entry, and so its session, driver and
        inbox, for up to ``idle_ttl``) and its key's lock when nobody holds or waits for it."""
        if self._sessions.get(entry.key) is entry:
            return
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        lock = self._locks.get(entry.key)
        if lock is not None:
            self._forget_lock(entry.key, lock)

    def _hold_thread(self, entry: Entry) -> None:
        """Register the thread of ``entry``'s conversation if it is still its key's live one."""
        if self._sessions.get(entry.key) is entry and not entry.session.closed:
            self._threads.hold(entry)

    def _arm_idle_close(self, entry: Entry) -> None:
        """Give ``entry`` its idle timer if it is still the live session of its key — unless
        the agent cannot resume it and the scaling does not allow closing such a one
        (``close_unresumable``): the idle close would lose it."""
        if (
            self._nursery is None
            or self._closing
            or not entry.key
            or self._sessions.get(entry.key) is not entry
            or entry.session.closed
            or not self.admission.closable(entry)
        ):
            return
        if entry.timer is not None:
            entry.timer.cancel()
        timer = entry.timer = trio.CancelScope()  # registered now: exit cancels it
        self._timers.add(timer)
        self._nursery.start_soon(self._idle_close, entry, entry.generation, timer)

    async def _idle_close(self, entry: Entry, generation: int, timer: trio.CancelScope) -> None:
        with timer:
            try:
                await trio.sleep(self.idle_ttl)
            finally:
                self._timers.discard(timer)
        if timer.cancelled_caught:
            return
        lock = self._locks.setdefault(entry.key, trio.Lock())
        try:
            async with lock:
                if entry.generation == generation and self._sessions.get(entry.key) is entry:
                    self._drop(entry, graceful=True)
        finally:
            self._forget_lock(entry.key, lock)

    @asynccontextmanager
    async def _using(self, key: str) -> AsyncIterator[None]:
        """``key``'s run holds its lock *and* its turn slot: its conversation is in use. A run
        that holds the lock but still waits for a turn slot does not pin its conversation, so
        admission may close it to make room (the run then resumes its thread on a new one):
        pinning it deadlocked ``max_turns`` with ``max_conversations``/``max_processes`` — the
        slot holder waited for room that only the slot waiter's conversation could give."""
        self._in_use.add(key)
        try:
            yield
        finally:
            self._in_use.discard(key)
            # idle now: a start waiting at the process bound may close it (HostPool._acquire),
            # a run of another key waiting for its thread may take it (sessions/threads.py)
            self.pool.notify()
            self._threads.notify()

    def _forget_lock(self, key: str, lock: trio.Lock) -> None:
        """Remove a per-key lock only when nobody holds or waits for it and no session uses
        it (§13.10: a held lock is never replaced by a new one)."""
        stats = lock.statistics()
        if (
            not lock.locked()
            and stats.tasks_waiting == 0
            and key not in self._sessions
            and self._locks.get(key) is lock
        ):
            del self._locks[key]

    # -- one run -----------------------------------------------------------------------------
    async def _run_turn(self, entry: Entry, request: RunRequest, holder: str) -> RunResult:
        """One run's turn on ``entry``'s conversation; ``holder``: the run's name in the
        chains (``_APPROVING_FOR``, ``_CALLBACKS_OF``): its key, or a name of its own."""
        session = entry.session
        me = frozenset({(id(self), holder)})
        turn = _Turn(
            provider=self.provider.name, thread_id=request.thread_id or session.thread_id,
            approving=_APPROVING_FOR.get() | me, callbacks=_CALLBACKS_OF.get() | me,
        )  # fmt: skip
        limits = getattr(self.config, "limits", None)
        dispatcher = CallbackDispatcher(
            request.on_progress,
            request.on_raw_event,
            limits.callback_buffer if limits is not None else 4096,
            request.on_events,
            provider=self.provider.name,
            rate=request.informational_rate,
        )
        events = session.events()
        timeout = self.config.effective_timeout()
        idle = _IdleWatch(self.config.effective_idle_timeout())
        callback_error: list[BaseException] = []
        closed_under_us = False
        timed_out = False
        entry.current = turn
        self._running.add(turn)
        try:
            with trio.move_on_after(timeout) as deadline:
                async with trio.open_nursery() as nursery:

                    async def deliver() -> None:
                        # the callbacks' own task: see _CALLBACKS_OF
                        _CALLBACKS_OF.set(_CALLBACKS_OF.get() | me)
                        try:
                            await dispatcher.run()
                        except Exception as exc:  # a user callback raised
                            callback_error.append(exc)
                            nursery.cancel_scope.cancel()

                    nursery.start_soon(deliver)
                    nursery.start_soon(idle.watch, nursery.cancel_scope, lambda: self._waits(turn))
                    try:
                        closed_under_us = await self._follow(
                            session, events, turn, dispatcher, request, idle
                        )
                    finally:
                        idle.stop()
                        dispatcher.close()
            timed_out = deadline.cancelled_caught
        except BaseException:
            # the caller's cancellation (or a bug): interrupt with a deadline, then kill
            with trio.CancelScope(shield=True):
                await self._interrupt_and_wait(session, events, turn)
            await self._drop_and_wait(entry)
            raise
        finally:
            entry.current = None
            self._running.discard(turn)
        partial = turn.partial()
        tail = session.stderr_tail()
        name = self.provider.name
        if turn.submit_error is not None:
            if session.closed:
                await self._drop_and_wait(entry)
            raise turn.submit_error
        if callback_error:
            await self._drop_and_wait(entry)
            err = CallbackError(
                f"{name}: callback raised {callback_error[0]!r}",
                partial=partial,
                provider=name,
                stderr_tail=tail,
            )
            err.__cause__ = callback_error[0]
            raise err
        if idle.fired and not timed_out:
            await self._interrupt_and_wait(session, events, turn)
            await self._drop_and_wait(entry)
            raise IdleTimeoutError(
                f"{name} idle timeout: no output for {idle.seconds:g} s",
                idle_seconds=idle.seconds or 0.0,
                partial=turn.partial(),
                provider=name,
                stderr_tail=tail,
            )
        if timed_out:
            await self._interrupt_and_wait(session, events, turn)
            await self._drop_and_wait(entry)
            raise RunTimeoutError(
                f"llm timeout: {name} turn exceeded {timeout:g} s",
                partial=turn.partial(),
                provider=name,
                stderr_tail=tail,
            )
        if closed_under_us or not turn.finished.is_set():
            await self._drop_and_wait(entry)
            failure = session.failure
            if isinstance(failure, AliceError):
                raise clone_error(failure, partial=partial, provider=name, stderr_tail=tail)
            raise TransportClosedError(
                f"{name} session closed before the turn finished",
                partial=partial, provider=name, stderr_tail=tail,
            )  # fmt: skip
        if turn.error is not None:
            await self._drop_and_wait(entry)
            end = TurnEnd.from_event(turn.error, session.turn_error(turn.error.turn_id))
        else:
            end = TurnEnd(ending=Ending.INTERRUPTED if turn.interrupted else Ending.COMPLETED)
        error = end.exception(provider=name, partial=partial, stderr_tail=tail)
        if error is not None:
            raise error
        return partial

    def _waits(self, turn: _Turn) -> bool:
        """Whether ``turn`` waits for the approver (its idle timer does not fire meanwhile)."""
        return self._asking is not None and self._asking.waiting(turn)

    async def _follow(
        self,
        session: InteractiveSession,
        events: trio.abc.ReceiveChannel[TurnEvent],
        turn: _Turn,
        dispatcher: CallbackDispatcher,
        request: RunRequest,
        idle: _IdleWatch,
    ) -> bool:
        """Submit and read events until every awaited turn ended. True: the session closed."""
        backlog: list[TurnEvent] = []
        submitted = trio.Event()
        closed = False

        async def read() -> None:
            nonlocal closed
            async for event in events:
                idle.alive()  # the conversation said something: the idle timer restarts
                if not submitted.is_set():
                    backlog.append(event)  # ids are unknown until submit returns
                    continue
                if turn.take(event):
                    await dispatcher.offer(event)
                if turn.finished.is_set():
                    return
            closed = True

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            try:
                result = await session.submit(request)
            except AliceError as exc:
                turn.submit_error = exc
                nursery.cancel_scope.cancel()
                return False
            if not result.turn_id:  # queued behind a turn this run does not own
                turn.submit_error = AgentError(
                    f"{turn.provider}: the session is busy with another turn"
                )
                nursery.cancel_scope.cancel()
                return False
            turn.awaited.add(result.turn_id)
            if result.thread_id:
                turn.thread_id = turn.thread_id or result.thread_id
            for event in backlog:
                if turn.take(event):
                    await dispatcher.offer(event)
            backlog.clear()
            submitted.set()
            if turn.finished.is_set():
                nursery.cancel_scope.cancel()
        return closed and not turn.finished.is_set()

    async def _interrupt_and_wait(
        self,
        session: InteractiveSession,
        events: trio.abc.ReceiveChannel[TurnEvent],
        turn: _Turn,
    ) -> None:
        """Interrupt the turn and read its events until it ended or the deadline passed."""
        if session.closed or turn.finished.is_set() or not turn.awaited:
            return
        with trio.move_on_after(self.interrupt_deadline):
            try:
                await session.interrupt()
            except AliceError:
                return
            async for event in events:
                turn.take(event)
                if turn.finished.is_set():
                    return
