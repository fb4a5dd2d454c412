"""Go defects §13 items 3 and 12, each a test that would fail on the Go behaviour."""

from __future__ import annotations

import sys
from pathlib import Path

import trio
from scripted_driver import ScriptedDriver

from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import Invocation
from alice_trio.sessions.session import SessionState, open_session
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, FAST
from helpers import alive, marked, new_mark, read_pids


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


async def test_defect_03_events_emitted_after_close_never_crash():
    """Go: emit() checked ``closed`` then sent after unlocking while Close() closed the channel:
    a possible "send on closed channel" panic. Here a driver that keeps emitting after the
    session closed neither raises nor reopens the session. The late events are pushed after the
    driver's run ended and the session's channel is closed (before that they would only fill
    the buffer): with the ``except ClosedResourceError`` in ``InteractiveSession._emit`` taken
    out, this fails."""
    driver = ScriptedDriver()
    async with open_session("fake", initial=req("x"), driver=driver) as session:
        ref = (await session.submit(req("one"))).turn_id
        await session.aclose(graceful=False)
        with trio.fail_after(5):
            await session.driver_done.wait()
        for kind in (EventKind.ASSISTANT_TEXT, EventKind.TURN_COMPLETED):
            with trio.fail_after(5):
                await driver.push(TurnEvent(kind=kind, text="late", turn_id=ref))
        assert session.state is SessionState.CLOSED
        with trio.fail_after(5):
            assert [ev async for ev in session.events()] == []  # nothing after the close
    assert session.closed


async def test_defect_12_close_kills_the_group_fast_even_without_stdin(tmp_path: Path):
    """Go: WaitOrKill waited 10 s after closing stdin (opencode serve has none, so always
    10 s), then SIGTERM to the child only and 10 s more; grandchildren survived. Here a
    graceful close of a process that ignores stdin EOF takes ``close_grace`` + ``kill_grace``
    and ends the whole group."""
    mark, pidfile = new_mark(), tmp_path / "pids"
    invocation = Invocation(
        argv=(
            sys.executable,
            FAKE_CLI,
            "--grandchild",
            "own",
            "--grandchild-ignore-term",
            "--pidfile",
            str(pidfile),
            "--sleep",
            "60",
        ),
        env={"TEST_MARK": mark},
        limits=FAST,
    )
    with trio.fail_after(5):  # Go: ≥ 20 s
        async with open_agent_process(
            invocation, name="serve-like", stdin=False, close_grace=0.2
        ) as agent:
            await agent.lines.receive()
            while len(read_pids(pidfile)) < 2:  # noqa: ASYNC110 - another process's file
                await trio.sleep(0.01)
    assert [p for p in read_pids(pidfile) if alive(p)] == []
    assert marked(mark) == []
