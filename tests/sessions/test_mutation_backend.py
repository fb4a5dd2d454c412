"""Tests that kill the mutation survivors of sessions/backend.py (docs/mutation-testing.md).

What no other test pinned: events of other turns reach no callback, file changes reach the
result, ``steer``'s refusals and the steered request, concurrent steers hold the run, the
typed errors of a callback failure and an idle timeout carry the provider and the stderr tail,
the config's ``callback_buffer`` and the provider reach the run's dispatcher, per-key locks do
not outlive their conversation, an idle close never takes a conversation whose next run waits
for a turn slot, a submit that fails on a closed session drops it, a run cancelled while its
turn starts does not wait for an interrupt, and which approval requests hold the idle timer.
All on the scripted driver and the autojump clock.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import (
    AgentError,
    AliceError,
    CallbackError,
    ConfigError,
    EmptyPromptError,
    IdleTimeoutError,
    NoActiveTurnError,
    RunTimeoutError,
    TransportClosedError,
)
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.protocols.approval import ApprovalRequest
from alice_trio.providers.base import RunLimits
from alice_trio.providers.codex import CodexConfig
from alice_trio.sessions.backend import SessionBackend, _Asking, _Turn
from alice_trio.sessions.driver import SteerMode
from alice_trio.sessions.pool import ScalingConfig


class Factory:
    def __init__(self, driver: type[ScriptedDriver] = ScriptedDriver, **kw: object) -> None:
        self.driver, self.kw = driver, kw
        self.drivers: list[ScriptedDriver] = []

    def __call__(self, config: object, initial: object) -> ScriptedDriver:
        d = self.driver(**self.kw)  # type: ignore[arg-type]
        self.drivers.append(d)
        return d


def keyed(text: str, key: str = "conv-1", **kw: object) -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": key}, **kw)  # type: ignore[arg-type]


async def until(condition) -> None:  # type: ignore[no-untyped-def]
    while not condition():  # noqa: ASYNC110 (polls another task's driver, autojump clock)
        await trio.sleep(0.01)


async def first_turn(f: Factory) -> tuple[ScriptedDriver, object]:
    await until(lambda: f.drivers and f.drivers[-1].started)
    d = f.drivers[-1]
    return d, d.started[-1][0]


# -- what a run collects ---------------------------------------------------------------------------


async def test_events_of_other_turns_reach_no_callback(autojump_clock) -> None:
    f = Factory()
    progress: list[str] = []
    async with SessionBackend("codex", driver_factory=f) as b:

        async def agent() -> None:
            d, ref = await first_turn(f)
            for turn_id in ("t-other", ""):  # §13.6: not this run's turn
                await d.push(TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="foreign",
                                       turn_id=turn_id))  # fmt: skip
            await d.finish(ref, text="mine")

        async with trio.open_nursery() as n:
            n.start_soon(agent)
            result = await b.run(keyed("x", on_progress=progress.append))
    assert result.reply == "mine" and progress == ["mine"]


async def test_the_turns_file_changes_are_in_the_result(autojump_clock) -> None:
    f = Factory()
    change = FileChange(path="a.py", kind=FileChangeKind.ADDED, added_lines=2)
    async with SessionBackend("codex", driver_factory=f) as b:

        async def agent() -> None:
            d, ref = await first_turn(f)
            await d.push(TurnEvent(kind=EventKind.FILE_CHANGE, text="added a.py",
                                   files=(change,), turn_id=ref.turn_id))  # fmt: skip
            await d.finish(ref, text="done")

        async with trio.open_nursery() as n:
            n.start_soon(agent)
            result = await b.run(keyed("x"))
    assert result.file_changes == (change,)


# -- steer -----------------------------------------------------------------------------------------


async def test_steer_refusals_name_the_call_and_the_provider(autojump_clock) -> None:
    f = Factory(steer_mode=SteerMode.NATIVE_ENQUEUE, enqueue=True)
    release = trio.Event()

    async def slow_progress(text: str) -> None:
        await release.wait()

    async with SessionBackend("codex", driver_factory=f) as b:
        with pytest.raises(ConfigError, match=r"SessionBackend\.steer: request"):
            await b.steer("not a request")  # type: ignore[arg-type]
        with pytest.raises(NoActiveTurnError) as none:
            await b.steer(keyed("no session"))
        assert none.value.provider == "codex"
        async with trio.open_nursery() as n:
            n.start_soon(b.run, keyed("x", on_progress=slow_progress))
            d, ref = await first_turn(f)
            steered = await b.steer(keyed("more"))
            assert d.steered[0][1].provider == "codex"  # the steered request names it
            await d.finish(ref, text="one")
            await d.finish(steered, text="two")
            await trio.testing.wait_all_tasks_blocked()
            # the turns ended, the run still delivers progress: nothing to steer into
            with pytest.raises(NoActiveTurnError) as finished:
                await b.steer(keyed("late"))
            assert finished.value.provider == "codex"
            release.set()
        with pytest.raises(NoActiveTurnError) as after:  # the run returned: no turn
            await b.steer(keyed("after"))
        assert after.value.provider == "codex"


class GatedSteer(ScriptedDriver):
    """A driver whose steers each wait for their own gate (a slow ``turn/steer`` answer)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.gates = [trio.Event(), trio.Event()]
        self.calls = 0

    async def steer_turn(self, turn, request):  # type: ignore[no-untyped-def]
        gate = self.gates[self.calls]
        self.calls += 1
        await gate.wait()
        return await super().steer_turn(turn, request)


