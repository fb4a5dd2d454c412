"""C1: a stdout line longer than any fixed buffer (2 MB, 50 MB) is delivered, or ends the run
with a typed error (or is skipped and reported, by policy); the run never wedges and the framer
never buffers past its limit.

Peers: claude-agent-sdk dies on a 1 MiB line (fatal CLIJSONDecodeError, then a 5 s close);
asyncio readline users (ACP ≤0.7) on 64 KiB; Alice's opencode one-shot hangs on 2 MiB (§13.19).
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import attrs
import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import LineTooLongError
from alice_trio.framing import DEFAULT_MAX_LINE_BYTES, LineFramer, OversizedLine
from alice_trio.providers.base import Invocation
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.providers.replay import ReplayConfig
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, new_mark, req

MB = 1_000_000


async def test_2mb_line_is_delivered_with_default_limits():
    result = await run_oneshot(PROVIDER, cfg("--giant-line", str(2 * MB)), req())
    assert result.reply == "g" * (2 * MB)


async def test_50mb_line_is_delivered_under_the_default_64mib_limit():
    assert DEFAULT_MAX_LINE_BYTES > 50 * MB
    mark = new_mark()
    with trio.fail_after(30):
        result = await run_oneshot(
            PROVIDER, cfg("--giant-line", str(50 * MB), "--text", "after"), req(mark)
        )
    assert result.reply == "after"  # the run went on past the giant event
    assert_nothing_left(mark)


async def test_50mb_line_over_a_small_limit_is_a_typed_error_and_memory_stays_bounded():
    mark = new_mark()
    limits = attrs.evolve(FAST, max_line_bytes=1 << 20)
    tracemalloc.start()
    try:
        with trio.fail_after(30), pytest.raises(LineTooLongError) as info:
            await run_oneshot(
                PROVIDER,
                cfg(
                    "--lines",
                    "1",
                    "--giant-line",
                    str(50 * MB),
                    "--sleep-after",
                    "30",
                    limits=limits,
                ),
                req(mark),
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = info.value
    assert err.limit == 1 << 20
    assert "line of" in str(err)
    assert err.partial.next_thread_id == "thread-1"  # the partial survives the error
    assert err.partial.reply.startswith("line 0 ")  # the event before the giant line
    # the 50 MB line was discarded as it arrived: never more than ~limit + a read chunk held
    assert peak < 12 * MB, f"peak traced memory {peak} bytes"
    assert_nothing_left(mark)


async def test_50mb_line_over_the_limit_can_be_skipped_and_the_run_goes_on():
    limits = attrs.evolve(FAST, max_line_bytes=1 << 20, line_policy="skip")
    raw = []
    with trio.fail_after(30):
        result = await run_oneshot(
            PROVIDER,
            cfg("--giant-line", str(50 * MB), "--text", "after", limits=limits),
            req(on_raw_event=raw.append),
        )
    assert result.reply == "after"
    skipped = [e for e in raw if "skipped a line of" in e.detail]
    assert len(skipped) == 1
    assert skipped[0].kind == "unknown"
    assert skipped[0].line.startswith('{"type": "text"')  # the head of the line, for diagnosis


def test_framer_never_holds_more_than_the_limit():
    framer = LineFramer(1000)
    chunk = b"x" * 4096
    for _ in range(100):
        assert framer.feed(chunk) == []
        assert framer.buffered <= 1000
    out = framer.feed(b"\nok\n")
    assert out == [OversizedLine(409_600, b"x" * 200), b"ok"]


async def test_real_provider_decoder_gets_a_2mb_event(tmp_path: Path):
    """A codex transcript whose agent_message is 2 MB, replayed through the real codex decoder."""
    big = "b" * (2 * MB)
    lines = [
        {"type": "thread.started", "thread_id": "t-big"},
        {"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": big}},
        {"type": "turn.completed", "usage": {"input_tokens": 3, "output_tokens": 4}},
    ]
    path = tmp_path / "big.stdout"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    config = ReplayConfig(transcript=str(path), decode_as="codex", speed=0, limits=FAST)
    result = await run_oneshot(REPLAY, config, req())
    assert result.reply == big
    assert result.next_thread_id == "t-big"


async def test_session_process_oversized_line_is_a_bare_typed_error():
    """An interactive process (AgentProcess) with policy "error" raises LineTooLongError itself,
    not an ExceptionGroup, and leaves nothing behind."""
    mark = new_mark()
    inv = Invocation(
        argv=(sys.executable, FAKE_CLI, "--giant-line", str(3 * MB), "--sleep-after", "30"),
        env={"TEST_MARK": mark},
        limits=attrs.evolve(FAST, max_line_bytes=100_000),
    )
    seen = []
    with trio.fail_after(10), pytest.raises(LineTooLongError):
        async with open_agent_process(inv, name="fake") as agent:
            async for line in agent.lines:
                seen.append(line)
    assert seen and "thread" in seen[0]
    assert_nothing_left(mark)


async def test_session_process_skip_policy_counts_and_goes_on():
    inv = Invocation(
        argv=(sys.executable, FAKE_CLI, "--giant-line", str(3 * MB), "--text", "after"),
        limits=attrs.evolve(FAST, max_line_bytes=100_000, line_policy="skip"),
    )
    with trio.fail_after(10):
        async with open_agent_process(inv, name="fake") as agent:
            lines = [line async for line in agent.lines]
    assert agent.oversized == 1
    assert any('"after"' in line for line in lines)


ENDLESS = (
    "import sys, time\n"
    'sys.stdout.write(\'{"type": "thread", "id": "t"}\\n\')\n'
    "sys.stdout.write('x' * 3_000_000)\n"  # a line with no newline, and the CLI stays alive
    "sys.stdout.flush()\n"
    "time.sleep(60)\n"
)


async def test_an_endless_line_without_newline_fails_at_once_oneshot():
    """Over the limit is an error as soon as the limit is passed, not at the newline that never
    comes: no wait for the idle or overall timeout (hostile trial finding 7)."""
    mark = new_mark()
    config = attrs.evolve(cfg(), limits=attrs.evolve(FAST, max_line_bytes=1 << 20), timeout=50.0)
    inv_argv = (sys.executable, "-c", ENDLESS)
    invocation = attrs.evolve(PROVIDER.build_invocation(req(mark), config), argv=inv_argv)
    from alice_trio.engine.oneshot import run_invocation

    from fake_provider import FakeDecoder

    with trio.fail_after(20), pytest.raises(LineTooLongError, match="at least"):
        await run_invocation(invocation, FakeDecoder(), provider="fake")
    assert_nothing_left(mark)


async def test_an_endless_line_without_newline_fails_at_once_in_a_session():
    mark = new_mark()
    inv = Invocation(
        argv=(sys.executable, "-c", ENDLESS),
        env={"TEST_MARK": mark},
        limits=attrs.evolve(FAST, max_line_bytes=1 << 20),
    )
    with trio.fail_after(20), pytest.raises(LineTooLongError, match="at least"):
        async with open_agent_process(inv, name="fake") as agent:
            async for _ in agent.lines:
                pass
    assert_nothing_left(mark)
