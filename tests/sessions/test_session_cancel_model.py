"""Cancellation at every checkpoint, as a Hypothesis state machine (issue 12).

Each machine drives one session over a fake peer — the in-memory scripted driver in every steer
mode, the claude stream-json driver over an echo claude, the one-shot driver over the fake CLI,
the opencode serve driver over the in-process fake server — with submit / steer / interrupt,
each possibly cancelled at its k-th scheduling step (``cancel_at``), plus settle and close. The
session runs in a trio loop on a helper thread (Hypothesis' state machines are synchronous; each
rule runs one coroutine there through ``trio.from_thread``).

Invariants: a call raises only an ``AliceError`` or a bare ``trio.Cancelled`` (never a group);
no turn gets two terminal events; settled, every turn the driver started has ended exactly once
and no terminal event names a turn that never started (no phantom); every accepted submit was
started (queued input too) and a cancelled one at most once; the state returns to idle with an
empty queue; closed, the session left no task and no process behind.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from pathlib import Path
from typing import Any

import trio
import trio.testing
from fake_opencode import SID, FakeOpenCode, assistant, idle, user_msg
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from alice_trio.errors import AliceError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.claude_stream import ClaudeStreamDriver
from alice_trio.sessions.driver import Emit, SteerMode, SubmitMode, SubmitResult, TurnRef
from alice_trio.sessions.oneshot_driver import OneShotDriver
from alice_trio.sessions.opencode_serve import OpenCodeServeDriver
from alice_trio.sessions.session import SessionState, open_session
from cancel_at import call_cancelled_at

from fake_provider import FAST, PROVIDER, FakeConfig

ECHO = Path(__file__).parent / "fake_claude_echo.py"
SETTLE = 30.0  # seconds a settle may take on a loaded machine (a hang fails, nothing is timed)


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


# -- fake peers ----------------------------------------------------------------------------------
class AutoDriver:
    """In memory: every turn answers ``echo: <prompt>`` after a short while (trio time), steers
    join the turn (``native``) or get a turn of their own (``native_enqueue``), an interrupt
    ends the turn ``turn_interrupted``. Each turn ends exactly once."""

    def __init__(self, mode: SteerMode) -> None:
        self.steer_mode = mode
        self._ids = itertools.count(1)
        self._emit: Emit | None = None
        self._nursery: trio.Nursery | None = None
        self._ended: set[str] = set()
        self._stop = trio.Event()

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def _turn(self, thread: str, prompt: str) -> TurnRef:
        assert self._nursery is not None
        ref = TurnRef(thread_id=thread, turn_id=f"auto-{next(self._ids)}")
        self._nursery.start_soon(self._answer, ref, prompt)
        return ref

    async def _answer(self, ref: TurnRef, prompt: str) -> None:
        await trio.sleep(0.05)
        await self._end(ref, EventKind.TURN_COMPLETED, f"echo: {prompt}")

    async def _end(self, ref: TurnRef, kind: EventKind, text: str = "") -> None:
        if ref.turn_id in self._ended:
            return
        self._ended.add(ref.turn_id)
        assert self._emit is not None
        if text:
            await self._emit(TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=text,
                                       turn_id=ref.turn_id, thread_id=ref.thread_id))  # fmt: skip
        await self._emit(TurnEvent(kind=kind, turn_id=ref.turn_id, thread_id=ref.thread_id))

    async def start_turn(self, request: RunRequest) -> TurnRef:
        await trio.sleep(0.01)  # a start takes a few checkpoints, like a real write
        return self._turn("thr", request.prompt)

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        await trio.sleep(0.01)
        if self.steer_mode is SteerMode.NATIVE_ENQUEUE:
            return self._turn(turn.thread_id, request.prompt)
        return turn

    async def interrupt_turn(self, turn: TurnRef) -> None:
        await trio.lowlevel.checkpoint()
        await self._end(turn, EventKind.TURN_INTERRUPTED)

    async def aclose(self, *, graceful: bool) -> None:
        self._stop.set()


class Recording:
    """Wraps a driver; remembers every turn the driver accepted (the model's ground truth)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.refs: list[TurnRef] = []
        self.starts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def steer_mode(self) -> SteerMode:
        return self.inner.steer_mode

    async def start_turn(self, request: RunRequest) -> TurnRef:
        ref = await self.inner.start_turn(request)
        self.refs.append(ref)
        self.starts += 1
        return ref

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        ref = await self.inner.steer_turn(turn, request)
        self.refs.append(ref)
        return ref


class EchoOpenCode(FakeOpenCode):
    """The fake opencode server answering every prompt with ``echo: <text>``."""

    def __init__(self) -> None:
        super().__init__()
        self._n = itertools.count(1)

    async def handle(self, request):
        if request.url.path.endswith("/prompt_async"):
            import json

            body = json.loads(request.content)
            text = "".join(p.get("text", "") for p in body.get("parts", []))
            n = next(self._n)
            answer = assistant(f"msg_a{n}", f"msg_u{n}", f"echo: {text}")
            self.on_prompt.append(user_msg(f"msg_u{n}", text) + answer + idle())
        return await super().handle(request)


def claude_peer() -> Any:
    inv = Invocation(argv=(sys.executable, str(ECHO)), env={"FAKE_CLAUDE_DELAY": "0.02"},
                     limits=RunLimits(kill_grace=0.5))  # fmt: skip
    return ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)


