"""codex app-server driver against a fake peer replaying the recorded codex 0.171 wire traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from rpc_recorder import Recorder
from rpc_scripts import codex_steps, peer_argv, peer_problems, sent, write_script

from alice_trio.errors import NoActiveTurnError, TransportClosedError
from alice_trio.models import EventKind, ExecPolicy, RunRequest
from alice_trio.protocols.jsonrpc import JsonRpcError
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.codex import CodexConfig
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest
from alice_trio.sessions.codex_app_server import CodexAppServerDriver
from alice_trio.sessions.driver import SessionDriver, SteerMode

FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)
THREAD = "01a21857-ec6a-76e0-9596-a5948ff3371d"


def make_driver(
    tmp_path: Path, steps: list[dict[str, Any]], *, approver: Any = None, **cfg: Any
) -> tuple[CodexAppServerDriver, Path]:
    script, log = write_script(tmp_path, steps)
    config = CodexConfig(
        workspace_dir=str(tmp_path),
        model="fake-model",
        exec_policy=cfg.pop(
            "exec_policy", ExecPolicy(sandbox="danger-full-access", ask_for_approval="never")
        ),
        **cfg,
    )
    inv = Invocation(argv=peer_argv(script, log), cwd=str(tmp_path), limits=FAST)
    return CodexAppServerDriver(
        config, RunRequest(user_text="x"), approver=approver, invocation=inv, close_grace=1.0
    ), log


def full_steps() -> list[dict[str, Any]]:
    return [s for s in codex_steps("full") if s.get("expect") != "thread/read"]


async def test_full_recording_plain_tool_approval_interrupt(tmp_path: Path):
    asked: list[ApprovalRequest] = []

    def approver(req: ApprovalRequest) -> ApprovalDecision:
        asked.append(req)
        return ApprovalDecision.ACCEPT

    driver, log = make_driver(tmp_path, full_steps(), approver=approver)
    assert isinstance(driver, SessionDriver)
    assert driver.steer_mode is SteerMode.NATIVE
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        # turn 1: plain
        ref = await driver.start_turn(RunRequest(user_text="Say hello"))
        assert ref.thread_id == THREAD
        done = await rec.terminal(ref.turn_id)
        assert done.kind is EventKind.TURN_COMPLETED
        assert rec.texts(EventKind.ASSISTANT_TEXT, ref.turn_id) == ["Hello from the fake model."]
        assert done.usage is not None and done.usage.input_tokens == 1234
        assert done.usage.cached_input_tokens == 1000 and done.usage.output_tokens == 56
        # turn 2: a tool
        ref2 = await driver.start_turn(RunRequest(user_text="FAKE_TOOL: run echo hi"))
        done = await rec.terminal(ref2.turn_id)
        assert done.kind is EventKind.TURN_COMPLETED
        tools = rec.texts(EventKind.TOOL_USE, ref2.turn_id)
        assert any("echo hi" in t and "exit_code=`0`" in t for t in tools)
        # turn 3: an approval round trip (codex sends id 0, an integer)
        ref3 = await driver.start_turn(
            RunRequest(
                user_text="FAKE_TOOL FAKE_TOOL_CMD<<touch approved_by_harness.txt>> please",
                exec_policy=ExecPolicy(ask_for_approval="untrusted"),
            )
        )
        done = await rec.terminal(ref3.turn_id)
        assert done.kind is EventKind.TURN_COMPLETED
        assert [a.kind for a in asked] == ["command"]
        assert "touch approved_by_harness.txt" in asked[0].command
        assert asked[0].turn_id == ref3.turn_id
        # turn 4: interrupt
        ref4 = await driver.start_turn(RunRequest(user_text="FAKE_STALL hold on"))
        await rec.wait_for(lambda e: e.kind is EventKind.TURN_STARTED and e.turn_id == ref4.turn_id)
        await driver.interrupt_turn(ref4)
        done = await rec.terminal(ref4.turn_id)
        assert done.kind is EventKind.TURN_INTERRUPTED
        await driver.aclose(graceful=True)
    assert peer_problems(log) == []
    msgs = sent(log)
    assert all("jsonrpc" not in m for m in msgs)
    init = msgs[0]
    assert init["method"] == "initialize"
    assert init["params"]["clientInfo"]["name"] == "alice_trio"
    assert msgs[1] == {"method": "initialized"}
    start = next(m for m in msgs if m.get("method") == "thread/start")
    assert start["params"] == {
        "model": "fake-model",
        "cwd": str(tmp_path),
        "approvalPolicy": "never",
        "sandbox": "danger-full-access",
    }
    answer = next(m for m in msgs if "result" in m)
    assert answer == {"id": 0, "result": {"decision": "accept"}}
    turn3 = [m for m in msgs if m.get("method") == "turn/start"][2]
    assert turn3["params"]["approvalPolicy"] == "untrusted"
    interrupt = next(m for m in msgs if m.get("method") == "turn/interrupt")
    assert interrupt["params"] == {"threadId": THREAD, "turnId": ref4.turn_id}


def until_turn_start(case: str, n: int = 1) -> list[dict[str, Any]]:
    """The recorded steps up to and including the n-th turn/start."""
    out, seen = [], 0
    for s in codex_steps(case):
        out.append(s)
        if s.get("expect") == "turn/start":
            seen += 1
            if seen == n:
                return out
    raise AssertionError("not enough turns")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("error500", "We’re currently experiencing high demand, which may cause temporary errors."),
        (
            "truncate",
            "stream disconnected before completion: stream closed before response.completed",
        ),
    ],
)
async def test_defect_14_failed_turn_keeps_turn_error_message(
    tmp_path: Path, case: str, message: str
):
    """Go: a failed turn became an error with a nil Err ("codex turn failed")."""
    driver, log = make_driver(tmp_path, codex_steps(case))
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="FAKE_500 please fail"))
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.ERROR
    assert done.error == message
    assert peer_problems(log) == []


async def test_defect_14_usage_is_captured(tmp_path: Path):
    """Go: thread/tokenUsage/updated was ignored, usage always zero."""
    driver, _ = make_driver(tmp_path, until_turn_start("full", 2))
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="Say hello"))
        await rec.terminal(ref.turn_id)
        ref2 = await driver.start_turn(RunRequest(user_text="FAKE_TOOL: run echo hi"))
        done = await rec.terminal(ref2.turn_id)
        await driver.aclose(graceful=True)
    # the tool turn made two model calls: 2 x (1234 in / 1000 cached / 56 out)
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.cached_input_tokens, done.usage.output_tokens) == (
        2468,
        2000,
        112,
    )
    assert rec.of(EventKind.USAGE, ref2.turn_id)


def approval_steps() -> list[dict[str, Any]]:
    """The recorded approval turn; the recorded answer step accepts any decision."""
    return until_turn_start("full", 3) + [s for s in codex_steps("full") if "expect_response" in s]


@pytest.mark.parametrize(
    ("policy", "decision"),
    [
        (ExecPolicy(sandbox="workspace-write", ask_for_approval="untrusted"), "decline"),
        (ExecPolicy(sandbox="danger-full-access", ask_for_approval="never"), "accept"),
    ],
)
async def test_defect_14_approval_follows_policy_without_callback(
    tmp_path: Path, policy: ExecPolicy, decision: str
):
    """Go: every approval request was accepted whatever the configured policy."""
    driver, log = make_driver(tmp_path, approval_steps(), exec_policy=policy)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        for text in ("Say hello", "FAKE_TOOL: run echo hi", "FAKE_TOOL approve"):
            ref = await driver.start_turn(RunRequest(user_text=text))
            await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    answer = next(m for m in sent(log) if "result" in m)
    assert answer == {"id": 0, "result": {"decision": decision}}
    assert peer_problems(log) == []


async def test_approval_callback_async_and_string_id_echoed(tmp_path: Path):
    steps = approval_steps()
    for s in steps:  # the same request, but with a string id
        for r in s["reply"]:
            if r.get("method") == "item/commandExecution/requestApproval":
                r["id"] = "req-0"
        if "expect_response" in s:
            s["expect_response"] = "req-0"

    async def approver(req: ApprovalRequest) -> ApprovalDecision:
        await trio.lowlevel.checkpoint()
        return ApprovalDecision.ACCEPT_FOR_SESSION

    driver, log = make_driver(tmp_path, steps, approver=approver)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        for text in ("Say hello", "FAKE_TOOL: run echo hi", "FAKE_TOOL approve"):
            ref = await driver.start_turn(RunRequest(user_text=text))
            await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    answer = next(m for m in sent(log) if "result" in m)
    assert answer == {"id": "req-0", "result": {"decision": "acceptForSession"}}
    assert peer_problems(log) == []


async def test_unknown_server_request_gets_an_error_not_empty_result(tmp_path: Path):
    steps = until_turn_start("full", 1)
    steps[-1]["reply"].insert(
        0, {"id": 5, "method": "account/chatgptAuthTokens/refresh", "params": {}}
    )
    steps.append({"expect_response": 5, "reply": []})
    driver, log = make_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="Say hello"))
        await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    answer = next(m for m in sent(log) if m.get("id") == 5)
    assert "result" not in answer
    assert answer["error"]["code"] == -32601
    assert peer_problems(log) == []


async def test_steer_goes_to_the_active_turn(tmp_path: Path):
    """turn/steer carries expectedTurnId; the steered input's answer stays on the same turn."""
    steps = until_turn_start("full", 4)  # turn 4 is FAKE_STALL: started, never finishes
    stall = steps[-1]
    turn_id = stall["reply"][0]["result"]["turn"]["id"]
    ids = {"threadId": THREAD, "turnId": turn_id}
    steps.append(
        {
            "expect": "turn/steer",
            "id": 99,
            "reply": [
                {"id": 99, "result": {"turnId": turn_id}},
                {
                    "method": "item/completed",
                    "params": {
                        **ids,
                        "item": {
                            "type": "userMessage",
                            "id": "u2",
                            "content": [
                                {"type": "text", "text": "also say bye", "text_elements": []}
                            ],
                        },
                    },
                },
                {
                    "method": "item/completed",
                    "params": {**ids, "item": {"type": "agentMessage", "id": "m9", "text": "Bye."}},
                },
                {
                    "method": "turn/completed",
                    "params": {
                        "threadId": THREAD,
                        "turn": {"id": turn_id, "status": "completed", "error": None, "items": []},
                    },
                },
            ],
        }
    )
    driver, log = make_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        for text in ("Say hello", "FAKE_TOOL: run echo hi", "FAKE_TOOL approve"):
            ref = await driver.start_turn(RunRequest(user_text=text))
            await rec.terminal(ref.turn_id)
        ref = await driver.start_turn(RunRequest(user_text="FAKE_STALL hold on"))
        steered = await driver.steer_turn(ref, RunRequest(user_text="also say bye"))
        assert steered == ref
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED
    assert rec.texts(EventKind.STEER_CONSUMED, ref.turn_id) == ["also say bye"]
    assert rec.texts(EventKind.ASSISTANT_TEXT, ref.turn_id)[-1] == "Bye."
    steer = next(m for m in sent(log) if m.get("method") == "turn/steer")
    assert steer["params"] == {
        "threadId": THREAD,
        "expectedTurnId": ref.turn_id,
        "input": [{"type": "text", "text": "also say bye", "text_elements": []}],
    }


