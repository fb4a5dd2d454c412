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


# -- a background job that keeps writing to the inherited stdout (issue 12.2) ----------------
# Before: the drain after the CLI's exit counted *silence*, so a job that is never silent held
# the run until the overall timeout, and the reply was thrown away as RunTimeoutError.

CHATTY = ("--grandchild", "chatty", "--grandchild-ignore-term")


async def test_terminal_and_exit_end_the_run_while_a_job_keeps_writing():
    mark = new_mark()
    with trio.fail_after(60):
        result = await run_oneshot(PROVIDER, cfg(*CHATTY, "--text", "ok", timeout=20), req(mark))
    assert result.reply == "ok"
    assert_nothing_left(mark)  # the writer was swept


async def test_exit_without_terminal_ends_the_run_while_a_job_keeps_writing():
    mark = new_mark()
    with trio.fail_after(60), pytest.raises(ProcessFailedError) as info:
        await run_oneshot(
            PROVIDER, cfg(*CHATTY, "--text", "p", "--crash", "4", timeout=20), req(mark)
        )
    assert info.value.returncode == 4 and info.value.partial.reply == "p"
    assert_nothing_left(mark)


async def test_a_slow_consumer_still_gets_everything_the_cli_wrote():
    """The drain after the exit is bounded by what the CLI wrote, not by time: a callback
    slower than drain_timeout loses nothing the CLI printed before it died."""
    mark = new_mark()
    seen: list[str] = []

    async def slow(text: str) -> None:
        await trio.sleep(0.002)  # 1500 events: ≈3 s of delivery, drain_timeout is 0.5 s
        seen.append(text)

    request = req(mark, on_progress=slow)
    with trio.fail_after(120):
        result = await run_oneshot(
            PROVIDER,
            cfg(*CHATTY, "--lines", "1500", "--text", "last", limits_kw={"callback_buffer": 8}),
            request,
        )
    assert result.reply == "last"
    assert len([t for t in seen if t.startswith("line ")]) == 1500 and seen[-1] == "last"
    assert_nothing_left(mark)


async def test_interactive_lines_end_while_a_job_keeps_writing():
    mark = new_mark()
    argv = (sys.executable, FAKE_CLI, "--interactive", *CHATTY)
    inv = Invocation(argv=argv, env={"TEST_MARK": mark}, limits=FAST)
    with trio.fail_after(30):
        async with open_agent_process(inv, name="fake", graceful=False) as agent:
            await agent.send(b"hello\n")
            await agent.send(b"crash\n")
            lines = [line async for line in agent.lines]  # ends: no hang
            assert agent.returncode == 3
    assert any("echo 1: hello" in line for line in lines)
    assert_nothing_left(mark)


async def test_interactive_slow_reader_gets_every_line_written_before_the_exit():
    mark = new_mark()
    code = (
        "import json, sys\n"
        "for i in range(3000):\n"
        "    sys.stdout.write(json.dumps({'n': i, 'pad': 'x' * 200}) + '\\n')\n"
        "sys.stdout.flush()\n"
    )
    # ≈600 KB, read at ≈3 s: the CLI exits with its last lines still in the pipe and in the
    # lines channel, long before the consumer gets to them (drain_timeout is 0.5 s)
    inv = Invocation(argv=(sys.executable, "-c", code), env={"TEST_MARK": mark}, limits=FAST)
    got = []
    with trio.fail_after(60):
        async with open_agent_process(inv, name="fake", graceful=False) as agent:
            async for line in agent.lines:
                got.append(line)
                await trio.sleep(0.001)
    assert len(got) == 3000
    assert_nothing_left(mark)
