"""Admission control and the warm pool of SessionBackend over scripted drivers (MockClock):
FIFO turn slots with a waiting notice, LRU close of idle conversations and their resume,
waiting for a busy backend, process bounds, spares for one-process providers."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import CallbackError, ConfigError
from alice_trio.models import RunRequest
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.pool import ScalingConfig


class Factory:
    def __init__(self, **kw: object) -> None:
        self.kw = kw
        self.drivers: list[ScriptedDriver] = []
        self.initials: list[RunRequest] = []

    def __call__(self, config: object, initial: RunRequest) -> ScriptedDriver:
        d = ScriptedDriver(thread_id=initial.thread_id or f"thr-{len(self.drivers) + 1}",
                           **self.kw)  # type: ignore[arg-type]  # fmt: skip
        self.drivers.append(d)
        self.initials.append(initial)
        return d


def keyed(text: str, key: str, **kw: object) -> RunRequest:
    return RunRequest(user_text=text, env={SESSION_KEY_ENV: key}, **kw)  # type: ignore[arg-type]


async def until(predicate: object) -> None:
    while True:
        if predicate():  # type: ignore[operator]
            return
        await trio.sleep(0.01)


async def test_turns_beyond_the_bound_wait_in_fifo_order_and_are_told(autojump_clock):
    f = Factory()
    scaling = ScalingConfig(warm=0, max_turns=1)
    order: list[str] = []
    notices: dict[str, list[str]] = {}
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:

        async def run(key: str) -> None:
            notices[key] = []
            result = await b.run(keyed(f"hi {key}", key, on_progress=notices[key].append))
            order.append(key)
            assert result.reply == f"done {key}"

        async with trio.open_nursery() as n:
            n.start_soon(run, "a")
            await until(lambda: len(f.drivers) == 1 and f.drivers[0].started)
            for key in ("b", "c", "d"):
                n.start_soon(run, key)
                await trio.testing.wait_all_tasks_blocked()
            # only one turn runs: the others wait without a session of their own yet
            assert len(f.drivers) == 1
            for i, key in enumerate("abcd"):
                await until(lambda i=i: len(f.drivers) > i and f.drivers[i].started)
                assert len(f.drivers) == i + 1
                ref, _ = f.drivers[i].started[0]
                await f.drivers[i].finish(ref, text=f"done {key}")
        assert order == ["a", "b", "c", "d"]
        assert notices["a"] == ["done a"]
        assert notices["b"][0] == "[waiting] 1 turns running, 0 waiting before this one"
        assert notices["d"][0] == "[waiting] 1 turns running, 2 waiting before this one"
        assert b.admission.waited_turns == 3


@pytest.mark.parametrize("misdeed", ["raises", "runs-its-own-conversation"])
async def test_the_waiting_notice_is_delivered_like_the_turns_progress(autojump_clock, misdeed):
    """Hostile-use finding (round 8): the ``[waiting]`` notice called the run's progress
    callback bare — one that raised made ``run`` raise the callback's own exception (every other
    progress: CallbackError), one that ran its own conversation again hit the key's held lock
    (``RuntimeError: attempt to re-acquire an already held Lock``) instead of the documented
    ConfigError. Now both fail the waiting run with CallbackError, nothing else touched."""
    f = Factory()
    scaling = ScalingConfig(warm=0, max_turns=1)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:

        async def progress(text: str) -> None:
            if not text.startswith("[waiting]"):
                return
            if misdeed == "raises":
                raise ValueError("the chat API is down")
            await b.run(keyed("again", "b"))  # the conversation this notice is about

        async def first() -> None:
            assert (await b.run(keyed("hi a", "a"))).reply == "done a"

        async with trio.open_nursery() as n:
            n.start_soon(first)
            await until(lambda: len(f.drivers) == 1 and f.drivers[0].started)
            with pytest.raises(CallbackError) as info:
                await b.run(keyed("hi b", "b", on_progress=progress))
            cause = info.value.__cause__
            if misdeed == "raises":
                assert isinstance(cause, ValueError)
            else:
                assert isinstance(cause, ConfigError) and "would wait for itself" in str(cause)
            assert len(f.drivers) == 1  # the waiting run opened nothing
            ref, _ = f.drivers[0].started[0]
            await f.drivers[0].finish(ref, text="done a")
        async with trio.open_nursery() as n:  # nothing of the failed run holds "b" now
            n.start_soon(b.run, keyed("hi b", "b"))
            await until(lambda: len(f.drivers) == 2 and f.drivers[1].started)
            ref, _ = f.drivers[1].started[0]
            await f.drivers[1].finish(ref, text="done b")


async def test_a_cancelled_waiter_leaves_the_queue(autojump_clock):
    f = Factory(auto_reply=False)
    async with SessionBackend(
        "codex", driver_factory=f, scaling=ScalingConfig(warm=0, max_turns=1)
    ) as b:
        async with trio.open_nursery() as n:
            n.start_soon(b.run, keyed("a", "a"))
            await until(lambda: f.drivers and f.drivers[0].started)
            with trio.move_on_after(5):
                await b.run(keyed("b", "b"))
            assert len(f.drivers) == 1  # b never opened a session
            ref, _ = f.drivers[0].started[0]
            await f.drivers[0].finish(ref, text="ok")
        assert b.admission.turns.statistics().tasks_waiting == 0
        assert b.admission.turns.borrowed_tokens == 0


async def test_lru_idle_conversation_is_closed_and_resumes_by_thread_id(autojump_clock):
    f = Factory(auto_reply=True)
    scaling = ScalingConfig(warm=0, max_conversations=2)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        one = await b.run(keyed("1", "k1"))
        await b.run(keyed("2", "k2"))
        await b.run(keyed("1 again", "k1"))
        await b.run(keyed("3", "k3"))
        assert b.open_sessions() == ["k1", "k3"]
        assert f.drivers[1].closed_with == [True]  # k2, gracefully
        await b.run(keyed("2 again", "k2"))  # no thread id in the request
        assert f.initials[-1].thread_id == "thr-2"  # resumed by the remembered id
        assert b.open_sessions() == ["k2", "k3"]  # k1 was the least recently used
        assert one.next_thread_id == "thr-1"
        assert b.admission.evicted == 2


async def test_a_new_conversation_waits_while_every_live_one_is_busy(autojump_clock):
    f = Factory()
    scaling = ScalingConfig(warm=0, max_conversations=1)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        done: list[str] = []

        async def run(key: str) -> None:
            await b.run(keyed(key, key))
            done.append(key)

        async with trio.open_nursery() as n:
            n.start_soon(run, "a")
            await until(lambda: f.drivers and f.drivers[0].started)
            n.start_soon(run, "b")
            await trio.sleep(10)
            assert len(f.drivers) == 1  # b waits: a is busy and may not be closed
            ref, _ = f.drivers[0].started[0]
            await f.drivers[0].finish(ref, text="a")
            await until(lambda: len(f.drivers) == 2 and f.drivers[1].started)
            assert f.drivers[0].closed_with == [True]  # a, idle now, made room
            ref, _ = f.drivers[1].started[0]
            await f.drivers[1].finish(ref, text="b")
        assert done == ["a", "b"]


@pytest.mark.parametrize("bound", ["max_conversations", "max_processes"])
async def test_a_run_waiting_for_a_turn_slot_does_not_pin_its_conversation(autojump_clock, bound):
    """max_turns with a conversation/process bound: b holds the turn slot and needs room; the
    only live conversation (a) is idle, but a's next run holds a's lock while it waits for the
    slot b holds. a used to count as busy: both waited for each other forever (hostile-user
    trial: 20 runs over 13 keys, any max_turns with any other bound). Now a is closed to make
    room and its next run resumes its thread on a new conversation."""
    f = Factory()
    scaling = ScalingConfig(warm=0, max_turns=1, **{bound: 1})
    async with SessionBackend("claude", driver_factory=f, scaling=scaling) as b:
        replies: dict[str, str] = {}

        async def run(text: str, key: str) -> None:
            replies[text] = (await b.run(keyed(text, key))).reply

        with trio.fail_after(300):  # MockClock: seconds of virtual time
            async with trio.open_nursery() as n:
                n.start_soon(run, "a1", "a")
                await until(lambda: f.drivers and f.drivers[0].started)
                n.start_soon(run, "b1", "b")  # waits for the turn slot
                await trio.testing.wait_all_tasks_blocked()
                n.start_soon(run, "a2", "a")  # waits for a's lock
                await trio.testing.wait_all_tasks_blocked()
                ref, _ = f.drivers[0].started[0]
                await f.drivers[0].finish(ref, text="a1 done")
                # b gets the slot, a2 gets a's lock: a's conversation must make room for b
                await until(lambda: len(f.drivers) == 2 and f.drivers[1].started)
                assert f.drivers[0].closed_with == [True]
                ref, _ = f.drivers[1].started[0]
                await f.drivers[1].finish(ref, text="b1 done")
                await until(lambda: len(f.drivers) == 3 and f.drivers[2].started)
                assert f.initials[2].thread_id == "thr-1"  # a2 resumed a's thread
                ref, _ = f.drivers[2].started[0]
                await f.drivers[2].finish(ref, text="a2 done")
        assert replies == {"a1": "a1 done", "b1": "b1 done", "a2": "a2 done"}


async def test_spare_of_a_one_process_provider_serves_the_next_new_conversation(autojump_clock):
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, scaling=ScalingConfig(warm=1)) as b:
        await until(lambda: len(b.pool.spares) == 1)
        assert len(f.drivers) == 1
        result = await b.run(keyed("hello", "a"))
        assert result.reply == "reply to hello"
        assert b.pool.spares_used == 1
        assert f.drivers[0].started[0][1].prompt == "hello"  # the spare ran the turn
        await until(lambda: len(b.pool.spares) == 1)  # replaced
        assert len(f.drivers) == 2
        # a resumed conversation never takes a spare
        await b.run(keyed("again", "b", thread_id="thr-9"))
        assert b.pool.spares_used == 1
        spare = b.pool.spares[0].driver.driver
    assert spare.closed_with == [True]  # closing the backend closed the spare
    assert all(d.closed_with for d in f.drivers)


async def test_process_bound_closes_a_spare_then_idle_conversations(autojump_clock):
    f = Factory(auto_reply=True)
    scaling = ScalingConfig(warm=1, max_processes=2)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        await until(lambda: len(b.pool.spares) == 1)
        for key in ("a", "b", "c", "d"):
            await b.run(keyed(key, key, workspace_dir=f"/w/{key}"))  # never the spare's request
            assert b.pool.processes() <= 2
        live = [d for d in f.drivers if not d.closed_with]
        assert len(live) <= 2
        assert len(b.open_sessions()) <= 2


@pytest.mark.parametrize("bad", [{"warm": -1}, {"max_turns": -2}, {"host_capacity": 0}])
def test_scaling_config_is_validated(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ScalingConfig(**bad)


class WarmDriver(ScriptedDriver):
    """A scripted driver with a ``warm_up`` that waits for ``go`` (or raises ``fail``)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.go = trio.Event()
        self.warmed = 0
        self.fail: BaseException | None = None

    async def warm_up(self) -> None:
        if self.fail is not None:
            raise self.fail
        await self.go.wait()
        self.warmed += 1