async def test_the_run_waits_for_every_steer_in_flight(autojump_clock) -> None:
    """Steer A returns (its turn t2), steer B is still in flight when t1 and t2 end: the run
    waits for B, whose turn t3 gives the reply."""
    f = Factory(GatedSteer, steer_mode=SteerMode.NATIVE_ENQUEUE, enqueue=True)
    box: list[str] = []
    async with SessionBackend("codex", driver_factory=f) as b:

        async def run() -> None:
            box.append((await b.run(keyed("first"))).reply)

        async with trio.open_nursery() as n:
            n.start_soon(run)
            d, ref = await first_turn(f)
            assert isinstance(d, GatedSteer)
            n.start_soon(b.steer, keyed("second"))
            n.start_soon(b.steer, keyed("third"))
            await trio.testing.wait_all_tasks_blocked()
            d.gates[0].set()  # A answers; B goes to the driver and waits there
            await until(lambda: d.calls == 2 and len(d.steered) == 1)
            await d.finish(ref, text="one")
            await d.finish(d.steered[0][0], text="two")
            await trio.testing.wait_all_tasks_blocked()
            assert not box  # B is in flight: the run must not end under it
            d.gates[1].set()
            await until(lambda: len(d.steered) == 2)
            await d.finish(d.steered[1][0], text="three")
    assert box == ["three"]


# -- the typed errors carry the provider and the stderr tail -------------------------------------


async def test_a_callback_failure_names_the_provider_and_the_error(autojump_clock) -> None:
    def boom(text: str) -> None:
        raise ValueError("callback bug")

    async with SessionBackend("codex", driver_factory=Factory(auto_reply=True)) as b:
        with pytest.raises(CallbackError) as info:
            await b.run(keyed("x", on_progress=boom))
    err = info.value
    assert err.provider == "codex" and err.stderr_tail == "scripted stderr"
    assert "codex: callback raised ValueError('callback bug')" in str(err)


async def test_an_idle_timeout_names_the_provider_and_the_silence(autojump_clock) -> None:
    f = Factory()
    async with SessionBackend("codex", CodexConfig(idle_timeout=3), driver_factory=f) as b:
        with pytest.raises(IdleTimeoutError) as info:
            await b.run(keyed("x"))
    err = info.value
    assert err.provider == "codex" and err.stderr_tail == "scripted stderr"
    assert err.idle_seconds == 3
    assert "codex idle timeout: no output for 3 s" in str(err)


async def test_the_configs_callback_buffer_and_provider_reach_the_dispatcher(
    autojump_clock,
) -> None:
    """With ``callback_buffer=2`` and a blocked ``on_events``, informational events are shed
    and reported once, naming the provider (with the default 4096 nothing would be shed)."""
    f = Factory()
    release = trio.Event()
    batches: list[list[TurnEvent]] = []

    async def blocked(events) -> None:  # type: ignore[no-untyped-def]
        batches.append(list(events))
        await release.wait()

    config = CodexConfig(limits=RunLimits(callback_buffer=2))
    async with SessionBackend("codex", config, driver_factory=f) as b:

        async def agent() -> None:
            d, ref = await first_turn(f)
            for i in range(40):
                await d.push(TurnEvent(kind=EventKind.TOOL_USE, text=f"tool {i}",
                                       turn_id=ref.turn_id))  # fmt: skip
            release.set()
            await d.finish(ref, text="done")

        async with trio.open_nursery() as n:
            n.start_soon(agent)
            result = await b.run(keyed("x", on_events=blocked))
    assert result.reply == "done"
    notice = batches[-1][-1]
    assert notice.kind is EventKind.SKIPPED and notice.provider == "codex"
    assert "informational events dropped" in notice.text


# -- nothing outlives its conversation -------------------------------------------------------------