ECHO_RPC = Path(__file__).parent / "fake_echo_rpc.py"


def codex_peer() -> Any:
    from alice_trio.providers.codex import CodexConfig
    from alice_trio.sessions.codex_app_server import CodexAppServerDriver

    inv = Invocation(argv=(sys.executable, str(ECHO_RPC), "codex"), limits=FAST)
    return CodexAppServerDriver(CodexConfig(), req("x"), invocation=inv, close_grace=1.0)


def acp_peer() -> Any:
    from alice_trio.sessions.acp import AcpDriver

    inv = Invocation(argv=(sys.executable, str(ECHO_RPC), "acp"), limits=FAST)
    return AcpDriver(inv, req("x"), provider="acp", cwd="/tmp", close_grace=1.0)


def kimi_wire_peer() -> Any:
    from alice_trio.providers.kimi import KimiConfig
    from alice_trio.sessions.kimi_wire import KimiWireDriver

    inv = Invocation(argv=(sys.executable, str(ECHO_RPC), "kimi"), limits=FAST)
    return KimiWireDriver(KimiConfig(), req("x"), invocation=inv, close_grace=1.0)


def oneshot_peer() -> Any:
    cfg = FakeConfig(args=("--text", "echo", "--sleep", "0.02"), limits=FAST)
    return OneShotDriver(PROVIDER, cfg)


def opencode_peer() -> Any:
    fake = EchoOpenCode()
    cfg = OpenCodeConfig(server_url="http://oc.test/", workspace_dir="/tmp/oc-ws")
    return OpenCodeServeDriver(cfg, req("x"), transport=fake.transport, reconnect_delay=0.01)


# -- the machine ---------------------------------------------------------------------------------
class SessionModel(RuleBasedStateMachine):
    """Subclasses set ``make_driver`` (and ``mock_clock`` for in-memory peers)."""

    make_driver: Any = None
    mock_clock = False

    def __init__(self) -> None:
        super().__init__()
        self.driver = Recording(type(self).make_driver())
        self.events: list[TurnEvent] = []
        self.accepted: list[SubmitResult] = []
        self.cancelled_submits = 0
        self.closed = False
        self.escaped: list[BaseException] = []
        self.failure: BaseException | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._trio_thread, daemon=True)
        self._thread.start()
        assert self._ready.wait(60), "the session did not open"
        if self.failure is not None:
            raise self.failure

    # -- the trio side -------------------------------------------------------------------------
    def _trio_thread(self) -> None:
        clock = trio.testing.MockClock(autojump_threshold=0) if self.mock_clock else None
        try:
            trio.run(self._main, clock=clock)
        except BaseException as exc:  # reported by teardown
            self.failure = exc
        finally:
            self._ready.set()
            self._done.set()

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        baseline = _count_tasks()
        async with trio.open_nursery() as nursery:
            async with open_session("fake", initial=req("x"), driver=self.driver,
                                    buffer=math.inf) as session:  # fmt: skip
                self.session = session
                nursery.start_soon(self._collect, session)
                self._ready.set()
                await self._stop.wait()
                if not self.closed:
                    await session.aclose(graceful=True)
        self.left_tasks = _count_tasks() - baseline

    async def _collect(self, session) -> None:
        async for event in session.events():
            self.events.append(event)

    def _run(self, fn: Any, *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=self.token)

    async def _call(self, k: int, fn: Any, *args: Any) -> tuple[bool, Any]:
        raised: list[BaseException] = []
        cancelled, value, _ = await call_cancelled_at(k, fn, *args, raised=raised)
        for exc in raised:
            if isinstance(exc, BaseExceptionGroup) or not isinstance(
                exc, AliceError | trio.Cancelled
            ):
                self.escaped.append(exc)
        return cancelled, value

    # -- rules -----------------------------------------------------------------------------------
    @rule(text=st.sampled_from(["hello"]), k=st.integers(0, 6))  # retries: one text
    def submit(self, text: str, k: int) -> None:
        cancelled, value = self._run(self._call, k, self.session.submit, req(text))
        if isinstance(value, SubmitResult):
            self.accepted.append(value)
        elif cancelled:
            self.cancelled_submits += 1

    @rule(k=st.integers(0, 8))
    def steer(self, k: int) -> None:
        _, value = self._run(self._call, k, self.session.steer, req("more"))
        if isinstance(value, SubmitResult):
            self.accepted.append(value)

    @rule(k=st.integers(0, 6))
    def interrupt(self, k: int) -> None:
        self._run(self._call, k, self.session.interrupt)

    @rule()
    @precondition(lambda self: not self.closed)
    def settle(self) -> None:
        """Wait until every turn ended; then the session is idle and every answer is counted."""
        self._run(self._settle)
        self.check_settled()

    @rule()
    def close(self) -> None:
        self._run(self._close)

    async def _close(self) -> None:
        await self._settle()
        self.closed = True
        await self.session.aclose()

    async def _settle(self) -> None:
        if self.closed:
            return
        with trio.fail_after(SETTLE):
            while True:
                await trio.sleep(0.01)
                ended = {e.turn_id for e in self.events if e.kind.terminal}
                if not self.session.busy and {r.turn_id for r in self.driver.refs} <= ended:
                    return

    # -- invariants --------------------------------------------------------------------------------
    def check_settled(self) -> None:
        assert not self.escaped, f"escaped the API: {self.escaped!r}"
        terminal = [e.turn_id for e in self.events if e.kind.terminal]
        assert len(terminal) == len(set(terminal)), "a turn ended twice"
        known = {r.turn_id for r in self.driver.refs}
        phantoms = {t for t in terminal if t not in known and not t.startswith("queued-start-")}
        assert not phantoms, f"terminal events of turns that never started: {phantoms}"
        assert known <= set(terminal), "a started turn never ended"
        for result in self.accepted:
            if result.mode is not SubmitMode.QUEUED:
                assert result.turn_id in known
        # every accepted submit that was not steered started a turn (queued ones too); a
        # cancelled submit started one at most
        wanted = sum(1 for r in self.accepted if r.mode is not SubmitMode.STEERED)
        assert wanted <= self.driver.starts <= wanted + self.cancelled_submits
        if not self.closed:
            assert self.session.state is SessionState.IDLE
            assert self.session.queue_depth == 0 and self.session.active_turn is None

    def teardown(self) -> None:
        try:
            if self.failure is None and not self._done.is_set():
                if not self.closed:
                    self._run(self._settle)
                    self.check_settled()
                self._run(self._stop_main)
            assert self._done.wait(60), "the session did not close"
        finally:
            self._thread.join(60)
        if self.failure is not None:
            raise self.failure
        assert self.left_tasks == 0, f"{self.left_tasks} task(s) left running"
        proc = getattr(self.driver.inner, "_proc", None)
        if proc is not None:
            assert proc.returncode is not None, "the agent process is still running"

    async def _stop_main(self) -> None:
        self._stop.set()


