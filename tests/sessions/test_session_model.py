"""Property test of the session state machine against a model (random op sequences)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_driver import ScriptedDriver

from alice_trio.errors import NoActiveTurnError, SessionClosedError, SteerUnsupportedError
from alice_trio.models import EventKind, RunRequest
from alice_trio.sessions.driver import SteerMode, SubmitMode
from alice_trio.sessions.session import SessionState, open_session

OPS = st.lists(
    st.sampled_from(["submit", "steer", "complete", "error", "stray", "interrupt", "close"]),
    max_size=25,
)
MODES = st.sampled_from([SteerMode.QUEUE_WHEN_BUSY, SteerMode.NATIVE, SteerMode.NATIVE_ENQUEUE])


@settings(max_examples=60, deadline=None)
@given(ops=OPS, mode=MODES)
async def test_session_matches_the_model(ops, mode):
    driver = ScriptedDriver(mode, enqueue=mode is SteerMode.NATIVE_ENQUEUE)
    submitted: list[str] = []  # prompts in submit order that were started or queued
    closed = False
    n = 0
    async with open_session(
        "fake", initial=RunRequest(user_text="x"), driver=driver, buffer=1000
    ) as s:
        for op in ops:
            n += 1
            busy_before = s.busy
            if op == "submit":
                if closed:
                    with pytest.raises(SessionClosedError):
                        await s.submit(RunRequest(user_text=f"p{n}"))
                    continue
                r = await s.submit(RunRequest(user_text=f"p{n}"))
                expected = (
                    SubmitMode.STARTED
                    if not busy_before
                    else SubmitMode.QUEUED
                    if mode is SteerMode.QUEUE_WHEN_BUSY
                    else SubmitMode.STEERED
                )
                assert r.mode is expected
                if r.mode is not SubmitMode.STEERED:
                    submitted.append(f"p{n}")
            elif op == "steer":
                try:
                    await s.steer(RunRequest(user_text=f"s{n}"))
                except (SessionClosedError, NoActiveTurnError, SteerUnsupportedError) as exc:
                    assert (
                        closed
                        or not busy_before
                        or mode is SteerMode.QUEUE_WHEN_BUSY
                        or isinstance(exc, NoActiveTurnError)
                    )
            elif op in ("complete", "error") and s.active_turn is not None:
                kind = EventKind.TURN_COMPLETED if op == "complete" else EventKind.ERROR
                await driver.finish(s.active_turn, kind)
            elif op == "stray":
                from alice_trio.models import TurnEvent

                await driver.push(TurnEvent(kind=EventKind.TURN_COMPLETED, turn_id="stray"))
            elif op == "interrupt":
                if closed:
                    with pytest.raises(SessionClosedError):
                        await s.interrupt()
                else:
                    await s.interrupt()
            elif op == "close":
                await s.aclose(graceful=False)
                closed = True
            await trio.testing.wait_all_tasks_blocked()
            # invariants
            active = s.active_turn
            assert (active is None) or (
                active.turn_id not in {t.turn_id for t in s.outstanding_turns}
            )
            started_prompts = [r.prompt for _, r in driver.started]
            assert started_prompts == submitted[: len(started_prompts)]  # FIFO, none skipped
            if closed:
                assert s.state in (SessionState.CLOSED, SessionState.FAILED)
            elif not s.busy:
                assert s.queue_depth == 0  # nothing waits while idle
