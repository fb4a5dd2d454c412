"""The agent process of an interactive session killed with SIGKILL: one behaviour on every
session driver with a process of its own (claude stream-json, codex app-server, ACP, legacy kimi
wire, opencode serve), against fakes.

* Input submitted once the process is dead — whether or not the session noticed yet — raises
  :class:`TransportClosedError` (provider, what became of the process, stderr tail); no turn
  exists, no ``turn_started`` event goes out. Later commands raise it again.
* A process that dies under a running turn ends that turn with an ``error`` event, and
  ``session.turn_error(turn_id)`` is the :class:`TransportClosedError` behind it.

(Before: codex and opencode raised, ACP and kimi wire answered ``started`` and then failed the
turn, claude's failed turn had no typed error behind it, and a session that had noticed the
death raised :class:`SessionClosedError`.)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from test_shared_opencode import make_config as opencode_config

from alice_trio.errors import TransportClosedError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.providers.codex import CodexConfig
from alice_trio.providers.kimi import KimiConfig
from alice_trio.sessions.acp import AcpDriver
from alice_trio.sessions.claude_stream import ClaudeStreamDriver
from alice_trio.sessions.codex_app_server import CodexAppServerDriver
from alice_trio.sessions.driver import SessionDriver
from alice_trio.sessions.kimi_wire import KimiWireDriver
from alice_trio.sessions.opencode_serve import OpenCodeServeDriver
from alice_trio.sessions.session import SessionState, open_session

HERE = Path(__file__).parent
ECHO_RPC = HERE / "fake_echo_rpc.py"
ECHO_CLAUDE = HERE / "fake_claude_echo.py"
FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)
DRIVERS = ["claude", "codex", "acp", "kimi_wire", "opencode"]


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


def make_driver(name: str, tmp_path: Path, *, slow: bool = False) -> SessionDriver:
    """``slow``: every answer takes 60 s (the turn is still running when the process dies)."""
    delay = "60" if slow else "0"
    if name == "claude":
        inv = Invocation(argv=(sys.executable, str(ECHO_CLAUDE)), limits=FAST,
                         env={"FAKE_CLAUDE_DELAY": delay})  # fmt: skip
        return ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)
    rpc_env = {"FAKE_ECHO_DELAY": delay}
    if name == "codex":
        inv = Invocation(argv=(sys.executable, str(ECHO_RPC), "codex"), limits=FAST, env=rpc_env)
        return CodexAppServerDriver(CodexConfig(), req("x"), invocation=inv, close_grace=1.0)
    if name == "acp":
        inv = Invocation(argv=(sys.executable, str(ECHO_RPC), "acp"), limits=FAST, env=rpc_env)
        return AcpDriver(inv, req("x"), provider="acp", cwd=str(tmp_path), close_grace=1.0)
    if name == "kimi_wire":
        inv = Invocation(argv=(sys.executable, str(ECHO_RPC), "kimi"), limits=FAST, env=rpc_env)
        return KimiWireDriver(KimiConfig(), req("x"), invocation=inv, close_grace=1.0)
    assert name == "opencode"
    config, _ = opencode_config(tmp_path)
    return OpenCodeServeDriver(config, req("x"))


def process_of(driver: Any) -> Any:
    proc = getattr(driver, "process", None) or driver._proc
    assert proc is not None
    return proc


def kill_and_wait_until_dead(pid: int) -> None:
    """SIGKILL the process group and wait — without a trio checkpoint, so the session cannot
    notice — until the process is a zombie (its pipes and sockets are closed)."""
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            threads = len(os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            return
        # a multi-threaded process's leader shows Z while its other threads still exit (and
        # hold its pipes and sockets open): dead once only the leader is left
        if state in ("Z", "X") and threads <= 1:
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not die")


async def drain(session: Any) -> list[TurnEvent]:
    seen: list[TurnEvent] = []
    with trio.fail_after(30):
        async for event in session.events():
            seen.append(event)
    return seen


def assert_typed(error: BaseException, provider: str) -> None:
    assert isinstance(error, TransportClosedError), repr(error)
    assert error.provider == provider
    assert "SIGKILL" in str(error), str(error)  # what became of the process is said


@pytest.mark.parametrize("name", DRIVERS)
async def test_input_for_a_killed_agent_raises_transport_closed(tmp_path: Path, name: str) -> None:
    driver = make_driver(name, tmp_path)
    provider = "opencode" if name == "opencode" else name
    async with open_session(provider, initial=req("x"), driver=driver) as session:
        await session.submit(req("hello"))
        with trio.fail_after(30):
            async for event in session.events():
                if event.kind.terminal:
                    assert event.kind is EventKind.TURN_COMPLETED, event
                    break
        kill_and_wait_until_dead(process_of(driver).pid)
        with pytest.raises(TransportClosedError) as first:
            await session.submit(req("again"))
        label = "kimi" if name == "kimi_wire" else provider
        assert_typed(first.value, label)
        seen = await drain(session)  # the stream ends: the driver noticed the process's end
        assert not [e for e in seen if e.kind is EventKind.TURN_STARTED], seen
        assert not [e for e in seen if e.kind is EventKind.ERROR], seen  # no turn existed
        assert session.state is SessionState.FAILED
        for command in (session.submit, session.steer):  # the same error once it is known
            with pytest.raises(TransportClosedError) as later:
                await command(req("and again"))
            assert_typed(later.value, label)


@pytest.mark.parametrize("name", DRIVERS)
async def test_a_turn_whose_agent_is_killed_ends_with_the_typed_error(
    tmp_path: Path, name: str
) -> None:
    driver = make_driver(name, tmp_path, slow=True)
    provider = "opencode" if name == "opencode" else name
    async with open_session(provider, initial=req("x"), driver=driver) as session:
        submitted = await session.submit(req("SLOW please"))
        kill_and_wait_until_dead(process_of(driver).pid)
        seen = await drain(session)
        errors = [e for e in seen if e.kind is EventKind.ERROR]
        assert [e.turn_id for e in errors] == [submitted.turn_id], seen
        assert_typed(session.turn_error(submitted.turn_id) or AssertionError(seen), provider
                     if name != "kimi_wire" else "kimi")  # fmt: skip