async def test_defect_13_crash_mid_request_fails_at_once_with_stderr(tmp_path: Path):
    """Go: a crashed codex showed up as context.Canceled, stderr never surfaced."""
    steps = until_turn_start("full", 1)[:-1]  # everything before the first turn/start
    steps.append({"expect": "turn/start", "id": 3, "reply": []})
    steps.append({"action": "crash", "stderr": "panic: model exploded\n", "code": 101})
    driver, _ = make_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        with pytest.raises(TransportClosedError) as info:
            await driver.start_turn(RunRequest(user_text="Say hello"))
    assert "panic: model exploded" in str(info.value)
    assert "exit" in str(info.value) or "101" in str(info.value)
    with pytest.raises(TransportClosedError):
        await driver.start_turn(RunRequest(user_text="again"))


async def test_json_rpc_error_to_turn_start_is_typed(tmp_path: Path):
    steps = until_turn_start("full", 1)
    steps[-1]["reply"] = [{"id": 3, "error": {"code": -32600, "message": "thread not found"}}]
    driver, _ = make_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        with pytest.raises(JsonRpcError) as info:
            await driver.start_turn(RunRequest(user_text="Say hello"))
        await driver.aclose(graceful=False)
    assert info.value.code == -32600
    assert "thread not found" in str(info.value)


