"""C13: breaking out of event iteration, cancelling mid-iteration, or raising inside the
context never produces cancel-scope or task-affinity errors, and never wraps the error in an
ExceptionGroup (trio strict exception groups are the default here). The structured API owns
its nursery (``async with``), so there is no generator finalised in another task.

Peers: claude-agent-sdk-python#454 and #4 (anyio cancel-scope errors when an async generator
owning a task group is finalised elsewhere), daydream#206, amplihack#978."""

from __future__ import annotations

import sys

import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import (
    AliceError,
    IdleTimeoutError,
    LineTooLongError,
    ProcessFailedError,
    ProtocolError,
    RunTimeoutError,
)
from alice_trio.models import EventKind
from alice_trio.providers.base import Invocation
from alice_trio.sessions.session import open_session
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, PROVIDER
from reliability_support import (
    FAST,
    assert_nothing_left,
    cfg,
    count_tasks,
    new_mark,
    req,
)


class Boom(Exception):
    pass


async def test_break_out_of_session_events_is_harmless():
    mark = new_mark()
    before = count_tasks()
    async with open_session(PROVIDER, cfg("--lines", "50", "--text", "x"), initial=req()) as s:
        await s.submit(req(mark))
        async for event in s.events():
            if event.kind is EventKind.ASSISTANT_TEXT:
                break  # leaves the rest unread
    assert count_tasks() == before
    assert_nothing_left(mark)


async def test_cancel_mid_iteration_of_session_events():
    mark = new_mark()
    before = count_tasks()
    with trio.move_on_after(0.3) as scope:
        async with open_session(PROVIDER, cfg("--sleep", "30"), initial=req()) as s:
            await s.submit(req(mark))
            async for _event in s.events():
                pass
    assert scope.cancelled_caught
    assert count_tasks() == before
    assert_nothing_left(mark)


async def test_exception_in_the_session_body_comes_out_bare():
    mark = new_mark()
    with pytest.raises(Boom):
        async with open_session(PROVIDER, cfg("--sleep", "30"), initial=req()) as s:
            await s.submit(req(mark))
            raise Boom()
    assert_nothing_left(mark)


async def test_exception_in_the_agent_process_body_comes_out_bare():
    """Regression: AgentProcess wrapped the caller's own exception in an ExceptionGroup."""
    mark = new_mark()
    inv = Invocation(argv=(sys.executable, FAKE_CLI, "--interactive"), env={"TEST_MARK": mark},
                     limits=FAST)  # fmt: skip
    with pytest.raises(Boom):
        async with open_agent_process(inv, name="fake") as agent:
            await agent.send(b"hi\n")
            async for _line in agent.lines:
                raise Boom()
    assert_nothing_left(mark)


async def test_break_out_of_agent_process_lines():
    inv = Invocation(argv=(sys.executable, FAKE_CLI, "--lines", "1000"), limits=FAST)
    async with open_agent_process(inv, name="fake", close_grace=0.2) as agent:
        async for _line in agent.lines:
            break


async def test_cancel_from_inside_a_progress_callback():
    mark = new_mark()
    before = count_tasks()
    with trio.CancelScope() as scope:

        def on_progress(text: str) -> None:
            scope.cancel()

        await run_oneshot(
            PROVIDER, cfg("--text", "a", "--sleep", "30"), req(mark, on_progress=on_progress)
        )
    assert scope.cancelled_caught
    assert count_tasks() == before
    assert_nothing_left(mark)


ERRORS = [
    (("--crash", "1"), {}, ProcessFailedError),
    (("--sleep", "30"), {"timeout": 0.3}, RunTimeoutError),
    (("--sleep", "30"), {"idle_timeout": 0.3}, IdleTimeoutError),
    (("--no-done",), {}, ProtocolError),
    (("--giant-line", "200000"), {"limits_kw": {"max_line_bytes": 1000}}, LineTooLongError),
]


@pytest.mark.parametrize(("args", "kw", "error"), ERRORS)
async def test_oneshot_errors_are_never_exception_groups(args, kw, error):
    try:
        await run_oneshot(PROVIDER, cfg(*args, **kw), req())
    except BaseException as exc:  # the point is to see what comes out
        assert not isinstance(exc, BaseExceptionGroup), repr(exc)
        assert type(exc) is error
        assert isinstance(exc, AliceError)
    else:
        pytest.fail("no error")
