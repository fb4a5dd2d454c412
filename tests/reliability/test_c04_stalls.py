"""C4: a CLI that goes silent, or sends its terminal event and never exits, cannot wedge a run:
the idle timeout ends a silent run (typed error, partial kept), the drain deadline ends a run
whose CLI lingers after the terminal event (the result is returned), and the overall timeout
is the last resort. Each ending kills the group.

Peers: no idle watchdog in claude-agent-sdk, codex SDK, kimi, ACP ≤0.7, takopi (untether added
one later); opencode can print its final step_finish and never exit (anomalyco/opencode#44901).
"""

from __future__ import annotations

import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import IdleTimeoutError, RunTimeoutError

from fake_provider import PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, elapsed, new_mark, req

BOUND = 3.0  # generous wall-clock bound for "ended promptly" on a loaded 2-core CI box


async def test_silent_stall_is_an_idle_timeout_with_partial():
    mark = new_mark()
    # 2 s, not 0.3: the partial text must arrive before the watchdog fires, and a Python start
    # on a loaded machine takes longer than 0.3 s
    with elapsed() as took, pytest.raises(IdleTimeoutError) as info:
        await run_oneshot(
            PROVIDER, cfg("--text", "so far", "--sleep", "60", idle_timeout=2.0), req(mark)
        )
    err = info.value
    assert err.idle_seconds == 2.0
    assert err.partial.reply == "so far" and err.partial.next_thread_id == "thread-1"
    assert took[0] < 2.0 + BOUND
    assert_nothing_left(mark)


async def test_silent_stall_that_ignores_sigterm_is_still_ended():
    mark = new_mark()
    with elapsed() as took, pytest.raises(IdleTimeoutError):
        await run_oneshot(
            PROVIDER, cfg("--ignore-term", "--sleep", "60", idle_timeout=0.3), req(mark)
        )
    assert took[0] < 0.3 + FAST.kill_grace + BOUND
    assert_nothing_left(mark)


async def test_output_keeps_the_idle_timer_alive():
    """Steady output slower than nothing but faster than the idle timeout is not a stall."""
    result = await run_oneshot(
        PROVIDER, cfg("--split-utf8", "--text", "done", idle_timeout=0.5), req()
    )  # ~60 single-byte writes 1 ms apart
    assert result.reply == "done"


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_terminal_event_then_no_exit_returns_the_result(ignore_term: bool):
    mark = new_mark()
    args = ["--text", "final", "--sleep-after", "60"] + (["--ignore-term"] if ignore_term else [])
    with elapsed() as took:
        result = await run_oneshot(PROVIDER, cfg(*args), req(mark))
    assert result.reply == "final"
    assert result.usage.output_tokens == 5
    assert took[0] < FAST.drain_timeout + FAST.kill_grace + BOUND
    assert_nothing_left(mark)


@pytest.mark.parametrize("ignore_term", [False, True])
async def test_stdout_closed_but_the_cli_lingers_ends_after_the_drain_deadline(ignore_term: bool):
    """Hostile-use finding (round 4): a CLI that closes its stdout and keeps running can never
    say more; it gets ``drain_timeout`` to exit, as after a terminal event, then is killed. The
    run waited for the overall timeout before (48 h without --timeout, no idle watchdog). The
    exit status is then ours (SIGTERM/SIGKILL), so the decoder's outcome decides."""
    mark = new_mark()
    args = ["--text", "so far", "--close-stdout", "--sleep", "60"]
    args += ["--ignore-term"] if ignore_term else []
    with elapsed() as took:  # the fake decoder needs no terminal event: the text is the reply
        result = await run_oneshot(PROVIDER, cfg(*args, timeout=30), req(mark))
    assert result.reply == "so far" and result.next_thread_id == "thread-1"
    assert took[0] < FAST.drain_timeout + FAST.kill_grace + BOUND
    assert_nothing_left(mark)


async def test_no_terminal_event_and_no_idle_timeout_falls_to_the_overall_timeout():
    """kimi --print has no terminal event at all: the overall timeout is the backstop."""
    mark = new_mark()
    with elapsed() as took, pytest.raises(RunTimeoutError, match="llm timeout") as info:
        await run_oneshot(
            PROVIDER, cfg("--text", "x", "--no-done", "--sleep", "60", timeout=0.5), req(mark)
        )
    assert info.value.partial.reply == "x"
    assert took[0] < 0.5 + BOUND
    assert_nothing_left(mark)


async def test_idle_timer_stops_after_the_terminal_event():
    """After the terminal event only the drain deadline applies: a lingering CLI is not an
    idle-timeout error even when the idle timeout is shorter than the drain deadline."""
    # idle 1.5 s (not 0.1 s: a loaded machine can take that long to start python) < drain 4 s
    result = await run_oneshot(
        PROVIDER,
        cfg(
            "--text", "ok", "--sleep-after", "60", idle_timeout=1.5, limits_kw={"drain_timeout": 4}
        ),
        req(),
    )
    assert result.reply == "ok"


async def test_stall_inside_a_cancel_scope_is_cancelled_promptly():
    mark = new_mark()
    with elapsed() as took:
        with trio.move_on_after(0.3):
            await run_oneshot(PROVIDER, cfg("--sleep", "60"), req(mark))
    assert took[0] < 0.3 + BOUND
    assert_nothing_left(mark)