async def test_resume_sends_thread_resume(tmp_path: Path):
    steps = until_turn_start("full", 1)
    for s in steps:
        if s.get("expect") == "thread/start":
            s["expect"] = "thread/resume"
    script, log = write_script(tmp_path, steps)
    config = CodexConfig(
        workspace_dir=str(tmp_path), model="m1", reasoning_effort="high", personality="friendly"
    )
    inv = Invocation(argv=peer_argv(script, log), cwd=str(tmp_path), limits=FAST)
    driver = CodexAppServerDriver(
        config, RunRequest(user_text="x", thread_id=THREAD), invocation=inv, close_grace=1.0
    )
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="Say hello", thread_id=THREAD))
        await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    msgs = sent(log)
    resume = next(m for m in msgs if m.get("method") == "thread/resume")
    assert resume["params"] == {"threadId": THREAD, "model": "m1", "cwd": str(tmp_path)}
    turn = next(m for m in msgs if m.get("method") == "turn/start")
    assert turn["params"]["effort"] == "high" and turn["params"]["personality"] == "friendly"
    assert turn["params"]["model"] == "m1"


async def test_through_open_session(tmp_path: Path):
    from alice_trio.sessions.driver import SubmitMode
    from alice_trio.sessions.session import open_session

    driver, log = make_driver(tmp_path, until_turn_start("full", 1))
    with trio.fail_after(20):
        async with open_session(
            "codex", initial=RunRequest(user_text="x"), driver=driver
        ) as session:
            result = await session.submit(RunRequest(user_text="Say hello"))
            assert result.mode is SubmitMode.STARTED and result.thread_id == THREAD
            kinds = []
            async for event in session.events():
                kinds.append(event.kind)
                if event.kind.terminal:
                    break
    assert kinds[-1] is EventKind.TURN_COMPLETED
    assert EventKind.ASSISTANT_TEXT in kinds
    assert peer_problems(log) == []


