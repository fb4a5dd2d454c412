"""Concurrent first starts of ``opencode serve`` on one data directory through SessionBackend
(engine/first_start.py): the warm spare, conversations with their own env (each its own
server), a second backend — all on one fresh ``$XDG_DATA_HOME``. fake_opencode_serve.py with
``FAKE_OPENCODE_MIGRATION`` dies like opencode 1.18 when two first starts overlap (the e2e
lane's ``opencode serve exited before reporting its URL (exit status 1)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import trio
from test_hosted_conversations import wait_for
from test_shared_opencode import make_config, req

from alice_trio.models import RunRequest
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.backend import SessionBackend

LIMIT = 60.0  # a deadlock guard on a loaded machine, not a speed assertion


def racy_config(tmp_path: Path) -> OpenCodeConfig:
    config, _ = make_config(tmp_path)
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "FAKE_OPENCODE_MIGRATION": "1.0"}
    return attrs.evolve(config, env=env)


async def test_spare_and_conversations_with_their_own_env_share_a_fresh_data_dir(
    tmp_path: Path,
) -> None:
    config = racy_config(tmp_path)
    replies: dict[str, str] = {}

    async def conversation(backend: SessionBackend, key: str) -> None:
        # its own env: its own server, started while the spare's server starts
        request = req(key, f"hello {key}")
        request = request.evolve(env={**request.env, "CONVERSATION_ENV": key})
        replies[key] = (await backend.run(request)).reply

    with trio.fail_after(LIMIT):
        async with SessionBackend("opencode", config) as backend:  # warm=1: a spare starts
            async with trio.open_nursery() as nursery:
                for key in ("a", "b"):
                    nursery.start_soon(conversation, backend, key)
            assert len(backend.pool.hosts) >= 2
    assert sorted(replies) == ["a", "b"]
    for key, reply in replies.items():
        assert reply.endswith(f": hello {key}"), reply
    assert (tmp_path / "data" / "opencode" / "opencode.db").exists()


async def test_two_backends_and_a_process_per_conversation_on_one_fresh_data_dir(
    tmp_path: Path,
) -> None:
    """The e2e flake's shape: an approver gives every conversation a process of its own; the
    spare (made for the config's defaults) does not fit the first request, so two servers
    start at once — here in two backends at the same time."""
    config = racy_config(tmp_path)
    replies: list[str] = []

    async def approver(request: Any) -> Any:
        return None

    async def one_backend(name: str) -> None:
        async with SessionBackend("opencode", config, approver=approver) as backend:
            result = await backend.run(
                RunRequest(user_text=f"hi {name}", workspace_dir=str(tmp_path), env={})
            )
            replies.append(result.reply)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one_backend, "x")
            nursery.start_soon(one_backend, "y")
    assert len(replies) == 2 and all(": hi " in r for r in replies), replies


async def test_closing_the_backend_while_its_spare_server_starts_raises_nothing(
    tmp_path: Path,
) -> None:
    """A host closed before it reported started (the backend closes while the spare's server
    migrates, or waits for another first start) is a typed close, not trio's ``RuntimeError:
    child exited without calling task_status.started()`` out of ``__aexit__``."""
    config = racy_config(tmp_path)
    with trio.fail_after(LIMIT):
        async with SessionBackend("opencode", config) as backend:
            pool = backend.pool
            await wait_for(
                lambda: pool.hosts and not pool.hosts[0].started.is_set(), "the spare's start"
            )
        assert pool.hosts == [] and pool.spares == []
