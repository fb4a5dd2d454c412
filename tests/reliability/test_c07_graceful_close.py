"""C7: after a finished turn the CLI gets to flush (write its session file) before anything is
killed: one-shot runs give it ``drain_timeout`` after the terminal event; an interactive
process closed gracefully gets stdin EOF and ``close_grace``. Cancel still means kill now.

Peers: claude-code#31613, claude-agent-sdk#584 (SIGTERM right after EOF truncated the .jsonl,
resume then failed); claude-agent-sdk fixed it with a 5 s grace that also slows every cancel."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.providers.base import Invocation
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, elapsed, new_mark, req


async def test_oneshot_cli_flushes_after_its_final_event(tmp_path: Path):
    flushed = tmp_path / "session.jsonl"
    progress: list[str] = []
    result = await run_oneshot(
        PROVIDER,
        cfg("--text", "final", "--flush-file", str(flushed), "--flush-delay", "0.2"),
        req(on_progress=progress.append),
    )
    assert result.reply == "final"
    assert flushed.read_text() == "flushed\n"  # not killed right after the final event
    assert progress[-1] == "final"  # the last event reached the caller before the return


async def test_oneshot_flush_longer_than_the_drain_deadline_is_cut(tmp_path: Path):
    """The grace is bounded: a CLI that lingers past drain_timeout is killed, result kept."""
    flushed = tmp_path / "session.jsonl"
    mark = new_mark()
    result = await run_oneshot(
        PROVIDER,
        cfg("--text", "final", "--flush-file", str(flushed), "--flush-delay", "5"),
        req(mark),
    )
    assert result.reply == "final"
    assert not flushed.exists()
    assert_nothing_left(mark)


async def test_cancel_mid_turn_does_not_wait_for_a_flush(tmp_path: Path):
    flushed = tmp_path / "session.jsonl"
    mark = new_mark()
    with elapsed() as took, trio.move_on_after(0.3):
        await run_oneshot(
            PROVIDER,
            cfg("--sleep", "30", "--flush-file", str(flushed), "--flush-delay", "0"),
            req(mark),
        )
    assert took[0] < 0.3 + FAST.kill_grace + 1.5
    assert not flushed.exists()
    assert_nothing_left(mark)


def _interactive(flushed: Path, mark: str, delay: str = "0.2") -> Invocation:
    argv = (sys.executable, FAKE_CLI, "--interactive", "--flush-file", str(flushed),
            "--flush-delay", delay)  # fmt: skip
    return Invocation(argv=argv, env={"TEST_MARK": mark}, limits=FAST)


async def _one_turn(agent) -> list[str]:
    await agent.send(b"hello\n")
    got = []
    async for line in agent.lines:
        got.append(line)
        if '"done"' in line:
            return got
    return got


async def test_interactive_graceful_close_gives_eof_and_time_to_flush(tmp_path: Path):
    flushed, mark = tmp_path / "s.jsonl", new_mark()
    async with open_agent_process(_interactive(flushed, mark), name="fake") as agent:
        got = await _one_turn(agent)
    assert any("echo 1: hello" in line for line in got)
    assert flushed.read_text() == "flushed\n"
    assert agent.returncode == 0  # it exited by itself, not by a signal
    assert_nothing_left(mark)


async def test_interactive_hard_close_kills_without_waiting(tmp_path: Path):
    flushed, mark = tmp_path / "s.jsonl", new_mark()
    with elapsed() as took:
        async with open_agent_process(
            _interactive(flushed, mark, delay="5"), name="fake", graceful=False
        ) as agent:
            await _one_turn(agent)
    assert took[0] < 3.0
    assert not flushed.exists()
    assert agent.returncode is not None and agent.returncode < 0
    assert_nothing_left(mark)


async def test_interactive_close_grace_is_bounded(tmp_path: Path):
    flushed, mark = tmp_path / "s.jsonl", new_mark()
    with elapsed() as took:
        async with open_agent_process(
            _interactive(flushed, mark, delay="30"), name="fake", close_grace=0.3
        ) as agent:
            await _one_turn(agent)
    assert took[0] < 0.3 + FAST.kill_grace + 2.0
    assert_nothing_left(mark)
