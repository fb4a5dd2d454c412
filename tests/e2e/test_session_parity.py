"""e2e: what a bot needs from every session driver (issue 14) on the real CLIs.

* approvals: an approver accepts (the tool ran: its file exists) or declines (the tool did not
  run, the turn still completes) — claude (``permission_mode: default`` +
  ``--permission-prompt-tool=stdio``) and opencode (``"permission": {"bash": "ask"}``);
* questions through :class:`SessionBackend`: opencode's ``question`` tool (scripted with the
  fake server's ``[[CALL:…]]`` marker) reaches the backend's approver and its answer reaches the
  model; without an approver the question is rejected and the turn completes;
* model switch inside a session: a second request with another model is served on that model
  (the fake server logs the model of every request).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from cli_env import CliSetup, provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.protocols.jsonrpc import JsonRpcError
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.session import InteractiveSession, open_session

pytestmark = pytest.mark.e2e
TURN_LIMIT = 120.0
QUESTION = {
    "questions": [
        {
            "question": "Which color?",
            "header": "Color",
            "options": [
                {"label": "red", "description": "warm"},
                {"label": "blue", "description": "cool"},
            ],
        }
    ]
}


async def turn(session: InteractiveSession, request: RunRequest) -> list[TurnEvent]:
    """Submit and read events up to this turn's terminal event."""
    ref = await session.submit(request)
    seen: list[TurnEvent] = []
    with trio.fail_after(TURN_LIMIT):
        while True:
            event = await session.events().receive()
            seen.append(event)
            if event.kind.terminal and event.turn_id == ref.turn_id:
                return seen


def text_of(events: list[TurnEvent]) -> str:
    return "\n".join(f"{e.kind.value} {e.text} {e.error}" for e in events)


