"""The one-shot engine and the session transport on trio's MockClock, through a fake process
(the :class:`alice_trio.engine.spawn.Child` seam): timeouts and escalation are checked in
virtual time, exactly, with no real process and no real waiting."""

from __future__ import annotations

import json
import signal

import pytest
import trio
import trio.testing

from alice_trio.engine.oneshot import run_invocation
from alice_trio.errors import IdleTimeoutError, RunTimeoutError
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.transports.process import open_agent_process

from fake_provider import FakeDecoder

LIMITS = RunLimits(kill_grace=3.0, drain_timeout=2.0)


def line(**obj: object) -> bytes:
    return (json.dumps(obj) + "\n").encode()


class FakeChild:
    """A CLI leading its group. ``stubborn``: ignores SIGTERM. ``background``: something it
    started keeps the group (and stdout) alive after the CLI itself exited."""

    pid = 2**22 + 1  # never signalled for real

    def __init__(self, *, stubborn: bool = False) -> None:
        self.stubborn = stubborn
        self._out, self.stdout = trio.testing.memory_stream_one_way_pair()
        self._err, self.stderr = trio.testing.memory_stream_one_way_pair()
        self.stdin, self._in = trio.testing.memory_stream_one_way_pair()
        self.returncode: int | None = None
        self.background = False
        self.signals: list[tuple[float, int]] = []
        self.swept = False
        self._exited = trio.Event()
        self._writing = trio.Lock()  # the CLI and its job write to one pipe

    # -- the Child protocol ----------------------------------------------------------------
    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def signal_group(self, sig: int) -> bool:
        self.signals.append((trio.current_time(), sig))
        if sig == signal.SIGKILL or not self.stubborn:
            self.exit(-sig)
            self.background = False
        return True

    def group_running(self) -> bool:
        return self.returncode is None or self.background

    async def sweep(self) -> None:
        self.swept = True
        self.background = False

    def ready(self) -> None:
        pass

    def pending_output(self) -> int:
        return 0

    # -- scripting ---------------------------------------------------------------------------
    def exit(self, rc: int) -> None:
        if self.returncode is None:
            self.returncode = rc
            self._exited.set()

    async def say(self, data: bytes) -> None:
        async with self._writing:
            await self._out.send_all(data)

    async def chatter(self, every: float) -> None:
        """A background job writing to the inherited stdout until it is killed."""
        self.background = True
        while self.background:
            await self.say(b"log\n")
            await trio.sleep(every)
        await self._out.aclose()


def spawner_of(child: FakeChild):
    async def spawner(invocation: Invocation, *, name: str, stdin: str) -> FakeChild:
        return child

    return spawner


async def test_idle_timeout_fires_at_the_idle_deadline_then_escalates(autojump_clock):
    child = FakeChild(stubborn=True)
    inv = Invocation(argv=("fake",), idle_timeout=30.0, limits=LIMITS)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(child.say, line(type="thread", id="t"))
        with pytest.raises(IdleTimeoutError) as info:
            await run_invocation(inv, FakeDecoder(), provider="fake", spawner=spawner_of(child))
    assert info.value.partial.next_thread_id == "t"
    term, kill = child.signals
    assert (term[1], kill[1]) == (signal.SIGTERM, signal.SIGKILL)
    assert term[0] - start == pytest.approx(30.0, abs=0.01)
    assert kill[0] - term[0] == pytest.approx(LIMITS.kill_grace, abs=0.05)
    assert child.swept


async def test_run_timeout_is_exact_in_virtual_time(autojump_clock):
    child = FakeChild()
    inv = Invocation(argv=("fake",), timeout=3600.0, limits=LIMITS)
    start = trio.current_time()
    with pytest.raises(RunTimeoutError):
        await run_invocation(inv, FakeDecoder(), provider="fake", spawner=spawner_of(child))
    assert child.signals[0] == (pytest.approx(start + 3600.0, abs=0.01), signal.SIGTERM)


async def test_a_never_silent_background_job_cannot_hold_a_finished_run(autojump_clock):
    """Issue 12.2 in virtual time: terminal seen, CLI exited 0, a job keeps writing a line
    every 0.5 s to the inherited stdout. The run returns the reply within drain_timeout (it
    used to wait for the 48 h timeout and raise RunTimeoutError)."""
    child = FakeChild()
    inv = Invocation(argv=("fake",), timeout=48 * 3600.0, limits=LIMITS)

    async def cli(nursery: trio.Nursery) -> None:
        await child.say(line(type="thread", id="t") + line(type="text", text="ok"))
        nursery.start_soon(child.chatter, 0.5)
        await child.say(line(type="done", input=1, cached=0, output=1))
        await trio.sleep(0.1)
        child.exit(0)

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cli, nursery)
        result = await run_invocation(
            inv, FakeDecoder(), provider="fake", spawner=spawner_of(child)
        )
    assert result.reply == "ok"
    took = trio.current_time() - start
    assert took <= 0.1 + LIMITS.drain_timeout + LIMITS.kill_grace + 0.1
    assert not child.background  # killed by the teardown


async def test_session_lines_end_within_drain_of_the_exit_despite_a_chatty_job(autojump_clock):
    child = FakeChild()
    inv = Invocation(argv=("fake",), limits=LIMITS)
    async with (
        trio.open_nursery() as nursery,
        open_agent_process(inv, name="fake", graceful=False, spawner=spawner_of(child)) as agent,
    ):
        await child.say(line(type="text", text="hi"))
        nursery.start_soon(child.chatter, 0.5)
        child.exit(3)
        exited_at = trio.current_time()
        got = [x async for x in agent.lines]
        assert trio.current_time() - exited_at <= LIMITS.drain_timeout + 0.01
    assert json.loads(got[0]) == {"type": "text", "text": "hi"}
    assert set(got[1:]) <= {"log"}
    assert not child.background
