"""Conversations an agent cannot resume (an ACP agent whose ``initialize`` offers no
``loadSession``): the backend never closes one by itself — not after ``idle_ttl``, not to make
room — unless ``ScalingConfig(close_unresumable=True)`` allows it; a resume such an agent
cannot do is :class:`ResumeUnsupportedError` (docs/scaling.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from test_hosted_conversations import AGENT, FAST, methods, req, wait_for

from alice_trio.errors import ConversationLimitError, ProtocolError, ResumeUnsupportedError
from alice_trio.providers.gemini import GeminiConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig


def no_load_config(tmp_path: Path, *, load: bool = False) -> tuple[GeminiConfig, Path]:
    log = tmp_path / "acp.log"
    cmd = tmp_path / "fake-acp"
    knob = "" if load else "FAKE_ACP_NO_LOAD=1 "
    cmd.write_text(f"#!/bin/sh\n{knob}exec {sys.executable} {AGENT} acp {log}\n")
    cmd.chmod(0o755)
    return GeminiConfig(command=str(cmd), limits=FAST, workspace_dir=str(tmp_path)), log


SHARES = [pytest.param(True, id="shared"), pytest.param(False, id="one-process")]


async def outlive(seconds: float) -> None:
    """Real time passes (subprocess agents: no mock clock); nothing is asserted about it."""
    await trio.sleep(seconds)


@pytest.mark.parametrize("share", SHARES)
async def test_idle_ttl_never_closes_a_conversation_the_agent_cannot_resume(
    tmp_path: Path, share: bool
) -> None:
    config, log = no_load_config(tmp_path)
    scaling = ScalingConfig(warm=0, share=share)
    with trio.fail_after(60):
        async with SessionBackend("gemini", config, scaling=scaling, idle_ttl=0.05) as b:
            first = await b.run(req("k1", "hello"))
            await outlive(1.0)  # twenty idle_ttls
            assert b.open_sessions() == ["k1"]
            again = await b.run(req("k1", "again", thread_id=first.next_thread_id))
    assert again.next_thread_id == first.next_thread_id
    assert again.reply == f"reply to {first.next_thread_id}: again"
    assert methods(log, "session/load") == []


async def test_a_resumable_agents_conversation_is_still_idle_closed(tmp_path: Path) -> None:
    config, _log = no_load_config(tmp_path, load=True)
    async with SessionBackend("gemini", config, scaling=ScalingConfig(warm=0), idle_ttl=0.05) as b:
        await b.run(req("k1", "hello"))
        await wait_for(lambda: not b.open_sessions(), "the idle close")


@pytest.mark.parametrize("share", SHARES)
async def test_no_room_made_by_losing_a_conversation_the_agent_cannot_resume(
    tmp_path: Path, share: bool
) -> None:
    config, _log = no_load_config(tmp_path)
    scaling = ScalingConfig(warm=0, share=share, max_conversations=1)
    with trio.fail_after(60):
        async with SessionBackend("gemini", config, scaling=scaling) as b:
            first = await b.run(req("k1", "hello"))
            with pytest.raises(ConversationLimitError) as refused:
                await b.run(req("k2", "hello"))
            assert str(refused.value) == (
                "max_conversations (1) reached by conversations the agent cannot resume (closing"
                " one would lose it): raise the bound, or allow closing them with"
                " ScalingConfig(close_unresumable=True)"
            )
            assert refused.value.provider == "gemini"
            assert b.open_sessions() == ["k1"]
            again = await b.run(req("k1", "again", thread_id=first.next_thread_id))
            assert again.reply == f"reply to {first.next_thread_id}: again"


async def test_closing_them_is_allowed_by_close_unresumable_and_the_resume_is_typed(
    tmp_path: Path,
) -> None:
    config, _log = no_load_config(tmp_path)
    scaling = ScalingConfig(warm=0, max_conversations=1, close_unresumable=True)
    with trio.fail_after(60):
        async with SessionBackend("gemini", config, scaling=scaling) as b:
            first = await b.run(req("k1", "hello"))
            await b.run(req("k2", "hello"))  # k1 was closed to make room
            assert b.open_sessions() == ["k2"]
            with pytest.raises(ResumeUnsupportedError, match="cannot load session") as info:
                await b.run(req("k1", "again", thread_id=first.next_thread_id))
            assert isinstance(info.value, ProtocolError)
            # without the thread id: a new conversation (nothing remembered to resume)
            fresh = await b.run(req("k1", "again"))
            assert fresh.next_thread_id != first.next_thread_id


async def test_a_resume_the_agent_cannot_do_is_typed(tmp_path: Path) -> None:
    config, _log = no_load_config(tmp_path)
    async with SessionBackend("gemini", config, scaling=ScalingConfig(warm=0)) as b:
        with pytest.raises(ResumeUnsupportedError):
            await b.run(req("k1", "hello", thread_id="ses-elsewhere"))


def test_close_unresumable_is_a_boolean() -> None:
    from alice_trio.errors import ConfigError

    with pytest.raises(ConfigError, match="close_unresumable"):
        ScalingConfig(close_unresumable="yes")  # type: ignore[arg-type]
    kw: dict[str, Any] = {"close_unresumable": True}
    assert ScalingConfig(**kw).close_unresumable is True
