"""The exception contract (docs/reliability.md, the docstring of :mod:`alice_trio.errors`),
checked for every public entry point: a call raises only an ``AliceError`` subclass, a bare
``trio.Cancelled`` / ``KeyboardInterrupt``, or the caller's own exception — never a group.

Each entry point is cancelled at many scheduling steps (``cancel_at``: an Instrument cancels
the calling task just before its k-th step, so every checkpoint of a call is hit without timing
assumptions), and every async context manager gets the caller's own exception from its body."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from alice_trio.backend import OneShotBackend
from alice_trio.errors import AliceError
from alice_trio.models import RunRequest, RunResult
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.routing import MultiBackend
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.claude_stream import ClaudeStreamDriver
from alice_trio.sessions.driver import SteerMode
from alice_trio.sessions.session import open_session
from cancel_at import call_cancelled_at

from fake_provider import FAST, PROVIDER, FakeConfig

SESSIONS = Path(__file__).parents[1] / "sessions"
sys.path.insert(0, str(SESSIONS))
from scripted_driver import ScriptedDriver  # noqa: E402

ECHO = SESSIONS / "fake_claude_echo.py"
STEPS = range(1, 40, 3)  # every third step of a call that takes ~30-60 steps


def allowed(exc: BaseException, own: type[BaseException] | None = None) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return False
    if own is not None and type(exc) is own:
        return True
    return isinstance(exc, AliceError | trio.Cancelled | KeyboardInterrupt)


def check(raised: list[BaseException], own: type[BaseException] | None = None) -> None:
    for exc in raised:
        assert allowed(exc, own), f"{type(exc).__name__} escaped the public API: {exc!r}"


def req(text: str, key: str = "") -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": key} if key else {})


def echo_claude(config, initial) -> ClaudeStreamDriver:
    inv = Invocation(argv=(sys.executable, str(ECHO)), limits=RunLimits(kill_grace=0.5))
    return ClaudeStreamDriver(ClaudeConfig(), initial, invocation=inv, close_grace=1.0)


def scripted(config, initial) -> ScriptedDriver:
    return ScriptedDriver(auto_reply=True)


ONESHOT = OneShotBackend(PROVIDER, FakeConfig(args=("--text", "hi", "--sleep", "0.05"),
                                              limits=FAST))  # fmt: skip


# -- OneShotBackend.run / MultiBackend.run -------------------------------------------------------
@pytest.mark.parametrize("k", STEPS)
async def test_oneshot_run_cancelled_at_any_step_raises_bare_cancelled(k):
    raised: list[BaseException] = []
    cancelled, value, _ = await call_cancelled_at(k, ONESHOT.run, req("x"), raised=raised)
    check(raised)
    assert cancelled or isinstance(value, RunResult)


@pytest.mark.parametrize("k", STEPS)
async def test_multi_backend_run_cancelled_at_any_step(k):
    multi = MultiBackend({"fake": ONESHOT})
    raised: list[BaseException] = []
    await call_cancelled_at(k, multi.run, req("x"), raised=raised)
    check(raised)


async def test_oneshot_failure_is_typed():
    failing = OneShotBackend(PROVIDER, FakeConfig(args=("--crash", "3"), limits=FAST))
    with pytest.raises(AliceError) as info:
        await failing.run(req("x"))
    assert not isinstance(info.value, BaseExceptionGroup)


async def test_multi_backend_collapses_a_callers_backend_group():
    class GroupBackend:
        name = "mine"

        async def run(self, request):
            async with trio.open_nursery() as n:
                n.start_soon(trio.sleep_forever)
                raise KeyError("the caller's own bug")

    with pytest.raises(KeyError):
        await MultiBackend({"mine": GroupBackend()}).run(req("x"))


# -- SessionBackend ------------------------------------------------------------------------------
@pytest.mark.parametrize("factory", [scripted, echo_claude], ids=["scripted", "claude"])
@pytest.mark.parametrize("k", STEPS)
async def test_session_backend_run_cancelled_at_any_step(factory, k):
    raised: list[BaseException] = []
    async with SessionBackend("claude", driver_factory=factory, interrupt_deadline=1) as b:
        await call_cancelled_at(k, b.run, req("x", key="k1"), raised=raised)
        check(raised)
        # the backend stays usable after any cancellation
        with trio.fail_after(20):
            result = await b.run(req("again", key="k1"))
        assert result.reply.endswith("again")


@pytest.mark.parametrize("k", STEPS)
async def test_session_backend_enter_and_exit_cancelled_at_any_step(k):
    async def use() -> None:
        async with SessionBackend("claude", driver_factory=echo_claude) as b:
            await b.run(req("x", key="k1"))

    raised: list[BaseException] = []
    await call_cancelled_at(k, use, raised=raised)
    check(raised)


async def test_session_backend_body_exception_comes_out_as_itself():
    with pytest.raises(KeyError):
        async with SessionBackend("claude", driver_factory=echo_claude) as b:
            await b.run(req("x", key="k1"))  # a live session is dropped on the way out
            raise KeyError("mine")
    with pytest.raises(KeyError):
        async with SessionBackend("claude", driver_factory=scripted):
            raise KeyError("mine")


async def test_multi_backend_context_body_exception_comes_out_as_itself():
    session = SessionBackend("claude", driver_factory=scripted)
    with pytest.raises(KeyError):
        async with MultiBackend(
            {"claude": session, "fake": ONESHOT}, default_provider="fake"
        ) as multi:
            await multi.run(req("x", key="k").evolve(provider="claude"))
            raise KeyError("mine")


# -- open_session and the session's commands -----------------------------------------------------
@pytest.mark.parametrize("k", STEPS)
async def test_open_session_enter_exit_cancelled_at_any_step(k):
    async def use() -> None:
        async with open_session("claude", initial=req("x"), driver=echo_claude(None, req("x"))):
            await trio.lowlevel.checkpoint()

    raised: list[BaseException] = []
    await call_cancelled_at(k, use, raised=raised)
    check(raised)


async def test_open_session_body_exception_comes_out_as_itself():
    with pytest.raises(KeyError):
        async with open_session("claude", initial=req("x"), driver=echo_claude(None, req("x"))):
            raise KeyError("mine")


@pytest.mark.parametrize("command", ["submit", "steer", "interrupt", "events"])
@pytest.mark.parametrize("k", range(1, 12))
async def test_session_commands_cancelled_at_any_step(command, k):
    driver = echo_claude(None, req("x"))
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        if command != "submit":
            await s.submit(req("first"))

        async def call() -> object:
            if command == "events":
                return await s.events().receive()
            if command == "interrupt":
                return await s.interrupt()
            return await getattr(s, command)(req("second"))

        raised: list[BaseException] = []
        await call_cancelled_at(k, call, raised=raised)
        check(raised)


async def test_session_commands_on_a_closed_session_are_typed():
    driver = ScriptedDriver(SteerMode.NATIVE)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        await s.aclose()
        for call in (s.submit(req("a")), s.steer(req("b")), s.interrupt()):
            with pytest.raises(AliceError):
                await call