def _count_tasks() -> int:
    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    return walk(trio.lowlevel.current_root_task())


SETTINGS = settings(
    max_examples=12, stateful_step_count=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip


def _machine(name: str, make: Any, *, mock: bool = False) -> type[SessionModel]:
    cls = type(name, (SessionModel,), {"make_driver": staticmethod(make), "mock_clock": mock})
    cls.TestCase.settings = SETTINGS
    return cls


TestScriptedQueue = _machine(
    "ScriptedQueue", lambda: AutoDriver(SteerMode.QUEUE_WHEN_BUSY), mock=True
).TestCase
TestScriptedNative = _machine("ScriptedNative", lambda: AutoDriver(SteerMode.NATIVE),
                              mock=True).TestCase  # fmt: skip
TestScriptedEnqueue = _machine(
    "ScriptedEnqueue", lambda: AutoDriver(SteerMode.NATIVE_ENQUEUE), mock=True
).TestCase
TestClaudeStream = _machine("ClaudeStream", claude_peer).TestCase
TestOneShotDriver = _machine("OneShot", oneshot_peer).TestCase
TestOpenCodeServe = _machine("OpenCodeServe", opencode_peer).TestCase
TestCodexAppServer = _machine("CodexAppServer", codex_peer).TestCase
TestAcp = _machine("Acp", acp_peer).TestCase
TestKimiWire = _machine("KimiWire", kimi_wire_peer).TestCase
assert SID


async def test_the_echo_rpc_peers_answer_steer_and_interrupt():
    """The fake peers above really run turns (a model over a silent peer would prove nothing)."""
    for make in (codex_peer, acp_peer, kimi_wire_peer, claude_peer, opencode_peer):
        async with open_session("fake", initial=req("x"), driver=make()) as s:
            first = await s.submit(req("hello"))
            with trio.fail_after(20):
                async for ev in s.events():
                    if ev.kind.terminal and ev.turn_id == first.turn_id:
                        break
            assert ev.kind is EventKind.TURN_COMPLETED, make
            second = await s.submit(req("again"))
            await s.interrupt()
            with trio.fail_after(20):
                async for ev in s.events():
                    if ev.kind.terminal and ev.turn_id == second.turn_id:
                        break
            assert ev.kind.terminal and s.state is SessionState.IDLE