class WarmFactory(Factory):
    def __init__(self, fail: BaseException | None = None, **kw: object) -> None:
        super().__init__(**kw)
        self.fail = fail

    def __call__(self, config: object, initial: RunRequest) -> ScriptedDriver:
        d = WarmDriver(thread_id=f"thr-{len(self.drivers) + 1}", **self.kw)
        d.fail = self.fail
        self.drivers.append(d)
        return d


async def test_a_spare_is_ready_only_after_the_warm_up_its_provider_record_names(autojump_clock):
    f = WarmFactory(auto_reply=True)
    async with SessionBackend("claude", driver_factory=f, scaling=ScalingConfig(warm=1)) as b:
        await until(lambda: len(f.drivers) == 1)
        await trio.sleep(10)
        assert b.pool.spares == [], "up, but warming up: not ready"
        f.drivers[0].go.set()  # type: ignore[attr-defined]
        await until(lambda: len(b.pool.spares) == 1)
        assert f.drivers[0].warmed == 1  # type: ignore[attr-defined]
        assert (await b.run(keyed("hello", "a"))).reply == "reply to hello"
        assert b.pool.spares_used == 1


async def test_no_warm_up_where_the_provider_record_names_none(autojump_clock):
    f = WarmFactory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, scaling=ScalingConfig(warm=1)) as b:
        await until(lambda: len(b.pool.spares) == 1)
        assert f.drivers[0].warmed == 0  # type: ignore[attr-defined]


