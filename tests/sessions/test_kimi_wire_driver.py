"""Legacy kimi wire driver against a fake peer replaying kimi-cli 1.50 ``--wire`` traffic."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from rpc_recorder import Recorder
from rpc_scripts import cgk_steps, peer_argv, peer_problems, sent, write_script

from alice_trio.errors import TransportClosedError
from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent
from alice_trio.protocols.kimi_wire import KimiWireMapper
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.kimi import KimiConfig
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest
from alice_trio.sessions.driver import SessionDriver, SteerMode
from alice_trio.sessions.kimi_wire import KimiWireDriver, build_invocation

FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)
APPROVAL_ID = "9aa0bdb3-fa3d-474b-b899-8f18ab218d8d"


def make(tmp_path: Path, steps: list[dict[str, Any]], **kw: Any):
    script, log = write_script(tmp_path, steps)
    inv = Invocation(argv=peer_argv(script, log), cwd=str(tmp_path), limits=FAST)
    config = kw.pop("config", KimiConfig(flavor="legacy"))
    initial = kw.pop("initial", RunRequest(user_text="x"))
    return KimiWireDriver(config, initial, invocation=inv, close_grace=1.0, **kw), log


def ev(etype: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "event", "params": {"type": etype, "payload": payload}}


async def test_recorded_session_plain_tool_approval_cancel(tmp_path: Path):
    asked: list[ApprovalRequest] = []

    def approver(req: ApprovalRequest) -> ApprovalDecision:
        asked.append(req)
        return ApprovalDecision.ACCEPT

    driver, log = make(tmp_path, cgk_steps("kimi_wire", "kimi_legacy_wire"), approver=approver)
    assert isinstance(driver, SessionDriver) and driver.steer_mode is SteerMode.NATIVE
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        r1 = await driver.start_turn(RunRequest(user_text="first turn: say hello"))
        d1 = await rec.terminal(r1.turn_id)
        r2 = await driver.start_turn(RunRequest(user_text="[[TOOL]] second turn"))
        d2 = await rec.terminal(r2.turn_id)
        r3 = await driver.start_turn(RunRequest(user_text="[[SLOW]] third turn"))
        await rec.wait_for(lambda e: e.kind is EventKind.TURN_STARTED and e.turn_id == r3.turn_id)
        await driver.interrupt_turn(r3)
        d3 = await rec.terminal(r3.turn_id)
        await driver.aclose(graceful=True)
    assert peer_problems(log) == []
    assert (d1.kind, d2.kind, d3.kind) == (
        EventKind.TURN_COMPLETED,
        EventKind.TURN_COMPLETED,
        EventKind.TURN_INTERRUPTED,
    )
    assert rec.texts(EventKind.ASSISTANT_TEXT, r1.turn_id) == [
        "Hello from the fake model. You said: first turn: say hello"
    ]
    assert rec.texts(EventKind.ASSISTANT_TEXT, r2.turn_id) == [
        "I'll run a command.",
        "The tool returned: <system>Command executed successfully.</system>. Done.",
    ]
    assert rec.texts(EventKind.ASSISTANT_TEXT, r3.turn_id) == [
        "word0 word1 word2 word3 word4 word5 "
    ]
    assert d1.usage is not None and (d1.usage.input_tokens, d1.usage.output_tokens) == (10502, 15)
    assert d2.usage is not None and d2.usage.output_tokens == 52 + 18
    assert [a.command for a in asked] == ["touch created_by_wire.txt"]
    msgs = sent(log)
    assert all(m["jsonrpc"] == "2.0" and isinstance(m["id"], str) for m in msgs)
    assert msgs[0]["params"]["protocol_version"] == "1.10"
    answer = next(m for m in msgs if "result" in m)
    assert answer == {
        "jsonrpc": "2.0",
        "id": APPROVAL_ID,
        "result": {"request_id": APPROVAL_ID, "response": "approve"},
    }
    assert [m["method"] for m in msgs if "method" in m] == [
        "initialize",
        "prompt",
        "prompt",
        "prompt",
        "cancel",
    ]


@pytest.mark.parametrize(
    ("policy", "response"),
    [
        (ExecPolicy(), "approve"),  # kimi's default: tools run, as in ``kimi --print``
        (ExecPolicy(sandbox="danger-full-access", ask_for_approval="never"), "approve"),
        (ExecPolicy(ask_for_approval="on-request"), "reject"),  # the caller asked to be asked
        (ExecPolicy(sandbox="workspace-write"), "reject"),
    ],
)
async def test_without_an_approver_the_exec_policy_with_kimi_defaults_decides(
    tmp_path: Path, policy: ExecPolicy, response: str
):
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")
    driver, log = make(tmp_path, steps, config=KimiConfig(flavor="legacy", exec_policy=policy))
    assert "--yolo" not in driver.invocation.argv
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        for text in ("first turn: say hello", "[[TOOL]] second turn"):
            ref = await driver.start_turn(RunRequest(user_text=text))
            await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=False)
    answer = next(m for m in sent(log) if m.get("id") == APPROVAL_ID)
    assert answer["result"] == {"request_id": APPROVAL_ID, "response": response}


async def test_defect_15_thread_id_is_a_real_session_id_never_the_placeholder(tmp_path: Path):
    """Go reported the placeholder "kimi-wire" as the thread id of a new session."""
    config = KimiConfig(flavor="legacy", model="fake")
    inv = build_invocation(config, RunRequest(user_text="x"), "sid")
    assert inv.argv == ("kimi", "--wire", "--session=sid", "--model=fake")
    driver = KimiWireDriver(config, RunRequest(user_text="x"))
    assert str(uuid.UUID(driver.session_id)) == driver.session_id
    assert f"--session={driver.session_id}" in driver.invocation.argv
    assert "kimi-wire" not in driver.invocation.argv
    resumed = KimiWireDriver(config, RunRequest(user_text="x", thread_id="145c95e6"))
    assert resumed.session_id == "145c95e6"
    assert "--session=145c95e6" in resumed.invocation.argv
    assert "--yolo" not in resumed.invocation.argv  # approvals are decided, not skipped


async def test_resumed_session_events_carry_the_session_id(tmp_path: Path):
    sid = "145c95e6-e5bd-4e9e-9c43-16d5d20b2ee4"
    driver, _ = make(
        tmp_path,
        cgk_steps("kimi_wire", "kimi_legacy_wire_resume"),
        initial=RunRequest(user_text="x", thread_id=sid),
    )
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="turn inside resumed wire session"))
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert ref.thread_id == sid and done.thread_id == sid
    assert {e.thread_id for e in rec.events} == {sid}


def mapped(events: list[dict[str, Any]]) -> list[TurnEvent]:
    m = KimiWireMapper(session_id="s")
    m.begin("t")
    out: list[TurnEvent] = []
    for e in events:
        out += m.feed(e["params"], json.dumps(e))
    return out + m.finish({"status": "finished"})


def test_defect_15_chunks_are_joined_verbatim_and_type_names_never_appended():
    out = mapped(
        [
            ev("TurnBegin", {"user_input": "go"}),
            ev("ContentPart", {"type": "think", "think": "hmm, "}),
            ev("ContentPart", {"type": "think", "think": "ok"}),
            ev("ContentPart", {"type": "text", "text": "Hello"}),
            ev("ContentPart", {"type": "text", "text": " world\n"}),
            ev("ContentPart", {"type": "image_url", "image_url": {"url": "x"}}),
            ev("ContentPart", {"type": "text", "text": "  bye  "}),
            ev("TurnEnd", {}),
        ]
    )
    texts = [e.text for e in out if e.kind is EventKind.ASSISTANT_TEXT]
    assert texts == ["Hello world\n  bye  "]
    assert [e.text for e in out if e.kind is EventKind.REASONING] == ["hmm, ok"]
    assert out[-1].kind is EventKind.TURN_COMPLETED


def test_alice_fixture_coalesce():
    path = Path(__file__).parent.parent / "transcripts" / "kimi_wire"
    path = path / "alice_kimi_wire_coalesce.jsonl"
    out = mapped([json.loads(x) for x in path.read_text().splitlines()])
    assert [e.text for e in out if e.kind is EventKind.ASSISTANT_TEXT] == ["hello"]


async def test_defect_15_question_goes_to_the_callback_not_auto_empty(tmp_path: Path):
    qid = "q-1"
    question = {
        "jsonrpc": "2.0",
        "method": "request",
        "id": qid,
        "params": {
            "type": "QuestionRequest",
            "payload": {
                "id": qid,
                "tool_call_id": "c1",
                "questions": [
                    {
                        "question": "Which color?",
                        "header": "Color",
                        "options": [{"label": "red"}, {"label": "blue"}],
                        "multi_select": False,
                    }
                ],
            },
        },
    }
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:1]
    steps.append(
        {
            "expect": "prompt",
            "id": "p-1",
            "reply": [ev("TurnBegin", {"user_input": "ask"}), question],
        }
    )
    steps.append(
        {
            "expect_response": qid,
            "reply": [
                ev("ContentPart", {"type": "text", "text": "You chose blue."}),
                ev("TurnEnd", {}),
                {"jsonrpc": "2.0", "id": "p-1", "result": {"status": "finished"}},
            ],
        }
    )
    seen: list[ApprovalRequest] = []

    async def approver(req: ApprovalRequest) -> dict[str, str]:
        seen.append(req)
        return {"Which color?": "blue"}

    for cb in (approver, None):
        driver, log = make(tmp_path, steps, approver=cb)
        rec = Recorder()
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, rec)
            ref = await driver.start_turn(RunRequest(user_text="ask"))
            await rec.terminal(ref.turn_id)
            await driver.aclose(graceful=True)
        assert peer_problems(log) == []
        answer = next(m for m in sent(log) if m.get("id") == qid)
        q = rec.of(EventKind.QUESTION, ref.turn_id)
        assert q and q[0].question is not None and q[0].question.questions[0].header == "Color"
        if cb is not None:
            assert answer["result"] == {"request_id": qid, "answers": {"Which color?": "blue"}}
            assert sent(log)[0]["params"]["capabilities"]["supports_question"] is True
        else:  # dismissed with an error, never answered ""
            assert "result" not in answer and answer["error"]["code"] == -32000
        (tmp_path / "script.log.jsonl").write_text("")
    assert len(seen) == 1


async def test_steer_is_native_and_stays_on_the_turn(tmp_path: Path):
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:1]
    steps.append(
        {
            "expect": "prompt",
            "id": "p-1",
            "reply": [
                ev("TurnBegin", {"user_input": "start"}),
                ev("ContentPart", {"type": "text", "text": "A"}),
            ],
        }
    )
    steps.append(
        {
            "expect": "steer",
            "id": "s-1",
            "reply": [
                {"jsonrpc": "2.0", "id": "s-1", "result": {"status": "steered"}},
                ev("SteerInput", {"user_input": [{"type": "text", "text": "and B"}]}),
                ev("ContentPart", {"type": "text", "text": "B"}),
                ev("TurnEnd", {}),
                {"jsonrpc": "2.0", "id": "p-1", "result": {"status": "finished"}},
            ],
        }
    )
    driver, log = make(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        ref = await driver.start_turn(RunRequest(user_text="start"))
        await rec.wait_for(lambda e: e.kind is EventKind.TURN_STARTED)
        assert await driver.steer_turn(ref, RunRequest(user_text="and B")) == ref
        done = await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert done.kind is EventKind.TURN_COMPLETED
    assert rec.texts(EventKind.ASSISTANT_TEXT, ref.turn_id) == ["A", "B"]
    assert rec.texts(EventKind.STEER_CONSUMED, ref.turn_id) == ["and B"]
    steer = next(m for m in sent(log) if m.get("method") == "steer")
    assert steer["params"] == {"user_input": "and B"}


async def test_prompt_error_and_crash_become_turn_errors(tmp_path: Path):
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:1]
    steps.append(
        {
            "expect": "prompt",
            "id": "p-1",
            "reply": [
                {
                    "jsonrpc": "2.0",
                    "id": "p-1",
                    "error": {"code": -32003, "message": "Error code: 500"},
                }
            ],
        }
    )
    steps.append({"expect": "prompt", "id": "p-2", "reply": [ev("TurnBegin", {"user_input": "x"})]})
    steps.append({"action": "crash", "stderr": "Traceback: boom\n", "code": 1})
    driver, _ = make(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        r1 = await driver.start_turn(RunRequest(user_text="x"))
        e1 = await rec.terminal(r1.turn_id)
        r2 = await driver.start_turn(RunRequest(user_text="y"))
        e2 = await rec.terminal(r2.turn_id)
    assert e1.kind is EventKind.ERROR and "code=-32003" in e1.error and "500" in e1.error
    assert e2.kind is EventKind.ERROR and "Traceback: boom" in e2.error
    with pytest.raises(TransportClosedError):
        await driver.steer_turn(r2, RunRequest(user_text="z"))


async def test_defect_11_closing_mid_prompt_sends_cancel(tmp_path: Path):
    """Go sent the prompt with context.Background(): nothing could cancel it."""
    steps = [{"action": "ignore_sigterm"}, *cgk_steps("kimi_wire", "kimi_legacy_wire")[:1]]
    steps.append({"expect": "prompt", "id": "p-1", "reply": [ev("TurnBegin", {"user_input": "x"})]})
    steps.append(
        {"expect": "cancel", "id": "c-1", "reply": [{"jsonrpc": "2.0", "id": "c-1", "result": {}}]}
    )
    driver, log = make(tmp_path, steps)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        await driver.start_turn(RunRequest(user_text="x"))
        await rec.wait_for(lambda e: e.kind is EventKind.TURN_STARTED)
        nursery.cancel_scope.cancel()
    assert [m.get("method") for m in sent(log)] == ["initialize", "prompt", "cancel"]


# -- model switch: the wire protocol has none, so the process restarts on the same session ------


async def test_another_model_restarts_the_process_on_the_same_session(tmp_path: Path):
    """Before: ``--model`` was fixed at start and a request with another model silently ran on
    the old one. Now the process is replaced (stdin EOF, then the same ``--session`` with the
    new ``--model``) before the prompt is sent."""
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:2]  # initialize, one plain prompt
    config = KimiConfig(flavor="legacy", model="fake-kimi-model")
    driver, log = make(tmp_path, steps, config=config)
    driver.invocation = attrs.evolve(
        driver.invocation, argv=(*driver.invocation.argv, "--session=S1", "--model=fake-kimi-model")
    )
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        first_pid = driver.process.pid
        r1 = await driver.start_turn(RunRequest(user_text="first turn: say hello"))
        d1 = await rec.terminal(r1.turn_id)
        r2 = await driver.start_turn(
            RunRequest(user_text="first turn: say hello", model="other-model")
        )
        d2 = await rec.terminal(r2.turn_id)
        await driver.aclose(graceful=True)
    assert d1.kind is d2.kind is EventKind.TURN_COMPLETED
    assert driver.process.pid != first_pid and driver.model == "other-model"
    argv = driver.invocation.argv
    assert argv[-2:] == ("--session=S1", "--model=other-model")
    assert [m.get("method") for m in sent(log)] == ["initialize", "prompt", "initialize", "prompt"]
    assert d2.thread_id == d1.thread_id
    assert peer_problems(log) == []


async def test_same_model_keeps_the_process(tmp_path: Path):
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:4]  # through the approval answer
    driver, log = make(tmp_path, steps, config=KimiConfig(flavor="legacy", model="m1"))
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        pid = driver.process.pid
        for text in ("first turn: say hello", "[[TOOL]] second turn"):
            ref = await driver.start_turn(RunRequest(user_text=text, model="m1"))
            await rec.terminal(ref.turn_id)
        await driver.aclose(graceful=True)
    assert driver.process.pid == pid
    assert [m.get("method") for m in sent(log)].count("initialize") == 1


async def test_a_restart_that_fails_raises_typed(tmp_path: Path):
    """The new process dies before its handshake: the submit raises TransportClosedError (with
    the stderr tail), never a prompt on the old model, and the session is over."""
    from alice_trio.sessions.session import open_session

    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:1]
    driver, log = make(tmp_path, steps, config=KimiConfig(flavor="legacy"))
    crash = tmp_path / "crash.json"
    crash.write_text(json.dumps({"steps": [{"action": "crash", "stderr": "bad model\n"}]}))
    async with open_session("kimi", initial=RunRequest(user_text="x"), driver=driver) as s:
        driver.invocation = attrs.evolve(driver.invocation, argv=peer_argv(crash, log))
        with pytest.raises(TransportClosedError) as info:
            await s.submit(RunRequest(user_text="hi", model="nope"))
    assert "bad model" in (info.value.stderr_tail or str(info.value))
    assert "prompt" not in [m.get("method") for m in sent(log)]


async def test_a_request_without_model_goes_back_to_the_configured_one(tmp_path: Path):
    steps = cgk_steps("kimi_wire", "kimi_legacy_wire")[:2]
    driver, log = make(tmp_path, steps, config=KimiConfig(flavor="legacy", model="m1"))
    rec = Recorder()
    models = []
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run, rec)
        for model in ("", "m2", ""):
            ref = await driver.start_turn(
                RunRequest(user_text="first turn: say hello", model=model)
            )
            await rec.terminal(ref.turn_id)
            models.append([a for a in driver.invocation.argv if a.startswith("--model=")])
        await driver.aclose(graceful=True)
    assert models == [[], ["--model=m2"], ["--model=m1"]]
    assert [m.get("method") for m in sent(log)].count("initialize") == 3


STUB = Path(__file__).resolve().parents[1] / "transcripts" / "kimi" / "kimi_legacy_152_stub.stdout"


async def test_a_cli_that_prints_a_notice_instead_of_the_protocol_is_quoted(tmp_path: Path):
    """kimi-cli 1.52.0 (a deprecation stub) prints one notice for ``kimi --wire`` and exits 0.
    Before: ``kimi closed its output (exit status 0)`` — nothing said why."""
    from alice_trio.sessions.session import open_session

    code = f"import sys; sys.stdout.write(open({str(STUB)!r}).read())"
    inv = Invocation(argv=(sys.executable, "-c", code), cwd=str(tmp_path), limits=FAST)
    driver = KimiWireDriver(
        KimiConfig(flavor="legacy"), RunRequest(user_text="x"), invocation=inv, close_grace=1.0
    )
    with pytest.raises(TransportClosedError) as info:
        async with open_session("kimi", initial=RunRequest(user_text="x"), driver=driver):
            pass
    message = str(info.value)
    assert "kimi exited (exit status 0); it printed: " in message, message
    assert "kimi-cli is no longer maintained" in message


async def test_non_json_lines_after_the_protocol_began_are_not_quoted(tmp_path: Path):
    """Only a peer that never spoke JSON-RPC gets its first line quoted (a log line among
    protocol traffic says nothing about why it ended)."""
    from alice_trio.transports.jsonrpc import JsonRpcClient
    from alice_trio.transports.process import open_agent_process

    code = (
        'import sys; print(\'{"jsonrpc": "2.0", "method": "hello"}\'); print(\'log line\');'
        " sys.stdout.flush()"
    )
    inv = Invocation(argv=(sys.executable, "-c", code), limits=FAST)
    async with open_agent_process(inv, name="peer", graceful=False) as proc:
        client = JsonRpcClient(proc, jsonrpc=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            with pytest.raises(TransportClosedError) as info:
                with trio.fail_after(20):
                    await client.request("x")
            nursery.cancel_scope.cancel()
    assert "log line" not in str(info.value) and "exited (exit status 0)" in str(info.value)


def tool_call(call_id: str, name: str, arguments: str = "") -> dict[str, Any]:
    function = {"name": name, "arguments": arguments}
    return ev("ToolCall", {"type": "function", "id": call_id, "function": function})


def tool_result(call_id: str, *, error: bool = False) -> dict[str, Any]:
    return_value = {"is_error": error, "output": "", "message": "ok", "display": []}
    return ev("ToolResult", {"tool_call_id": call_id, "return_value": return_value})


def test_write_tools_report_their_files_once_they_ran():
    """kimi-cli streams a call's arguments as ToolCallPart deltas after the ToolCall; a write
    tool that ran is a file_change (also outside the workspace, which no snapshot sees); a
    failed one and a shell call are not."""
    args = json.dumps({"path": "/elsewhere/ünï café.txt", "content": "hi"}, ensure_ascii=False)
    out = mapped(
        [
            ev("TurnBegin", {"user_input": "go"}),
            tool_call("c1", "WriteFile"),
            ev("ToolCallPart", {"arguments_part": args[:9]}),
            ev("ToolCallPart", {"arguments_part": args[9:]}),
            tool_call("c2", "StrReplaceFile", json.dumps({"path": "src/a.py", "edit": {}})),
            tool_call("c3", "WriteFile"),
            ev("ToolCallPart", {"arguments_part": json.dumps({"path": "failed.txt"})}),
            tool_call("c4", "Shell"),
            ev("ToolCallPart", {"arguments_part": json.dumps({"command": "touch x"})}),
            tool_result("c3", error=True),
            tool_result("c2"),
            tool_result("c1"),
            tool_result("c4"),
            ev("TurnEnd", {}),
        ]
    )
    changes = [
        [(f.path, f.kind.value) for f in e.files] for e in out if e.kind is EventKind.FILE_CHANGE
    ]
    assert changes == [[("src/a.py", "modified")], [("/elsewhere/ünï café.txt", "written")]]
    assert all(e.turn_id == "t" for e in out)


def test_a_write_result_of_an_earlier_turn_is_never_a_file_change_of_the_next():
    m = KimiWireMapper(session_id="s")
    m.begin("t1")
    m.feed(tool_call("c1", "WriteFile", json.dumps({"path": "a.txt"}))["params"])
    m.finish({"status": "cancelled"})
    m.begin("t2")
    late = m.feed(tool_result("c1")["params"])
    assert late == []


def test_no_turn_in_progress_is_kimis_invalid_state_answer():
    """kimi-cli answers a steer or cancel that arrives after the turn ended with -32000 "No
    agent turn is in progress": the driver reports NoActiveTurnError (steer) or nothing
    (cancel) for it, never a JsonRpcError."""
    from alice_trio.protocols.kimi_wire import no_turn_in_progress

    assert no_turn_in_progress(-32000, "No agent turn is in progress")
    assert not no_turn_in_progress(-32000, "Replay failed")
    assert not no_turn_in_progress(-32603, "No agent turn is in progress")
