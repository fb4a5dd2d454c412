"""Issue 12 items 9 and 12: SessionBackend never leaves a live session without its idle timer,
refuses a blank prompt before spawning, reports a session's typed errors (a too-long line is a
LineTooLongError, not an AgentError), and its start timeout is configurable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import trio.testing
from scripted_driver import ScriptedDriver

from alice_trio.errors import (
    EmptyPromptError,
    LineTooLongError,
    ProtocolError,
    RunInterruptedError,
    RunTimeoutError,
)
from alice_trio.models import EventKind, RunRequest
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.claude_stream import ClaudeStreamDriver
from alice_trio.sessions.oneshot_driver import OneShotDriver
from alice_trio.sessions.session import DEFAULT_START_TIMEOUT, open_session

from fake_provider import FAST, PROVIDER, FakeConfig
from helpers import alive

ECHO = Path(__file__).parent / "fake_claude_echo.py"


class Factory:
    def __init__(self, **kw):
        self.kw = kw
        self.drivers: list[ScriptedDriver] = []

    def __call__(self, config, initial):
        d = ScriptedDriver(**self.kw)
        self.drivers.append(d)
        return d


def keyed(text: str, key: str = "conv-1") -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": key})


async def finish_soon(f: Factory, kind: EventKind) -> None:
    await trio.sleep(1)
    d = f.drivers[-1]
    await d.finish(d.started[-1][0], kind, text="so far")


# -- item 9: no live session without its idle timer ------------------------------------------------
async def test_an_interrupted_turn_keeps_the_session_only_until_the_idle_ttl(autojump_clock):
    f = Factory()
    async with SessionBackend("codex", driver_factory=f, idle_ttl=30) as b:
        async with trio.open_nursery() as n:
            n.start_soon(finish_soon, f, EventKind.TURN_INTERRUPTED)
            with pytest.raises(RunInterruptedError):
                await b.run(keyed("x"))
        assert b.open_sessions() == ["conv-1"]  # the process lives: reusable for a while
        await trio.sleep(31)
        assert b.open_sessions() == []
        assert f.drivers[0].closed_with == [True]


async def test_a_failed_submit_on_a_live_session_gets_the_idle_timer(autojump_clock):
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f, idle_ttl=30) as b:
        await b.run(keyed("first"))
        f.drivers[0].fail_start = ProtocolError("turn/start refused")
        await trio.sleep(20)
        with pytest.raises(ProtocolError):
            await b.run(keyed("second"))
        assert b.open_sessions() == ["conv-1"]
        await trio.sleep(31)  # 51 s after the first run: the second run re-armed the timer
        assert b.open_sessions() == []
        await trio.sleep(3600)
        assert [d.closed_with for d in f.drivers] == [[True]]


async def test_a_failed_first_submit_does_not_leak_the_new_session(autojump_clock):
    f = Factory()

    def factory(config, initial):
        d = f(config, initial)
        d.fail_start = ProtocolError("refused")
        return d

    async with SessionBackend("codex", driver_factory=factory, idle_ttl=30) as b:
        with pytest.raises(ProtocolError):
            await b.run(keyed("x"))
        await trio.sleep(31)
        assert b.open_sessions() == [] and f.drivers[0].closed_with == [True]


async def test_a_keyed_blank_prompt_spawns_nothing(autojump_clock):
    f = Factory(auto_reply=True)
    async with SessionBackend("codex", driver_factory=f) as b:
        for blank in ("", "   ", "\n"):
            with pytest.raises(EmptyPromptError):
                await b.run(keyed(blank))
        assert f.drivers == [] and b.open_sessions() == []


# -- item 12: start timeout ----------------------------------------------------------------------
class NeverStarts(ScriptedDriver):
    async def run(self, emit, *, task_status):
        await trio.sleep_forever()


async def test_start_timeout_is_configurable_and_defaults_to_60_s(autojump_clock):
    with pytest.raises(RunTimeoutError, match="did not start within 5 s"):
        async with open_session("fake", initial=keyed("x"), driver=NeverStarts(), start_timeout=5):
            pass
    assert DEFAULT_START_TIMEOUT == 60
    t0 = trio.current_time()
    with pytest.raises(RunTimeoutError):
        async with open_session("fake", initial=keyed("x"), driver=NeverStarts()):
            pass
    assert trio.current_time() - t0 == pytest.approx(60)
    async with SessionBackend(
        "codex", driver_factory=lambda c, i: NeverStarts(), start_timeout=200
    ) as b:
        t0 = trio.current_time()
        with pytest.raises(RunTimeoutError, match="within 200 s"):
            await b.run(keyed("x"))
        assert trio.current_time() - t0 == pytest.approx(200)


async def test_a_cli_that_never_answers_its_handshake_is_killed_at_the_start_timeout(tmp_path):
    pidfile = tmp_path / "pid"
    code = f"import os,time; open({str(pidfile)!r},'w').write(str(os.getpid())); time.sleep(120)"
    inv = Invocation(argv=(sys.executable, "-c", code), limits=RunLimits(kill_grace=0.5))
    driver = ClaudeStreamDriver(ClaudeConfig(), keyed("x"), invocation=inv)
    with trio.fail_after(30):  # the old fixed 60 s initialize wait would exceed this
        with pytest.raises(RunTimeoutError):
            async with open_session("claude", initial=keyed("x"), driver=driver, start_timeout=1):
                pass
    assert not alive(int(pidfile.read_text()))


# -- item 12: a too-long line in a session is LineTooLongError -----------------------------------
def tight(limit: int = 2000) -> RunLimits:
    return RunLimits(kill_grace=0.5, max_line_bytes=limit, line_policy="error")


async def test_too_long_line_from_an_interactive_cli_is_line_too_long():
    def echo(config, initial):
        inv = Invocation(argv=(sys.executable, str(ECHO)), limits=tight())
        return ClaudeStreamDriver(ClaudeConfig(), initial, invocation=inv, close_grace=1.0)

    async with SessionBackend("claude", driver_factory=echo) as b:
        assert (await b.run(keyed("short"))).reply == "echo: short"
        with trio.fail_after(20), pytest.raises(LineTooLongError) as info:
            await b.run(keyed("y" * 5000))  # the echo of it is longer than the limit
    assert info.value.limit == 2000


async def test_too_long_line_in_a_oneshot_driver_session_is_line_too_long():
    def oneshot(config, initial):
        return OneShotDriver(PROVIDER, FakeConfig(args=("--giant-line", "5000"), limits=tight()))

    async with SessionBackend(PROVIDER, driver_factory=oneshot) as b:
        with trio.fail_after(20), pytest.raises(LineTooLongError):
            await b.run(keyed("x"))


async def test_oneshot_driver_session_reports_a_crash_as_its_typed_error():
    from alice_trio.errors import ProcessFailedError

    def oneshot(config, initial):
        return OneShotDriver(PROVIDER, FakeConfig(args=("--crash", "7"), limits=FAST))

    async with SessionBackend(PROVIDER, driver_factory=oneshot) as b:
        with trio.fail_after(20), pytest.raises(ProcessFailedError) as info:
            await b.run(keyed("x"))
    assert info.value.returncode == 7
