"""Issue 12 item 1: every session command is cancel-safe — cancelled at any step it either
took full effect (the turn exists and ends) or left no trace; the next command works."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.sessions.claude_stream import ClaudeStreamDriver
from alice_trio.sessions.driver import SteerMode, SubmitMode, SubmitResult, TurnRef
from alice_trio.sessions.session import SessionState, open_session
from cancel_at import call_cancelled_at

ECHO = Path(__file__).parent / "fake_claude_echo.py"


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


def echo_claude() -> ClaudeStreamDriver:
    inv = Invocation(argv=(sys.executable, str(ECHO)), limits=RunLimits(kill_grace=0.5))
    return ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)


async def events_until(session, turn_id: str) -> list[TurnEvent]:
    out: list[TurnEvent] = []
    with trio.fail_after(20):
        async for ev in session.events():
            out.append(ev)
            if ev.kind.terminal and ev.turn_id == turn_id:
                return out
    raise AssertionError(f"the event stream ended before turn {turn_id} did: {out}")


@pytest.mark.parametrize("k", range(1, 9))
async def test_claude_cancelled_submit_then_submit_gets_its_own_reply(k):
    """The issue's repro: cancel a submit just after it began, submit the same text again (a
    retry) — the reply must be the new turn's, the new turn must end, the state must return
    to idle."""
    async with open_session("claude", initial=req("x"), driver=echo_claude()) as s:
        cancelled, first, _ = await call_cancelled_at(k, s.submit, req("hello"))
        second = await s.submit(req("hello"))
        assert second.mode in (SubmitMode.STARTED, SubmitMode.STEERED)
        events = await events_until(s, second.turn_id)
        mine = [e.text for e in events if e.turn_id == second.turn_id and e.kind is
                EventKind.ASSISTANT_TEXT]  # fmt: skip
        assert mine and mine[-1] == "echo: hello"
        others = {e.turn_id for e in events if e.turn_id and e.turn_id != second.turn_id}
        if not cancelled:
            assert isinstance(first, SubmitResult) and others <= {first.turn_id}
        # whatever took effect was answered, attributed to itself, and nothing is left running
        for e in events:
            if e.kind is EventKind.ASSISTANT_TEXT and e.turn_id != second.turn_id:
                assert e.text == "echo: hello"
        await trio.testing.wait_all_tasks_blocked()
        assert s.state is SessionState.IDLE and s.active_turn is None


@pytest.mark.parametrize("mode", [SteerMode.QUEUE_WHEN_BUSY, SteerMode.NATIVE])
@pytest.mark.parametrize("k", range(1, 7))
async def test_a_submit_cancelled_during_a_slow_start_leaves_no_phantom(mode, k):
    driver = ScriptedDriver(mode)
    gate = driver.start_gate = trio.Event()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        async with trio.open_nursery() as n:
            n.start_soon(lambda: call_cancelled_at(k, s.submit, req("one")))
            await trio.testing.wait_all_tasks_blocked()
            gate.set()
        await trio.testing.wait_all_tasks_blocked()
        started = [ref for ref, _ in driver.started]
        # taken by the worker → the turn runs and is the active one; else no trace at all
        assert [t.turn_id for t in started] == ([s.active_turn.turn_id] if started else [])
        assert s.state is (SessionState.RUNNING if started else SessionState.IDLE)
        if started:
            await driver.finish(started[0])
            await s.events().receive()
        nxt = await s.submit(req("two"))
        assert nxt.mode is SubmitMode.STARTED and s.active_turn.turn_id == nxt.turn_id


async def _session_ended_by_the_callers_cancel(driver: ScriptedDriver, command: str) -> str:
    """The caller's scope is cancelled while its body runs without a checkpoint; the session's
    own tasks see the cancellation first (the driver ends, the session fails); then the body
    calls ``command``. What it raised, by name."""
    raised = "nothing"
    with trio.CancelScope() as scope:
        async with open_session("fake", initial=req("x"), driver=driver) as s:
            scope.cancel()
            with trio.CancelScope(shield=True):  # the body is busy; the session's tasks run
                await trio.testing.wait_all_tasks_blocked()
            try:
                if command == "submit":
                    await s.submit(req("hi"))
                elif command == "steer":
                    await s.steer(req("hi"))
                else:
                    await s.interrupt()
            except BaseException as exc:
                raised = type(exc).__name__
                raise
    return raised


@pytest.mark.parametrize("command", ["submit", "steer", "interrupt"])
async def test_a_session_ended_by_the_callers_cancel_raises_cancelled(command):
    """Not ``SessionClosedError("… in state failed")``: that error escaped the caller's own
    ``move_on_after`` as if the agent had failed (hostile-user trial: open_session + submit
    under a tiny deadline)."""
    driver = ScriptedDriver(SteerMode.NATIVE)
    assert await _session_ended_by_the_callers_cancel(driver, command) == "Cancelled"


async def test_every_command_is_a_checkpoint():
    """A loop of commands that do nothing (interrupt without a turn, submits that only queue,
    aclose of a closed session) yields to other tasks and ends at the caller's deadline; it
    used to spin without a checkpoint, starving the run and deaf to every timeout."""
    driver = ScriptedDriver()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        first = await s.submit(req("first"))  # the turn runs: the next submits only queue

        async def calls_in_a_cancelled_scope(call) -> bool:
            with trio.CancelScope() as scope:
                scope.cancel()
                for _ in range(3):
                    await call()
            return scope.cancelled_caught

        assert await calls_in_a_cancelled_scope(lambda: s.submit(req("queued")))
        assert s.queue_depth == 0  # the cancelled submits queued nothing
        await driver.finish(TurnRef(thread_id=first.thread_id, turn_id=first.turn_id))
        await s.events().receive()
        assert s.state is SessionState.IDLE
        assert await calls_in_a_cancelled_scope(s.interrupt)  # no turn to stop
        await s.aclose()
        assert await calls_in_a_cancelled_scope(s.aclose)  # already closed
