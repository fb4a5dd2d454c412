"""ACP driver against a fake peer replaying gemini 0.61 ``--acp`` and Kimi Code 2.1 ``acp``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from rpc_recorder import Recorder
from rpc_scripts import cgk_steps, peer_argv, peer_problems, sent, write_script

from alice_trio.errors import SteerUnsupportedError, TransportClosedError
from alice_trio.models import EventKind, ExecPolicy, RunRequest
from alice_trio.protocols.jsonrpc import JsonRpcError
from alice_trio.providers.base import RunLimits
from alice_trio.providers.gemini import GeminiConfig
from alice_trio.providers.kimi import KimiConfig
from alice_trio.sessions.acp import AcpConfig, open_acp_driver, open_gemini_driver, open_kimi_driver
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest, default_decision
from alice_trio.sessions.driver import SessionDriver, SteerMode

FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)
GEMINI_SID = "9b2874d2-3e9d-4a1e-b86c-950a9126d956"
KIMI_SID = "session_0fa5713e-3d93-47de-9f1e-50631180755e"


def acp_driver(tmp_path: Path, steps: list[dict[str, Any]], **kw: Any):
    script, log = write_script(tmp_path, steps)
    argv = peer_argv(script, log)
    config = AcpConfig(
        command=argv[0],
        args=argv[1:],
        workspace_dir=str(tmp_path),
        limits=FAST,
        **kw.pop("config", {}),
    )
    return open_acp_driver(
        config, kw.pop("initial", RunRequest(user_text="x")), close_grace=1.0, load_settle=0.2, **kw
    ), log


TURNS = ("first turn: say hello", "[[TOOL]] run a command", "[[SLOW]] third turn")


async def run_three_turns(driver: Any, rec: Recorder) -> list[Any]:
    """Plain turn, tool turn (permission round trip), slow turn cancelled."""
    refs = []
    ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
    refs.append(ref)
    assert (await rec.terminal(ref.turn_id)).kind is EventKind.TURN_COMPLETED
    ref = await driver.start_turn(RunRequest(user_text=TURNS[1]))
    refs.append(ref)
    assert (await rec.terminal(ref.turn_id)).kind is EventKind.TURN_COMPLETED
    ref = await driver.start_turn(RunRequest(user_text=TURNS[2]))
    refs.append(ref)
    await rec.wait_for(lambda e: e.kind is EventKind.TURN_STARTED and e.turn_id == ref.turn_id)
    await driver.interrupt_turn(ref)
    assert (await rec.terminal(ref.turn_id)).kind is EventKind.TURN_INTERRUPTED
    return refs


@pytest.mark.parametrize(
    ("case", "sid", "option", "reply2"),
    [
        (
            "gemini_acp",
            GEMINI_SID,
            "proceed_once",
            'The tool returned: {"output": "<untrusted_context>\\nOutput: (empty)\\nProcess Group'
            ' PGID: 20059\\n</untrusted_context>"}. Done.',
        ),
        (
            "kimi_code_acp",
            KIMI_SID,
            "approve_once",
            "The tool returned: Wall time: 0.017 seconds Command executed successfully.. Done.",
        ),
    ],
)
async def test_recorded_session_plain_tool_permission_cancel(
    tmp_path: Path, case: str, sid: str, option: str, reply2: str
):
    asked: list[ApprovalRequest] = []

    def approver(req: ApprovalRequest) -> ApprovalDecision:
        asked.append(req)
        return ApprovalDecision.ACCEPT

    driver, log = acp_driver(tmp_path, cgk_steps("acp", case), approver=approver)
    assert isinstance(driver, SessionDriver)
    assert driver.steer_mode is SteerMode.QUEUE_WHEN_BUSY
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        refs = await run_three_turns(driver, rec)
        with pytest.raises(SteerUnsupportedError):
            await driver.steer_turn(refs[0], RunRequest(user_text="more"))
        await driver.aclose(graceful=True)
    assert peer_problems(log) == []
    assert {r.thread_id for r in refs} == {sid}
    assert len({r.turn_id for r in refs}) == 3
    first = rec.texts(EventKind.ASSISTANT_TEXT, refs[0].turn_id)
    assert first == ["Hello from the fake model. You said: first turn: say hello"]
    second = rec.texts(EventKind.ASSISTANT_TEXT, refs[1].turn_id)
    assert second[0].startswith("I'll r") and second[-1] == reply2
    assert len(second) == 2  # the tool call splits the two messages
    assert rec.of(EventKind.TOOL_USE, refs[1].turn_id)
    third = rec.texts(EventKind.ASSISTANT_TEXT, refs[2].turn_id)
    assert third and third[0].startswith("word0 word1 ")  # partial text is kept, unsplit
    # Kimi Code's request names only "Bash": kind and command come from the earlier updates
    assert [(a.kind, a.command) for a in asked] == [("command", "touch created_by_acp.txt")]
    msgs = sent(log)
    assert all(m.get("jsonrpc") == "2.0" for m in msgs)
    assert msgs[0]["params"]["clientCapabilities"] == {
        "fs": {"readTextFile": False, "writeTextFile": False},
        "terminal": False,
    }
    assert msgs[1]["method"] == "session/new"
    assert msgs[1]["params"] == {"cwd": str(tmp_path), "mcpServers": []}
    answer = next(m for m in msgs if "result" in m)
    assert answer == {
        "jsonrpc": "2.0",
        "id": 0,
        "result": {"outcome": {"outcome": "selected", "optionId": option}},
    }
    cancel = next(m for m in msgs if m.get("method") == "session/cancel")
    assert cancel["params"] == {"sessionId": sid} and "id" not in cancel


async def test_gemini_usage_from_prompt_meta(tmp_path: Path):
    driver, _ = acp_driver(tmp_path, cgk_steps("acp", "gemini_acp")[:3])
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (11699, 30)


@pytest.mark.parametrize(
    ("decision", "option"),
    [
        (ApprovalDecision.DECLINE, "cancel"),
        (ApprovalDecision.ACCEPT_FOR_SESSION, "proceed_always"),
        (None, "cancel"),
    ],
)
async def test_permission_is_picked_by_option_kind(
    tmp_path: Path, decision: ApprovalDecision | None, option: str
):
    steps = cgk_steps("acp", "gemini_acp")[:5]  # through the permission answer of turn 2
    approver = (lambda req: decision) if decision is not None else None
    driver, log = acp_driver(tmp_path, steps, approver=approver)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        for text in TURNS[:2]:
            ref = await driver.start_turn(RunRequest(user_text=text))
            await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    answer = next(m for m in sent(log) if "result" in m)
    assert answer["result"]["outcome"]["optionId"] == option  # gemini's reject is "cancel"
    assert peer_problems(log) == []


async def test_load_replay_is_not_the_new_turns_reply(tmp_path: Path):
    steps = cgk_steps("acp", "gemini_acp_load")
    load, prompt = steps[1], steps[2]
    assert load["expect"] == "session/load" and prompt["expect"] == "session/prompt"
    # gemini goes on replaying after its load response; the harness had already sent the
    # prompt, so the recording interleaves them. Replay it as gemini emits it: right away.
    load["reply"] += prompt["reply"][:3]
    prompt["reply"] = prompt["reply"][3:]
    sid = "22222222-3333-4444-8555-666666666666"
    driver, log = acp_driver(tmp_path, steps, initial=RunRequest(user_text="x", thread_id=sid))
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="turn after load", thread_id=sid))
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED and ref.thread_id == sid
    assert rec.texts(EventKind.ASSISTANT_TEXT) == [
        "Hello from the fake model. You said: turn after load"
    ]
    assert rec.of(EventKind.USER_TEXT) == []
    assert driver.mapper.replayed == 5
    load_msg = next(m for m in sent(log) if m.get("method") == "session/load")
    assert load_msg["params"] == {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}


async def test_crash_mid_prompt_is_an_error_event_with_stderr(tmp_path: Path):
    steps = cgk_steps("acp", "kimi_code_acp")[:2]
    steps.append(
        {
            "expect": "session/prompt",
            "id": 3,
            "reply": [
                {
                    "jsonrpc": "2.0",
                    "method": "session/update",
                    "params": {
                        "sessionId": KIMI_SID,
                        "update": {
                            "sessionUpdate": "agent_message_chunk",
                            "content": {"type": "text", "text": "Hel"},
                        },
                    },
                },
            ],
        }
    )
    steps.append({"action": "crash", "stderr": "FATAL: out of memory\n", "code": 134})
    driver, _ = acp_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="hi"))
        err = await rec.terminal(ref.turn_id)
    assert err.kind is EventKind.ERROR
    assert "FATAL: out of memory" in err.error
    assert rec.texts(EventKind.ASSISTANT_TEXT, ref.turn_id) == ["Hel"]
    with pytest.raises(TransportClosedError):
        await driver.start_turn(RunRequest(user_text="again"))


def test_gemini_and_kimi_factories_build_the_acp_commands(tmp_path: Path):
    g = open_gemini_driver(
        GeminiConfig(model="gemini-2.5-flash", workspace_dir=str(tmp_path)),
        RunRequest(user_text="x"),
    )
    assert g.invocation.argv == ("gemini", "--acp", "--model=gemini-2.5-flash", "--yolo")
    assert g.invocation.env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert g.auto_approve and g.provider == "gemini"
    k = open_kimi_driver(KimiConfig(workspace_dir=str(tmp_path)), RunRequest(user_text="x"))
    assert k.invocation.argv == ("kimi", "acp")
    assert k.invocation.env["KIMI_DISABLE_TELEMETRY"] == "1"
    assert not k.auto_approve and k.provider == "kimi"
    # kimi's default policy (like ``kimi -p``) accepts; a policy the caller set is kept
    assert default_decision(k.policy) is ApprovalDecision.ACCEPT
    asking = KimiConfig(exec_policy=ExecPolicy(ask_for_approval="on-request"))
    k2 = open_kimi_driver(asking, RunRequest(user_text="x"))
    assert default_decision(k2.policy) is ApprovalDecision.DECLINE


# -- model switch (session/set_model) -------------------------------------------------------------


def set_model_step(result: Any = None, error: Any = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": 90}
    if error is not None:
        reply["error"] = error
    else:
        reply["result"] = result if result is not None else {}
    return {"expect": "session/set_model", "id": 90, "reply": [reply]}


async def test_a_request_with_another_model_switches_in_process(tmp_path: Path):
    """Recorded gemini: session/new reports currentModelId; a later request with another model
    is preceded by session/set_model (gemini 0.61 answers {} and runs the next prompt on it)."""
    steps = cgk_steps("acp", "gemini_acp")[:3]
    steps[1]["reply"][0]["result"]["models"]["currentModelId"] = "gemini-2.5-flash"
    second = json.loads(json.dumps(steps[2]))
    steps += [set_model_step(), second]
    driver, log = acp_driver(
        tmp_path, steps, initial=RunRequest(user_text="x", model="gemini-2.5-flash")
    )
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        one = await driver.start_turn(RunRequest(user_text=TURNS[0], model="gemini-2.5-flash"))
        await rec.terminal(one.turn_id)
        two = await driver.start_turn(RunRequest(user_text=TURNS[0], model="gemini-other"))
        await rec.terminal(two.turn_id)
        await driver.aclose(graceful=True)
    methods = [m.get("method") for m in sent(log)]
    assert methods == [
        "initialize", "session/new", "session/prompt", "session/set_model", "session/prompt"
    ]  # fmt: skip
    switch = next(m for m in sent(log) if m.get("method") == "session/set_model")
    assert switch["params"] == {"sessionId": GEMINI_SID, "modelId": "gemini-other"}
    assert driver.model == "gemini-other" and peer_problems(log) == []


async def test_kimi_code_gets_its_model_by_set_model_after_session_new(tmp_path: Path):
    """Kimi Code has no model flag: the config's model is selected after session/new (it was
    never passed at all before)."""
    steps = [*cgk_steps("acp", "kimi_code_acp")[:2], set_model_step()]
    driver, log = acp_driver(tmp_path, steps, config={"model": "kimi-k2"})
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        await driver.aclose(graceful=True)
    switch = next(m for m in sent(log) if m.get("method") == "session/set_model")
    assert switch["params"] == {"sessionId": KIMI_SID, "modelId": "kimi-k2"}
    assert driver.model == "kimi-k2"
    k = open_kimi_driver(KimiConfig(model="kimi-k2", workspace_dir=str(tmp_path)),
                         RunRequest(user_text="x"))  # fmt: skip
    assert k.wanted_model == k.default_model == "kimi-k2"


async def test_the_model_the_agent_already_runs_is_not_switched(tmp_path: Path):
    # Kimi Code names its env model "__kimi_env_model__" and displays it as fake-kimi-model
    steps = cgk_steps("acp", "kimi_code_acp")[:3]
    driver, log = acp_driver(tmp_path, steps, config={"model": "fake-kimi-model"})
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
        await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert "session/set_model" not in [m.get("method") for m in sent(log)]
    assert peer_problems(log) == []


async def test_a_refused_switch_raises_and_sends_no_prompt(tmp_path: Path):
    steps = cgk_steps("acp", "kimi_code_acp")[:2]
    steps.append(set_model_step(error={"code": -32603, "message": "Internal error", "data": {
        "details": 'Model "nope" is not configured in config.toml.'}}))  # fmt: skip
    driver, log = acp_driver(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        with pytest.raises(JsonRpcError) as info:
            await driver.start_turn(RunRequest(user_text="hi", model="nope"))
        await driver.aclose(graceful=True)
    assert "not configured in config.toml" in str(info.value) and "'nope'" in str(info.value)
    assert "session/prompt" not in [m.get("method") for m in sent(log)]
    assert rec.of(EventKind.TURN_STARTED) == []


# -- Kimi Code asks AskUserQuestion as a permission request ----------------------------------------

ASK = {  # recorded from Kimi Code 2.1.0 on 2026-12-01 ([[CALL:AskUserQuestion:…]])
    "jsonrpc": "2.0",
    "id": 0,
    "method": "session/request_permission",
    "params": {
        "sessionId": KIMI_SID,
        "options": [
            {"optionId": "q0_opt_0", "name": "red", "kind": "allow_once"},
            {"optionId": "q0_opt_1", "name": "blue", "kind": "allow_once"},
            {"optionId": "q0_skip", "name": "Skip", "kind": "reject_once"},
        ],
        "toolCall": {
            "toolCallId": "0:call_fake_0001",
            "title": "AskUserQuestion",
            "content": [{"type": "content", "content": {"type": "text", "text": "Which color?"}}],
        },
    },
}


def question_steps() -> list[dict[str, Any]]:
    steps = cgk_steps("acp", "kimi_code_acp")[:2]
    done = {"jsonrpc": "2.0", "id": 3, "result": {"stopReason": "end_turn"}}
    steps.append({"expect": "session/prompt", "id": 3, "reply": [ASK]})
    steps.append({"expect_response": 0, "reply": [done]})
    return steps


@pytest.mark.parametrize(
    ("answer", "option"),
    [({"Which color?": "blue"}, "q0_opt_1"), (None, "q0_skip"), ("no approver", "q0_skip"),
     ({"Which color?": "green"}, "q0_skip")],
)  # fmt: skip
async def test_kimi_code_question_is_a_question_not_an_approval(tmp_path: Path, answer, option):
    """Before: it was an approval; accepting it (or kimi's default policy) silently picked the
    first answer ("red")."""
    asked: list[ApprovalRequest] = []

    def approver(request: ApprovalRequest) -> Any:
        asked.append(request)
        return answer

    kw = {} if answer == "no approver" else {"approver": approver}
    driver, log = acp_driver(tmp_path, question_steps(), **kw)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="ask me"))
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED
    reply = next(m for m in sent(log) if "result" in m and m.get("id") == 0)
    assert reply["result"] == {"outcome": {"outcome": "selected", "optionId": option}}
    questions = rec.of(EventKind.QUESTION, ref.turn_id)
    assert len(questions) == 1 and questions[0].question.questions[0].question == "Which color?"
    assert [o.label for o in questions[0].question.questions[0].options] == ["red", "blue"]
    if kw:
        assert [r.kind for r in asked] == ["question"]
    assert peer_problems(log) == []


async def test_interrupt_answers_a_pending_permission_cancelled(tmp_path: Path):
    """A human who never answers must not hold up an interrupt: after ``session/cancel`` the
    pending request gets the ``cancelled`` outcome (ACP's rule) and the prompt ends."""
    steps = cgk_steps("acp", "kimi_code_acp")[:2]
    permission = json.loads(json.dumps(ASK))
    permission["params"]["options"] = [
        {"optionId": "approve_once", "name": "Approve once", "kind": "allow_once"},
        {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
    ]
    permission["params"]["toolCall"] = {"toolCallId": "1:call", "title": "Bash", "kind": "execute"}
    cancelled = {"jsonrpc": "2.0", "id": 3, "result": {"stopReason": "cancelled"}}
    steps += [
        {"expect": "session/prompt", "id": 3, "reply": [permission]},
        {"expect": "session/cancel", "reply": []},
        {"expect_response": 0, "reply": [cancelled]},
    ]
    waiting = trio.Event()

    async def approver(request: ApprovalRequest) -> Any:
        waiting.set()
        await trio.sleep_forever()

    driver, log = acp_driver(tmp_path, steps, approver=approver)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="run it"))
        with trio.fail_after(10):
            await waiting.wait()
        await driver.interrupt_turn(ref)
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_INTERRUPTED
    answer = next(m for m in sent(log) if m.get("id") == 0 and "result" in m)
    assert answer["result"] == {"outcome": {"outcome": "cancelled"}}
    assert rec.texts(EventKind.TOOL_USE)[-1].endswith("-> cancel")
    assert peer_problems(log) == []


def _kimi_with_usage_after_the_response() -> list[dict[str, Any]]:
    """The recorded Kimi Code session's first turn with the usage_update it sent right after
    the prompt's response (the recorder filed it under the next prompt's replies)."""
    steps = cgk_steps("acp", "kimi_code_acp")
    usage = steps[3]["reply"][0]
    assert usage["params"]["update"]["sessionUpdate"] == "usage_update"
    first = steps[:3]
    first[2] = {**first[2], "reply": [*first[2]["reply"], usage]}
    return first


async def test_kimi_code_usage_after_the_response_is_the_turns_usage(tmp_path: Path):
    """Kimi Code 2.1 reports a turn's usage (its context tokens) just after the prompt's
    response: the turn's end waits for it (bounded) instead of reporting zero."""
    driver, _ = acp_driver(
        tmp_path, _kimi_with_usage_after_the_response(), trailing_usage=True, usage_wait=60.0
    )
    rec = Recorder()
    with trio.fail_after(20):  # ended by the usage, not by the 60 s bound
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, rec)
            ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
            done = await rec.terminal(ref.turn_id)
            await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED
    assert done.usage is not None and done.usage.input_tokens == 22268
    assert rec.texts(EventKind.ASSISTANT_TEXT, ref.turn_id)


