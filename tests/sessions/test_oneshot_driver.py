"""The one-shot wrapping driver (gemini's session driver) over the engine's fake CLI."""

from __future__ import annotations

import trio
import trio.testing

from alice_trio.models import EventKind, RunRequest
from alice_trio.sessions.driver import SubmitMode
from alice_trio.sessions.oneshot_driver import OneShotDriver
from alice_trio.sessions.session import open_session

from fake_provider import FAST, PROVIDER, FakeConfig


def driver(*args: str) -> OneShotDriver:
    return OneShotDriver(PROVIDER, FakeConfig(args=args, limits=FAST))


async def turn_events(session, turn_id):
    out = []
    with trio.fail_after(10):
        async for ev in session.events():
            if ev.turn_id == turn_id:
                out.append(ev)
                if ev.kind.terminal:
                    return out
    return out


async def test_defect_22_progress_is_not_duplicated_and_file_change_has_no_prefix():
    d = driver("--text", "step one", "--text", "final answer")
    async with open_session("fake", initial=RunRequest(user_text="x"), driver=d) as s:
        ref = await s.submit(RunRequest(user_text="go"))
        events = await turn_events(s, ref.turn_id)
    texts = [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT]
    assert texts == ["step one", "final answer"]  # the reply is not emitted a second time
    assert events[0].kind is EventKind.TURN_STARTED
    assert events[-1].kind is EventKind.TURN_COMPLETED and events[-1].usage is not None
    assert events[-1].thread_id == "thread-1"
    assert not any("[file_change]" in e.text for e in events)


async def test_queue_when_busy_and_interrupt_kills_the_run():
    d = driver("--text", "working", "--sleep", "30")
    async with open_session("fake", initial=RunRequest(user_text="x"), driver=d) as s:
        first = await s.submit(RunRequest(user_text="one"))
        queued = await s.submit(RunRequest(user_text="two"))
        assert queued.mode is SubmitMode.QUEUED and queued.queue_depth == 1
        with trio.fail_after(10):
            async for ev in s.events():
                if ev.kind is EventKind.ASSISTANT_TEXT:
                    break
        await s.interrupt()
        events = await turn_events(s, first.turn_id)
        assert events[-1].kind is EventKind.TURN_INTERRUPTED
        await trio.testing.wait_all_tasks_blocked()
        assert s.active_turn is not None  # the queued input started
        assert s.active_turn.thread_id == "thread-1"  # inheriting the finished turn's thread


async def test_failed_run_is_an_error_event_with_stderr():
    d = driver("--crash", "7", "--stderr", "it broke")
    async with open_session("fake", initial=RunRequest(user_text="x"), driver=d) as s:
        ref = await s.submit(RunRequest(user_text="go"))
        events = await turn_events(s, ref.turn_id)
    assert events[-1].kind is EventKind.ERROR
    assert "exit status 7" in events[-1].error and "it broke" in events[-1].error
