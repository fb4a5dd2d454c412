"""C9: a grandchild that inherited stdout keeps the pipe open after the CLI died, so EOF never
comes. The run (or the interactive process's ``lines``) still ends within the drain deadline of
the exit, and the grandchild is killed.

Peers: untether#91, cpython gh-119710, tinyexec#138; claude-agent-sdk hangs until an external
deadline (reproduced in peers.md §4.3)."""

from __future__ import annotations

import sys

import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import ProcessFailedError, ProtocolError
from alice_trio.providers.base import Invocation
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, elapsed, new_mark, req

BOUND = FAST.drain_timeout + FAST.kill_grace + 2.0
HOLD = ("--grandchild", "inherit", "--grandchild-ignore-term")


async def test_crash_with_stdout_held_ends_within_the_drain_deadline():
    mark = new_mark()
    with elapsed() as took, pytest.raises(ProcessFailedError) as info:
        await run_oneshot(PROVIDER, cfg(*HOLD, "--text", "p", "--crash", "2"), req(mark))
    assert took[0] < BOUND
    assert info.value.returncode == 2 and info.value.partial.reply == "p"
    assert_nothing_left(mark)


async def test_success_with_stdout_held_returns_the_result():
    mark = new_mark()
    with elapsed() as took:
        result = await run_oneshot(PROVIDER, cfg(*HOLD, "--text", "ok"), req(mark))
    assert result.reply == "ok"
    assert took[0] < BOUND
    assert_nothing_left(mark)


async def test_clean_exit_without_reply_and_stdout_held():
    mark = new_mark()
    with elapsed() as took, pytest.raises(ProtocolError):
        await run_oneshot(PROVIDER, cfg(*HOLD, "--no-done"), req(mark))
    assert took[0] < BOUND
    assert_nothing_left(mark)


async def test_interactive_lines_end_after_the_exit_even_with_stdout_held():
    """Regression: ``lines`` stayed open until the grandchild died, so a session never saw
    its CLI crash."""
    mark = new_mark()
    argv = (sys.executable, FAKE_CLI, "--interactive", *HOLD)
    inv = Invocation(argv=argv, env={"TEST_MARK": mark}, limits=FAST)
    with trio.fail_after(10), elapsed() as took:
        async with open_agent_process(inv, name="fake", graceful=False) as agent:
            await agent.send(b"crash\n")
            lines = [line async for line in agent.lines]  # ends: no hang
            assert agent.exited.is_set() and agent.returncode == 3
            assert "crashed mid-session" in agent.stderr_tail()
    assert any('"thread"' in line for line in lines)
    assert took[0] < BOUND
    assert_nothing_left(mark)