async def test_a_trailing_usage_that_never_comes_ends_the_turn_after_the_wait(tmp_path: Path):
    driver, _ = acp_driver(
        tmp_path, cgk_steps("acp", "kimi_code_acp")[:3], trailing_usage=True, usage_wait=0.05
    )
    rec = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, rec)
            ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
            done = await rec.terminal(ref.turn_id)
            await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED and done.usage is not None
    assert done.usage.input_tokens == 0


def test_the_kimi_record_says_its_usage_trails_the_response(tmp_path: Path):
    kimi = open_kimi_driver(KimiConfig(workspace_dir=str(tmp_path)), RunRequest(user_text="x"))
    gemini = open_gemini_driver(
        GeminiConfig(workspace_dir=str(tmp_path)), RunRequest(user_text="x")
    )
    assert kimi.mapper.trailing_usage and not gemini.mapper.trailing_usage


async def test_an_approvers_cancel_stops_the_turn(tmp_path: Path):
    """CANCEL means "also stop the turn": ACP's ``cancelled`` outcome alone lets gemini and
    Kimi Code go on with the next model call, so ``session/cancel`` goes out first (once) and
    the prompt ends ``cancelled``. Before: no session/cancel, the turn went on."""
    steps = cgk_steps("acp", "kimi_code_acp")[:2]
    request = json.loads(json.dumps(ASK))
    request["params"]["options"] = [
        {"optionId": "approve_once", "name": "Approve once", "kind": "allow_once"},
        {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
    ]
    request["params"]["toolCall"] = {"toolCallId": "1:c", "title": "Bash", "kind": "execute"}
    cancelled = {"jsonrpc": "2.0", "id": 3, "result": {"stopReason": "cancelled"}}
    steps += [
        {"expect": "session/prompt", "id": 3, "reply": [request]},
        {"expect": "session/cancel", "reply": []},
        {"expect_response": 0, "reply": [cancelled]},
    ]
    driver, log = acp_driver(tmp_path, steps, approver=lambda r: ApprovalDecision.CANCEL)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="run it"))
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_INTERRUPTED, (peer_problems(log), sent(log))
    answer = next(m for m in sent(log) if m.get("id") == 0 and "result" in m)
    assert answer["result"] == {"outcome": {"outcome": "cancelled"}}
    assert [m.get("method") for m in sent(log)].count("session/cancel") == 1
    assert peer_problems(log) == []


