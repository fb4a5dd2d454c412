"""Admission control (sessions/admission.py): what its mutation run (docs/mutation-testing.md)
found untested — the conversation bound a process bound implies, the scan for an idle
conversation past busy ones, and the bounded memory of thread ids to resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio
import trio.testing
from test_admission import Factory, keyed, until

from alice_trio.errors import ConfigError
from alice_trio.sessions import admission as admission_module
from alice_trio.sessions.admission import Admission
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig


def test_a_process_bound_bounds_the_conversations_of_a_process_per_conversation_provider():
    def limit(shared: bool, **kw: int) -> int:
        return Admission(ScalingConfig(warm=0, **kw), shared=shared).max_conversations

    # one process per conversation: the process bound is a conversation bound too
    assert limit(False, max_processes=3) == 3
    assert limit(False, max_processes=3, max_conversations=5) == 3
    assert limit(False, max_processes=3, max_conversations=2) == 2
    assert limit(False, max_conversations=4) == 4
    assert limit(False) == 0  # no bound at all
    # shared processes: conversations are not processes
    assert limit(True, max_processes=3) == 0
    assert limit(True, max_processes=3, max_conversations=5) == 5


def _closed(key: str, thread_id: str, resumable: bool = True) -> SimpleNamespace:
    """What Admission.remember reads of a backend entry whose conversation was closed."""
    return SimpleNamespace(key=key, session=SimpleNamespace(thread_id=thread_id,
                                                            resumable=resumable))  # fmt: skip


def test_the_memory_of_thread_ids_to_resume_is_bounded_and_keeps_the_newest(monkeypatch):
    monkeypatch.setattr(admission_module, "RESUME_MEMORY", 3)
    a = Admission(ScalingConfig(warm=0), shared=True)
    remember = lambda key, thread_id: a.remember(_closed(key, thread_id))  # noqa: E731
    for i in range(5):
        remember(f"k{i}", f"thr-{i}")
    assert list(a.resume_ids) == ["k2", "k3", "k4"]
    remember("k2", "thr-2b")  # remembered again: the newest now
    remember("k5", "thr-5")
    assert list(a.resume_ids) == ["k4", "k2", "k5"]
    remember("k6", "")  # nothing to resume: not remembered, nothing forgotten
    a.remember(_closed("k7", "thr-7", resumable=False))  # the agent cannot resume it
    assert list(a.resume_ids) == ["k4", "k2", "k5"]
    request = keyed("again", "k2")
    assert a.resume("k2", request).thread_id == "thr-2b" and "k2" not in a.resume_ids
    assert a.resume("k2", request).thread_id == ""  # used once


async def test_room_is_made_past_a_busy_least_recently_used_conversation(autojump_clock):
    """The least recently used conversation is busy (its turn runs): the next idle one in
    LRU order is closed for the new conversation, which does not wait for the busy turn."""
    f = Factory()
    scaling = ScalingConfig(warm=0, max_conversations=2)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        with trio.fail_after(300):  # MockClock: virtual seconds
            await _busy_a_idle_b_then_c(b, f)
        assert b.admission.evicted == 1


async def _busy_a_idle_b_then_c(b: SessionBackend, f: Factory) -> None:
    async with trio.open_nursery() as n:
        n.start_soon(b.run, keyed("a1", "a"))  # a busy until released below
        await until(lambda: f.drivers and f.drivers[0].started)

        async def run_b() -> None:
            await b.run(keyed("b1", "b"))

        n.start_soon(run_b)
        await until(lambda: len(f.drivers) == 2 and f.drivers[1].started)
        ref, _ = f.drivers[1].started[0]
        await f.drivers[1].finish(ref, text="b1 done")  # b idle, a still busy
        await trio.testing.wait_all_tasks_blocked()
        done = trio.Event()

        async def run_c() -> None:
            await b.run(keyed("c1", "c"))
            done.set()

        n.start_soon(run_c)
        await until(lambda: len(f.drivers) == 3 and f.drivers[2].started)
        assert f.drivers[1].closed_with == [True] and not f.drivers[0].closed_with
        ref, _ = f.drivers[2].started[0]
        await f.drivers[2].finish(ref, text="c1 done")
        await done.wait()
        assert b.open_sessions() == ["a", "c"]
        ref, _ = f.drivers[0].started[0]
        await f.drivers[0].finish(ref, text="a1 done")


async def test_room_is_made_first_from_a_conversation_whose_key_nobody_waits_for(
    autojump_clock,
):
    """max_turns=1, max_conversations=2: a (least recently used) and z are idle; a's next run
    holds a's lock and waits for the turn slot that b takes, and b needs room. z (nobody
    waits for it) is closed, not a: a2 then runs on a's open conversation."""
    f = Factory()
    scaling = ScalingConfig(warm=0, max_turns=1, max_conversations=2)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        replies: dict[str, str] = {}

        async def run(text: str, key: str) -> None:
            replies[text] = (await b.run(keyed(text, key))).reply

        async def answer(i: int, text: str, turns: int = 1) -> None:
            await until(lambda: len(f.drivers) > i and len(f.drivers[i].started) == turns)
            ref, _ = f.drivers[i].started[-1]
            await f.drivers[i].finish(ref, text=text)

        with trio.fail_after(300):  # MockClock: virtual seconds
            async with trio.open_nursery() as n:
                for i, key in enumerate("az"):  # a, then z: a is the least recently used
                    n.start_soon(run, f"{key}0", key)
                    await answer(i, f"{key}0 done")
                    await until(lambda key=key: f"{key}0" in replies)
                n.start_soon(run, "z1", "z")  # z busy: holds the only turn slot
                await until(lambda: len(f.drivers[1].started) == 2)
                n.start_soon(run, "b1", "b")  # waits for the turn slot
                await trio.testing.wait_all_tasks_blocked()
                n.start_soon(run, "a2", "a")  # holds a's lock, waits for the turn slot
                await trio.testing.wait_all_tasks_blocked()
                await answer(1, "z1 done", 2)  # b gets the slot and needs room
                await answer(2, "b1 done")
                assert f.drivers[1].closed_with == [True]  # z made room
                assert not f.drivers[0].closed_with  # a kept: its next run waited for it
                await answer(0, "a2 done", 2)  # a2 ran on a's conversation
        assert replies["a2"] == "a2 done" and replies["b1"] == "b1 done"
        assert len(f.drivers) == 3 and b.open_sessions() == ["a", "b"]


