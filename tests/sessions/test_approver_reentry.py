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


@pytest.mark.parametrize("how", ["submit", "steer"])
@pytest.mark.parametrize("mode", MODES)
async def test_an_open_session_approver_submitting_to_its_own_session_returns_at_once(
    tmp_path: Path, mode: str, how: str
) -> None:
    """``open_session``: an approver that submits (or steers) into the session whose turn
    waits for its answer is not a deadlock: the call returns at once — queued (ACP, whose
    turns take no steer), steered into the waiting turn (codex's ``turn/steer``, which this
    fake does not know: its JSON-RPC error), or :class:`SteerUnsupportedError` — then the
    approver's own answer is applied and a queued message is answered after the turn."""
    from alice_trio.errors import AliceError, SteerUnsupportedError
    from alice_trio.models import RunRequest
    from alice_trio.protocols.session_core import SubmitResult
    from alice_trio.sessions.session import open_session

    config, _log = make_config(tmp_path, mode)
    outcomes: list[Any] = []
    box: list[Any] = []

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        with trio.fail_after(10):  # a deadlock would hold it here
            try:
                outcomes.append(await getattr(box[0], how)(RunRequest(user_text="after")))
            except AliceError as exc:
                outcomes.append(exc)
        return ApprovalDecision.ACCEPT

    replies: list[str] = []
    with trio.fail_after(30):
        async with open_session(
            provider_of(mode), config, initial=RunRequest(user_text=""), approver=approver
        ) as session:
            box.append(session)
            events = session.events()
            await session.submit(RunRequest(user_text="ASK"))
            queued = False
            async for event in events:
                if event.kind.value == "assistant_text":
                    replies.append(event.text)
                if event.kind.value == "turn_completed":
                    queued = (
                        isinstance(outcomes[0], SubmitResult) and outcomes[0].mode.value == "queued"
                    )
                    if not queued or len(replies) == 2:
                        break
    assert len(outcomes) == 1, outcomes
    assert replies[0] == ACCEPTED[mode], replies  # the approver's answer was applied
    if mode == "acp" and how == "submit":
        assert queued and replies[1].endswith(": after"), (outcomes, replies)
    elif mode == "acp":
        assert isinstance(outcomes[0], SteerUnsupportedError), outcomes
    else:  # codex: both steer the waiting turn; the fake answers turn/steer with an error
        assert isinstance(outcomes[0], AliceError) and "turn/steer" in str(outcomes[0]), outcomes