def _kimi_driver(tmp_path: Path, steps: list[dict[str, Any]], **kw: Any) -> Any:
    """The real Kimi driver (``open_kimi_driver``) on the fake peer: a wrapper drops ``acp``."""
    import shlex

    script, log = write_script(tmp_path, steps)
    wrapper = tmp_path / "kimi"
    wrapper.write_text("#!/bin/sh\nshift\nexec " + shlex.join(peer_argv(script, log)) + "\n")
    wrapper.chmod(0o755)
    config = KimiConfig(command=str(wrapper), workspace_dir=str(tmp_path), limits=FAST)
    return open_kimi_driver(config, RunRequest(user_text="x"), close_grace=1.0, **kw)


async def test_kimi_code_usage_later_than_the_old_wait_is_still_the_turns(tmp_path: Path):
    """CI flake (e2e ``test_session_turns_report_usage[kimi]``: turn two's usage 0): Kimi Code
    sends the usage_update after the prompt's response, seconds later on a loaded machine;
    the driver waited at most ``usage_wait`` and returned the turn without it. Its model is
    in its catalog (session/new's config options), so the usage is promised: the turn waits
    for it however late (here 0.5 s after the response, ten times ``usage_wait``)."""
    steps = _kimi_with_usage_after_the_response()
    usage = steps[2]["reply"].pop()
    steps += [{"action": "sleep", "seconds": 0.5}, {"action": "send", "reply": [usage]}]
    driver = _kimi_driver(tmp_path, steps, usage_wait=0.05)
    rec = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, rec)
            ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
            done = await rec.terminal(ref.turn_id)
            await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED
    assert done.usage is not None and done.usage.input_tokens == 22268