def _held(adm: Admission, nursery: trio.Nursery, holder: str, release: trio.Event) -> None:
    async def hold() -> None:
        async with adm.turn(holder=holder):
            await release.wait()

    nursery.start_soon(hold)


async def test_a_run_refused_for_a_bound_its_chain_holds_is_named_in_the_error() -> None:
    """The ConfigError of a run started from a callback of the runs holding every turn slot
    names those runs, and the refused run: a run without a key is "a run"."""
    adm = Admission(ScalingConfig(warm=0, max_turns=2), shared=True)
    release = trio.Event()
    async with trio.open_nursery() as n:
        _held(adm, n, "a", release)
        _held(adm, n, "b", release)
        await trio.testing.wait_all_tasks_blocked()
        for holder, what in [("\0run:7", "a run"), ("", "a run"), ("c", "conversation 'c'")]:
            with pytest.raises(ConfigError) as caught:
                async with adm.turn(holder=holder, chain=frozenset({"a", "b"}), provider="codex"):
                    raise AssertionError("admitted")
            assert str(caught.value).startswith(
                f"SessionBackend.run of {what} from a callback or approver of 'a', 'b' would "
                "wait forever: max_turns is held by that run"
            )
            assert caught.value.provider == "codex"
        release.set()


async def test_a_chained_run_is_not_refused_while_the_slot_passes_to_another_run() -> None:
    """The only turn slot is handed from a to b (b not yet running): a run started from a
    callback of another run waits for its turn (b holds the slot, not its chain)."""
    adm = Admission(ScalingConfig(warm=0, max_turns=1), shared=True)
    a_done, b_in, b_done = trio.Event(), trio.Event(), trio.Event()
    got: list[str] = []

    async def b_run() -> None:
        async with adm.turn(holder="b"):
            b_in.set()
            await b_done.wait()

    async def chained() -> None:
        async with adm.turn(holder="c", chain=frozenset({"x"})):
            got.append("c")

    async def a_run(nursery: trio.Nursery) -> None:
        async with adm.turn(holder="a"):
            await a_done.wait()
        # the slot went to b, which has not run yet: no holder is known this instant
        nursery.start_soon(chained)

    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(a_run, n)
            await trio.testing.wait_all_tasks_blocked()
            n.start_soon(b_run)
            await trio.testing.wait_all_tasks_blocked()
            a_done.set()
            await b_in.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert got == []  # waits behind b
            b_done.set()
    assert got == ["c"]


async def test_a_thread_id_given_by_the_run_wins_over_the_remembered_one(autojump_clock):
    """a's conversation was closed to make room (its thread remembered); a's next run names a
    thread of its own: that thread is opened, not the remembered one."""
    f = Factory(auto_reply=True)
    scaling = ScalingConfig(warm=0, max_conversations=1)
    async with SessionBackend("codex", driver_factory=f, scaling=scaling) as b:
        with trio.fail_after(100):
            await b.run(keyed("a1", "a"))
            await b.run(keyed("b1", "b"))  # a closed to make room, thr-1 remembered
            assert b.admission.resume_ids == {"a": "thr-1"}
            result = await b.run(keyed("a2", "a", thread_id="thr-other"))
        assert f.initials[-1].thread_id == "thr-other"
        assert result.next_thread_id == "thr-other"
