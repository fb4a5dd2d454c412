"""SessionBackend over a scripted driver: reuse + idle TTL, serialization, timeouts, cancel,
errors with partial results, callbacks off the reader's path."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import (
    AgentError,
    CallbackError,
    RunInterruptedError,
    RunTimeoutError,
    TransportClosedError,
)
from alice_trio.models import EventKind, RunRequest, TurnEvent, Usage
from alice_trio.providers.codex import CodexConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.driver import SteerMode


class Factory:
    def __init__(self, **kw):
        self.kw = kw
        self.drivers: list[ScriptedDriver] = []

    def __call__(self, config, initial):
        d = ScriptedDriver(**self.kw)
        self.drivers.append(d)
        return d


def keyed(text: str, key: str = "conv-1", **kw) -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": key}, **kw)


async def test_run_reuses_the_session_then_idle_ttl_closes_it(autojump_clock):
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, idle_ttl=30) as b:
        r1 = await b.run(keyed("one"))
        await trio.sleep(10)
        r2 = await b.run(keyed("two"))  # reuse: the first TTL timer is off
        assert (r1.reply, r2.reply) == ("reply to one", "reply to two")
        assert r1.usage == Usage(input_tokens=3, output_tokens=2) and r1.next_thread_id == "thr-1"
        assert len(f.drivers) == 1
        await trio.sleep(25)
        assert b.open_sessions() == ["conv-1"]  # 25 s after the last run: still open
        await trio.sleep(10)
        assert b.open_sessions() == []
        assert f.drivers[0].closed_with == [True]  # graceful after a finished turn
        await b.run(keyed("three"))
        assert len(f.drivers) == 2


async def test_no_key_gets_a_one_turn_session(autojump_clock):
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f) as b:
        r = await b.run(RunRequest(user_text="hello"))
        assert r.reply == "reply to hello" and b.open_sessions() == []
        assert f.drivers[0].closed_with == [True]


async def test_defect_10_runs_on_one_key_never_overlap_even_across_ttl_close(autojump_clock):
    f = Factory()
    peak = 0

    async with SessionBackend("codex", driver_factory=f, idle_ttl=0.5) as b:

        async def one(i):
            # pairs: the second waits for the lock, the next pair finds the session idle-closed
            await trio.sleep((i // 2) * 5 + (i % 2) * 0.2)
            await b.run(keyed(f"m{i}"))

        async def finisher():
            # completes whatever turn is active, observing overlap through the drivers
            nonlocal peak
            while True:
                await trio.sleep(1)
                active = [d for d in f.drivers if d.started and not d.closed_with]
                running = sum(
                    1
                    for d in active
                    for ref, _ in d.started
                    if ref.turn_id not in getattr(d, "done", set())
                )
                peak = max(peak, running)
                for d in active:
                    d.done = getattr(d, "done", set())
                    for ref, _ in d.started:
                        if ref.turn_id not in d.done:
                            d.done.add(ref.turn_id)
                            await d.finish(ref, text="ok")

        async with trio.open_nursery() as n:
            n.start_soon(finisher)
            async with trio.open_nursery() as runs:
                for i in range(6):
                    runs.start_soon(one, i)
            n.cancel_scope.cancel()
    assert peak == 1
    assert len(f.drivers) > 1  # idle closes happened between the runs
    assert all(not lock.locked() for lock in b._locks.values())


async def test_timeout_interrupts_then_raises_with_partial(autojump_clock):
    f = Factory()
    cfg = CodexConfig(timeout=5)
    async with SessionBackend("codex", cfg, driver_factory=f, interrupt_deadline=2) as b:

        async def talk():
            await trio.sleep(1)
            d = f.drivers[0]
            ref = d.started[0][0]
            await d.push(
                TurnEvent(
                    kind=EventKind.ASSISTANT_TEXT,
                    text="half way",
                    turn_id=ref.turn_id,
                    thread_id="thr-9",
                )
            )

        async with trio.open_nursery() as n:
            n.start_soon(talk)
            with pytest.raises(RunTimeoutError) as info:
                await b.run(keyed("slow"))
        assert info.value.partial.reply == "half way"
        assert info.value.partial.next_thread_id == "thr-1"  # the last thread id seen
        assert f.drivers[0].interrupted  # asked to stop first
        await trio.testing.wait_all_tasks_blocked()
        assert f.drivers[0].closed_with == [False]  # then killed
        assert b.open_sessions() == []


async def test_caller_cancel_interrupts_then_kills_and_propagates(autojump_clock):
    f = Factory()
    async with SessionBackend("codex", driver_factory=f) as b:
        with trio.move_on_after(3) as scope:
            await b.run(keyed("forever"))
        assert scope.cancelled_caught
        assert f.drivers[0].interrupted
        await trio.testing.wait_all_tasks_blocked()
        assert f.drivers[0].closed_with == [False]


async def test_error_and_interrupted_turns_raise_with_partial(autojump_clock):
    f = Factory()
    async with SessionBackend("codex", driver_factory=f) as b:

        async def fail_it():
            await trio.sleep(1)
            d = f.drivers[-1]
            await d.finish(
                d.started[-1][0],
                EventKind.ERROR,
                text="partial text",
                error="model overloaded",
                usage=Usage(input_tokens=9),
            )

        async with trio.open_nursery() as n:
            n.start_soon(fail_it)
            with pytest.raises(AgentError) as info:
                await b.run(keyed("x"))
        assert info.value.message == "model overloaded"
        assert info.value.partial.reply == "partial text"
        assert info.value.partial.usage.input_tokens == 9
        assert info.value.stderr_tail == "scripted stderr"

        async def interrupt_it():
            await trio.sleep(1)
            d = f.drivers[-1]
            await d.finish(d.started[-1][0], EventKind.TURN_INTERRUPTED, text="so far")

        async with trio.open_nursery() as n:
            n.start_soon(interrupt_it)
            with pytest.raises(RunInterruptedError) as info2:
                await b.run(keyed("y"))
        assert info2.value.partial.reply == "so far"


async def test_defect_13_process_death_is_a_transport_error_not_a_cancel(autojump_clock):
    f = Factory()
    async with SessionBackend("codex", driver_factory=f) as b:

        async def crash():
            await trio.sleep(1)
            f.drivers[0].end(TransportClosedError("codex exited: exit status 9"))

        async with trio.open_nursery() as n:
            n.start_soon(crash)
            with pytest.raises((TransportClosedError, AgentError)) as info:
                await b.run(keyed("x"))
        assert "exit status 9" in str(info.value)


async def test_defect_02_slow_callback_does_not_stall_the_driver(autojump_clock):
    f = Factory()
    seen: list[tuple[float, str]] = []
    pushed_at: list[float] = []

    async def slow_progress(text):
        await trio.sleep(100)
        seen.append((trio.current_time(), text))

    async with SessionBackend("codex", driver_factory=f) as b:

        async def talk():
            await trio.sleep(1)
            d = f.drivers[0]
            ref = d.started[0][0]
            for i in range(300):  # more than the session's event buffer
                await d.push(
                    TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=f"m{i}", turn_id=ref.turn_id)
                )
            pushed_at.append(trio.current_time())
            await d.finish(ref)

        async with trio.open_nursery() as n:
            n.start_soon(talk)
            result = await b.run(keyed("x", on_progress=slow_progress))
    assert result.reply == "m299"
    assert [t for _, t in seen] == [f"m{i}" for i in range(300)]  # all delivered, in order
    assert pushed_at[0] < seen[0][0]  # the driver finished before the first callback did


async def test_callback_exception_fails_the_run(autojump_clock):
    f = Factory(auto_reply=True)

    def boom(text):
        raise ValueError("callback bug")

    async with SessionBackend("codex", driver_factory=f) as b:
        with pytest.raises(CallbackError) as info:
            await b.run(keyed("x", on_progress=boom))
        assert isinstance(info.value.__cause__, ValueError)
        assert info.value.partial.reply == "reply to x"


async def test_steer_joins_the_running_run_and_no_active_turn_errors(autojump_clock):
    from alice_trio.errors import NoActiveTurnError

    f = Factory(steer_mode=SteerMode.NATIVE_ENQUEUE, enqueue=True)
    async with SessionBackend("codex", driver_factory=f) as b:
        with pytest.raises(NoActiveTurnError):
            await b.steer(keyed("nobody"))
        box = []

        async def run():
            box.append(await b.run(keyed("first")))

        async with trio.open_nursery() as n:
            n.start_soon(run)
            await trio.sleep(1)
            steered = await b.steer(keyed("second"))
            d = f.drivers[0]
            await d.finish(d.started[0][0], text="answer one")
            await trio.sleep(1)
            assert not box  # still waiting for the steered turn
            await d.finish(d.steered[0][0], text="answer two")
        assert steered.turn_id == d.steered[0][0].turn_id
        assert box[0].reply == "answer two"
