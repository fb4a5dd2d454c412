"""The session core over a scripted driver: submit/steer/queue/interrupt/close and events."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import (
    EmptyPromptError,
    NoActiveTurnError,
    SessionClosedError,
    SteerUnsupportedError,
)
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.sessions.driver import SteerMode, SubmitMode
from alice_trio.sessions.session import SessionState, open_session


def req(text: str, **kw) -> RunRequest:
    return RunRequest(user_text=text, **kw)


async def drain(session, n: int) -> list[TurnEvent]:
    out = []
    for _ in range(n):
        out.append(await session.events().receive())
    return out


async def test_submit_starts_then_queues_fifo_and_inherits_thread_id():
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY, thread_id="")
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        first = await s.submit(req("one"))
        assert first.mode is SubmitMode.STARTED and s.state is SessionState.RUNNING
        q1 = await s.submit(req("two"))
        q2 = await s.submit(req("three"))
        assert (q1.mode, q1.queue_depth, q2.queue_depth) == (SubmitMode.QUEUED, 1, 2)
        ref = driver.started[0][0]
        await driver.push(
            TurnEvent(kind=EventKind.TURN_COMPLETED, turn_id=ref.turn_id, thread_id="thr-new")
        )
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in driver.started] == ["one", "two"]
        assert driver.started[1][1].thread_id == "thr-new"  # inherited
        await driver.finish(driver.started[1][0])
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in driver.started] == ["one", "two", "three"]
        assert s.queue_depth == 0


async def test_native_steer_and_errors():
    driver = ScriptedDriver(SteerMode.NATIVE)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        with pytest.raises(NoActiveTurnError):
            await s.steer(req("early"))
        with pytest.raises(EmptyPromptError):
            await s.submit(req("   "))
        started = await s.submit(req("one"))
        steered = await s.submit(req("more"))
        assert steered.mode is SubmitMode.STEERED and steered.turn_id == started.turn_id
        again = await s.steer(req("and more"))
        assert again.turn_id == started.turn_id
        assert [r.prompt for _, r in driver.steered] == ["more", "and more"]


async def test_steer_unsupported_for_queue_mode():
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
        with pytest.raises(SteerUnsupportedError):
            await s.steer(req("two"))


async def test_enqueue_steer_turn_becomes_active_after_the_first():
    driver = ScriptedDriver(SteerMode.NATIVE_ENQUEUE, enqueue=True)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        first = await s.submit(req("one"))
        second = await s.submit(req("two"))
        assert second.mode is SubmitMode.STEERED and second.turn_id != first.turn_id
        await driver.finish(driver.started[0][0])
        await drain(s, 1)
        assert s.active_turn is not None and s.active_turn.turn_id == second.turn_id
        assert (await s.submit(req("three"))).mode is SubmitMode.STEERED
        assert s.busy


async def test_defect_06_terminal_without_or_with_foreign_turn_id_does_not_clear():
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        started = await s.submit(req("one"))
        await driver.push(TurnEvent(kind=EventKind.TURN_COMPLETED, turn_id=""))
        await driver.push(TurnEvent(kind=EventKind.ERROR, turn_id="someone-else"))
        await drain(s, 2)
        assert s.active_turn is not None and s.active_turn.turn_id == started.turn_id
        assert (await s.submit(req("two"))).mode is SubmitMode.QUEUED


async def test_defect_07_queued_start_cannot_race_a_new_submit():
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
        await s.submit(req("two"))
        gate = driver.start_gate = trio.Event()
        await driver.finish(driver.started[0][0])  # pops "two"; its start waits on the gate
        await trio.testing.wait_all_tasks_blocked()
        third = await s.submit(req("three"))  # must queue, not start a second turn
        assert third.mode is SubmitMode.QUEUED
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in driver.started] == ["one", "two"]


async def test_defect_08_reader_never_waits_for_the_submit_lock():
    """A start that blocks until the driver's reader delivered many events must not deadlock
    (Go: the forwarder waited for the mutex StartTurn held)."""
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY)
    async with open_session("fake", initial=req("x"), driver=driver, buffer=4) as s:
        got: list[TurnEvent] = []
        delivered = trio.Event()

        async def reader():
            for i in range(50):
                await driver.push(TurnEvent(kind=EventKind.REASONING, text=str(i), turn_id="t0"))
            delivered.set()

        async def consume():
            async for ev in s.events():
                got.append(ev)
                if len(got) == 50:
                    return

        async def slow_start(request):
            await delivered.wait()  # e.g. the turn/start response comes after notifications
            return await orig(request)

        orig = driver.start_turn
        driver.start_turn = slow_start
        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                n.start_soon(reader)
                n.start_soon(consume)
                result = await s.submit(req("one"))
        assert result.mode is SubmitMode.STARTED and len(got) == 50


async def test_interrupt_is_forwarded_and_terminal_clears():
    driver = ScriptedDriver(SteerMode.NATIVE)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.interrupt()  # nothing active: no-op
        started = await s.submit(req("one"))
        await s.interrupt()
        events = await drain(s, 1)
        assert events[0].kind is EventKind.TURN_INTERRUPTED
        assert driver.interrupted[0].turn_id == started.turn_id
        assert s.state is SessionState.IDLE


async def test_closed_is_sticky_and_close_graceful_when_idle():
    driver = ScriptedDriver(auto_reply=True)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
        await drain(s, 3)
        await s.aclose()
        for call in (s.submit(req("a")), s.steer(req("b")), s.interrupt()):
            with pytest.raises(SessionClosedError):
                await call
        assert s.state is SessionState.CLOSED
    assert driver.closed_with == [True]


async def test_leaving_with_a_running_turn_or_on_cancel_kills(autojump_clock):
    driver = ScriptedDriver()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
    assert driver.closed_with == [False]
    driver2 = ScriptedDriver()
    with trio.move_on_after(1) as scope:
        async with open_session("fake", initial=req("x"), driver=driver2) as s2:
            await s2.submit(req("one"))
            await trio.sleep_forever()
    assert scope.cancelled_caught  # the cancel surfaced as itself, nothing hung


async def test_owner_exception_comes_out_unwrapped():
    with pytest.raises(KeyError):
        async with open_session("fake", initial=req("x"), driver=ScriptedDriver()):
            raise KeyError("mine")


async def test_break_and_cancel_mid_iteration_are_harmless(autojump_clock):
    driver = ScriptedDriver(auto_reply=True)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
        async for ev in s.events():
            if ev.kind is EventKind.ASSISTANT_TEXT:
                break
        rest = await s.events().receive()
        assert rest.kind is EventKind.TURN_COMPLETED
        with trio.move_on_after(0.01):  # cancelled while waiting inside the iteration
            async for _ in s.events():
                pass
        await s.submit(req("two"))
        kinds = [ev.kind for ev in await drain(s, 3)]
        assert kinds[-1] is EventKind.TURN_COMPLETED


async def test_defect_13_driver_crash_fails_pending_turns_with_an_error():
    driver = ScriptedDriver()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        started = await s.submit(req("one"))
        from alice_trio.errors import TransportClosedError

        driver.end(TransportClosedError("claude exited: exit status 3", stderr_tail="boom"))
        events = [ev async for ev in s.events()]
        assert events[-1].kind is EventKind.ERROR and events[-1].turn_id == started.turn_id
        assert "exit status 3" in events[-1].error
        assert s.state is SessionState.FAILED
        # later input gets the driver's failure (typed), not SessionClosedError
        with pytest.raises(TransportClosedError, match="exit status 3"):
            await s.submit(req("two"))


async def test_queued_start_failure_becomes_an_error_event_with_its_own_id():
    driver = ScriptedDriver()
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
        await s.submit(req("two"))
        from alice_trio.errors import ProtocolError

        driver.fail_start = ProtocolError("bad start")
        await driver.finish(driver.started[0][0])
        events = await drain(s, 2)
        assert events[1].kind is EventKind.ERROR and events[1].error == "bad start"
        assert events[1].turn_id.startswith("queued-start-")
        assert s.state is SessionState.IDLE


class _ChattyStart(ScriptedDriver):
    """Prints ``n`` stray lines (``unknown`` events) before its handshake is done."""

    def __init__(self, n: int) -> None:
        super().__init__(auto_reply=True)
        self.n = n

    async def run(self, emit, *, task_status=trio.TASK_STATUS_IGNORED):
        for i in range(self.n):
            await emit(TurnEvent(kind=EventKind.UNKNOWN, text=f"banner {i}"))
        await super().run(emit, task_status=task_status)


async def test_more_stray_lines_than_the_buffer_before_the_start_do_not_wedge_it(autojump_clock):
    """Nobody can read events while open_session opens: the 129th stray line used to block the
    driver's reader until the start timeout (RunTimeoutError, or a hang for a CLI that waits
    for its handshake answer). Now the surplus is dropped and counted in one ``unknown`` event."""
    with trio.fail_after(30):  # virtual seconds; the start timeout is 60
        async with open_session("fake", initial=RunRequest(user_text=""), driver=_ChattyStart(300),
                                buffer=128) as s:  # fmt: skip
            texts = [(await s.events().receive()).text for _ in range(128)]
            await s.submit(RunRequest(user_text="hi"))  # the scripted agent answers at once
            async for ev in s.events():
                texts.append(ev.text)
                if ev.kind.terminal:
                    break
    assert texts[:128] == [f"banner {i}" for i in range(128)]
    assert texts[128] == (
        "dropped 172 events the agent sent while the session was opening "
        "(more than the event buffer holds)"
    )
    assert "reply to hi" in texts


async def test_a_cli_that_floods_stray_lines_and_exits_fails_at_once(tmp_path):
    """A real process: 1,000 non-JSON lines, then exit — a TransportClosedError with the exit
    status (was RunTimeoutError after the 60 s start timeout)."""
    from alice_trio.errors import TransportClosedError
    from alice_trio.providers.codex import CodexConfig

    script = tmp_path / "chatty"
    script.write_text("#!/bin/sh\nfor i in $(seq 1000); do echo not-json-$i; done\nexit 0\n")
    script.chmod(0o755)
    with trio.fail_after(45), pytest.raises(TransportClosedError, match="exit status 0"):
        async with open_session(
            "codex",
            CodexConfig(command=str(script)),
            initial=RunRequest(user_text="", workspace_dir=str(tmp_path)),
        ):
            pass  # fmt: skip


@pytest.mark.parametrize("mode", [SteerMode.NATIVE, SteerMode.NATIVE_ENQUEUE])
async def test_input_right_after_an_interrupt_is_the_next_turn_not_a_steer(mode):
    """Steered into a turn being interrupted, the input is refused (codex: "no active turn to
    steer", kimi-cli: "No agent turn is in progress") or lost with it; it is queued and starts
    once the interrupted turn ended. Before: submit steered it (and raised the refusal)."""
    driver = ScriptedDriver(mode)
    driver.interrupt_reply = False
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        first = await s.submit(req("one"))
        await s.interrupt()
        second = await s.submit(req("two"))
        assert second.mode is SubmitMode.QUEUED and driver.steered == []
        await driver.finish(driver.started[0][0], EventKind.TURN_INTERRUPTED)
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in driver.started] == ["one", "two"]
        assert s.active_turn is not None and s.active_turn.turn_id != first.turn_id


class _TurnAlreadyOver(ScriptedDriver):
    """The agent ended the turn before the steer reached it; its terminal event is late."""

    async def steer_turn(self, turn, request):
        raise NoActiveTurnError(provider="fake")


async def test_a_submit_whose_steer_finds_the_turn_over_starts_a_turn_of_its_own():
    driver = _TurnAlreadyOver(SteerMode.NATIVE)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.submit(req("one"))
        late = await s.submit(req("two"))
        assert late.mode is SubmitMode.QUEUED  # before: NoActiveTurnError from submit
        also = await s.submit(req("three"))  # behind it, in order
        assert also.mode is SubmitMode.QUEUED
        with pytest.raises(NoActiveTurnError):  # steer() itself reports the refusal
            await s.steer(req("steer"))
        await driver.finish(driver.started[0][0])
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in driver.started] == ["one", "two"]
        await driver.finish(driver.started[1][0])
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in driver.started] == ["one", "two", "three"]
