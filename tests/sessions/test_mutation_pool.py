"""``HostPool`` (sessions/pool.py): what its mutation run (docs/mutation-testing.md) found
untested — the process bound kept exact when a start waited for its slot, a spare's process
closed to make room at the bound (and not one that hosts a live conversation), a taken spare
whose process ends by itself. One-process drivers are scripted (MockClock: virtual seconds);
shared processes are the fake codex app-server (real time: limits only guard against hangs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from test_admission import Factory, keyed, until
from test_hosted_conversations import make_config, req, wait_for
from test_pool_resume_routing import reply_of

from alice_trio.errors import AliceError, RunTimeoutError, TransportClosedError
from alice_trio.models import RunRequest
from alice_trio.providers import get_provider
from alice_trio.providers.codex import CodexConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import HostPool, ScalingConfig
from alice_trio.sessions.session import open_session
from alice_trio.testing import ScriptedDriver


def _one_process_pool(max_processes: int) -> HostPool:
    return HostPool(
        get_provider("codex"),
        CodexConfig(),
        scaling=ScalingConfig(warm=0, max_processes=max_processes),
        factory=lambda config, initial: ScriptedDriver(auto_reply=True),
    )


async def test_a_start_that_waited_for_the_process_bound_gives_its_slot_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At ``max_processes`` a new conversation waits for a process slot; once it got one and
    ended, the slot is free again: the bound never loses a slot."""
    initial = RunRequest(user_text="")
    async with _one_process_pool(1) as pool:

        async def second(up: trio.Event) -> None:
            driver = await pool.driver(initial)
            async with open_session("codex", initial=initial, driver=driver) as s:
                up.set()
                assert (await reply_of(s, "two")) == "reply to two"

        for _ in range(3):  # each round: one holds the only slot, the next waits for it
            second_up = trio.Event()
            with trio.fail_after(100):
                driver = await pool.driver(initial)
                async with open_session("codex", initial=initial, driver=driver) as s:
                    assert (await reply_of(s, "one")) == "reply to one"
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(second, second_up)
                        await trio.testing.wait_all_tasks_blocked()
                        assert not second_up.is_set()  # the bound holds
                        assert pool.processes() == 1
                        await s.aclose()
                        await second_up.wait()
                        assert pool.processes() == 1
                assert pool.processes() == 0  # both ended: no slot held by anyone


async def test_at_the_bound_the_spares_own_process_is_closed_for_another_one(
    tmp_path: Path,
) -> None:
    """max_processes=1 and a warm spare on a shared process: a conversation that needs another
    process (its own env) gets one — the spare and its process are closed at once, not kept
    until the idle timer."""
    config, _ = make_config(tmp_path, "codex")
    provider = get_provider("codex")
    scaling = ScalingConfig(warm=1, max_processes=1)
    async with HostPool(provider, config, scaling=scaling, idle_ttl=600) as pool:
        await wait_for(lambda: pool.spares, "a warm spare")
        spare_host = pool.hosts[0]
        other = RunRequest(user_text="", env={"OTHER_SETTING": "1"})
        with trio.fail_after(60):  # far less than the idle timer: a hang guard only
            driver = await pool.driver(other)
        async with open_session(provider, config, initial=other, driver=driver) as s:
            assert (await reply_of(s, "hello")).endswith(": hello")
            assert spare_host.done.is_set() and pool.hosts != [spare_host]
            assert pool.processes() == 1  # a new spare may join this process: no other one


async def test_at_the_bound_a_spare_sharing_a_live_conversations_process_is_kept(
    tmp_path: Path,
) -> None:
    """max_processes=1, host_capacity=2: conversation x took the spare and its replacement is
    the second conversation on x's (now full) process. A resume at the bound joins that
    process — closing the spare to make room would take x's process with it."""
    config, _ = make_config(tmp_path, "codex")
    provider = get_provider("codex")
    scaling = ScalingConfig(warm=1, max_processes=1, host_capacity=2)
    async with HostPool(provider, config, scaling=scaling, idle_ttl=600) as pool:
        await wait_for(lambda: pool.spares, "a warm spare")
        host = pool.hosts[0]
        initial = RunRequest(user_text="")
        x_driver = await pool.driver(initial)
        async with open_session(provider, config, initial=initial, driver=x_driver) as x:
            assert (await reply_of(x, "one")).endswith(": one")
            await wait_for(lambda: pool.spares and host.load == 2, "the replacement spare")
            with trio.fail_after(60):  # a hang guard only
                await pool.driver(RunRequest(user_text="", thread_id="thr-elsewhere"))
            assert not host.closing and pool.hosts == [host] and pool.spares
            assert (await reply_of(x, "two")).endswith(": two")  # x's process lives


@pytest.mark.parametrize("crash", [False, True])
async def test_a_taken_spare_whose_process_ends_fails_the_turn_typed(
    autojump_clock: trio.testing.MockClock, crash: bool
) -> None:
    f = Factory()
    async with SessionBackend("codex", driver_factory=f, scaling=ScalingConfig(warm=1)) as b:
        await until(lambda: len(b.pool.spares) == 1)
        with trio.fail_after(100):
            async with trio.open_nursery() as n:
                failed: list[BaseException] = []

                async def run() -> None:
                    try:
                        await b.run(keyed("hello", "a"))
                    except AliceError as exc:
                        failed.append(exc)

                n.start_soon(run)
                await until(lambda: f.drivers[0].started)
                assert b.pool.spares_used == 1
                f.drivers[0].end(AliceError("agent crashed") if crash else None)
        assert len(failed) == 1, failed
        if crash:  # the agent's own error, as the spare's process raised it
            assert str(failed[0]).startswith("agent crashed")
        else:
            assert isinstance(failed[0], TransportClosedError)
            assert str(failed[0]).startswith("codex process ended during the turn")