async def test_a_keys_lock_is_gone_with_its_conversation(autojump_clock) -> None:
    """Idle close, a conversation closed to make room: the per-key lock goes with the
    conversation (not one lock per key ever used, for good)."""
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, idle_ttl=5) as b:
        await b.run(keyed("x", key="idle"))
        assert list(b._locks) == ["idle"]  # the live conversation keeps its lock
        await trio.sleep(6)
        assert b.open_sessions() == [] and b._locks == {}

    scaling = ScalingConfig(warm=0, max_conversations=1)
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        await b.run(keyed("x", key="a"))
        await b.run(keyed("x", key="b"))  # closes "a" to make room
        await trio.testing.wait_all_tasks_blocked()
        assert b.open_sessions() == ["b"] and list(b._locks) == ["b"]


async def test_an_idle_close_waits_for_a_run_that_waits_for_a_turn_slot(autojump_clock) -> None:
    """The idle timer of "a" fires while a run of "a" holds its key and waits for the only turn
    slot: the conversation is not closed under that run, which then reuses it."""
    f = Factory()
    scaling = ScalingConfig(warm=0, max_turns=1)
    with trio.fail_after(600):  # a mutant may leave the runs waiting for each other
        await _idle_close_vs_turn_slot(f, scaling)


async def _idle_close_vs_turn_slot(f: Factory, scaling: ScalingConfig) -> None:
    async with SessionBackend("codex", driver_factory=f, idle_ttl=5, scaling=scaling) as b:

        async def agent() -> None:
            d, ref = await first_turn(f)
            await d.finish(ref, text="a1")

        async with trio.open_nursery() as n:
            n.start_soon(agent)
            await b.run(keyed("one", key="a"))  # t=0: "a" idle from now, closes at t=5
        results: list[str] = []

        async def run(text: str, key: str) -> None:
            results.append((await b.run(keyed(text, key=key))).reply)

        async with trio.open_nursery() as n:
            n.start_soon(run, "two", "b")  # holds the turn slot
            await until(lambda: len(f.drivers) == 2)
            d_b, ref_b = await first_turn(f)
            await trio.sleep(2)
            n.start_soon(run, "three", "a")  # holds "a"'s lock, waits for the slot
            await trio.sleep(5)  # "a"'s idle timer fired meanwhile
            await d_b.finish(ref_b, text="b1")
            await until(lambda: len(f.drivers[0].started) == 2)
            d_a = f.drivers[0]
            await d_a.finish(d_a.started[1][0], text="a2")
        assert sorted(results) == ["a2", "b1"]
        assert len(f.drivers) == 2 and f.drivers[0].closed_with == []  # "a" was reused


# -- submit and cancellation ----------------------------------------------------------------------


