"""e2e: interactive sessions (``alice_trio.sessions.open_session``) on the real CLIs.

Per provider: two turns in one session (plain, then a tool call with its events), interrupting
a streaming turn and going on in the same session, and cancelling the session's owner while a
tool runs — after which no process of the run may be alive. A provider whose session driver
module does not exist yet is skipped at collection (conftest) with that reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import trio
from cli_env import CliSetup, provider_config
from e2e_support import (
    FakeServer,
    assert_nothing_left,
    long_tool,
    run_processes,
    wait_for_tool,
    wait_until,
)
from oneshot_cases import START_TIMEOUT, SetupFactory

from alice_trio.errors import TransportClosedError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import CLIConfig
from alice_trio.sessions.session import InteractiveSession, open_session

pytestmark = pytest.mark.e2e
TURN_LIMIT = 120.0


async def next_terminal(session: InteractiveSession, seen: list[TurnEvent]) -> TurnEvent:
    """Read events (into ``seen``) up to the next terminal one."""
    with trio.fail_after(TURN_LIMIT):
        while True:
            event = await session.events().receive()
            seen.append(event)
            if event.kind.terminal:
                return event


def text_of(events: list[TurnEvent]) -> str:
    return "\n".join(f"{e.kind.value} {e.text} {e.raw}" for e in events)


def _exited(pid: int) -> bool:
    """``pid`` is gone, or a zombie whose every thread exited (a multi-threaded process's
    leader shows ``Z`` while its other threads still exit and hold its pipes open)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X") and threads <= 1