async def test_a_failed_warm_up_is_a_failed_spare_start(autojump_clock):
    from alice_trio.errors import SessionClosedError

    f = WarmFactory(fail=SessionClosedError(provider="claude"), auto_reply=True)
    async with SessionBackend("claude", driver_factory=f, scaling=ScalingConfig(warm=1)) as b:
        with trio.fail_after(100):
            await until(lambda: b.pool.spare_failures == 1)
        assert b.pool.spares == []
        await until(lambda: b.pool.processes() == 0)  # its process slot is given back
        # the conversation is still served (on a driver of its own)
        assert (await b.run(keyed("hello", "a"))).reply == "reply to hello"


class SlowStart(ScriptedDriver):
    """A driver whose process takes a second to come up (the spare is still starting)."""

    async def run(self, emit, *, task_status):  # type: ignore[no-untyped-def]
        await trio.sleep(1)
        await super().run(emit, task_status=task_status)


@pytest.mark.parametrize("workspace", ["", "/w/other"], ids=["spare's request", "another"])
async def test_a_run_at_the_process_bound_while_the_spare_starts_is_not_stuck(
    autojump_clock, workspace
):
    """Hostile-use finding (round 5): at ``max_processes`` with a warm spare, a run that came
    while the spare was still starting found nothing to close and waited in the FIFO for a
    slot; the spare then came up holding that slot and nothing looked again — the run (and
    every later one) waited forever (claude, ``max_processes=1, warm=1``: no run ever ran)."""
    drivers: list[ScriptedDriver] = []

    def factory(config: object, initial: RunRequest) -> ScriptedDriver:
        drivers.append(SlowStart(thread_id=f"thr-{len(drivers) + 1}", auto_reply=True))
        return drivers[-1]

    scaling = ScalingConfig(warm=1, max_processes=1)
    with trio.fail_after(600):
        async with SessionBackend("codex", driver_factory=factory, scaling=scaling) as b:
            await until(lambda: len(drivers) == 1)
            assert not b.pool.spares  # the spare is starting
            results = []
            for key in ("a", "b"):
                results.append(await b.run(keyed(key, key, workspace_dir=workspace)))
                assert b.pool.processes() <= 1
    assert [r.reply for r in results] == ["reply to a", "reply to b"]
