"""One thread, two session keys (sessions/threads.py): what its mutation run
(docs/mutation-testing.md) found untested, over scripted drivers (MockClock: virtual seconds).

A conversation whose process ended under it between runs stays its key's entry (its next run
replaces it) and kept holding its thread: a run of another key resuming that thread waited
for the dead conversation's idle timer (``idle_ttl``), or for ever when it had none (an agent
that cannot resume). Now it is dropped at once and the thread remembered for its key."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from test_admission import Factory, keyed, until

from alice_trio.errors import ResumeUnsupportedError
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig
from alice_trio.testing import ScriptedDriver


class _Unresumable(Factory):
    """Drivers of an agent that cannot resume a conversation once closed."""

    def __call__(self, config: object, initial: object) -> ScriptedDriver:
        driver = super().__call__(config, initial)  # type: ignore[arg-type]
        driver.resumable = False  # type: ignore[attr-defined]
        return driver


@pytest.mark.parametrize("resumable", [True, False])
async def test_a_resume_of_a_thread_whose_conversation_died_does_not_wait_for_it(
    autojump_clock: trio.testing.MockClock, resumable: bool
) -> None:
    f = Factory(auto_reply=True) if resumable else _Unresumable(auto_reply=True)
    scaling = ScalingConfig(warm=0)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling, idle_ttl=10_000) as b:
        with trio.fail_after(100):  # virtual: far less than a's idle timer
            first = await b.run(keyed("one", "a"))
            thread = first.next_thread_id
            f.drivers[0].end()  # a's process ends by itself, between runs
            await trio.testing.wait_all_tasks_blocked()
            taken = await b.run(keyed("from b", "b", thread_id=thread))
        assert taken.reply == "reply to from b" and taken.next_thread_id == thread
        assert b.open_sessions() == ["b"]
        assert f.initials[1].thread_id == thread
        with trio.fail_after(100):
            await b.run(keyed("a again", "a"))
        # a's next run resumes its thread where the agent can (taking it back from b)
        assert f.initials[2].thread_id == (thread if resumable else "")


async def test_a_resume_of_a_thread_an_unresumable_conversation_holds_is_refused_typed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Another key resuming the thread of an idle conversation the agent cannot resume once
    closed: not closed for it, the run fails at once, naming the provider and the way out."""
    f = _Unresumable(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, scaling=ScalingConfig(warm=0)) as b:
        with trio.fail_after(100):
            thread = (await b.run(keyed("one", "a"))).next_thread_id
            with pytest.raises(ResumeUnsupportedError) as caught:
                await b.run(keyed("from b", "b", thread_id=thread))
        assert caught.value.provider == "codex"
        assert str(caught.value) == (
            f"codex: thread {thread!r} is open in conversation 'a', and the agent cannot "
            "resume it once closed there: run that conversation's key, or allow closing it "
            "with ScalingConfig(close_unresumable=True)"
        )
        assert b.open_sessions() == ["a"] and not f.drivers[0].closed_with


async def test_a_thread_taken_over_is_closed_gracefully_and_no_closed_conversation_holds_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """b resuming the thread of a's idle conversation closes a's gracefully (the agent parks
    or releases the thread for b); and once conversations ended — one on a thread learned at
    its first turn, one on a resumed thread — none of them is the holder of its thread."""
    f = Factory(auto_reply=True)
    scaling = ScalingConfig(warm=0)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling, idle_ttl=50) as b:
        with trio.fail_after(1000):
            thread = (await b.run(keyed("one", "a"))).next_thread_id
            assert b._threads.holder(thread) is not None  # a's conversation holds it
            await b.run(keyed("from b", "b", thread_id=thread))
            assert f.drivers[0].closed_with == [True]
            other = (await b.run(keyed("c's own", "c"))).next_thread_id
            await until(lambda: not b.open_sessions())  # their idle timers close them
        assert b._threads.holder(thread) is None
        assert b._threads.holder(other) is None
