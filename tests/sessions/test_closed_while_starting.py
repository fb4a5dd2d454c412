"""Hostile-use finding (round 4): something closed while it is still starting ends with a typed
error or quietly — never trio's ``RuntimeError("child exited without calling
task_status.started()")``.

A backend exited while its warm spare's shared process was still in its handshake (codex
app-server, gemini and Kimi Code ACP, opencode serve) raised that RuntimeError out of
``SessionBackend.__aexit__``: the pool closed the starting host, whose ``run`` then ended
quietly before it reported started (sessions/starting.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from alice_trio import RunRequest, SessionBackend
from alice_trio.errors import RunTimeoutError, SessionClosedError
from alice_trio.providers.base import CLIConfig, RunLimits
from alice_trio.providers.codex import CodexConfig
from alice_trio.providers.gemini import GeminiConfig
from alice_trio.providers.kimi import KimiConfig
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.scaling import ScalingConfig
from alice_trio.sessions.session import open_session
from alice_trio.testing import ScriptedDriver

FAST = RunLimits(kill_grace=0.2, drain_timeout=0.5)

SHARED: dict[str, Any] = {
    "codex": CodexConfig,
    "gemini": GeminiConfig,
    "kimi": KimiConfig,  # Kimi Code: ACP
    "opencode": OpenCodeConfig,
}


def mute_agent(tmp_path: Path) -> tuple[str, Path]:
    """An agent that starts and never answers its handshake (nor listens)."""
    flag = tmp_path / "spawned"
    cmd = tmp_path / "mute-agent"
    cmd.write_text(
        f"#!/bin/sh\ntouch {flag}\nexec {sys.executable} -c 'import time; time.sleep(600)'\n"
    )
    cmd.chmod(0o755)
    return str(cmd), flag


async def wait_for_file(path: Path) -> None:
    with trio.fail_after(30):
        while not path.exists():  # noqa: ASYNC110 - another process's file
            await trio.sleep(0.01)


@pytest.mark.parametrize("provider", sorted(SHARED))
async def test_a_backend_closed_while_its_spare_host_starts_exits_cleanly(
    tmp_path: Path, provider: str
) -> None:
    cmd, spawned = mute_agent(tmp_path)
    config: CLIConfig = SHARED[provider](command=cmd, workspace_dir=str(tmp_path), limits=FAST)
    backend = SessionBackend(provider, config, scaling=ScalingConfig(warm=1))
    with trio.fail_after(30):
        async with backend:
            await wait_for_file(spawned)  # the spare's process runs, its handshake waits
        # the exit returned: no RuntimeError, and nothing of the spare is left
    assert backend.pool.hosts == []
    assert backend.pool.spares == []


async def test_a_driver_that_ends_before_it_started_is_a_session_closed_error() -> None:
    class Quitter(ScriptedDriver):
        """A driver whose run returns at once, never reporting itself started."""

        async def run(self, emit: Any, *, task_status: Any) -> None:
            await trio.lowlevel.checkpoint()

    with pytest.raises(SessionClosedError, match="ended before it started"):
        async with open_session("codex", initial=RunRequest(user_text=""), driver=Quitter()):
            pytest.fail("opened")  # pragma: no cover


@pytest.mark.parametrize("warm", [0, 1])
@pytest.mark.parametrize("provider", sorted(SHARED))
async def test_a_shared_host_that_never_answers_its_handshake_ends_at_start_timeout(
    tmp_path: Path, provider: str, warm: int
) -> None:
    """Hostile-use finding (round 5): ``start_timeout`` bounded a one-process session's start
    but not a shared agent process's spawn and handshake — a CLI that never answered
    ``initialize`` held ``SessionBackend.run`` (and every run waiting for that host) forever."""
    cmd, spawned = mute_agent(tmp_path)
    config: CLIConfig = SHARED[provider](command=cmd, workspace_dir=str(tmp_path), limits=FAST)
    backend = SessionBackend(provider, config, start_timeout=1.0, scaling=ScalingConfig(warm=warm))
    with trio.fail_after(30):
        async with backend:
            with pytest.raises(RunTimeoutError, match="did not start within 1 s"):
                await backend.run(RunRequest(user_text="hello", workspace_dir=str(tmp_path)))
            assert spawned.exists()
            assert [h for h in backend.pool.hosts if h.alive] == []
    assert backend.pool.hosts == []


def counting_mute_agent(tmp_path: Path) -> tuple[str, Path]:
    """An agent that never answers its handshake and adds a line to a file per start."""
    starts = tmp_path / "starts"
    cmd = tmp_path / "counting-mute-agent"
    cmd.write_text(
        f"#!/bin/sh\necho $$ >> {starts}\nexec {sys.executable} -c 'import time; time.sleep(600)'\n"
    )
    cmd.chmod(0o755)
    return str(cmd), starts


@pytest.mark.parametrize("warm", [0, 1])
@pytest.mark.parametrize("provider", ["codex", "opencode"])
async def test_runs_waiting_for_a_start_that_timed_out_fail_with_it(
    tmp_path: Path, provider: str, warm: int
) -> None:
    """Runs that waited for a shared process's start which then timed out each started the
    process again, one after the other: the k-th waited k × ``start_timeout`` (a bot with 50
    messages queued on an agent that hangs at start: 50 minutes for the last one). They fail
    with the start's ``RunTimeoutError`` now; the agent was started once."""
    cmd, starts = counting_mute_agent(tmp_path)
    config: CLIConfig = SHARED[provider](command=cmd, workspace_dir=str(tmp_path), limits=FAST)
    backend = SessionBackend(provider, config, start_timeout=1.0, scaling=ScalingConfig(warm=warm))
    errors: list[BaseException] = []

    async def one(i: int) -> None:
        request = RunRequest(user_text=f"message {i}", workspace_dir=str(tmp_path))
        with pytest.raises(RunTimeoutError, match="did not start within 1 s") as info:
            await backend.run(request.evolve(env={"ALICE_SESSION_KEY": f"chat-{i}"}))
        errors.append(info.value)

    with trio.fail_after(60):
        async with backend, trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(one, i)
    assert len(errors) == 5
    assert len(starts.read_text().split()) == 1