async def test_kimi_code_turn_waiting_for_its_usage_ends_on_interrupt_or_eof(tmp_path: Path):
    """What ends the promised wait when the usage never comes: an interrupt (the caller's
    cancel, the run's timeout or idle timeout) completes the turn at once without usage and
    sends nothing; the agent's output ending does the same; an agent that breaks its rule and
    stays silent holds the turn's end ``promised_usage_wait`` at most (it hung until the run's
    timeout with no bound)."""
    for ending in ("interrupt", "eof", "bound"):
        where = tmp_path / ending
        where.mkdir()
        steps = _kimi_with_usage_after_the_response()
        steps[2]["reply"].pop()  # the usage_update never comes
        if ending == "eof":
            steps.append({"action": "crash", "code": 0})
        else:
            steps.append({"action": "hang"})
        bound = 0.5 if ending == "bound" else 600.0
        driver = _kimi_driver(where, steps, usage_wait=0.05, promised_usage_wait=bound)
        rec = Recorder()
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                await nursery.start(driver.run, rec)
                ref = await driver.start_turn(RunRequest(user_text=TURNS[0]))
                if ending == "interrupt":
                    await rec.wait_for(lambda e: e.kind is EventKind.ASSISTANT_TEXT)
                    await trio.sleep(0.2)  # well past usage_wait: the promise still waits
                    assert not [e for e in rec.events if e.kind.terminal]
                    await driver.interrupt_turn(ref)
                done = await rec.terminal(ref.turn_id)
                await driver.aclose(graceful=True)
        assert done.kind is EventKind.TURN_COMPLETED, ending
        assert done.usage is not None and done.usage.input_tokens == 0
        methods = [m.get("method") for m in sent(where / "script.log.jsonl")]
        assert "session/prompt" in methods and "session/cancel" not in methods


async def test_a_model_switch_cancelled_in_flight_leaves_the_model_unknown(tmp_path: Path):
    """``session/set_model`` cancelled while in flight: the agent may have switched, so the
    driver no longer takes itself to be on the old model — a later request for the old model
    sends ``session/set_model`` again (it skipped it: the prompt ran on the new model)."""
    steps = cgk_steps("acp", "gemini_acp")[:2]
    current = steps[1]["reply"][0]["result"]["models"]["currentModelId"]
    steps += [
        {"expect": "session/set_model", "id": 90, "reply": []},  # never answered
        {"expect": "session/set_model", "id": 91,
         "reply": [{"jsonrpc": "2.0", "id": 91, "result": {}}]},
    ]  # fmt: skip
    driver, log = acp_driver(tmp_path, steps)
    rec = Recorder()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, rec)
            assert driver.model == current
            with trio.move_on_after(0.3):
                await driver.start_turn(RunRequest(user_text="x", model="other-model"))
            await driver._switch_model(RunRequest(user_text="x", model=current))
            assert driver.model == current
            await driver.aclose(graceful=True)
    models = [m["params"]["modelId"] for m in sent(log) if m.get("method") == "session/set_model"]
    assert models == ["other-model", current]
