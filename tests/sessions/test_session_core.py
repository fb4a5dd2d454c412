"""The pure session core: its transition table, and a synchronous Hypothesis state machine
that plays the trio layer (a FIFO worker, a driver that confirms or refuses, events, closes and
failures) against a model of what must hold."""

from __future__ import annotations

import collections

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from alice_trio.errors import (
    NoActiveTurnError,
    SessionClosedError,
    SessionError,
    SessionStateError,
    SteerUnsupportedError,
)
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.protocols.session_core import (
    TABLE,
    CloseDriver,
    Dispatch,
    FailTurns,
    InterruptTurn,
    Phase,
    Queued,
    SessionCore,
    SessionState,
    StartQueued,
    StartTurn,
    SteerMode,
    SteerTurn,
    TurnRef,
)

COMMANDS = ("submit", "steer", "take", "withdraw", "started", "start_failed", "steered",
            "steer_failed", "interrupt", "event", "close", "fail")  # fmt: skip


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


def ref(n: int) -> TurnRef:
    return TurnRef(thread_id="thr", turn_id=f"t{n}")


def test_turn_ref_never_has_an_empty_turn_id():
    with pytest.raises(ValueError):
        TurnRef(thread_id="thr", turn_id="")


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_missing_table_entry_is_a_typed_error_naming_state_and_command(phase, command):
    if (phase, command) in TABLE:
        return
    core = SessionCore(SteerMode.NATIVE)
    core.closed = phase in (Phase.CLOSED, Phase.FAILED)
    core.failed = phase is Phase.FAILED
    core.starting = phase is Phase.STARTING
    core.active = ref(1) if phase is Phase.RUNNING else None
    assert core.phase is phase
    with pytest.raises(SessionStateError) as info:
        core._apply(command)
    assert (info.value.state, info.value.command) == (phase.value, command)
    assert phase.value in str(info.value) and command in str(info.value)


def test_misuse_errors_name_state_and_command():
    core = SessionCore(SteerMode.QUEUE_WHEN_BUSY)
    with pytest.raises(NoActiveTurnError) as info:
        core.steer(req("x"))
    assert (info.value.state, info.value.command) == ("idle", "steer")
    core.submit(req("a"))
    core.take("submit", req("a"))
    core.started(ref(1))
    with pytest.raises(SteerUnsupportedError):
        core.steer(req("x"))
    core.close(True)
    for call in (lambda: core.submit(req("b")), lambda: core.interrupt()):
        with pytest.raises(SessionClosedError, match=r"cannot .* in state closed"):
            call()


def test_confirming_what_never_started_is_a_bug_not_a_state_change():
    core = SessionCore(SteerMode.NATIVE)
    for call in (lambda: core.started(ref(1)), core.start_failed, core.steer_failed,
                 lambda: core.steered(ref(1)), core.withdraw,
                 lambda: core.take("submit", req("x"))):  # fmt: skip
        with pytest.raises(SessionStateError):
            call()
    assert core.phase is Phase.IDLE and not core.busy


