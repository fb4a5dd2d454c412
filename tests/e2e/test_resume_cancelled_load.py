"""e2e: a run cancelled while its ``session/load`` (the resume of a thread) is in flight on a
shared ACP process (Kimi Code, gemini). The agent completes the load and holds the session;
the host used to forget it, so the next resume of that thread on the process was refused
(JSON-RPC -32603). Now the abandoned load is still awaited and what it opened is released
(Kimi Code: ``session/close``) or parked (gemini: the next resume is answered locally): the
next run of the thread gets its reply. Afterwards nothing of the run is left."""

from __future__ import annotations

import pytest
import trio
from cli_env import provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.models import RunRequest
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.pool import ScalingConfig

pytestmark = pytest.mark.e2e
TURN_LIMIT = 180.0


def _loading(backend: SessionBackend) -> bool:
    """A ``session/load`` is waiting for its answer on one of the pool's processes."""
    for host in backend.pool.hosts:
        client = getattr(host, "client", None)
        pending = getattr(client, "_pending", None) or {}
        if any(slot.method == "session/load" for slot in pending.values()):
            return True
    return False


@pytest.mark.parametrize("cli", ["kimi", "gemini"])
async def test_a_resume_cancelled_during_its_load_does_not_break_the_next(
    cli_setup: SetupFactory, fake_server: FakeServer, cli: str
) -> None:
    setup = cli_setup(cli)
    name, config = provider_config(setup)

    def req(key: str, text: str, thread: str = "") -> RunRequest:
        return RunRequest(user_text=text, workspace_dir=setup.workspace, thread_id=thread,
                          env={SESSION_KEY_ENV: key})  # fmt: skip

    with trio.fail_after(TURN_LIMIT):
        async with SessionBackend(name, config, scaling=ScalingConfig(warm=0)) as first:
            thread = (await first.run(req("a", "first turn"))).next_thread_id
        async with SessionBackend(name, config, scaling=ScalingConfig(warm=0)) as backend:
            await backend.run(req("warm", "another conversation"))  # the process is up
            scope = trio.CancelScope()
            async with trio.open_nursery() as nursery:

                async def resume() -> None:
                    with scope:
                        await backend.run(req("b", "cancelled turn", thread))

                nursery.start_soon(resume)
                for _ in range(200_000):  # polled every ms: the load takes ~0.1-1 s
                    if _loading(backend):
                        break
                    await trio.sleep(0.001)
                assert _loading(backend), "the resume never sent its session/load"
                scope.cancel()
            assert scope.cancelled_caught
            result = await backend.run(req("c", "third turn", thread))
            assert "You said: third turn" in result.reply, result
            assert result.next_thread_id == thread
            assert backend.pool.processes() == 1
    await assert_nothing_left(setup)
