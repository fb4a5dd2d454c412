"""An approver that runs or steers its own conversation again (the one whose turn waits for
its answer) gets :class:`ConfigError` at once — the request is then declined like for any
approver failure — instead of a deadlock; other conversations stay open to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from test_hosted_conversations import MODES, make_config, provider_of, req

from alice_trio.errors import ConfigError
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig

DECLINED = {"codex": "answer: decline", "acp": "answer: no"}
ACCEPTED = {"codex": "answer: accept", "acp": "answer: yes"}


@pytest.mark.parametrize("how", ["run", "steer"])
@pytest.mark.parametrize("mode", MODES)
async def test_an_approver_reentering_its_own_conversation_is_refused_not_a_hang(
    tmp_path: Path, mode: str, how: str
) -> None:
    config, _log = make_config(tmp_path, mode)
    refused: list[BaseException] = []
    backend: SessionBackend

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        try:
            await getattr(backend, how)(req("k1", "inner"))
        except ConfigError as exc:
            refused.append(exc)
            raise
        return ApprovalDecision.ACCEPT  # pragma: no cover - the old deadlock never got here

    backend = SessionBackend(
        provider_of(mode), config, scaling=ScalingConfig(warm=0), approver=approver
    )
    with trio.fail_after(30):
        async with backend:
            result = await backend.run(req("k1", "ASK"))
            assert result.reply == DECLINED[mode]  # the raising approver declined
            assert len(refused) == 1 and "would wait for itself" in str(refused[0])
            assert "'k1'" in str(refused[0])
            # the conversation goes on, from the caller's task
            again = await backend.run(req("k1", "later", thread_id=result.next_thread_id))
            assert again.reply.endswith(": later")


@pytest.mark.parametrize("mode", MODES)
async def test_an_approver_may_run_another_conversation(tmp_path: Path, mode: str) -> None:
    config, _log = make_config(tmp_path, mode)
    replies: list[str] = []
    backend: SessionBackend

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        replies.append((await backend.run(req("other", "from the approver"))).reply)
        return ApprovalDecision.ACCEPT

    backend = SessionBackend(
        provider_of(mode), config, scaling=ScalingConfig(warm=0), approver=approver
    )
    with trio.fail_after(30):
        async with backend:
            result = await backend.run(req("k1", "ASK"))
    assert result.reply == ACCEPTED[mode]
    assert len(replies) == 1 and replies[0].endswith(": from the approver")


async def test_an_approver_of_another_run_may_not_come_back_to_a_waiting_one(
    tmp_path: Path,
) -> None:
    """k1's approver runs k2, whose approver runs k1: k1 waits for its approver, so the
    innermost run is refused (both conversations' requests are in this task's chain)."""
    config, _log = make_config(tmp_path, "codex")
    refused: list[str] = []
    backend: SessionBackend

    async def approver(request: ApprovalRequest) -> Any:
        if not refused and request.thread_id == threads.get("k1"):
            return (await backend.run(req("k2", "ASK", thread_id=threads["k2"]))).reply[-6:]
        try:
            await backend.run(req("k1", "back", thread_id=threads["k1"]))
        except ConfigError as exc:
            refused.append(str(exc))
            raise
        return ApprovalDecision.ACCEPT  # pragma: no cover

    threads: dict[str, str] = {}
    backend = SessionBackend("codex", config, scaling=ScalingConfig(warm=0), approver=approver)
    with trio.fail_after(30):
        async with backend:
            for key in ("k1", "k2"):
                threads[key] = (await backend.run(req(key, "hello"))).next_thread_id
            result = await backend.run(req("k1", "ASK", thread_id=threads["k1"]))
    assert len(refused) == 1 and "'k1'" in refused[0]
    assert result.reply == "answer: decline"  # "ecline" is no decision: declined too