class HeldStart(ScriptedDriver):
    """A driver whose turn starts never answer."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.start_gate = trio.Event()


async def test_a_submit_refused_by_a_session_that_closed_drops_it(autojump_clock) -> None:
    f = Factory(HeldStart)
    async with SessionBackend("codex", driver_factory=f) as b:

        async def close_under_the_start() -> None:
            await until(lambda: bool(f.drivers))
            d = f.drivers[0]
            await trio.testing.wait_all_tasks_blocked()  # the start waits for its gate
            d.fail_start = TransportClosedError("codex exited while starting")
            d.end()
            await trio.testing.wait_all_tasks_blocked()
            assert d.start_gate is not None
            d.start_gate.set()

        async with trio.open_nursery() as n:
            n.start_soon(close_under_the_start)
            with pytest.raises(TransportClosedError):
                await b.run(keyed("x"))
        assert b.open_sessions() == []


async def test_a_run_cancelled_while_its_turn_starts_does_not_wait_to_interrupt(
    autojump_clock,
) -> None:
    """No turn id yet: nothing to interrupt, the session is dropped at once (not after the
    interrupt deadline)."""
    f = Factory(HeldStart)
    async with SessionBackend("codex", driver_factory=f, interrupt_deadline=100) as b:
        start = trio.current_time()
        with trio.move_on_after(1):
            await b.run(keyed("x"))
        assert trio.current_time() - start < 50
        assert f.drivers[0].started == [] and b.open_sessions() == []


# -- which approval requests hold the idle timer ---------------------------------------------------


def approval(thread_id: str = "", turn_id: str = "") -> ApprovalRequest:
    return ApprovalRequest(provider="codex", kind="command", thread_id=thread_id, turn_id=turn_id)


def test_an_approval_waits_for_the_turn_it_names_or_could_belong_to() -> None:
    asking = _Asking(lambda request: None)
    turn = _Turn(provider="codex", awaited={"t1"}, thread_id="thr-1")
    assert not asking.waiting(turn)  # nothing pending
    cases = [
        (approval(turn_id="t1"), True),  # its turn
        (approval(thread_id="thr-1", turn_id="t9"), False),  # another turn of the thread
        (approval(), True),  # no ids: counts as the turn's
        (approval(thread_id="thr-1"), True),  # this thread, no turn id
        (approval(thread_id="thr-2"), False),  # another conversation's
    ]
    for request, expected in cases:
        asking.pending[:] = [request]
        assert asking.waiting(turn) is expected, request
    no_thread = _Turn(provider="codex", awaited={"t1"})
    asking.pending[:] = [approval(thread_id="thr-2")]
    assert asking.waiting(no_thread)  # the turn knows no thread yet: it may be its own
    # submit still in flight (no turn id known yet): the agent may ask before it returned
    # (ACP answers start_turn once the prompt is written); its thread decides
    submitting = _Turn(provider="codex", thread_id="thr-1")
    for request, expected in [
        (approval(thread_id="thr-1", turn_id="acp-2"), True),
        (approval(thread_id="thr-2", turn_id="acp-2"), False),
    ]:
        asking.pending[:] = [request]
        assert asking.waiting(submitting) is expected, request


# -- arguments and the errors' fields --------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"interrupt_deadline": -1.0}, "SessionBackend: interrupt_deadline"),
        ({"start_timeout": float("inf")}, "SessionBackend: start_timeout"),
        ({"driver_factory": 42}, "SessionBackend: driver_factory"),
        ({"scaling": "big"}, "SessionBackend: scaling: expected a ScalingConfig or None"),
    ],
)
def test_a_bad_argument_is_named(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        SessionBackend("codex", **kwargs)  # type: ignore[arg-type]


async def test_run_refusals_name_the_call_and_the_provider(autojump_clock) -> None:
    b = SessionBackend("codex", driver_factory=Factory())
    with pytest.raises(ConfigError, match=r"async with SessionBackend\(\.\.\.\)"):
        await b.run(keyed("x"))
    async with b:
        with pytest.raises(ConfigError, match=r"SessionBackend\.run: request"):
            await b.run("x")  # type: ignore[arg-type]
        with pytest.raises(EmptyPromptError) as empty:
            await b.run(keyed("   "))
    assert empty.value.provider == "codex"


async def test_errors_of_a_failed_turn_carry_provider_partial_and_stderr(autojump_clock) -> None:
    f = Factory()
    async with SessionBackend("codex", CodexConfig(timeout=5), driver_factory=f) as b:

        async def fail(end, i: int) -> None:  # type: ignore[no-untyped-def]
            await until(lambda: len(f.drivers) == i + 1)  # each key its own session
            d, ref = await first_turn(f)
            await d.push(TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="so far",
                                   turn_id=ref.turn_id))  # fmt: skip
            await end(d, ref)

        async def error_event(d, ref) -> None:  # type: ignore[no-untyped-def]
            await d.finish(ref, EventKind.ERROR, error="model overloaded")

        async def crash(d, ref) -> None:  # type: ignore[no-untyped-def]
            d.end(TransportClosedError("codex exited: exit status 9"))

        async def quiet_end(d, ref) -> None:  # type: ignore[no-untyped-def]
            d.end()

        async def silence(d, ref) -> None:  # type: ignore[no-untyped-def]
            pass

        seen = []
        for i, end in enumerate((error_event, crash, quiet_end, silence)):
            async with trio.open_nursery() as n:
                n.start_soon(fail, end, i)
                with pytest.raises(AliceError) as info:
                    await b.run(keyed("x", key=end.__name__))
            err = info.value
            assert err.provider == "codex" and err.stderr_tail == "scripted stderr", end
            assert err.partial is not None and err.partial.reply == "so far", end
            seen.append((type(err), str(err)))
    assert seen[0][0] is AgentError and seen[0][1].startswith("model overloaded")
    assert seen[1][0] is TransportClosedError and "exit status 9" in seen[1][1]
    assert seen[2][0] is TransportClosedError
    assert seen[2][1].startswith("codex process ended during the turn")  # the session's
    assert seen[3][0] is RunTimeoutError
    assert seen[3][1].startswith("llm timeout: codex turn exceeded 5 s")


async def test_the_backends_exit_closes_gracefully_unless_the_body_failed(autojump_clock) -> None:
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f) as b:
        await b.run(keyed("x"))
    assert f.drivers[0].closed_with == [True]
    with pytest.raises(ValueError, match="body"):
        async with SessionBackend("codex", driver_factory=f) as b:
            await b.run(keyed("x"))
            raise ValueError("body")
    assert True not in f.drivers[1].closed_with  # killed with the failing body, not closed


async def test_a_session_that_died_between_runs_is_replaced_resuming_its_thread(
    autojump_clock,
) -> None:
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f) as b:
        first = await b.run(keyed("one"))
        assert first.next_thread_id == "thr-1"
        f.drivers[0].end(TransportClosedError("codex exited"))
        await trio.testing.wait_all_tasks_blocked()
        second = await b.run(keyed("two"))
        assert second.reply == "reply to two" and len(f.drivers) == 2
        assert f.drivers[1].started[0][1].thread_id == "thr-1"  # resumed
        assert b.open_sessions() == ["conv-1"]
