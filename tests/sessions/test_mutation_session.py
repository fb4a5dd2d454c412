"""Behaviour the session and its core promise that no test pinned before mutation testing
(docs/mutation-testing.md): each test here killed surviving mutants of ``sessions/session.py``
or ``protocols/session_core.py`` and fails with the mutated line put back."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import (
    EmptyPromptError,
    ProtocolError,
    SessionClosedError,
    SessionStateError,
    TransportClosedError,
)
from alice_trio.models import EventKind, RunRequest
from alice_trio.protocols.session_core import (
    InterruptTurn,
    SessionCore,
    SteerMode,
    TurnRef,
)
from alice_trio.sessions.session import SessionState, open_session


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


# -- interrupt during a start -------------------------------------------------------------------


async def test_an_interrupt_during_a_start_reaches_the_turn_once_it_is_known():
    driver = ScriptedDriver(SteerMode.NATIVE)
    driver.start_gate = trio.Event()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        async with trio.open_nursery() as nursery:
            submitted = []

            async def submit() -> None:
                submitted.append(await s.submit(req("one")))

            nursery.start_soon(submit)
            await trio.testing.wait_all_tasks_blocked()
            assert s.state is SessionState.RUNNING and s.active_turn is None  # starting
            await s.interrupt()  # no turn id yet: deferred, not lost
            assert driver.interrupted == []
            driver.start_gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert [t.turn_id for t in driver.interrupted] == [submitted[0].turn_id]
        ended = await s.events().receive()
        assert (ended.kind, ended.turn_id) == (EventKind.TURN_INTERRUPTED, submitted[0].turn_id)
        assert s.state is SessionState.IDLE


async def test_an_interrupt_meant_for_a_failed_start_does_not_hit_the_next_turn():
    driver = ScriptedDriver(SteerMode.NATIVE)
    driver.start_gate = trio.Event()
    driver.fail_start = ProtocolError("bad start")
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        async with trio.open_nursery() as nursery:

            async def submit() -> None:
                with pytest.raises(ProtocolError):
                    await s.submit(req("one"))

            nursery.start_soon(submit)
            await trio.testing.wait_all_tasks_blocked()
            await s.interrupt()  # deferred until the turn is known …
            driver.start_gate.set()  # … but the start fails: nothing to interrupt
        driver.fail_start = None
        second = await s.submit(req("two"))
        await trio.testing.wait_all_tasks_blocked()
        assert driver.interrupted == []
        assert s.active_turn is not None and s.active_turn.turn_id == second.turn_id


def test_core_deferred_interrupt_is_applied_once_and_only_to_the_started_turn():
    core = SessionCore(SteerMode.NATIVE)
    core.submit(req("a"))
    core.take("submit", req("a"))
    assert core.interrupt() is None
    assert core.started(TurnRef(thread_id="t", turn_id="t1")) == [
        InterruptTurn(TurnRef(thread_id="t", turn_id="t1"))
    ]
    # a failed start forgets the deferred interrupt
    core2 = SessionCore(SteerMode.NATIVE)
    core2.submit(req("a"))
    core2.take("submit", req("a"))
    core2.interrupt()
    core2.start_failed()
    core2.submit(req("b"))
    core2.take("submit", req("b"))
    assert core2.started(TurnRef(thread_id="t", turn_id="t2")) == []


# -- errors name the refused command -----------------------------------------------------------


async def test_an_empty_prompt_is_refused_naming_the_provider():
    async with open_session("fake", initial=req("x"), driver=ScriptedDriver()) as s:
        for call in (s.submit, s.steer):
            with pytest.raises(EmptyPromptError) as info:
                await call(req("  "))
            assert info.value.provider == "fake"


async def test_a_closed_session_names_the_refused_command():
    async with open_session("fake", initial=req("x"), driver=ScriptedDriver()) as s:
        await s.aclose()
        for command, call in (
            ("submit", lambda: s.submit(req("a"))),
            ("steer", lambda: s.steer(req("b"))),
            ("interrupt", s.interrupt),
        ):
            with pytest.raises(SessionClosedError) as info:
                await call()
            assert (info.value.command, info.value.state) == (command, "closed")
            assert info.value.provider == "fake"  # which session refused it
            assert f"cannot {command} in state closed" in str(info.value)


@pytest.mark.parametrize(
    ("command", "state", "why"),
    [
        ("withdraw", "idle", "nothing handed over"),
        ("steer_failed", "idle", "no steer in flight"),
        ("steered", "idle", "no steer in flight"),
        ("take", "idle", "nothing handed over"),
        # a start is confirmed only in state starting, or after a close that raced it
        ("start_failed", "closed", "no start in flight"),
        ("started", "closed", "no start in flight"),
    ],
)
def test_an_impossible_confirmation_is_a_bug_report_naming_command_and_reason(command, state, why):
    """The executing layer's bugs surface as a SessionStateError that says which command came
    in which state and why it is impossible (module docstring of session_core)."""
    core = SessionCore(SteerMode.NATIVE, provider="fake")
    if state == "closed":
        core.close(True)
    calls = {
        "withdraw": core.withdraw,
        "start_failed": core.start_failed,
        "steer_failed": core.steer_failed,
        "started": lambda: core.started(TurnRef(thread_id="", turn_id="t1")),
        "steered": lambda: core.steered(TurnRef(thread_id="", turn_id="t1")),
        "take": lambda: core.take("submit", req("x")),
    }
    with pytest.raises(SessionStateError) as info:
        calls[command]()
    assert (info.value.command, info.value.state, info.value.provider) == (command, state, "fake")
    assert str(info.value).endswith(f"cannot {command} in state {state}: {why}")


# -- the typed error behind a failed turn ----------------------------------------------------


async def test_a_crashed_driver_leaves_its_typed_error_behind_each_failed_turn():
    driver = ScriptedDriver()
    crash = TransportClosedError("claude exited: exit status 3", stderr_tail="boom")
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        started = await s.submit(req("one"))
        driver.end(crash)
        events = [ev async for ev in s.events()]
        assert events[-1].kind is EventKind.ERROR
        assert s.turn_error(started.turn_id) is crash
        assert s.turn_error("t-unknown") is None
        assert s.failure is crash


async def test_a_driver_that_ends_quietly_fails_the_turn_with_a_transport_error():
    driver = ScriptedDriver()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        started = await s.submit(req("one"))
        driver.end()
        events = [ev async for ev in s.events()]
        assert events[-1].error == "fake process ended during the turn"
        err = s.turn_error(started.turn_id)
        assert isinstance(err, TransportClosedError)
        assert err.stderr_tail == "scripted stderr"
        assert s.failure is None


async def test_turn_error_falls_back_to_the_drivers_own_record():
    driver = ScriptedDriver()
    recorded = ProtocolError("the turn's own failure")
    driver.turn_error = lambda turn_id: recorded if turn_id == "t9" else "not an AliceError"  # type: ignore[attr-defined]
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        assert s.turn_error("t9") is recorded
        assert s.turn_error("t8") is None
