"""The one-shot e2e cases, shared by every provider (``test_oneshot_<provider>.py`` subclass it).

Each case drives the real CLI through the library (``OneShotBackend``) against the fake model
server and checks what a caller sees: the reply, the progress events, the thread id that
resumes, the typed error, the usage, and that cancelling mid-turn or mid-tool leaves no process
behind (by env marker, by process group and by the tool's command line).
"""

from __future__ import annotations

import inspect
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

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

from alice_trio.backend import OneShotBackend
from alice_trio.errors import AgentError, AliceError
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.models import RawEvent, RunRequest, RunResult, Usage
from alice_trio.providers.base import CLIConfig

SetupFactory = Callable[[str], CliSetup]
START_TIMEOUT = 60.0  # seconds for a CLI to reach the model / start its tool
CANCEL_BOUND = 15.0  # a cancelled run must be fully torn down well within this


class Collected:
    """Progress messages and raw events of one run."""

    def __init__(self) -> None:
        self.progress: list[str] = []
        self.raw: list[RawEvent] = []

    def on_progress(self, text: str) -> None:
        self.progress.append(text)

    def on_raw(self, event: RawEvent) -> None:
        self.raw.append(event)

    def text(self) -> str:
        return "\n".join([*self.progress, *(f"{e.kind} {e.line} {e.detail}" for e in self.raw)])


