"""e2e: three conversations on one shared agent process (SessionBackend + sessions/pool.py) on
the real CLIs whose protocol hosts many conversations (codex app-server, gemini --acp, Kimi
Code acp). One conversation is cancelled while its tool runs: only its tool dies, the other
two conversations' tools live on and their turns finish with the right replies, on the same
process. Afterwards nothing of the run is left.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
from cli_env import CliSetup, provider_config
from e2e_support import FakeServer, assert_nothing_left, wait_until
from oneshot_cases import START_TIMEOUT, SetupFactory
from procscan import live_processes

from alice_trio.models import RunRequest
from alice_trio.providers.base import CLIConfig
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.pool import ScalingConfig

pytestmark = pytest.mark.e2e
TURN_LIMIT = 180.0


class SharedCases:
    CLI: ClassVar[str]
    PROVIDER: ClassVar[str]

    def config(self, setup: CliSetup) -> CLIConfig:
        return provider_config(setup)[1]

    def request(self, setup: CliSetup, key: str, text: str) -> RunRequest:
        work = Path(setup.workspace) / key  # every conversation has its own cwd
        work.mkdir(exist_ok=True)
        return RunRequest(user_text=text, workspace_dir=str(work), env={SESSION_KEY_ENV: key})

    async def test_cancel_one_of_three_mid_tool_the_others_finish(
        self, cli_setup: SetupFactory, fake_server: FakeServer, tmp_path: Path
    ) -> None:
        setup = cli_setup(self.CLI)
        token = f"{secrets.randbelow(10**6):06d}"
        victim_cmd = f"sleep 60.{token}"
        gate = tmp_path / "gate"
        gate.mkdir()

        def waiter(key: str) -> str:
            return f"while test ! -e {gate}/go; do sleep 0.1; done; echo other-{key}-{token}"

        results: dict[str, Any] = {}
        async with SessionBackend(
            self.PROVIDER, self.config(setup), scaling=ScalingConfig(warm=0)
        ) as backend:
            victim_scope = trio.CancelScope()

            async def victim() -> None:
                with victim_scope, trio.fail_after(TURN_LIMIT):
                    await backend.run(
                        self.request(setup, "victim", f"[[TOOL]][[CMD:{victim_cmd}; echo x]]")
                    )
                results["victim"] = "cancelled" if victim_scope.cancelled_caught else "ended"

            async def other(key: str) -> None:
                with trio.fail_after(TURN_LIMIT):
                    results[key] = await backend.run(
                        self.request(setup, key, f"[[TOOL]][[CMD:{waiter(key)}]]")
                    )

            def waiting_tools() -> list[Any]:
                return [p for p in live_processes() if f"{gate}/go" in p.cmdline]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(victim)
                nursery.start_soon(other, "b")
                nursery.start_soon(other, "c")
                await wait_until(
                    lambda: any(p.cmdline == victim_cmd for p in live_processes()),
                    START_TIMEOUT, f"`{victim_cmd}` to start",
                )  # fmt: skip
                await wait_until(
                    lambda: {"b", "c"} <= {k for k in "bc" for p in waiting_tools()
                                           if f"other-{k}-" in p.cmdline},
                    START_TIMEOUT, "the other two tools to start",
                )  # fmt: skip
                assert len(backend.pool.hosts) == 1
                host_pid = backend.pool.hosts[0].pid
                victim_scope.cancel()
                await wait_until(lambda: "victim" in results, 30, "the cancelled run to return")
                await wait_until(
                    lambda: not any(p.cmdline == victim_cmd for p in live_processes()),
                    15, "the cancelled turn's tool to die",
                )  # fmt: skip
                await trio.sleep(1.0)  # a wrongly killed tool would be gone by now
                for key in ("b", "c"):
                    mine = [p for p in waiting_tools() if f"other-{key}-" in p.cmdline]
                    assert mine, f"the tool of conversation {key} died with the cancelled one"
                    assert key not in results, f"conversation {key} ended early"
                assert backend.pool.hosts and backend.pool.hosts[0].pid == host_pid
                (gate / "go").write_text("")
            assert results["victim"] == "cancelled"
            for key in ("b", "c"):
                assert f"other-{key}-{token}" in results[key].reply, results[key]
            # the process lives on for the next turn of the cancelled conversation
            after = await backend.run(self.request(setup, "victim", "after the cancel"))
            assert "You said: after the cancel" in after.reply
            assert backend.pool.hosts[0].pid == host_pid
        await assert_nothing_left(setup, cmd_token=token)

    async def test_a_conversation_closed_to_make_room_resumes_its_thread(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        scaling = ScalingConfig(warm=0, max_conversations=1)
        async with SessionBackend(self.PROVIDER, self.config(setup), scaling=scaling) as backend:
            a = await backend.run(self.request(setup, "a", "first of a"))
            await backend.run(self.request(setup, "b", "first of b"))
            assert backend.open_sessions() == ["b"]  # a was closed (released on the process)
            again = await backend.run(self.request(setup, "a", "second of a"))
            assert again.next_thread_id == a.next_thread_id
            assert "You said: second of a" in again.reply
            assert len(backend.pool.hosts) == 1
            bodies = [json.dumps(r) for r in fake_server.model_requests()]
            assert any("first of a" in b and "second of a" in b for b in bodies), (
                "the resumed conversation's history did not reach the model"
            )
        await assert_nothing_left(setup)

    async def test_another_key_resuming_a_live_thread_takes_it_over(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """A thread is open in one conversation at a time (sessions/threads.py): key b's run
        naming the thread key a's live conversation holds closes a's (idle) and resumes the
        thread on the same process — before, it opened a second copy elsewhere (codex
        refused it: "already has an active writer"); a's next run takes it back."""
        setup = cli_setup(self.CLI)

        def request(key: str, text: str, thread_id: str = "") -> RunRequest:
            return self.request(setup, "a", text).evolve(  # one cwd: the thread's
                env={SESSION_KEY_ENV: key}, thread_id=thread_id
            )

        async with SessionBackend(
            self.PROVIDER, self.config(setup), scaling=ScalingConfig(warm=0)
        ) as backend:
            with trio.fail_after(TURN_LIMIT):
                a = await backend.run(request("a", "first of a"))
                b = await backend.run(request("b", "from b", a.next_thread_id))
                assert "You said: from b" in b.reply and b.next_thread_id == a.next_thread_id
                assert backend.open_sessions() == ["b"] and backend.pool.processes() == 1
                back = await backend.run(request("a", "a again"))
            assert "You said: a again" in back.reply and back.next_thread_id == a.next_thread_id
            assert backend.pool.processes() == 1
            bodies = [json.dumps(r) for r in fake_server.model_requests()]
            assert any("first of a" in x and "from b" in x and "a again" in x for x in bodies), (
                "the thread's history did not reach the model"
            )
        await assert_nothing_left(setup)

    async def test_a_spare_closed_while_a_conversation_opens_does_not_fail_it(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """Kimi Code 2.1.0 fails a ``session/new`` with "session not found" when the last
        other session of its directory is closed meanwhile (2 in 3 tries when the close comes
        within ~0.1 s). A warm pool's spare made for another request is closed just as the new
        conversation opens in the same directory (here the requests differ in ``scene``, which
        a spare must match): the conversation starts. Four fresh backends (the spare must be
        the directory's only session), each on one process."""
        setup = cli_setup(self.CLI)
        for i in range(4):
            async with SessionBackend(self.PROVIDER, self.config(setup)) as backend:
                await wait_until(lambda: backend.pool.spares, START_TIMEOUT, "the spare")
                with trio.fail_after(TURN_LIMIT):
                    result = await backend.run(
                        RunRequest(
                            user_text=f"hello {i}",
                            workspace_dir=setup.workspace,
                            scene="another",  # unlike the spare's request: it is closed
                            env={SESSION_KEY_ENV: "chat"},
                        )
                    )
                assert f"You said: hello {i}" in result.reply, result
                assert backend.pool.spares_used == 0 and len(backend.pool.hosts) == 1
        await assert_nothing_left(setup)


class TestCodexShared(SharedCases):
    CLI = PROVIDER = "codex"


class TestGeminiShared(SharedCases):
    CLI = PROVIDER = "gemini"


class TestKimiShared(SharedCases):
    CLI = PROVIDER = "kimi"


class TestOpenCodeShared(SharedCases):
    CLI = PROVIDER = "opencode"
