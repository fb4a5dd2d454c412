"""Hostile-use finding (round 4): ``SessionBackend.run`` honours the config's idle timeout
(``idle_timeout_secs``: fail the turn when the agent is silent this long), as one-shot runs do.

Before, a session turn whose agent went silent (a stalled model, an agent that answers its
turn's events to another thread) waited for the overall timeout — 48 h by default — whatever
``idle_timeout_secs`` said. Now: no event of its conversation for that long → the turn is
interrupted, the session dropped, :class:`IdleTimeoutError` with the partial result."""

from __future__ import annotations

import pytest
import trio
from scripted_driver import ScriptedDriver

from alice_trio.errors import IdleTimeoutError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.codex import CodexConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.driver import TurnRef


class Factory:
    def __init__(self) -> None:
        self.drivers: list[ScriptedDriver] = []

    def __call__(self, config: object, initial: RunRequest) -> ScriptedDriver:
        d = ScriptedDriver()
        self.drivers.append(d)
        return d


async def first_turn(f: Factory) -> tuple[ScriptedDriver, TurnRef]:
    """The driver and turn of the run, once it started (mock clock: polling is free)."""
    while not (f.drivers and f.drivers[-1].started):  # noqa: ASYNC110 - the driver's record
        await trio.sleep(0.1)
    return f.drivers[-1], f.drivers[-1].started[-1][0]


def keyed(text: str) -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": "conv-1"})


async def test_a_silent_turn_is_an_idle_timeout_with_its_partial(autojump_clock):
    f = Factory()
    config = CodexConfig(idle_timeout=30)
    async with SessionBackend("codex", config, driver_factory=f) as b:

        async def agent() -> None:  # says something, then goes silent for good
            d, ref = await first_turn(f)
            await trio.sleep(5)
            await d.push(
                TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="so far", thread_id=ref.thread_id,
                          turn_id=ref.turn_id)
            )  # fmt: skip

        start = trio.current_time()
        async with trio.open_nursery() as n:
            n.start_soon(agent)
            with pytest.raises(IdleTimeoutError) as info:
                await b.run(keyed("hello"))
        took = trio.current_time() - start
        assert 35 <= took < 40  # 5 s, the event, 30 s of silence (not the 48 h timeout)
        assert info.value.idle_seconds == 30
        assert info.value.partial.reply == "so far"
        assert f.drivers[0].interrupted  # the turn was interrupted ...
        assert b.open_sessions() == []  # ... and the session dropped
        assert f.drivers[0].closed_with


async def test_events_keep_a_long_turn_alive(autojump_clock):
    f = Factory()
    async with SessionBackend("codex", CodexConfig(idle_timeout=30), driver_factory=f) as b:

        async def agent() -> None:  # an event every 20 s for 200 s, then the reply
            d, ref = await first_turn(f)
            for i in range(10):
                await trio.sleep(20)
                await d.push(
                    TurnEvent(kind=EventKind.TOOL_USE, text=f"step {i}", thread_id=ref.thread_id,
                              turn_id=ref.turn_id)
                )  # fmt: skip
            await d.finish(ref, text="done")

        async with trio.open_nursery() as n:
            n.start_soon(agent)
            result = await b.run(keyed("hello"))
        assert result.reply == "done"


async def test_without_an_idle_timeout_a_silent_turn_waits(autojump_clock):
    f = Factory()
    async with SessionBackend("codex", CodexConfig(), driver_factory=f) as b:
        with trio.move_on_after(10_000) as scope:
            await b.run(keyed("hello"))
        assert scope.cancelled_caught


async def test_the_idle_timer_waits_for_a_human_approver(tmp_path):
    """The approver may take long (a human answering in a chat: "the turn waits with it"): no
    event comes meanwhile, yet that is no stall. The idle timer of the turn waiting for an
    answer restarts instead of firing."""
    import sys
    from pathlib import Path

    from alice_trio.providers.base import RunLimits
    from alice_trio.sessions.approval import ApprovalDecision
    from alice_trio.sessions.scaling import ScalingConfig

    agent = Path(__file__).with_name("fake_shared_agent.py")
    cmd = tmp_path / "fake-codex"
    cmd.write_text(f"#!/bin/sh\nexec {sys.executable} {agent} codex {tmp_path / 'log'}\n")
    cmd.chmod(0o755)
    config = CodexConfig(
        command=str(cmd), idle_timeout=3, workspace_dir=str(tmp_path),
        limits=RunLimits(kill_grace=0.2, drain_timeout=0.5),
    )  # fmt: skip
    asked: list[str] = []

    async def slow_human(request):
        asked.append(request.kind)
        await trio.sleep(8)  # well past the idle timeout
        return ApprovalDecision.ACCEPT

    backend = SessionBackend("codex", config, approver=slow_human, scaling=ScalingConfig(warm=0))
    async with backend:
        result = await backend.run(keyed("ASK"))
    assert asked == ["command"]
    assert result.reply == "answer: accept"
