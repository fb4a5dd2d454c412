"""C12: an interrupt is bounded — a deadline, then a kill — and the turn is reported as
interrupted, not as an error. Covered for the one-shot session driver (every provider without
an interactive protocol, and gemini), the session backend under the caller's cancellation, and
the one-shot decoders of recorded interrupted runs.

Peers: claude-agent-sdk-typescript#429 (interrupt before init is a no-op), t3code#7349 (awaiting
an interrupt against a wedged CLI never settles), claude-agent-sdk-go#147, -typescript#405
(interrupt reported as error_during_execution)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import RunInterruptedError
from alice_trio.models import EventKind
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.providers.replay import ReplayConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.session import open_session

from fake_provider import PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, elapsed, new_mark, req
from transcripts_index import ROOT

INTERRUPTED = [
    ("claude", "claude/claude_sigint_streaming.stdout"),
    ("claude", "claude/claude_sigint_during_tool.stdout"),
    ("kimi", "kimi/kimi_legacy_sigint_streaming.stdout"),
]


@pytest.mark.parametrize(("provider", "path"), INTERRUPTED)
async def test_recorded_interrupted_runs_are_reported_as_interrupted(provider: str, path: str):
    config = ReplayConfig(transcript=str(ROOT / path), decode_as=provider, speed=0, limits=FAST)
    with pytest.raises(RunInterruptedError) as info:
        await run_oneshot(REPLAY, config, req())
    assert "interrupted" in str(info.value)


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_session_interrupt_kills_within_the_grace_and_reports_interrupted(ignore_term):
    mark = new_mark()
    args = ["--text", "partial", "--sleep", "30"] + (["--ignore-term"] if ignore_term else [])
    config = cfg(*args)
    with trio.fail_after(10):
        async with open_session(PROVIDER, config, initial=req(mark)) as session:
            submitted = await session.submit(req(mark))
            events = session.events()
            async for event in events:
                if event.kind is EventKind.ASSISTANT_TEXT:
                    break
            with elapsed() as took:
                await session.interrupt()
                async for event in events:
                    if event.kind.terminal:
                        break
            assert event.kind is EventKind.TURN_INTERRUPTED
            assert event.turn_id == submitted.turn_id
            assert took[0] < FAST.kill_grace + 2.0
            assert not session.busy
    assert_nothing_left(mark)


async def test_session_backend_cancel_is_interrupt_then_kill_and_bounded(tmp_path: Path):
    mark = new_mark()
    async with SessionBackend(PROVIDER, cfg("--text", "p", "--sleep", "30")) as backend:
        with elapsed() as took, trio.move_on_after(0.5) as scope:
            await backend.run(req(mark, env={"ALICE_SESSION_KEY": "k1"}))
        assert scope.cancelled_caught
        assert took[0] < 0.5 + backend.interrupt_deadline + 1.0
        assert backend.open_sessions() == []  # the interrupted session was dropped
    assert_nothing_left(mark)


async def test_interrupt_right_after_submit_before_the_cli_started_is_not_lost():
    """claude-agent-sdk-typescript#429: an interrupt before the CLI initialized must apply."""
    mark = new_mark()
    with trio.fail_after(10):
        async with open_session(PROVIDER, cfg("--sleep", "30"), initial=req(mark)) as session:
            await session.submit(req(mark))
            await session.interrupt()  # the process may not even be spawned yet
            kinds = []
            async for event in session.events():
                kinds.append(event.kind)
                if event.kind.terminal:
                    break
            assert kinds[-1] is EventKind.TURN_INTERRUPTED
    assert_nothing_left(mark)