class Approvals:
    """Approve, then decline, in one session; the approver sees each command."""

    CLI: str
    PROVIDER: str

    def config(self, setup: CliSetup) -> Any:
        return provider_config(setup)[1]

    async def test_approve_runs_the_tool_decline_does_not(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        setup = cli_setup(self.CLI)
        asked: list[ApprovalRequest] = []

        def approver(request: ApprovalRequest) -> ApprovalDecision:
            asked.append(request)
            if "approved.txt" in request.command:
                return ApprovalDecision.ACCEPT
            return ApprovalDecision.DECLINE

        work = Path(setup.workspace)
        initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
        async with open_session(
            self.PROVIDER, self.config(setup), initial=initial, approver=approver
        ) as session:
            yes = await turn(
                session, initial.evolve(user_text="[[TOOL]][[CMD:touch approved.txt]] do it")
            )
            assert yes[-1].kind is EventKind.TURN_COMPLETED, text_of(yes)
            assert (work / "approved.txt").exists(), text_of(yes)
            no = await turn(
                session, initial.evolve(user_text="[[TOOL]][[CMD:touch declined.txt]] do it")
            )
            assert no[-1].kind is EventKind.TURN_COMPLETED, text_of(no)
            assert not (work / "declined.txt").exists(), text_of(no)
        assert [r.kind for r in asked] == ["command", "command"], asked
        assert "touch approved.txt" in asked[0].command
        notices = [
            e.text for e in yes + no if e.kind is EventKind.TOOL_USE and "approval" in e.text
        ]
        assert notices[0].endswith("-> accept") and notices[-1].endswith("-> decline"), notices
        await assert_nothing_left(setup)

    async def test_interrupt_while_the_approver_never_answers(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """A human who never answers must not hold up an interrupt: the pending prompt is
        withdrawn, the tool does not run and the turn ends interrupted; the session goes on."""
        setup = cli_setup(self.CLI)
        waiting = trio.Event()

        async def approver(request: ApprovalRequest) -> Any:
            waiting.set()
            await trio.sleep_forever()

        initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
        async with open_session(
            self.PROVIDER, self.config(setup), initial=initial, approver=approver
        ) as session:
            ref = await session.submit(
                initial.evolve(user_text="[[TOOL]][[CMD:touch never.txt]] do it")
            )
            with trio.fail_after(TURN_LIMIT):
                await waiting.wait()
            seen: list[TurnEvent] = []
            with trio.fail_after(30):
                await session.interrupt()
                while not (seen and seen[-1].kind.terminal and seen[-1].turn_id == ref.turn_id):
                    seen.append(await session.events().receive())
            assert seen[-1].kind in (EventKind.TURN_INTERRUPTED, EventKind.TURN_COMPLETED), text_of(
                seen
            )
            assert not (Path(setup.workspace) / "never.txt").exists()
            after = await turn(session, initial.evolve(user_text="still there?"))
            assert after[-1].kind is EventKind.TURN_COMPLETED, text_of(after)
        await assert_nothing_left(setup)

    async def test_cancel_stops_the_turn_and_a_raising_approver_declines(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """CANCEL: the tool does not run and the turn stops there — no further model call
        (gemini and Kimi Code went on to the next model call before: ACP's ``cancelled``
        outcome alone does not stop a prompt). An approver that raises declines; the session
        goes on."""
        setup = cli_setup(self.CLI)

        def approver(request: ApprovalRequest) -> ApprovalDecision:
            if "raised.txt" in request.command:
                raise RuntimeError("the approver broke")
            return ApprovalDecision.CANCEL

        work = Path(setup.workspace)
        initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
        async with open_session(
            self.PROVIDER, self.config(setup), initial=initial, approver=approver
        ) as session:
            results = len(fake_server.tool_results())
            stopped = await turn(
                session, initial.evolve(user_text="[[TOOL]][[CMD:touch cancelled.txt]] do it")
            )
            assert stopped[-1].kind in (EventKind.TURN_INTERRUPTED, EventKind.TURN_COMPLETED)
            assert not (work / "cancelled.txt").exists()
            # the model never got the refused call's result: the turn stopped at the prompt
            assert len(fake_server.tool_results()) == results, text_of(stopped)
            raised = await turn(
                session, initial.evolve(user_text="[[TOOL]][[CMD:touch raised.txt]] do it")
            )
            assert raised[-1].kind is EventKind.TURN_COMPLETED, text_of(raised)
            assert not (work / "raised.txt").exists()
            if self.CLI != "kimi_legacy":  # kimi-cli ends the turn at any rejection itself
                assert "The tool returned" in text_of(raised)  # declined: the model was told
        await assert_nothing_left(setup)


class TestClaudeApprovals(Approvals):
    CLI = PROVIDER = "claude"

    def config(self, setup: CliSetup) -> Any:
        return provider_config(setup, permission_mode="default", is_sandbox=False)[1]


def opencode_asks(setup: CliSetup) -> None:
    """Make opencode ask before bash/edit (the e2e default config allows them)."""
    path = Path(setup.env["OPENCODE_CONFIG"])
    config = json.loads(path.read_text())
    config["permission"] = {"bash": "ask", "edit": "ask"}
    path.write_text(json.dumps(config, indent=1))


class TestOpenCodeApprovals(Approvals):
    CLI = PROVIDER = "opencode"

    def config(self, setup: CliSetup) -> Any:
        opencode_asks(setup)
        return provider_config(setup)[1]


class TestCodexApprovals(Approvals):
    CLI = PROVIDER = "codex"

    def config(self, setup: CliSetup) -> Any:
        from alice_trio.models import ExecPolicy

        policy = ExecPolicy(sandbox="danger-full-access", ask_for_approval="untrusted")
        return provider_config(setup, exec_policy=policy)[1]


class TestGeminiApprovals(Approvals):
    CLI = PROVIDER = "gemini"

    def config(self, setup: CliSetup) -> Any:
        return provider_config(setup, yolo=False)[1]


class TestKimiCodeApprovals(Approvals):
    CLI = "kimi"
    PROVIDER = "kimi"


class TestKimiLegacyApprovals(Approvals):
    CLI = "kimi_legacy"
    PROVIDER = "kimi"


# -- questions through SessionBackend -------------------------------------------------------------


@pytest.mark.parametrize("answering", [True, False], ids=["answered", "no-approver"])
async def test_opencode_question_through_the_session_backend(
    cli_setup: SetupFactory, fake_server: FakeServer, answering: bool
) -> None:
    setup = cli_setup("opencode")
    asked: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Any:
        asked.append(request)
        await trio.sleep(0.2)  # a human takes a moment
        return {"Which color?": "blue"}

    _, config = provider_config(setup)
    progress: list[str] = []
    async with SessionBackend(
        "opencode", config, approver=approver if answering else None
    ) as backend:
        with trio.fail_after(TURN_LIMIT):
            result = await backend.run(
                RunRequest(
                    user_text=f"[[CALL:question:{json.dumps(QUESTION)}]] ask me",
                    workspace_dir=setup.workspace,
                    env={"ALICE_SESSION_KEY": "chat-1"},
                    on_progress=progress.append,
                )
            )
    calls = [r for r in fake_server.model_requests() if r.get("name") == "question"]
    assert calls, fake_server.model_requests()  # the model really called opencode's question tool
    if answering:
        assert [r.kind for r in asked] == ["question"]
        assert asked[0].question is not None
        assert asked[0].question.questions[0].options[1].label == "blue"
        assert '"Which color?"="blue"' in result.reply, result.reply
    else:  # rejected at once: opencode ends its loop and the run returns (no 48 h wait)
        assert asked == []
        assert "blue" not in result.reply
    await assert_nothing_left(setup)


# -- model switch inside a session -------------------------------------------------------------


def models_seen(fake_server: FakeServer) -> list[str]:
    return [str(r.get("model", "")) for r in fake_server.model_requests()]


def streamed_models(fake_server: FakeServer) -> list[str]:
    """Models of gemini's main (streamed) calls, without its side calls (summaries, router)."""
    return [
        str(r.get("model", ""))
        for r in fake_server.model_requests()
        if ":streamGenerateContent" in str(r.get("path", ""))
    ]


async def test_claude_switches_model_inside_the_session(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    setup = cli_setup("claude")
    _, config = provider_config(setup, model="claude-first-model")
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session("claude", config, initial=initial) as session:
        one = await turn(session, initial.evolve(user_text="first"))
        assert one[-1].kind is EventKind.TURN_COMPLETED, text_of(one)
        assert set(models_seen(fake_server)) == {"claude-first-model"}
        two = await turn(session, initial.evolve(user_text="second", model="claude-second"))
        assert two[-1].kind is EventKind.TURN_COMPLETED, text_of(two)
        seen = models_seen(fake_server)
        assert seen[-1] == "claude-second", seen
        three = await turn(session, initial.evolve(user_text="third"))  # back to the config's
        assert three[-1].kind is EventKind.TURN_COMPLETED, text_of(three)
        assert models_seen(fake_server)[-1] == "claude-first-model"
    await assert_nothing_left(setup)


async def test_gemini_acp_switches_model_inside_the_session(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    from cli_env import GEMINI_MODEL

    setup = cli_setup("gemini")
    _, config = provider_config(setup)
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session("gemini", config, initial=initial) as session:
        one = await turn(session, initial.evolve(user_text="first"))
        assert one[-1].kind is EventKind.TURN_COMPLETED, text_of(one)
        assert streamed_models(fake_server) == [GEMINI_MODEL]
        two = await turn(session, initial.evolve(user_text="second", model="gemini-other-model"))
        assert two[-1].kind is EventKind.TURN_COMPLETED, text_of(two)
        assert streamed_models(fake_server) == [GEMINI_MODEL, "gemini-other-model"]
    await assert_nothing_left(setup)


async def test_kimi_legacy_switches_model_by_restarting_on_the_same_session(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:

    setup = cli_setup("kimi_legacy")
    share = Path(setup.env["KIMI_SHARE_DIR"]) / "config.toml"
    share.write_text(
        share.read_text()
        + '\n[models.fake2]\nprovider = "fake"\nmodel = "fake-kimi-model-2"\n'
        + "max_context_size = 262144\n"
    )
    _, config = provider_config(setup, model="fake")
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session("kimi", config, initial=initial) as session:
        one = await turn(session, initial.evolve(user_text="remember the word PARROT"))
        assert one[-1].kind is EventKind.TURN_COMPLETED, text_of(one)
        assert models_seen(fake_server) == ["fake-kimi-model"]
        two = await turn(session, initial.evolve(user_text="second", model="fake2"))
        assert two[-1].kind is EventKind.TURN_COMPLETED, text_of(two)
        assert one[-1].thread_id == two[-1].thread_id
    seen = fake_server.model_requests()
    assert [r["model"] for r in seen] == ["fake-kimi-model", "fake-kimi-model-2"]
    # the restarted process resumed the session: the history went to the new model
    assert "PARROT" in json.dumps(seen[-1]["body"]), seen[-1]["body"]
    await assert_nothing_left(setup)


async def test_codex_switches_model_per_turn(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:

    setup = cli_setup("codex")
    _, config = provider_config(setup)
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session("codex", config, initial=initial) as session:
        one = await turn(session, initial.evolve(user_text="first"))
        assert one[-1].kind is EventKind.TURN_COMPLETED, text_of(one)
        two = await turn(session, initial.evolve(user_text="second", model="fake-model-2"))
        assert two[-1].kind is EventKind.TURN_COMPLETED, text_of(two)
        assert models_seen(fake_server)[-1] == "fake-model-2", models_seen(fake_server)
        # codex keeps a turn's model for the turns after it: the switch must hold for its own
        # turn only (the lane's config names no model: codex's config.toml does)
        three = await turn(session, initial.evolve(user_text="third"))
        assert three[-1].kind is EventKind.TURN_COMPLETED, text_of(three)
    assert models_seen(fake_server)[0] == "fake-model"
    assert models_seen(fake_server)[-1] == "fake-model", models_seen(fake_server)
    await assert_nothing_left(setup)


async def test_opencode_switches_model_for_one_turn(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    """opencode runs a prompt without a model on the session's last model: a switch must hold
    for its own turn only (the next request goes back to the configured one), and a model that
    is not provider/model is refused, not silently left out."""
    from alice_trio.errors import ConfigError

    setup = cli_setup("opencode")
    path = Path(setup.env["OPENCODE_CONFIG"])
    config_json = json.loads(path.read_text())
    models = config_json["provider"]["fake"]["models"]
    models["fake-model-2"] = {**models["fake-model"], "name": "Fake Model 2"}
    path.write_text(json.dumps(config_json, indent=1))
    _, config = provider_config(setup)
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session("opencode", config, initial=initial) as session:
        for text, model, expected in (
            ("first", "", "fake-model"),
            ("second", "fake/fake-model-2", "fake-model-2"),
            ("third", "", "fake-model"),
        ):
            done = await turn(session, initial.evolve(user_text=text, model=model))
            assert done[-1].kind is EventKind.TURN_COMPLETED, text_of(done)
            assert models_seen(fake_server)[-1] == expected, models_seen(fake_server)
        with pytest.raises(ConfigError, match="provider/model"):
            await session.submit(initial.evolve(user_text="fourth", model="fake-model-2"))
    await assert_nothing_left(setup)


async def test_kimi_code_gets_its_model_and_switches_inside_the_session(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    """Kimi Code (ACP) has no model flag: the config's model is selected with
    session/set_model after session/new, and a later request's model the same way."""

    setup = cli_setup("kimi")
    home = Path(setup.home) / ".kimi-code"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'[providers.fake]\ntype = "kimi"\nbase_url = "{fake_server.url}/v1"\n'
        'api_key = "sk-fake-not-a-secret"\n\n'
        + "".join(
            f'[models.{name}]\nprovider = "fake"\nmodel = "{model}"\nmax_context_size = 262144\n\n'
            for name, model in (("first", "fake-kimi-first"), ("second", "fake-kimi-second"))
        )
    )
    _, config = provider_config(setup, model="first")
    initial = RunRequest(user_text="(start)", workspace_dir=setup.workspace)
    async with open_session("kimi", config, initial=initial) as session:
        one = await turn(session, initial.evolve(user_text="first"))
        assert one[-1].kind is EventKind.TURN_COMPLETED, text_of(one)
        two = await turn(session, initial.evolve(user_text="second", model="second"))
        assert two[-1].kind is EventKind.TURN_COMPLETED, text_of(two)
        with pytest.raises(JsonRpcError, match="not configured"):
            await session.submit(initial.evolve(user_text="third", model="nope"))
    assert models_seen(fake_server) == ["fake-kimi-first", "fake-kimi-second"]
    await assert_nothing_left(setup)


CODEX_QUESTION = {
    "questions": [
        {
            "id": "color",
            "header": "Color",
            "question": "Which color?",
            "options": [
                {"label": "red", "description": "warm"},
                {"label": "blue", "description": "cool"},
            ],
        }
    ]
}


@pytest.mark.parametrize("answering", [True, False], ids=["answered", "no-approver"])
async def test_codex_question_through_the_session_backend(
    cli_setup: SetupFactory, fake_server: FakeServer, answering: bool
) -> None:
    """codex offers request_user_input only with ``[features]
    default_mode_request_user_input = true``; the question reaches the backend's approver."""

    setup = cli_setup("codex")
    toml = Path(setup.env["CODEX_HOME"]) / "config.toml"
    toml.write_text(
        toml.read_text().replace(
            "[features]\n", "[features]\ndefault_mode_request_user_input = true\n"
        )
    )
    asked: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Any:
        asked.append(request)
        return {"Which color?": "blue"}

    _, config = provider_config(setup)
    async with SessionBackend("codex", config, approver=approver if answering else None) as backend:
        with trio.fail_after(TURN_LIMIT):
            result = await backend.run(
                RunRequest(
                    user_text=f"[[CALL:request_user_input:{json.dumps(CODEX_QUESTION)}]] ask",
                    workspace_dir=setup.workspace,
                    env={"ALICE_SESSION_KEY": "chat-1"},
                )
            )
    calls = [r for r in fake_server.model_requests() if r.get("name") == "request_user_input"]
    assert calls, fake_server.model_requests()
    if answering:
        assert [r.kind for r in asked] == ["question"]
        assert "blue" in result.reply, result.reply
    else:
        assert asked == [] and "blue" not in result.reply
    await assert_nothing_left(setup)


KIMI_QUESTION = {
    "questions": [
        {
            "question": "Which color?",
            "header": "Color",
            "options": [
                {"label": "red", "description": "warm"},
                {"label": "blue", "description": "cool"},
            ],
        }
    ]
}


@pytest.mark.parametrize("cli", ["kimi", "kimi_legacy"])
@pytest.mark.parametrize("answering", [True, False], ids=["answered", "no-approver"])
async def test_kimi_question_through_the_session_backend(
    cli_setup: SetupFactory, fake_server: FakeServer, cli: str, answering: bool
) -> None:

    setup = cli_setup(cli)
    asked: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Any:
        asked.append(request)
        return {"Which color?": "blue"} if request.kind == "question" else ApprovalDecision.ACCEPT

    _, config = provider_config(setup)
    async with SessionBackend("kimi", config, approver=approver if answering else None) as backend:
        with trio.fail_after(TURN_LIMIT):
            result = await backend.run(
                RunRequest(
                    user_text=f"[[CALL:AskUserQuestion:{json.dumps(KIMI_QUESTION)}]] ask",
                    workspace_dir=setup.workspace,
                    env={"ALICE_SESSION_KEY": "chat-1"},
                )
            )
    if answering:
        assert [r.kind for r in asked] == ["question"], asked
        assert "blue" in result.reply, result.reply
    else:  # dismissed (Kimi Code: Skip) or not offered at all (legacy without a callback)
        assert "blue" not in result.reply, result.reply
    await assert_nothing_left(setup)


@pytest.mark.parametrize("answering", [True, False], ids=["answered", "no-approver"])
async def test_claude_question_through_the_session_backend(
    cli_setup: SetupFactory, fake_server: FakeServer, answering: bool
) -> None:
    setup = cli_setup("claude")
    asked: list[ApprovalRequest] = []

    async def approver(request: ApprovalRequest) -> Any:
        asked.append(request)
        return {"Which color?": "blue"} if request.kind == "question" else ApprovalDecision.ACCEPT

    question = {"questions": [{**KIMI_QUESTION["questions"][0], "multiSelect": False}]}
    _, config = provider_config(setup, permission_mode="default", is_sandbox=False)
    async with SessionBackend(
        "claude", config, approver=approver if answering else None
    ) as backend:
        with trio.fail_after(TURN_LIMIT):
            result = await backend.run(
                RunRequest(
                    user_text=f"[[CALL:AskUserQuestion:{json.dumps(question)}]] ask",
                    workspace_dir=setup.workspace,
                    env={"ALICE_SESSION_KEY": "chat-1"},
                )
            )
    if answering:  # claude asks over --permission-prompt-tool=stdio (can_use_tool)
        assert [r.kind for r in asked] == ["question"], asked
        assert "blue" in result.reply, result.reply
    else:  # no prompt tool: claude itself refuses the question in -p mode; the turn completes
        assert asked == [] and "blue" not in result.reply, result.reply
    await assert_nothing_left(setup)