class OneShotCases:
    """Subclasses set ``CLI`` (manifest key) and ``PROVIDER`` (registry name); ``config()`` is
    the lane's config of that CLI (:func:`cli_env.provider_config`)."""

    CLI: ClassVar[str]
    PROVIDER: ClassVar[str]
    #: expected usage of one plain turn (None: the CLI does not report usage in this mode)
    PLAIN_USAGE: ClassVar[Usage | None] = None
    #: markers that make the CLI fail fast, with the HTTP status the error should carry
    #: (None: the CLI does not surface it)
    ERROR_CASES: ClassVar[tuple[tuple[str, int | None], ...]] = (("[[ERR400]]", 400),)
    #: the error types an API failure may surface as (the engine raises ProcessFailedError when
    #: the CLI reports the failure only on stderr and exits non-zero, e.g. Kimi Code)
    ERROR_TYPES: ClassVar[tuple[type[AliceError], ...]] = (AgentError,)

    #: the CLI's own file-writing tool as the fake server calls it: name and arguments (``{path}``
    #: becomes the file's absolute path); None: no write tool the fake server can script
    WRITE_TOOL: ClassVar[tuple[str, dict[str, str]] | None] = None

    def config(self, setup: CliSetup) -> CLIConfig:
        return provider_config(setup)[1]

    # -- plumbing ----------------------------------------------------------------------------

    def backend(self, setup: CliSetup) -> OneShotBackend:
        return OneShotBackend(self.PROVIDER, self.config(setup))

    def request(
        self, setup: CliSetup, text: str, events: Collected | None = None, thread_id: str = ""
    ) -> RunRequest:
        return RunRequest(
            user_text=text,
            thread_id=thread_id,
            workspace_dir=setup.workspace,
            on_progress=events.on_progress if events else None,
            on_raw_event=events.on_raw if events else None,
        )

    async def run(self, setup: CliSetup, text: str, **kw: Any) -> RunResult:
        with trio.fail_after(180):
            return await self.backend(setup).run(self.request(setup, text, **kw))

    async def cancel_when(
        self, setup: CliSetup, text: str, ready: Callable[[], Any], what: str
    ) -> tuple[set[int], float]:
        """Start a run, wait for ``ready()`` (a predicate, or an async function that returns
        once ready and fails the test itself), note the process groups of the run, cancel.
        Returns the groups and the seconds from cancel to the run's full teardown."""
        groups: set[int] = set()
        outcome: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def runner() -> None:
                with scope:
                    outcome["result"] = await self.backend(setup).run(self.request(setup, text))

            nursery.start_soon(runner)
            if inspect.iscoroutinefunction(ready):
                await ready()
            else:
                await wait_until(ready, START_TIMEOUT, what)
            groups = {p.pgid for p in run_processes(setup)}
            assert groups, "the run's processes were not found (env marker, cwd)"
            cancelled_at = time.monotonic()
            scope.cancel()
        took = time.monotonic() - cancelled_at
        assert "result" not in outcome, "the run finished instead of being cancelled"
        assert scope.cancelled_caught
        return groups, took

    # -- cases -------------------------------------------------------------------------------

    async def test_plain_reply(self, cli_setup: SetupFactory, fake_server: FakeServer) -> None:
        setup = cli_setup(self.CLI)
        events = Collected()
        result = await self.run(setup, "say hello", events=events)
        assert result.reply == "Hello from the fake model. You said: say hello"
        await assert_nothing_left(setup)

    async def test_usage_is_reported(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """The fake model reports 1234 input tokens (1000 of them cached) and 56 output tokens
        in each API's own format; ``Usage`` counts cached tokens as part of the input."""
        assert self.PLAIN_USAGE is not None  # conftest skips the test otherwise
        setup = cli_setup(self.CLI)
        result = await self.run(setup, "count my tokens")
        assert result.usage == self.PLAIN_USAGE, f"usage {result.usage}"

    async def test_tool_call_with_progress_events(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        events = Collected()
        result = await self.run(setup, "[[TOOL]] run the command", events=events)
        assert "TOOL_OUTPUT_42" in result.reply
        assert result.reply.rstrip().endswith("Done.")
        decisions = [r["decision"] for r in fake_server.model_requests() if r.get("n_tools")]
        assert "tool" in decisions and decisions[-1] == "text"
        assert "echo TOOL_OUTPUT_42" in events.text(), "the tool call was not reported as an event"
        await assert_nothing_left(setup)

    async def test_file_made_by_a_shell_tool_is_reported(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """No tool event names it: the workspace snapshot at turn end does (issue 14.3)."""
        setup = cli_setup(self.CLI)
        events = Collected()
        result = await self.run(
            setup, "[[TOOL]][[CMD:echo made > by_shell.txt]] make a file", events=events
        )
        assert (Path(setup.workspace) / "by_shell.txt").exists(), events.text()
        added = FileChange(path="by_shell.txt", kind=FileChangeKind.ADDED)
        assert added in result.file_changes, (result.file_changes, events.text())
        assert "[file_change] - `by_shell.txt` added" in events.progress, events.progress
        await assert_nothing_left(setup)

    async def test_file_written_by_the_edit_tool_is_reported_as_it_happens(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """The CLI's own write tool's event names the file, before the turn's final text."""
        if self.WRITE_TOOL is None:
            pytest.skip(f"{self.CLI}: no write tool the fake server can call")
        setup = cli_setup(self.CLI)
        name, template = self.WRITE_TOOL
        path = Path(setup.workspace) / "by_tool.txt"
        args = {key: value.format(path=path) for key, value in template.items()}
        events = Collected()
        result = await self.run(
            setup, f"[[CALL:{name}:{json.dumps(args)}]] write the file", events=events
        )
        assert path.exists(), events.text()
        added = FileChange(path="by_tool.txt", kind=FileChangeKind.ADDED)
        assert added in result.file_changes, (result.file_changes, events.text())
        notice = "[file_change] - `by_tool.txt` added"
        assert notice in events.progress, events.progress
        final = [p for p in events.progress if p.startswith("The tool returned")]
        assert final and events.progress.index(notice) < events.progress.index(final[-1]), (
            "reported by the snapshot only, not by the tool event",
            events.progress,
        )
        await assert_nothing_left(setup)

    async def test_resume_with_the_returned_thread_id(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        token = f"ALPHA-{secrets.token_hex(4)}"
        first = await self.run(setup, f"first turn: remember {token}")
        assert first.next_thread_id, "no thread id to resume with"
        second = await self.run(setup, "second turn", thread_id=first.next_thread_id)
        assert "You said: second turn" in second.reply
        assert second.next_thread_id
        # the CLI sent the first turn's history with the second prompt: it resumed the session
        last = fake_server.model_requests()[-1]
        assert token in str(last.get("body")), "the resumed turn did not carry the first turn"
        await assert_nothing_left(setup)

    async def test_api_error_is_a_typed_error(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        for marker, status in self.ERROR_CASES:
            started = time.monotonic()
            with pytest.raises(AliceError) as caught:
                await self.run(setup, f"{marker} this must fail")
            error = caught.value
            assert isinstance(error, self.ERROR_TYPES), f"{marker}: unexpected error {error!r}"
            if isinstance(error, AgentError) and status is not None:
                assert error.status == status, f"{marker}: status {error.status}: {error}"
            elif status is not None:  # no status attribute: the message must still name it
                assert str(status) in str(error), f"{marker}: {error}"
            assert time.monotonic() - started < 60, f"{marker}: the error was not fast"
            await assert_nothing_left(setup)

    async def test_cancel_mid_turn_leaves_nothing(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        streaming_since: list[float] = []

        def streaming_a_while() -> bool:
            slow = [r for r in fake_server.model_requests() if r.get("delay")]
            if slow and not streaming_since:
                streaming_since.append(time.monotonic())
            return bool(streaming_since) and time.monotonic() - streaming_since[0] > 1.0

        groups, took = await self.cancel_when(
            setup, "[[SLOW]] a long answer", streaming_a_while, "the slow stream to start"
        )
        await assert_nothing_left(setup, groups)
        assert took < CANCEL_BOUND

    @pytest.mark.parametrize("shape", ["wait", "wait_then_echo"])
    async def test_cancel_mid_tool_leaves_nothing(
        self, cli_setup: SetupFactory, fake_server: FakeServer, shape: str
    ) -> None:
        setup = cli_setup(self.CLI)
        tool = long_tool(setup, then="echo done" if shape == "wait_then_echo" else "")

        async def tool_running() -> None:
            await wait_for_tool(tool, fake_server, START_TIMEOUT)

        groups, took = await self.cancel_when(
            setup, f"[[TOOL]][[CMD:{tool.command}]] run it", tool_running, "the tool to start"
        )
        await assert_nothing_left(setup, groups, cmd_token=tool.token)
        assert not tool.running(), f"the tool (pid {tool.pid()}) survived the cancel"
        assert took < CANCEL_BOUND