class CoreMachine(RuleBasedStateMachine):
    """The machine plays the trio layer: handed-over commands wait in ``self.inbox`` (the
    worker's channel) and are taken in FIFO order; a taken start/steer is confirmed or
    refused later. The model tracks which turns the driver was told to run."""

    def __init__(self) -> None:
        super().__init__()
        self.core: SessionCore | None = None
        self.inbox: collections.deque[tuple[str, RunRequest]] = collections.deque()
        self.in_flight: tuple[str, RunRequest] | None = None  # a taken start/steer
        self.turns = 0
        self.running: set[str] = set()  # turns the driver runs (started, not ended)
        self.ended: set[str] = set()
        self.submitted = 0  # submits accepted (dispatched or queued)
        self.driver_starts: list[str] = []  # prompts the driver was asked to start, in order
        self.queued_order: list[str] = []  # prompts queued at once, in order
        self.closes: list[bool] = []
        self.interrupt_wanted = False  # interrupted while a start was in flight
        self.interrupted: set[str] = set()

    @initialize(mode=st.sampled_from(list(SteerMode)))
    def open(self, mode: SteerMode) -> None:
        self.core = SessionCore(mode, thread_id="thr")

    def _run(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, StartQueued):
                self.inbox.append(("queued", action.request))
            elif isinstance(action, InterruptTurn):
                assert action.turn.turn_id in self.running or action.turn.turn_id in self.ended
                self.interrupted.add(action.turn.turn_id)
            elif isinstance(action, CloseDriver):
                self.closes.append(action.graceful)
            elif isinstance(action, FailTurns):
                assert {t.turn_id for t in action.turns} <= self.running
                for t in action.turns:
                    self.running.discard(t.turn_id)
                    self.ended.add(t.turn_id)

    # -- caller commands --
    @rule(text=st.sampled_from(["a", "b", "c"]))
    def submit(self, text: str) -> None:
        core = self.core
        closed = core.closed
        try:
            decision = core.submit(req(text))
        except SessionClosedError:
            assert closed
            return
        assert not closed
        self.submitted += 1
        if isinstance(decision, Dispatch):
            self.inbox.append(("submit", req(text)))
        else:
            assert isinstance(decision, Queued)
            assert decision.result.queue_depth == len(core.queue)
            target = core.outstanding[-1] if core.outstanding else core.active
            # native modes queue only input for a turn being interrupted (never steered into it)
            assert not core.steer_mode.native or (
                target.turn_id in self.interrupted if target else self.interrupt_wanted
            )

    @rule(text=st.sampled_from(["s1", "s2"]))
    def steer(self, text: str) -> None:
        try:
            decision = self.core.steer(req(text))
        except (SessionClosedError, NoActiveTurnError, SteerUnsupportedError):
            return
        assert isinstance(decision, Dispatch) and self.core.steer_mode.native
        self.inbox.append(("steer", req(text)))

    @rule()
    @precondition(lambda self: bool(self.inbox))
    def withdraw_newest(self) -> None:
        """The caller of the newest handed-over command was cancelled before the worker."""
        kind, _ = self.inbox.pop()
        if kind == "queued":
            self.inbox.append((kind, _))  # nobody waits for a queued start: not withdrawable
            return
        self._run(self.core.withdraw())

    @rule()
    def interrupt(self) -> None:
        try:
            action = self.core.interrupt()
        except SessionClosedError:
            assert self.core.closed
            return
        if action is not None:
            assert action.turn == self.core.active
            self.interrupted.add(action.turn.turn_id)
        elif self.core.starting:
            self.interrupt_wanted = True  # applied once the start is confirmed

    # -- the worker --
    @rule()
    @precondition(lambda self: self.inbox and self.in_flight is None)
    def take(self) -> None:
        kind, request = self.inbox.popleft()
        try:
            decision = self.core.take(kind, request)
        except (SessionClosedError, NoActiveTurnError):
            return
        if isinstance(decision, StartTurn):
            assert self.core.phase is Phase.STARTING
            self.driver_starts.append(decision.request.prompt)
            self.in_flight = ("start", decision.request)
        elif isinstance(decision, SteerTurn):
            assert decision.target.turn_id in self.running
            self.in_flight = ("steer", decision.request)

    @rule(ok=st.booleans(), enqueue=st.booleans())
    @precondition(lambda self: self.in_flight is not None)
    def confirm(self, ok: bool, enqueue: bool) -> None:
        what, _ = self.in_flight
        self.in_flight = None
        if what == "start":
            if ok:
                self.turns += 1
                new = ref(self.turns)
                if not self.core.closed:
                    self.running.add(new.turn_id)
                closed = self.core.closed
                self._run(self.core.started(new))
                if self.interrupt_wanted and not closed:
                    assert new.turn_id in self.interrupted, "a deferred interrupt was lost"
            else:
                self._run(self.core.start_failed())
            self.interrupt_wanted = False
        elif ok:
            target = self.core.active
            if enqueue or target is None:
                self.turns += 1
                new = ref(self.turns)
                if not self.core.closed:
                    self.running.add(new.turn_id)
            else:
                new = target
            self.core.steered(new)
        else:
            self.core.steer_failed()

    @rule(ok=st.booleans(), enqueue=st.booleans())
    @precondition(lambda self: self.inbox and self.in_flight is None)
    def work(self, ok: bool, enqueue: bool) -> None:
        """The worker's common path: take the next command and have the driver answer it."""
        self.take()
        if self.in_flight is not None:
            self.confirm(ok, enqueue)

    # -- the driver's events --
    @rule(data=st.data(), kind=st.sampled_from([EventKind.TURN_COMPLETED, EventKind.ERROR,
                                                EventKind.TURN_INTERRUPTED]))  # fmt: skip
    def end_a_turn(self, data, kind: EventKind) -> None:
        choices = [*sorted(self.running), "", "stranger"]
        tid = data.draw(st.sampled_from(choices))
        before = (self.core.active, list(self.core.outstanding))
        self._run(self.core.event(TurnEvent(kind=kind, turn_id=tid, thread_id="thr-2")))
        if tid in self.running:
            self.running.discard(tid)
            self.ended.add(tid)
        elif not self.core.closed:
            # an event of no pending turn (no id, someone else's) changes nothing
            assert before == (self.core.active, list(self.core.outstanding))

    @rule(graceful=st.booleans())
    def close(self, graceful: bool) -> None:
        was_busy, was_closed = self.core.busy, self.core.closed
        actions = self.core.close(graceful)
        if was_closed:
            assert actions == []
        else:
            assert actions == [CloseDriver(graceful=graceful and not was_busy)]
        self._run(actions)
        # the closed driver's run ends: the trio layer then always reports the end
        self._run(self.core.fail("closed", None, None))
        assert self.core.active is None and not self.core.outstanding
        self.running.clear()

    @rule()
    def driver_fails(self) -> None:
        was_closed = self.core.closed
        self._run(self.core.fail("crashed", RuntimeError("x"), RuntimeError("x")))
        if not was_closed:
            assert self.core.state is SessionState.FAILED
        assert self.core.active is None and not self.core.outstanding

    # -- invariants --
    @invariant()
    def consistent(self) -> None:
        core = self.core
        if core is None:
            return
        pending = [t.turn_id for t in core.pending_turns()]
        assert len(pending) == len(set(pending)), "a turn is pending twice"
        if not core.closed:
            assert set(pending) == self.running, "the core and the driver disagree on turns"
        assert core.handed == sum(1 for k, _ in self.inbox), "a handed command is lost"
        assert core.starting == (self.in_flight is not None and self.in_flight[0] == "start")
        assert core.steering == (self.in_flight is not None and self.in_flight[0] == "steer")
        busy = bool(pending) or core.starting or core.steering or core.handed > 0
        assert core.busy == busy
        if not core.closed and not core.busy:
            assert not core.queue, "input waits while the session is idle"
            assert core.state is SessionState.IDLE
        if core.closed:
            assert not core.queue and core.state in (SessionState.CLOSED, SessionState.FAILED)
        if core.active is None:
            assert not core.outstanding
        assert len(self.closes) <= 1

    def teardown(self) -> None:
        """Drain: the worker takes everything, the driver confirms and ends every turn; the
        session must end idle (or closed) with nothing pending."""
        core = self.core
        if core is None:
            return
        for _ in range(200):
            if self.in_flight is not None:
                self.confirm(ok=True, enqueue=False)
            elif self.inbox:
                self.take()
            elif self.running:
                tid = sorted(self.running)[0]
                self.running.discard(tid)
                self.ended.add(tid)
                self._run(core.event(TurnEvent(kind=EventKind.TURN_COMPLETED, turn_id=tid)))
            else:
                break
            self.consistent()
        assert not self.inbox and self.in_flight is None and not self.running
        assert core.state in (SessionState.IDLE, SessionState.CLOSED, SessionState.FAILED)
        assert not core.busy and not core.queue
        try:
            core.take("submit", req("x"))
        except SessionError:
            pass
        else:  # pragma: no cover
            raise AssertionError("take with nothing handed over was accepted")


CoreMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
TestCoreMachine = CoreMachine.TestCase


# -- bounded exhaustive exploration: every state reachable in DEPTH commands, every steer mode -----
DEPTH = 5


def _end_first(m: CoreMachine) -> None:
    tid = min(m.running) if m.running else "stranger"
    if tid in m.running:
        m.running.discard(tid)
        m.ended.add(tid)
    m._run(m.core.event(TurnEvent(kind=EventKind.TURN_COMPLETED, turn_id=tid)))


def _end_stray(m: CoreMachine) -> None:
    before = (m.core.active, list(m.core.outstanding))
    m._run(m.core.event(TurnEvent(kind=EventKind.ERROR, turn_id="")))
    assert before == (m.core.active, list(m.core.outstanding))


OPS = {
    "submit": lambda m: m.submit("a"),
    "steer": lambda m: m.steer("s1"),
    "work_ok": lambda m: m.work(True, False) if m.inbox and m.in_flight is None else None,
    "work_fail": lambda m: m.work(False, False) if m.inbox and m.in_flight is None else None,
    "take": lambda m: m.take() if m.inbox and m.in_flight is None else None,
    "confirm_enqueue": lambda m: m.confirm(True, True) if m.in_flight else None,
    "withdraw": lambda m: m.withdraw_newest() if m.inbox else None,
    "end": _end_first,
    "stray": _end_stray,
    "interrupt": lambda m: m.interrupt(),
    "close": lambda m: m.close(False),
}


def _key(m: CoreMachine) -> tuple:
    c = m.core
    return (c.phase, c.active, tuple(c.outstanding), len(c.queue), c.handed, c.starting,
            c.steering, c.interrupt_pending, tuple(k for k, _ in m.inbox),
            m.in_flight and m.in_flight[0], frozenset(m.running), len(m.closes))  # fmt: skip


@pytest.mark.parametrize("mode", list(SteerMode))
def test_every_state_reachable_in_a_few_commands_is_consistent(mode):
    """Hypothesis samples long runs; this visits every distinct state reachable in DEPTH
    commands (breadth first), so the simple interleavings — a withdrawn submit ahead of a
    queued one, a failed start with input queued behind it — are always covered."""
    import copy

    start = CoreMachine()
    start.open(mode)
    seen = {_key(start)}
    frontier: list[tuple[CoreMachine, tuple[str, ...]]] = [(start, ())]
    for _ in range(DEPTH):
        nxt = []
        for machine, path in frontier:
            for op, apply in OPS.items():
                m = copy.deepcopy(machine)
                try:
                    apply(m)
                    m.consistent()
                    key = _key(m)
                    if key in seen:
                        continue
                    seen.add(key)
                    copy.deepcopy(m).teardown()
                except AssertionError as exc:
                    raise AssertionError(f"{mode.value}: {' → '.join((*path, op))}: {exc}") from exc
                nxt.append((m, (*path, op)))
        frontier = nxt
    assert len(seen) > 10
