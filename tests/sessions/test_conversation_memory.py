"""What SessionBackend keeps of a conversation once it is closed: nothing. Every way a
conversation leaves (made room for another under ``max_conversations`` or ``max_processes``,
its idle close, a failed run, the backend's close) lets go of its session, driver and inbox,
its idle timer task and its key's lock; only the bounded resume memory (thread ids) stays.
Scripted drivers, so the checks are on our own Python heap (weak references after a collect)."""

from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import AgentError
from alice_trio.models import EventKind, RunRequest
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.pool import ScalingConfig

#: long enough that no idle close happens while a test runs (what would hide a leak)
IDLE_TTL = 3600.0


class WeakFactory:
    """Builds auto-replying scripted drivers and keeps only weak references to them."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[ScriptedDriver]] = []

    def __call__(self, config: object, initial: RunRequest) -> ScriptedDriver:
        d = ScriptedDriver(auto_reply=True, thread_id=initial.thread_id or f"thr-{len(self.refs)}")
        self.refs.append(weakref.ref(d))
        return d

    def alive(self) -> int:
        gc.collect()
        return sum(r() is not None for r in self.refs)


def keyed(text: str, key: str) -> RunRequest:
    return RunRequest(user_text=text, env={SESSION_KEY_ENV: key})


def held(b: SessionBackend) -> dict[str, int]:
    """Per-conversation state the backend holds (live conversations may hold one each)."""
    return {
        "sessions": len(b._sessions),
        "timers": len(b._timers),
        "locks": len(b._locks),
        "recent": len(b.admission.recent),
    }


@pytest.mark.parametrize(
    "bound",
    [ScalingConfig(warm=0, max_conversations=3), ScalingConfig(warm=0, max_processes=3)],
    ids=["max_conversations", "max_processes"],
)
async def test_conversations_closed_to_make_room_leave_nothing_behind(bound: ScalingConfig):
    f = WeakFactory()
    async with SessionBackend("codex", driver_factory=f, scaling=bound, idle_ttl=IDLE_TTL) as b:
        for i in range(40):
            result = await b.run(keyed(f"hello {i}", f"k{i}"))
            assert result.reply == f"reply to hello {i}"
            await trio.testing.wait_all_tasks_blocked()
        assert b.admission.evicted == 37
        assert held(b) == {"sessions": 3, "timers": 3, "locks": 3, "recent": 3}
        # the 37 closed conversations' drivers (and so their sessions) are garbage
        assert f.alive() == 3
        # a closed conversation still resumes its thread (the bounded resume memory)
        await b.run(keyed("back", "k0"))
        assert b._sessions["k0"].session.thread_id == "thr-0"
    assert f.alive() == 0
    assert held(b) == {"sessions": 0, "timers": 0, "locks": 0, "recent": 0}


async def test_conversations_dropped_by_a_failed_turn_leave_nothing_behind():
    f = WeakFactory()
    async with SessionBackend(
        "codex", driver_factory=f, scaling=ScalingConfig(warm=0), idle_ttl=IDLE_TTL
    ) as b:
        for i in range(5):
            await b.run(keyed("fine", f"k{i}"))
        for i in range(5):  # each conversation's next turn ends with an error: it is dropped
            d = f.refs[i]()
            assert d is not None
            d.auto_reply = False
            async with trio.open_nursery() as n:

                async def fail(key: str) -> None:
                    with pytest.raises(AgentError):
                        await b.run(keyed("again", key))

                n.start_soon(fail, f"k{i}")
                await trio.testing.wait_all_tasks_blocked()
                assert len(d.started) == 2
                await d.finish(d.started[1][0], kind=EventKind.ERROR, error="boom")
            del d
        await trio.testing.wait_all_tasks_blocked()
        assert held(b) == {"sessions": 0, "timers": 0, "locks": 0, "recent": 0}
        assert f.alive() == 0
