"""The run nursery end to end with a real fake CLI process (tests/fake_cli.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import pytest
import trio
import trio.lowlevel

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import (
    AgentError,
    CallbackError,
    CLINotFoundError,
    ConfigError,
    EmptyPromptError,
    IdleTimeoutError,
    LineTooLongError,
    ProcessFailedError,
    ProtocolError,
    RunTimeoutError,
)
from alice_trio.models import RunRequest, Usage

from fake_provider import FAST, PROVIDER, FakeConfig
from helpers import alive, marked, new_mark, read_pids


def cfg(*args: str, **kw) -> FakeConfig:
    kw.setdefault("limits", FAST)
    return FakeConfig(args=tuple(args), **kw)


def req(mark: str = "", **kw) -> RunRequest:
    env = {"TEST_MARK": mark} if mark else {}
    env.update(kw.pop("env", {}))
    return RunRequest(user_text=kw.pop("user_text", "hi"), env=env, **kw)


async def test_reply_thread_usage_and_progress_in_order():
    seen: list[str] = []
    result = await run_oneshot(
        PROVIDER,
        cfg("--text", "first", "--text", "second"),
        req(on_progress=seen.append),
    )
    assert result.reply == "second"
    assert result.next_thread_id == "thread-1"
    assert result.usage == Usage(input_tokens=10, cached_input_tokens=4, output_tokens=5)
    assert seen == ["first", "second"]


async def test_async_callbacks_and_raw_events():
    progress: list[str] = []
    raw: list[str] = []

    async def on_progress(text: str) -> None:
        await trio.lowlevel.checkpoint()
        progress.append(text)

    async def on_raw(event) -> None:
        raw.append(event.kind)

    await run_oneshot(
        PROVIDER,
        cfg("--text", "a", "--garbage"),
        req(on_progress=on_progress, on_raw_event=on_raw),
    )
    assert progress == ["a"]
    assert "unknown" in raw and "turn_completed" in raw


async def test_stdin_is_written_then_closed():
    result = await run_oneshot(PROVIDER, cfg("--read-stdin", stdin=b"the prompt"), req())
    assert result.reply == "stdin:the prompt"


async def test_empty_prompt_is_rejected_before_spawn():
    with pytest.raises(EmptyPromptError, match="empty prompt"):
        await run_oneshot(PROVIDER, cfg(), req(user_text="   "))


async def test_missing_command_is_typed():
    provider = attrs.evolve(
        PROVIDER,
        build_invocation=lambda r, c: attrs.evolve(
            PROVIDER.build_invocation(r, c), argv=("/nonexistent/agent-cli",)
        ),
    )
    with pytest.raises(CLINotFoundError, match="not found"):
        await run_oneshot(provider, cfg(), req())


async def test_missing_workspace_dir_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="workspace dir"):
        await run_oneshot(PROVIDER, cfg(), req(workspace_dir=str(tmp_path / "nope")))


@pytest.mark.parametrize("make", ["missing", "directory", "unreadable", "relative"])
async def test_a_missing_input_file_is_a_config_error_before_spawn(make: str, tmp_path: Path):
    """An ``Invocation.inputs`` file the CLI must read is checked by the spawn path (relative
    to the workspace), so a bad one is a ConfigError naming it and nothing is started."""
    target = tmp_path / "input.txt"
    if make == "directory":
        target.mkdir()
    elif make in ("unreadable", "relative"):
        target.write_text("x")
        if make == "unreadable":
            target.chmod(0)
    path = "input.txt" if make == "relative" else str(target)
    provider = attrs.evolve(
        PROVIDER,
        build_invocation=lambda r, c: attrs.evolve(
            PROVIDER.build_invocation(r, c), inputs={"script": path}
        ),
    )
    if make == "relative":  # resolved against the run's workspace: it exists there
        result = await run_oneshot(provider, cfg("--text", "ran"), req(workspace_dir=str(tmp_path)))
        assert result.reply == "ran"
        return
    if make == "unreadable" and os.access(target, os.R_OK):
        pytest.skip("running as a user who reads any file (root)")
    with pytest.raises(
        ConfigError, match=r"script (does not exist|is a directory|is not readable)"
    ):
        await run_oneshot(provider, cfg(), req())


async def test_crash_carries_exit_code_stderr_tail_and_partial():
    with pytest.raises(ProcessFailedError) as info:
        await run_oneshot(PROVIDER, cfg("--text", "partial", "--crash", "3"), req())
    err = info.value
    assert err.returncode == 3
    assert "fake CLI crashed" in err.stderr_tail
    assert "fake CLI crashed" in str(err)
    assert err.partial.next_thread_id == "thread-1"
    assert err.partial.reply == "partial"


async def test_agent_failure_is_agent_error_with_status():
    with pytest.raises(AgentError) as info:
        await run_oneshot(PROVIDER, cfg("--fail", "overloaded", "--exit", "1"), req())
    assert info.value.status == 529
    assert "overloaded" in str(info.value)


async def test_no_reply_is_protocol_error():
    with pytest.raises(ProtocolError, match="no final message"):
        await run_oneshot(PROVIDER, cfg(), req())


async def test_thread_id_falls_back_to_request():
    # the fake always announces a thread; a decoder that saw none keeps the request's id
    provider = attrs.evolve(PROVIDER)
    result = await run_oneshot(provider, cfg("--thread", "", "--text", "x"), req(thread_id="t-9"))
    assert result.next_thread_id == "t-9"


async def test_cancel_kills_group_and_setsid_grandchildren(tmp_path: Path):
    mark = new_mark()
    pidfile = tmp_path / "pids"
    for mode in ("own", "setsid", "setsid-fork"):
        with trio.move_on_after(1.0) as scope:
            await run_oneshot(
                PROVIDER,
                cfg("--grandchild", mode, "--pidfile", str(pidfile), "--sleep", "30"),
                req(mark),
            )
        assert scope.cancelled_caught
        pids = read_pids(pidfile)
        assert len(pids) >= 2
        assert not [p for p in pids if alive(p)], mode
        assert marked(mark) == []


async def test_cancel_when_cli_and_grandchild_ignore_sigterm(tmp_path: Path):
    mark = new_mark()
    pidfile = tmp_path / "pids"
    start = 0.0
    with trio.move_on_after(0.8):
        start = time.monotonic()
        await run_oneshot(
            PROVIDER,
            cfg(
                "--ignore-term",
                "--grandchild",
                "setsid",
                "--grandchild-ignore-term",
                "--pidfile",
                str(pidfile),
                "--sleep",
                "30",
            ),
            req(mark),
        )
    assert start
    assert not [p for p in read_pids(pidfile) if alive(p)]
    assert marked(mark) == []


async def test_normal_exit_sweeps_background_processes(tmp_path: Path):
    mark = new_mark()
    pidfile = tmp_path / "pids"
    result = await run_oneshot(
        PROVIDER,
        cfg("--grandchild", "setsid", "--pidfile", str(pidfile), "--text", "ok"),
        req(mark),
    )
    assert result.reply == "ok"
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert not [p for p in pids if alive(p)]
    assert marked(mark) == []


async def test_keep_background_leaves_the_job_on_normal_exit(tmp_path: Path):
    mark = new_mark()
    pidfile = tmp_path / "pids"
    limits = attrs.evolve(FAST, keep_background=True)
    await run_oneshot(
        PROVIDER,
        cfg("--grandchild", "setsid", "--pidfile", str(pidfile), "--text", "ok", limits=limits),
        req(mark),
    )
    try:
        assert len(marked(mark)) == 1
    finally:
        import os
        import signal

        for pid in marked(mark):
            os.kill(pid, signal.SIGKILL)


async def test_terminal_event_without_exit_ends_after_drain():
    # the CLI prints "done" and then hangs: the run returns the result, the CLI is killed
    with trio.fail_after(5):
        result = await run_oneshot(PROVIDER, cfg("--text", "r", "--sleep-after", "60"), req())
    assert result.reply == "r"


async def test_grandchild_holding_stdout_cannot_wedge_the_run(tmp_path: Path):
    mark = new_mark()
    with trio.fail_after(5):
        with pytest.raises(ProcessFailedError):
            await run_oneshot(PROVIDER, cfg("--grandchild", "inherit", "--crash", "2"), req(mark))
    assert marked(mark) == []


async def test_idle_timeout_keeps_partial():
    config = cfg("--text", "so far", "--sleep", "30", idle_timeout=1.0)  # > python's start
    with pytest.raises(IdleTimeoutError) as info:
        await run_oneshot(PROVIDER, config, req())
    assert info.value.partial.next_thread_id == "thread-1"
    assert info.value.partial.reply == "so far"
    assert info.value.idle_seconds == 1.0


async def test_run_timeout():
    with pytest.raises(RunTimeoutError, match="llm timeout"):
        await run_oneshot(PROVIDER, cfg("--sleep", "30", timeout=0.3), req())


async def test_line_over_limit_is_typed_error_not_a_hang():
    limits = attrs.evolve(FAST, max_line_bytes=100_000)
    with trio.fail_after(10), pytest.raises(LineTooLongError) as info:
        await run_oneshot(PROVIDER, cfg("--giant-line", "2000000", limits=limits), req())
    assert info.value.limit == 100_000


async def test_line_over_limit_can_be_skipped_and_reported():
    limits = attrs.evolve(FAST, max_line_bytes=100_000, line_policy="skip")
    raw = []
    result = await run_oneshot(
        PROVIDER,
        cfg("--giant-line", "2000000", "--text", "after", limits=limits),
        req(on_raw_event=raw.append),
    )
    assert result.reply == "after"
    assert any("skipped a line of" in e.detail for e in raw)


async def test_big_line_under_limit_is_delivered():
    result = await run_oneshot(PROVIDER, cfg("--giant-line", "3000000"), req())
    assert result.reply == "g" * 3_000_000


async def test_stderr_flood_does_not_deadlock_and_tail_is_bounded():
    limits = attrs.evolve(FAST, stderr_tail_bytes=4096)
    with trio.fail_after(20), pytest.raises(ProcessFailedError) as info:
        await run_oneshot(
            PROVIDER, cfg("--stderr-flood", str(20 << 20), "--crash", "1", limits=limits), req()
        )
    assert len(info.value.stderr_tail) <= 4096
    assert info.value.stderr_tail.endswith("fatal: the fake CLI crashed")


async def test_non_utf8_output_never_crashes():
    result = await run_oneshot(PROVIDER, cfg("--garbage", "--text", "fine"), req())
    assert result.reply == "fine"


async def test_raising_callback_fails_run_and_kills_group(tmp_path: Path):
    mark = new_mark()

    def boom(text: str) -> None:
        raise RuntimeError("callback exploded")

    with pytest.raises(CallbackError) as info:
        await run_oneshot(
            PROVIDER,
            cfg("--text", "x", "--grandchild", "setsid", "--sleep", "30"),
            req(mark, on_progress=boom),
        )
    assert isinstance(info.value.__cause__, RuntimeError)
    assert marked(mark) == []


async def test_slow_callback_does_not_lose_the_reply():
    got: list[str] = []

    async def slow(text: str) -> None:
        await trio.sleep(0.001)
        got.append(text)

    limits = attrs.evolve(FAST, callback_buffer=8)
    result = await run_oneshot(
        PROVIDER, cfg("--lines", "200", "--text", "final", limits=limits), req(on_progress=slow)
    )
    assert result.reply == "final"
    assert got[-1] == "final"
    assert len(got) == 201  # progress events are never dropped


async def test_env_merge_order_request_wins():
    provider = attrs.evolve(
        PROVIDER,
        build_invocation=lambda r, c: attrs.evolve(
            PROVIDER.build_invocation(r, c),
            argv=(
                "/bin/sh",
                "-c",
                'echo "{\\"type\\":\\"text\\",\\"text\\":\\"$A-$B\\"}"',
            ),
        ),
    )
    config = cfg(env={"A": "config", "B": "config"})
    result = await run_oneshot(provider, config, req(env={"B": "request"}))
    assert result.reply == "config-request"


async def test_concurrent_run_is_untouched_by_a_cancelled_one(tmp_path: Path):
    keep_mark, kill_mark = new_mark(), new_mark()
    results = []

    async def keeper():
        results.append(
            await run_oneshot(PROVIDER, cfg("--sleep", "1.0", "--text", "kept"), req(keep_mark))
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keeper)
        with trio.move_on_after(0.4):
            await run_oneshot(
                PROVIDER, cfg("--grandchild", "setsid", "--sleep", "30"), req(kill_mark)
            )
        assert marked(kill_mark) == []
        assert marked(keep_mark)  # the other run is still alive
    assert results[0].reply == "kept"


async def test_idle_retry_hook_runs_exactly_one_more_attempt():
    seen: list[RunRequest] = []

    def retry(request: RunRequest, partial):
        seen.append(request)
        if len(seen) > 1:
            return None
        return request.evolve(thread_id=partial.next_thread_id, user_text="resume")

    provider = attrs.evolve(PROVIDER, idle_retry=retry)
    # first attempt stalls (idle timeout); the retry (same config) stalls too -> error mentions both
    config = cfg("--text", "partial", "--sleep", "30", idle_timeout=0.3)
    with pytest.raises(IdleTimeoutError) as info:
        await run_oneshot(provider, config, req())
    assert "and resume failed" in str(info.value)
    assert len(seen) == 1  # the hook is consulted once; the retry's failure is final


async def test_idle_retry_recovers_and_sums_usage():
    def build(request, config):
        inv = PROVIDER.build_invocation(request, config)
        if request.user_text == "resume":
            return attrs.evolve(inv, argv=(*inv.argv[:2], "--text", "recovered"))
        return inv

    provider = attrs.evolve(
        PROVIDER,
        build_invocation=build,
        idle_retry=lambda r, p: r.evolve(thread_id=p.next_thread_id, user_text="resume"),
    )
    # 3 s: longer than a Python start on a loaded machine (0.3 s failed there: the retry itself
    # went idle before the fake CLI printed anything)
    result = await run_oneshot(provider, cfg("--sleep", "30", idle_timeout=3.0), req())
    assert result.reply == "recovered"
    assert result.usage.input_tokens == 10  # stalled attempt reported none


async def test_output_still_being_delivered_after_exit_is_not_cut_off():
    """The post-exit drain deadline counts silence, not time: a slow consumer that keeps the
    reader busy past ``drain_timeout`` still gets every event (the CLI exited long before)."""
    got: list[str] = []

    async def slow(text: str) -> None:
        await trio.sleep(0.002)
        got.append(text)

    limits = attrs.evolve(FAST, callback_buffer=4, drain_timeout=0.2)
    result = await run_oneshot(
        PROVIDER, cfg("--lines", "300", "--text", "final", limits=limits), req(on_progress=slow)
    )
    assert result.reply == "final"
    assert len(got) == 301 and got[-1] == "final"