class InteractiveCases:
    CLI: ClassVar[str]
    PROVIDER: ClassVar[str]
    #: the session driver module (collection skips the class while it does not exist)
    DRIVER_MODULE: ClassVar[str]

    def config(self, setup: CliSetup) -> CLIConfig:
        # the lane's config of the CLI (kimi: no yolo — its default exec policy accepts the
        # permission requests, like ``kimi -p``)
        return provider_config(setup)[1]

    def request(self, setup: CliSetup, text: str) -> RunRequest:
        return RunRequest(user_text=text, workspace_dir=setup.workspace)

    def open(self, setup: CliSetup) -> Any:
        return open_session(
            self.PROVIDER, self.config(setup), initial=self.request(setup, "(session start)")
        )

    async def test_two_turns_plain_then_tool(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        async with self.open(setup) as session:
            seen: list[TurnEvent] = []
            await session.submit(self.request(setup, "say hello"))
            end = await next_terminal(session, seen)
            assert end.kind is EventKind.TURN_COMPLETED, text_of(seen)
            replies = [e.text for e in seen if e.kind is EventKind.ASSISTANT_TEXT]
            assert any("You said: say hello" in r for r in replies), text_of(seen)

            seen.clear()
            await session.submit(self.request(setup, "[[TOOL]] now run it"))
            end = await next_terminal(session, seen)
            assert end.kind is EventKind.TURN_COMPLETED, text_of(seen)
            assert any(e.kind is EventKind.TOOL_USE for e in seen), text_of(seen)
            replies = [e.text for e in seen if e.kind is EventKind.ASSISTANT_TEXT]
            assert any("TOOL_OUTPUT_42" in r for r in replies), text_of(seen)
        await assert_nothing_left(setup)

    async def test_interrupt_a_streaming_turn_then_continue(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        async with self.open(setup) as session:
            seen: list[TurnEvent] = []
            await session.submit(self.request(setup, "[[SLOW]] a long answer"))
            await wait_until(
                lambda: any(r.get("delay") for r in fake_server.model_requests()),
                START_TIMEOUT,
                "the slow stream to start",
            )
            await trio.sleep(1.0)
            asked = time.monotonic()
            await session.interrupt()
            end = await next_terminal(session, seen)
            assert end.kind is EventKind.TURN_INTERRUPTED, text_of(seen)
            assert time.monotonic() - asked < 15, "the interrupt took too long"

            seen.clear()
            await session.submit(self.request(setup, "after the interrupt"))
            end = await next_terminal(session, seen)
            assert end.kind is EventKind.TURN_COMPLETED, text_of(seen)
            replies = [e.text for e in seen if e.kind is EventKind.ASSISTANT_TEXT]
            assert any("You said: after the interrupt" in r for r in replies), text_of(seen)
        await assert_nothing_left(setup)

    async def test_interrupt_mid_tool_then_submit_at_once(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """Input submitted right after an interrupt, before the interrupted turn's end came
        back, is the next turn: the interrupted turn ends, then the new one runs and completes
        (codex and legacy kimi refused it as a steer of a turn already over — submit raised)."""
        setup = cli_setup(self.CLI)
        tool = long_tool(setup)
        async with self.open(setup) as session:
            first = await session.submit(self.request(setup, f"[[TOOL]][[CMD:{tool.command}]]"))
            await wait_for_tool(tool, fake_server, START_TIMEOUT)
            await session.interrupt()
            await session.submit(self.request(setup, "right after the interrupt"))
            seen: list[TurnEvent] = []
            ends = [await next_terminal(session, seen), await next_terminal(session, seen)]
            assert ends[0].turn_id == first.turn_id, text_of(seen)
            assert ends[0].kind in (EventKind.TURN_INTERRUPTED, EventKind.TURN_COMPLETED)
            assert ends[1].kind is EventKind.TURN_COMPLETED, text_of(seen)
            replies = [
                e.text
                for e in seen
                if e.kind is EventKind.ASSISTANT_TEXT and e.turn_id == ends[1].turn_id
            ]
            assert any("You said: right after the interrupt" in r for r in replies), text_of(seen)
        await assert_nothing_left(setup, cmd_token=tool.token)

    async def test_input_while_a_tool_runs_is_answered_and_every_turn_ends_once(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """A message submitted while a tool runs (steered, queued or taken at claude's next
        boundary, per the provider's steer mode) is answered, the tool's turn finishes with
        its result, and each submitted turn ends exactly once — none is left waiting."""
        setup = cli_setup(self.CLI)
        script = Path(setup.workspace) / "sleep_then_say.py"
        script.write_text("import time\ntime.sleep(4)\nprint('SLEPT')\n")
        async with self.open(setup) as session:
            first = await session.submit(
                self.request(setup, f"[[TOOL]][[CMD:python3 {script}]] go")
            )
            await wait_until(
                lambda: any(r.get("decision") == "tool" for r in fake_server.model_requests()),
                START_TIMEOUT, "the tool call",
            )  # fmt: skip
            second = await session.submit(self.request(setup, "steered PARROT"))
            seen: list[TurnEvent] = []
            ends: dict[str, list[EventKind]] = {}
            with trio.fail_after(TURN_LIMIT):
                while first.turn_id not in ends or (second.turn_id or first.turn_id) not in ends:
                    event = await next_terminal(session, seen)
                    ends.setdefault(event.turn_id, []).append(event.kind)
                with trio.move_on_after(1):  # a second end of a turn would come right after
                    while True:
                        event = await next_terminal(session, seen)
                        ends.setdefault(event.turn_id, []).append(event.kind)
            assert all(kinds == [EventKind.TURN_COMPLETED] for kinds in ends.values()), (
                ends, text_of(seen),
            )  # fmt: skip
            texts = " ".join(e.text for e in seen if e.kind is EventKind.ASSISTANT_TEXT)
            assert "PARROT" in texts, text_of(seen)
            results = " ".join(e.text for e in seen if e.kind is EventKind.TOOL_RESULT)
            assert "SLEPT" in texts + results + " ".join(fake_server.tool_results()), text_of(seen)
        await assert_nothing_left(setup)

    async def test_cancel_the_owner_mid_tool_leaves_nothing(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        tool = long_tool(setup, then="echo done")
        groups: set[int] = set()
        with trio.CancelScope() as scope:
            async with self.open(setup) as session:
                await session.submit(self.request(setup, f"[[TOOL]][[CMD:{tool.command}]]"))
                await wait_for_tool(tool, fake_server, START_TIMEOUT)
                groups = {p.pgid for p in run_processes(setup)}
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert groups
        await assert_nothing_left(setup, groups, cmd_token=tool.token)
        assert not tool.running(), f"the tool (pid {tool.pid()}) survived the cancel"

    async def test_input_after_the_agent_was_killed_raises_transport_closed(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """The agent's process group SIGKILLed between turns: the next submit raises
        ``TransportClosedError`` (how the process ended), on every provider with a process of
        its own (the one-shot gemini session has none between turns: its next turn starts a
        new one)."""
        setup = cli_setup(self.CLI)
        async with self.open(setup) as session:
            seen: list[TurnEvent] = []
            await session.submit(self.request(setup, "say hello"))
            end = await next_terminal(session, seen)
            assert end.kind is EventKind.TURN_COMPLETED, text_of(seen)
            procs = run_processes(setup)
            groups = {p.pgid for p in procs}
            if not groups:  # a one-shot session (gemini session_protocol: oneshot)
                await session.submit(self.request(setup, "say hello again"))
                assert (await next_terminal(session, seen)).kind is EventKind.TURN_COMPLETED
                return
            for pgid in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            # dead (zombies at most: their pipes are closed), without a checkpoint of ours in
            # between, so the session may not have noticed yet
            deadline = time.monotonic() + 30
            while not all(_exited(pid) for pid in groups | {p.pid for p in procs}):
                assert time.monotonic() < deadline, "the killed agent did not die"
                time.sleep(0.01)  # noqa: ASYNC251 - no checkpoint on purpose (above)
            with pytest.raises(TransportClosedError) as caught:
                await session.submit(self.request(setup, "are you there?"))
            assert "SIGKILL" in str(caught.value), str(caught.value)
            with pytest.raises(TransportClosedError):
                await session.submit(self.request(setup, "still there?"))
        await assert_nothing_left(setup)


class TestCodexInteractive(InteractiveCases):
    CLI = PROVIDER = "codex"
    DRIVER_MODULE = "alice_trio.sessions.codex_app_server"


class TestClaudeInteractive(InteractiveCases):
    CLI = PROVIDER = "claude"
    DRIVER_MODULE = "alice_trio.sessions.claude_stream"


class TestGeminiInteractive(InteractiveCases):
    CLI = PROVIDER = "gemini"
    DRIVER_MODULE = "alice_trio.sessions.oneshot_driver"


class TestKimiInteractive(InteractiveCases):
    CLI = PROVIDER = "kimi"
    DRIVER_MODULE = "alice_trio.sessions.acp"


class TestKimiLegacyInteractive(InteractiveCases):
    CLI = "kimi_legacy"
    PROVIDER = "kimi"
    DRIVER_MODULE = "alice_trio.sessions.kimi_wire"


class TestOpenCodeInteractive(InteractiveCases):
    CLI = PROVIDER = "opencode"
    DRIVER_MODULE = "alice_trio.sessions.opencode_serve"

    async def test_the_server_refuses_unauthenticated_clients(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """Issue 12.11: another local process cannot drive the spawned ``opencode serve``."""
        setup = cli_setup(self.CLI)
        async with self.open(setup) as session:
            driver = session.driver
            base = driver.base_url
            assert base.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient(timeout=30) as client:
                anonymous = await client.post(f"{base}/session", json={})
                events = await client.get(f"{base}/event")
                wrong = await client.post(f"{base}/session", json={}, auth=("opencode", "guess"))
                ours = await client.get(f"{base}/session", auth=driver.secret.auth())
            assert anonymous.status_code == 401, anonymous.text
            assert events.status_code == 401
            assert wrong.status_code == 401
            assert ours.status_code == 200
            await session.submit(self.request(setup, "say hello"))
            seen: list[TurnEvent] = []
            end = await next_terminal(session, seen)
            assert end.kind is EventKind.TURN_COMPLETED, text_of(seen)
            argv = " ".join(p.cmdline for p in run_processes(setup))
            assert driver.secret.password not in argv
        await assert_nothing_left(setup)
