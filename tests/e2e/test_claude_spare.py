"""e2e: a claude spare of the warm pool on the real CLI — warmed up (``get_context_usage`` with
``detail: summary`` answered) without a single request to the model server, and the first run
of a new conversation then sends exactly one model request."""

from __future__ import annotations

import pytest
import trio
from cli_env import provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.models import RunRequest
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.scaling import ScalingConfig

pytestmark = pytest.mark.e2e


async def test_claude_spare_is_warmed_up_without_a_model_request(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    setup = cli_setup("claude")
    _, config = provider_config(setup)
    async with SessionBackend("claude", config, scaling=ScalingConfig(warm=1)) as backend:
        with trio.fail_after(120):
            while not backend.pool.spares:  # noqa: ASYNC110 - the pool has no event for it
                await trio.sleep(0.05)
        assert backend.pool.spares[0].warmed_up, "claude did not answer get_context_usage"
        assert fake_server.records() == []  # no token count, no model call, nothing
        request = RunRequest(user_text="hello", env={SESSION_KEY_ENV: "a"})
        result = await backend.run(request)
        assert "hello" in result.reply
        assert backend.pool.spares_used == 1
        paths = [str(r.get("path", "")) for r in fake_server.records()]
        assert [p for p in paths if "/v1/messages" in p] == ["/v1/messages?beta=true"], paths
    await assert_nothing_left(setup)
