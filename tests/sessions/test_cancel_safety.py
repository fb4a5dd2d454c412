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
from alice_trio.sessions.driver import SteerMode, SubmitMode, SubmitResult
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
