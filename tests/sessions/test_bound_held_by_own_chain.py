"""A callback or approver that runs another conversation while the bound that run needs is
held only by the runs waiting for that callback (``max_turns``, ``max_conversations``) gets
:class:`ConfigError` at once instead of waiting forever: room can never come, since the
holders' turns cannot end before the callback returned. Where another run holds part of the
bound, the nested run waits for it as any run does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from test_approver_reentry import ACCEPTED, DECLINED
from test_hosted_conversations import MODES, make_config, provider_of, req

from alice_trio.errors import ConfigError
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig

BOUNDS = [{"max_turns": 1}, {"max_conversations": 1}, {"max_processes": 1, "share": False}]


def refusal(key: str, holders: str, bound: str) -> str:
    return (
        f"SessionBackend.run of {key} from a callback or approver of {holders} would wait "
        f"forever: {bound} is held by that run, whose turn cannot end before the callback "
        f"returned; raise {bound}, or run it after that run returned"
    )


def running_k2_from_the_approver(
    provider: str, config: Any, scaling: ScalingConfig
) -> tuple[SessionBackend, list[BaseException]]:
    """A backend whose approver runs conversation ``k2`` (re-raising, hence declining, on a
    refusal), and the list its :class:`ConfigError` refusals are kept in."""
    refused: list[BaseException] = []
    backend: SessionBackend

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        try:
            await backend.run(req("k2", "from the approver"))
        except ConfigError as exc:
            refused.append(exc)
            raise
        return ApprovalDecision.ACCEPT  # pragma: no cover - the old hang never got here

    backend = SessionBackend(provider, config, scaling=scaling, approver=approver)
    return backend, refused


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: next(iter(b)))
@pytest.mark.parametrize("mode", MODES)
async def test_an_approver_running_another_conversation_at_a_bound_its_run_holds(
    tmp_path: Path, mode: str, bound: dict[str, int]
) -> None:
    config, _log = make_config(tmp_path, mode)
    backend, refused = running_k2_from_the_approver(
        provider_of(mode), config, ScalingConfig(warm=0, **bound)
    )
    with trio.fail_after(30):
        async with backend:
            result = await backend.run(req("k1", "ASK"))
            assert result.reply == DECLINED[mode]  # the raising approver declined
            assert len(refused) == 1, refused
            name = next(iter(bound))
            assert str(refused[0]) == refusal("conversation 'k2'", "'k1'", name)
            assert refused[0].provider == provider_of(mode)  # type: ignore[attr-defined]
            # nothing is left held: k2 runs now, k1 goes on
            assert (await backend.run(req("k2", "later"))).reply.endswith(": later")
            assert (await backend.run(req("k1", "again"))).reply.endswith(": again")


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: next(iter(b)))
async def test_a_progress_callback_running_another_conversation_at_a_bound_its_run_holds(
    tmp_path: Path, bound: dict[str, int]
) -> None:
    config, _log = make_config(tmp_path, "codex")
    refused: list[BaseException] = []
    backend = SessionBackend("codex", config, scaling=ScalingConfig(warm=0, **bound))

    async def on_events(events: Any) -> None:
        if refused:
            return
        try:
            await backend.run(req("k2", "from a callback"))
        except ConfigError as exc:
            refused.append(exc)

    with trio.fail_after(30):
        async with backend:
            result = await backend.run(req("k1", "hello", on_events=on_events))
            assert result.reply.endswith(": hello")
            assert len(refused) == 1, refused
            assert str(refused[0]) == refusal("conversation 'k2'", "'k1'", next(iter(bound)))


@pytest.mark.parametrize("bound", [{"max_turns": 2}, {"max_conversations": 2}], ids=str)
async def test_a_nested_run_still_waits_when_another_run_holds_part_of_the_bound(
    tmp_path: Path, bound: dict[str, int]
) -> None:
    """A bound of 2: k1 waits for its approver, an unrelated k3 holds the rest (its turn
    slot, or its conversation while its turn runs); the approver's run of k2 waits for k3
    (room will come) and then runs."""
    config, _log = make_config(tmp_path, "codex")
    replies: list[str] = []
    backend: SessionBackend
    k3_running = trio.Event()

    async def approver(request: ApprovalRequest) -> ApprovalDecision:
        await k3_running.wait()
        replies.append((await backend.run(req("k2", "from the approver"))).reply)
        return ApprovalDecision.ACCEPT

    backend = SessionBackend(
        "codex", config, scaling=ScalingConfig(warm=0, **bound), approver=approver
    )

    async def k3() -> None:
        async def seen(_events: Any) -> None:
            k3_running.set()

        await backend.run(req("k3", "TOOL:sleep 0.5; echo done", on_events=seen))

    with trio.fail_after(30):
        async with backend, trio.open_nursery() as nursery:
            nursery.start_soon(k3)
            result = await backend.run(req("k1", "ASK"))
    assert result.reply == ACCEPTED["codex"]
    assert len(replies) == 1 and replies[0].endswith(": from the approver")


async def test_the_approver_of_a_run_without_a_session_key_at_max_turns(tmp_path: Path) -> None:
    """A run without a key (a conversation of its own) holds its turn slot by a name of its
    own: its approver's run of another conversation is refused the same way."""
    from alice_trio.models import RunRequest

    config, _log = make_config(tmp_path, "codex")
    backend, refused = running_k2_from_the_approver(
        "codex", config, ScalingConfig(warm=0, max_turns=1)
    )
    with trio.fail_after(30):
        async with backend:
            result = await backend.run(RunRequest(user_text="ASK"))
            assert result.reply == DECLINED["codex"]
            assert len(refused) == 1, refused
            assert str(refused[0]) == refusal("conversation 'k2'", "a run", "max_turns")
