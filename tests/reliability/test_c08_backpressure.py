"""C8: stderr floods and slow or blocked consumers never deadlock the run, and memory stays
bounded (stderr is a bounded tail; informational raw events are shed, counted and reported;
progress events are back-pressured, never dropped). A callback that never returns cannot hold a
run past its overall timeout (regression: it used to wait for the callback forever).

Peers: claude-agent-sdk #103 (stdout read before stderr, pipe full) and #779 (100-slot stream
deadlock); ACP py-sdk pipes stderr and never reads it (1 MB of stderr hangs initialize);
Alice drops events silently when the consumer is slow (§13.1) and runs callbacks inside the
read loop (§13.2)."""

from __future__ import annotations

import attrs
import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import IdleTimeoutError, ProcessFailedError, RunTimeoutError

from fake_provider import PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, elapsed, new_mark, req


async def test_stderr_flood_while_stdout_streams():
    limits = attrs.evolve(FAST, stderr_tail_bytes=8192)
    with trio.fail_after(20):
        result = await run_oneshot(
            PROVIDER,
            cfg("--stderr-flood", str(8 << 20), "--lines", "2000", "--text", "end", limits=limits),
            req(),
        )
    assert result.reply == "end"


async def test_stderr_flood_then_crash_keeps_only_a_bounded_tail():
    limits = attrs.evolve(FAST, stderr_tail_bytes=4096)
    with trio.fail_after(20), pytest.raises(ProcessFailedError) as info:
        await run_oneshot(
            PROVIDER, cfg("--stderr-flood", str(8 << 20), "--crash", "1", limits=limits), req()
        )
    tail = info.value.stderr_tail
    assert 0 < len(tail) <= 4096
    assert tail.endswith("fatal: the fake CLI crashed")


async def test_100k_events_with_a_slow_raw_consumer_shed_and_report():
    got = []

    async def slow(event) -> None:
        await trio.sleep(0.0005)
        got.append(event)

    limits = attrs.evolve(FAST, callback_buffer=64)
    with trio.fail_after(40):
        result = await run_oneshot(
            PROVIDER,
            cfg("--unknown-lines", "100000", "--text", "final", limits=limits),
            req(on_raw_event=slow),
        )
    assert result.reply == "final"
    dropped = [e for e in got if e.kind == "dropped"]
    assert len(dropped) == 1 and "informational events dropped" in dropped[0].detail
    n_unknown = sum(1 for e in got if e.kind == "unknown")
    assert n_unknown < 100_000  # shed, not queued without bound
    assert any(e.kind == "turn_completed" for e in got)  # the terminal event is never shed


async def test_slow_progress_consumer_loses_nothing():
    got = []

    async def slow(text: str) -> None:
        await trio.sleep(0.0005)
        got.append(text)

    limits = attrs.evolve(FAST, callback_buffer=16)
    result = await run_oneshot(
        PROVIDER, cfg("--lines", "500", "--text", "final", limits=limits), req(on_progress=slow)
    )
    assert result.reply == "final"
    assert len(got) == 501 and got[-1] == "final"


async def _stuck(text: str) -> None:
    await trio.sleep_forever()


async def test_blocked_progress_callback_cannot_outlive_the_overall_timeout():
    """Regression: the run used to wait forever for a callback that never returns."""
    mark = new_mark()
    with trio.fail_after(10), elapsed() as took, pytest.raises(RunTimeoutError):
        await run_oneshot(
            PROVIDER,
            cfg("--text", "a", "--sleep", "30", timeout=0.5),
            req(mark, on_progress=_stuck),
        )
    assert took[0] < 3.0
    assert_nothing_left(mark)


async def test_blocked_callback_after_a_successful_turn_is_bounded_by_the_timeout():
    mark = new_mark()
    with trio.fail_after(10), pytest.raises(RunTimeoutError) as info:
        await run_oneshot(PROVIDER, cfg("--text", "a", timeout=0.8), req(mark, on_progress=_stuck))
    assert info.value.partial.reply == "a"  # the turn itself had completed
    assert_nothing_left(mark)


async def test_blocked_callback_and_idle_timeout_ends_within_drain_deadline():
    mark = new_mark()
    with trio.fail_after(10), elapsed() as took, pytest.raises(IdleTimeoutError):
        await run_oneshot(
            PROVIDER,
            cfg("--text", "a", "--sleep", "30", idle_timeout=0.3),
            req(mark, on_progress=_stuck),
        )
    assert took[0] < 0.3 + FAST.drain_timeout + 2.0
    assert_nothing_left(mark)


async def test_blocked_callback_is_cancellable():
    mark = new_mark()
    with trio.fail_after(10), elapsed() as took:
        with trio.move_on_after(0.4):
            await run_oneshot(
                PROVIDER, cfg("--text", "a", "--sleep", "30"), req(mark, on_progress=_stuck)
            )
    assert took[0] < 2.0
    assert_nothing_left(mark)


@pytest.mark.parametrize("kind", ["sync", "async-checkpoint"])
async def test_a_burst_to_a_callback_that_keeps_up_loses_nothing(kind: str):
    """Issue 12.12: 50,000 events to an instant callback lost ≈3,000 as "too slow" — the
    buffer filled faster than the delivery task was scheduled, which is not lag."""
    got: list[str] = []

    def instant(event) -> None:
        got.append(event.kind)

    async def checkpointing(event) -> None:
        got.append(event.kind)
        await trio.lowlevel.checkpoint()

    callback = instant if kind == "sync" else checkpointing
    n = 50_000 if kind == "sync" else 10_000
    with trio.fail_after(120):
        result = await run_oneshot(
            PROVIDER, cfg("--burst", str(n), "--text", "final"), req(on_raw_event=callback)
        )
    assert result.reply == "final"
    assert "dropped" not in got
    assert got.count("unknown") == n