async def test_defect_08_many_notifications_before_the_turn_start_response(tmp_path: Path):
    """Go: >128 notifications ahead of the turn/start response wedged reader and forwarder."""
    steps = until_turn_start("full", 1)
    chatter = {
        "method": "item/started",
        "params": {
            "threadId": THREAD,
            "turnId": "t",
            "item": {"type": "commandExecution", "command": "echo", "status": "x"},
        },
    }
    steps[-1]["reply"] = [chatter] * 400 + steps[-1]["reply"]
    driver, _ = make_driver(tmp_path, steps)
    events: list[Any] = []
    finished = trio.Event()

    async def slow_emit(event: Any) -> None:  # a consumer that lags but never deadlocks
        events.append(event)
        if event.kind.terminal:
            finished.set()
        if len(events) % 100 == 0:
            await trio.sleep(0.01)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, slow_emit)
            ref = await driver.start_turn(RunRequest(user_text="Say hello"))
            await finished.wait()
            await driver.aclose(graceful=True)
    assert events[-1].kind is EventKind.TURN_COMPLETED and events[-1].turn_id == ref.turn_id
    assert sum(1 for e in events if e.kind is EventKind.TOOL_USE) == 400  # none dropped


@pytest.mark.parametrize(
    "message", ["no active turn to steer", "expected active turn id `t-1` but found `t-2`"]
)
async def test_a_steer_that_lost_the_race_with_the_turns_end_is_no_active_turn(
    tmp_path: Path, message: str
):
    """Real codex 0.171 (SessionBackend.steer while the turn was finishing): the turn ended on
    codex's side before the steer reached it, and codex answered ``turn/steer`` with -32600
    "no active turn to steer". That came out as a bare JsonRpcError; a bot that queues its
    input on NoActiveTurnError (steer-then-queue, spec §5) lost the message."""
    steps = until_turn_start("full", 1)
    steps.append(
        {
            "expect": "turn/steer",
            "id": 99,
            "reply": [{"id": 99, "error": {"code": -32600, "message": message}}],
        }
    )
    driver, _ = make_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="Say hello"))
        await rec.terminal(ref.turn_id)
        with pytest.raises(NoActiveTurnError) as caught:
            await driver.steer_turn(ref, RunRequest(user_text="too late"))
        assert isinstance(caught.value.__cause__, JsonRpcError)
        await driver.aclose(graceful=True)


async def test_a_model_switch_holds_for_its_own_turn(tmp_path: Path):
    """codex keeps turn/start's model "for this turn and subsequent turns": without a
    configured model, a turn after a switch names the model the thread started on (from
    thread/start's answer). Before: it named none and ran on the switched model."""
    script, log = write_script(tmp_path, full_steps()[:6])
    config = CodexConfig(
        workspace_dir=str(tmp_path),
        exec_policy=ExecPolicy(sandbox="danger-full-access", ask_for_approval="never"),
    )
    inv = Invocation(argv=peer_argv(script, log), cwd=str(tmp_path), limits=FAST)
    driver = CodexAppServerDriver(config, RunRequest(user_text="x"), invocation=inv, close_grace=1)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        first = await driver.start_turn(RunRequest(user_text="Say hello"))
        await rec.terminal(first.turn_id)
        second = await driver.start_turn(RunRequest(user_text="FAKE_TOOL", model="other-model"))
        await rec.terminal(second.turn_id)
        third = await driver.start_turn(RunRequest(user_text="again"))
        nursery.cancel_scope.cancel()
    assert third.turn_id
    starts = [m["params"] for m in sent(log) if m.get("method") == "turn/start"]
    assert [p.get("model") for p in starts] == ["fake-model", "other-model", "fake-model"]
