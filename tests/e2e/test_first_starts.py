"""e2e: several opencode processes started at once on one fresh data directory all come up.

opencode creates and migrates its SQLite database (``$XDG_DATA_HOME/opencode/opencode.db``)
at every start; two first starts on a fresh directory at once made one of them die before it
printed its URL (``Unexpected error`` on ``CREATE TABLE `workspace```, or ``database is
locked``; exit status 1) — the lane's flaky
``test_opencode_question_through_the_session_backend[answered]``, where the warm spare and the
conversation's own server started together. The engine now starts them one at a time per
state directory until one came up (engine/first_start.py). Here: two SessionBackends, each
with its warm spare and two conversations that each have their own env (so their own server),
all at once — six ``opencode serve`` on one fresh data dir; and three ``opencode run`` at once.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from cli_env import provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.backend import OneShotBackend
from alice_trio.models import RunRequest
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend

pytestmark = pytest.mark.e2e
LIMIT = 300.0  # six servers on a loaded 2-core machine; a hang guard, not a speed goal


async def test_opencode_servers_started_together_on_a_fresh_data_dir_all_come_up(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    setup = cli_setup("opencode")
    _, config = provider_config(setup)
    replies: dict[str, str] = {}
    servers: dict[str, int] = {}

    async def conversation(backend: SessionBackend, key: str) -> None:
        request = RunRequest(
            user_text=f"hello {key}", workspace_dir=setup.workspace,
            env={SESSION_KEY_ENV: key, "ALICE_E2E_CONVERSATION": key},
        )  # fmt: skip
        replies[key] = (await backend.run(request)).reply

    async def one_backend(name: str) -> None:
        async with SessionBackend("opencode", config) as backend:  # warm=1: a spare starts
            async with trio.open_nursery() as nursery:
                for i in range(2):
                    nursery.start_soon(conversation, backend, f"{name}{i}")
            servers[name] = len(backend.pool.hosts)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one_backend, "a")
            nursery.start_soon(one_backend, "b")
    assert sorted(replies) == ["a0", "a1", "b0", "b1"]
    for key, reply in replies.items():
        assert f"You said: hello {key}" in reply, reply
    assert all(n >= 2 for n in servers.values()), servers  # own env: own server each
    await assert_nothing_left(setup)


async def test_opencode_one_shot_runs_started_together_on_a_fresh_data_dir_all_succeed(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    setup = cli_setup("opencode")
    backend = OneShotBackend(
        "opencode",
        provider_config(setup)[1],
    )
    replies: dict[int, Any] = {}

    async def once(i: int) -> None:
        result = await backend.run(
            RunRequest(user_text=f"one shot {i}", workspace_dir=setup.workspace)
        )
        replies[i] = result.reply

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(once, i)
    for i in range(3):
        assert f"You said: one shot {i}" in replies[i], replies
    await assert_nothing_left(setup)