async def test_at_the_bound_a_full_spare_process_is_closed_for_a_resume(tmp_path: Path) -> None:
    """max_processes=1, host_capacity=1: the warm spare fills its process. A resume (which
    never takes a spare) gets a process of its own — the spare's is closed for it — rather
    than a second conversation on a process that takes one."""
    config, _ = make_config(tmp_path, "codex")
    provider = get_provider("codex")
    scaling = ScalingConfig(warm=1, max_processes=1, host_capacity=1)
    async with HostPool(provider, config, scaling=scaling, idle_ttl=600) as pool:
        await wait_for(lambda: pool.spares, "a warm spare")
        spare_host = pool.hosts[0]
        with trio.fail_after(60):  # a hang guard only
            driver = await pool.driver(RunRequest(user_text="", thread_id="thr-elsewhere"))
        assert driver.host is not spare_host  # type: ignore[attr-defined]
        assert spare_host.closing or spare_host.done.is_set()
        assert pool.processes() == 1


async def test_a_shared_start_that_fails_fails_every_run_that_waited_for_it_typed(
    tmp_path: Path,
) -> None:
    """The agent process exits at once: a second conversation that waited for that start
    (one start per process key at a time) tries its own, and both fail with the start's
    error — not a start timeout (the start did not time out)."""
    cmd = tmp_path / "fake-broken"
    cmd.write_text("#!/bin/sh\necho 'no such model' >&2\nexit 3\n")
    cmd.chmod(0o755)
    config, _ = make_config(tmp_path, "codex", command=str(cmd))
    provider = get_provider("codex")
    failures: list[BaseException] = []

    async def start() -> None:
        try:
            await pool.driver(RunRequest(user_text=""))
        except AliceError as exc:
            failures.append(exc)

    async with HostPool(provider, config, scaling=ScalingConfig(warm=0)) as pool:
        with trio.fail_after(60):  # a hang guard only
            async with trio.open_nursery() as nursery:
                nursery.start_soon(start)
                nursery.start_soon(start)
    assert len(failures) == 2, failures
    assert not any(isinstance(f, RunTimeoutError) for f in failures), failures
    assert type(failures[0]) is type(failures[1])


class _SlowCloser(ScriptedDriver):
    async def aclose(self, *, graceful: bool) -> None:
        await trio.sleep(1)  # waits for its process, as a real driver's close does
        await super().aclose(graceful=graceful)


class _ClosesSlowly(Factory):
    def __call__(self, config: object, initial: RunRequest) -> ScriptedDriver:
        driver = _SlowCloser(thread_id=f"thr-{len(self.drivers) + 1}")
        self.drivers.append(driver)
        self.initials.append(initial)
        return driver


async def test_a_session_on_a_taken_spare_cancelled_mid_turn_kills_its_process(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The caller's cancel ends a session that runs on a spare: the spare's driver is closed
    at once, without grace, and to the end though the close waits for its process (it was
    left running in the pool until the pool closed)."""
    f = _ClosesSlowly()
    initial = RunRequest(user_text="")
    scaling = ScalingConfig(warm=1)
    async with HostPool(get_provider("codex"), CodexConfig(), scaling=scaling, factory=f) as pool:
        await until(lambda: pool.spares)
        driver = await pool.driver(initial)
        with trio.move_on_after(5) as cancelled:
            async with open_session("codex", initial=initial, driver=driver) as s:
                await s.submit(RunRequest(user_text="a long turn"))
                await trio.sleep_forever()
        assert cancelled.cancelled_caught
        assert f.drivers[0].closed_with == [False]


@pytest.mark.parametrize("mode", ["codex", "acp"])
async def test_a_resume_goes_to_the_process_that_parked_it_not_the_first_one(
    tmp_path: Path, mode: str
) -> None:
    """Two processes of one kind, the first full (it opened ``host_capacity`` conversations):
    the conversation closed on the second is resumed there — not on the first (listed first),
    which never held that thread."""
    config, _ = make_config(tmp_path, mode)
    scaling = ScalingConfig(warm=0, host_capacity=2)
    provider = "codex" if mode == "codex" else "gemini"
    async with SessionBackend(provider, config, scaling=scaling, idle_ttl=600) as b:
        await b.run(req("a", "one"))
        await b.run(req("b", "two"))
        c = await b.run(req("c", "three"))  # the first process is full: a second one
        first, second = b.pool.hosts
        for key in ("a", "c"):  # the second holds c's thread parked
            b._drop(b._sessions[key], graceful=True)
        await wait_for(lambda: first.load == 1 and second.load == 0, "both closed")
        await b.run(req("e", "new"))  # a new conversation: the process with room
        assert first.load == 1 and second.load == 1
        again = await b.run(req("d", "back", thread_id=c.next_thread_id))
        assert again.reply == f"reply to {c.next_thread_id}: back"
        assert first.load == 1 and second.load == 2
        assert c.next_thread_id in {k for link in second.links for k in link.keys}
