"""The claude bidirectional stream-json driver against a fake claude replaying real timelines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from alice_trio.errors import ProcessFailedError, ProtocolError, TransportClosedError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.protocols.claude_stream import ClaudeBidiMapper, user_message
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.sessions.approval import ApprovalDecision
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.claude_stream import ClaudeStreamDriver, build_stream_invocation
from alice_trio.sessions.driver import SubmitMode
from alice_trio.sessions.scaling import ScalingConfig
from alice_trio.sessions.session import SessionState, open_session

HERE = Path(__file__).parent
FAKE = HERE / "fake_claude_bidi.py"
TL = HERE.parent / "transcripts" / "claude_bidi"


def timeline(name: str) -> Path:
    return TL / f"{name}.timeline.jsonl"


def fake_driver(name: str, env: dict[str, str] | None = None, **kw) -> ClaudeStreamDriver:
    inv = Invocation(
        argv=(sys.executable, str(FAKE), str(timeline(name))),
        env=env or {},
        limits=RunLimits(kill_grace=0.5),
    )
    return ClaudeStreamDriver(
        ClaudeConfig(), RunRequest(user_text="x"), invocation=inv, close_grace=1.0, **kw
    )


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


async def collect(session, turn_ids: set[str]) -> list[TurnEvent]:
    """Events until every turn in ``turn_ids`` had its terminal event."""
    out: list[TurnEvent] = []
    left = set(turn_ids)
    with trio.fail_after(20):
        async for ev in session.events():
            out.append(ev)
            if ev.kind.terminal:
                left.discard(ev.turn_id)
                if not left:
                    break
    return out


def of(events, turn_id, kind):
    return [e for e in events if e.turn_id == turn_id and e.kind is kind]


def test_argv_is_the_oneshot_flags_made_bidirectional():
    inv = build_stream_invocation(
        ClaudeConfig(permission_mode="plan"), RunRequest(user_text="", thread_id="abc", model="m")
    )
    assert inv.argv[:6] == (
        "claude",
        "-p",
        "--input-format",
        "stream-json",
        "--replay-user-messages",
        "--output-format",
    )
    assert "--resume=abc" in inv.argv and "--model=m" in inv.argv
    assert "--permission-mode=plan" in inv.argv
    assert not any("x" == a for a in inv.argv)


def test_user_message_line_shape():
    obj = json.loads(user_message("hi"))
    assert obj["type"] == "user" and obj["message"]["content"] == [{"type": "text", "text": "hi"}]
    assert obj["parent_tool_use_id"] is None


async def test_two_turns_each_get_their_reply_and_thread_id():
    async with open_session(
        "claude", initial=req("x"), driver=fake_driver("claude_bidi_replay_two_turns")
    ) as s:
        one = await s.submit(req("first turn"))
        ev1 = await collect(s, {one.turn_id})
        two = await s.submit(req("second turn"))
        assert two.mode is SubmitMode.STARTED
        ev2 = await collect(s, {two.turn_id})
    text1 = of(ev1, one.turn_id, EventKind.ASSISTANT_TEXT)[-1].text
    text2 = of(ev2, two.turn_id, EventKind.ASSISTANT_TEXT)[-1].text
    assert text1.endswith("You said: first turn") and text2.endswith("You said: second turn")
    done = of(ev1, one.turn_id, EventKind.TURN_COMPLETED)[0]
    assert done.usage is not None and done.usage.has_usage
    assert len(done.thread_id) == 36  # the session_id claude printed


async def test_defect_05_claude_merged_steers_get_the_right_replies():
    """Go: the run ends at the first result, the steered message's reply is lost or given to
    the next run. Here each submission completes with the answer claude gave to it."""
    async with open_session(
        "claude", initial=req("x"), driver=fake_driver("claude_bidi_replay_steer_merged")
    ) as s:
        first = await s.submit(req("[[SLOW:6:0.4]] first"))
        second = await s.submit(req("second message"))
        third = await s.submit(req("third message"))
        assert second.mode is third.mode is SubmitMode.STEERED
        assert len({first.turn_id, second.turn_id, third.turn_id}) == 3
        events = await collect(s, {first.turn_id, second.turn_id, third.turn_id})
        assert s.state is SessionState.IDLE
    assert of(events, first.turn_id, EventKind.ASSISTANT_TEXT)[-1].text.startswith("word0")
    for ref in (second, third):
        assert of(events, ref.turn_id, EventKind.ASSISTANT_TEXT)[-1].text.endswith(
            "second message third message"
        )
        assert of(events, ref.turn_id, EventKind.STEER_CONSUMED)
        assert of(events, ref.turn_id, EventKind.TURN_COMPLETED)
    # the first turn's terminal comes before the steered turns' output
    kinds = [(e.turn_id, e.kind) for e in events]
    assert kinds.index((first.turn_id, EventKind.TURN_COMPLETED)) < kinds.index(
        (second.turn_id, EventKind.TURN_COMPLETED)
    )


async def test_steer_injected_into_a_tool_turn_shares_its_result():
    async with open_session(
        "claude", initial=req("x"), driver=fake_driver("claude_bidi_replay_steer_tool")
    ) as s:
        first = await s.submit(req("[[TOOL]] [[CMD:sleep 1.5; echo hi]] first"))
        second = await s.submit(req("second message"))
        events = await collect(s, {first.turn_id, second.turn_id})
        third = await s.submit(req("third message"))
        assert third.mode is SubmitMode.STARTED
        later = await collect(s, {third.turn_id})
    for ref in (first, second):
        assert of(events, ref.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == (
            "The tool returned: hi. Done."
        )
    assert of(events, first.turn_id, EventKind.TOOL_USE)
    assert of(later, third.turn_id, EventKind.ASSISTANT_TEXT)[-1].text.endswith("third message")


async def test_interrupt_ends_the_turn_and_the_waiting_steer_still_runs():
    async with open_session(
        "claude", initial=req("x"), driver=fake_driver("claude_bidi_replay_steer_interrupt")
    ) as s:
        first = await s.submit(req("[[SLOW:20:0.3]] first"))
        second = await s.submit(req("second message"))
        await s.interrupt()  # returns once claude acknowledged (control_response)
        events = await collect(s, {first.turn_id, second.turn_id})
    assert of(events, first.turn_id, EventKind.TURN_INTERRUPTED)
    assert of(events, second.turn_id, EventKind.TURN_COMPLETED)
    assert of(events, second.turn_id, EventKind.ASSISTANT_TEXT)[-1].text.endswith("second message")


async def test_interrupt_then_the_next_turn_gets_its_own_reply():
    # real claude 2.1.197: after the interrupt claude prints the partial assistant message,
    # "[Request interrupted by user]" and an error_during_execution result; the next message
    # is echoed (isReplay) in a CLI turn of its own and answered there
    async with open_session(
        "claude",
        initial=req("x"),
        driver=fake_driver("claude_bidi_replay_interrupt_then_continue"),
    ) as s:
        first = await s.submit(req("[[SLOW]] a long answer"))
        await s.interrupt()
        events = await collect(s, {first.turn_id})
        assert [e.kind for e in events if e.kind.terminal] == [EventKind.TURN_INTERRUPTED]
        assert of(events, first.turn_id, EventKind.ASSISTANT_TEXT)[0].text.startswith("word0")
        assert s.active_turn is None
        second = await s.submit(req("after the interrupt"))
        later = await collect(s, {second.turn_id})
    assert {e.turn_id for e in later} == {second.turn_id}
    assert of(later, second.turn_id, EventKind.TURN_COMPLETED)
    replies = of(later, second.turn_id, EventKind.ASSISTANT_TEXT)
    assert replies[-1].text == "Hello from the fake model. You said: after the interrupt"


async def test_api_error_result_is_an_error_event_with_status():
    async with open_session(
        "claude", initial=req("x"), driver=fake_driver("claude_bidi_replay_api_error")
    ) as s:
        ref = await s.submit(req("[[ERR500]] fail please"))
        events = await collect(s, {ref.turn_id})
    err = events[-1]
    assert err.kind is EventKind.ERROR and err.status == 500 and "API Error: 500" in err.error


async def test_without_replay_results_complete_submissions_in_order():
    """The recorded session without --replay-user-messages (fallback: FIFO)."""
    async with open_session("claude", initial=req("x"), driver=fake_driver("claude_bidi")) as s:
        a = await s.submit(req("first turn: say hello"))
        ea = await collect(s, {a.turn_id})
        b = await s.submit(req("[[TOOL]] second turn: run a command"))
        eb = await collect(s, {b.turn_id})
        c = await s.submit(req("[[SLOW]] third turn: long answer"))
        await s.interrupt()
        ec = await collect(s, {c.turn_id})
    assert of(ea, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text.endswith("say hello")
    assert of(eb, b.turn_id, EventKind.ASSISTANT_TEXT)[-1].text.startswith("The tool returned")
    assert ec[-1].kind is EventKind.TURN_INTERRUPTED


async def test_defect_13_crash_mid_turn_is_an_error_with_exit_status_and_stderr():
    driver = fake_driver("claude_bidi_replay_two_turns", env={"FAKE_CLAUDE_CRASH_AFTER": "3"})
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        ref = await s.submit(req("first turn"))
        events = await collect(s, {ref.turn_id})
        assert [e async for e in s.events()] == []  # then the stream ends
        assert s.state is SessionState.FAILED
    err = events[-1]
    assert err.kind is EventKind.ERROR and err.turn_id == ref.turn_id
    assert "exit status 3" in err.error and "boom: fake crash" in err.error


async def test_start_failure_raises_with_stderr():
    driver = fake_driver("claude_bidi_replay_two_turns", env={"FAKE_CLAUDE_CRASH_AFTER": "0"})
    inv = Invocation(
        argv=(sys.executable, "-c", "import sys; sys.stderr.write('nope'); sys.exit(2)"),
        limits=RunLimits(kill_grace=0.2),
    )
    driver = ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=0.5)
    with pytest.raises(ProcessFailedError) as info:
        async with open_session("claude", initial=req("x"), driver=driver):
            pass
    assert "exit status 2" in str(info.value) and "nope" in info.value.stderr_tail


async def test_defect_11_interrupt_waits_for_the_acknowledgement(tmp_path):
    """Go fired the interrupt and forgot it. A claude that never answers is reported."""
    silent = tmp_path / "silent.jsonl"  # per test: concurrent suites must not share it
    lines = [
        json.loads(x) for x in timeline("claude_bidi_replay_two_turns").read_text().splitlines()
    ]
    # keep the initialize exchange and the first user message only: nobody answers after
    keep = [e for e in lines if e["dir"] == "in"][:2]
    init_out = next(e for e in lines if e["dir"] == "out")
    silent.write_text("\n".join(json.dumps(e) for e in [keep[0], init_out, keep[1]]) + "\n")
    try:
        inv = Invocation(
            argv=(sys.executable, str(FAKE), str(silent)), limits=RunLimits(kill_grace=0.2)
        )
        driver = ClaudeStreamDriver(
            ClaudeConfig(), req("x"), invocation=inv, interrupt_deadline=0.3, close_grace=0.5
        )
        async with open_session("claude", initial=req("x"), driver=driver) as s:
            await s.submit(req("first turn"))
            with pytest.raises(ProtocolError, match="did not answer the interrupt"):
                await s.interrupt()
    finally:
        silent.unlink(missing_ok=True)


async def test_defect_01_slow_consumer_loses_nothing():
    """Go dropped events (terminal ones too) when its 128-slot channels were full."""
    async with open_session(
        "claude", initial=req("x"), driver=fake_driver("claude_bidi_replay_steer_merged"), buffer=1
    ) as s:
        first = await s.submit(req("[[SLOW:6:0.4]] first"))
        second = await s.submit(req("second message"))
        third = await s.submit(req("third message"))
        await trio.sleep(0.5)  # nobody reads while claude answers everything
        events = await collect(s, {first.turn_id, second.turn_id, third.turn_id})
    terminals = [e for e in events if e.kind.terminal]
    assert {e.turn_id for e in terminals} == {first.turn_id, second.turn_id, third.turn_id}


async def test_backend_run_includes_steered_replies():
    backend_cfg = ClaudeConfig()

    def factory(config, initial):
        return fake_driver("claude_bidi_replay_steer_merged")

    async with SessionBackend("claude", backend_cfg, driver_factory=factory) as backend:
        request = RunRequest(user_text="[[SLOW:6:0.4]] first", env={"ALICE_SESSION_KEY": "k"})
        progress: list[str] = []
        result_box = []

        async def run():
            result_box.append(await backend.run(request.evolve(on_progress=progress.append)))

        async with trio.open_nursery() as n:
            n.start_soon(run)
            with trio.fail_after(10):
                while not backend.open_sessions() or backend._sessions["k"].current is None:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            await backend.steer(
                RunRequest(user_text="second message", env={"ALICE_SESSION_KEY": "k"})
            )
            await backend.steer(
                RunRequest(user_text="third message", env={"ALICE_SESSION_KEY": "k"})
            )
        result = result_box[0]
    assert result.reply.endswith("second message third message")
    assert progress[0].startswith("word0") and progress[-1] == result.reply
    assert result.usage.has_usage and len(result.next_thread_id) == 36


def test_mapper_result_without_submission_is_unknown_not_misattributed():
    m = ClaudeBidiMapper()
    events = m.feed('{"type":"result","subtype":"success","is_error":false,"result":"x"}')
    assert all(e.turn_id == "" for e in events)
    assert not any(e.kind.terminal for e in events)


# -- approvals (can_use_tool) and model switch (set_model) ---------------------------------------


def stdin_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_approver_routes_permission_prompts_to_stdio():
    plain = build_stream_invocation(ClaudeConfig(), req("x"))
    asked = build_stream_invocation(ClaudeConfig(), req("x"), permission_prompts=True)
    assert not any(a.startswith("--permission-prompt-tool") for a in plain.argv)
    assert "--permission-prompt-tool=stdio" in asked.argv


async def test_open_session_takes_an_approver_for_claude():
    """It raised ConfigError ("takes no approver") before."""
    from alice_trio.providers.registry import get_provider
    from alice_trio.sessions.registry import create_driver

    driver = create_driver(
        get_provider("claude"), ClaudeConfig(), req("x"), approver=lambda r: None
    )
    assert "--permission-prompt-tool=stdio" in driver.invocation.argv


async def test_approve_then_decline_then_switch_model(tmp_path: Path):
    """Recorded on the real claude: the approver's decisions go back as allow/deny control
    responses, a declined tool's turn still completes, and a request with another model is
    preceded by set_model (the fake server saw the new model)."""
    log = tmp_path / "stdin.jsonl"
    asked: list = []

    def approver(request):
        asked.append(request)
        return ApprovalDecision.ACCEPT if "approved" in request.command else "decline"

    driver = fake_driver(
        "claude_bidi_approvals_set_model",
        env={"FAKE_CLAUDE_STDIN_LOG": str(log)},
        approver=approver,
    )
    driver.model = driver.base_model = "claude-first-model"
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        one = await s.submit(req("[[TOOL]][[CMD:touch approved.txt]] approve this"))
        ev1 = await collect(s, {one.turn_id})
        two = await s.submit(req("[[TOOL]][[CMD:touch declined.txt]] decline this"))
        ev2 = await collect(s, {two.turn_id})
        three = await s.submit(
            RunRequest(user_text="after the switch", model="claude-second-model")
        )
        ev3 = await collect(s, {three.turn_id})
    assert [r.kind for r in asked] == ["command", "command"]
    assert asked[0].command == "touch approved.txt" and asked[0].turn_id == one.turn_id
    sent = stdin_lines(log)
    answers = [m["response"]["response"] for m in sent if m["type"] == "control_response"]
    assert answers[0]["behavior"] == "allow"
    assert answers[0]["updatedInput"]["command"] == "touch approved.txt"
    assert answers[1] == {"behavior": "deny", "message": "The user declined this tool call."}
    notices = [e.text for e in ev1 + ev2 if e.kind is EventKind.TOOL_USE and "approval" in e.text]
    assert notices == [
        "approval command: run `touch approved.txt` (Run the scripted test command) -> accept",
        "approval command: run `touch declined.txt` (Run the scripted test command) -> decline",
    ]
    assert of(ev2, two.turn_id, EventKind.TURN_COMPLETED)
    assert "declined" in of(ev2, two.turn_id, EventKind.ASSISTANT_TEXT)[-1].text
    # the switch: set_model written (and answered) before the third message
    kinds = [(m["type"], (m.get("request") or {}).get("subtype")) for m in sent]
    switch = kinds.index(("control_request", "set_model"))
    assert sent[switch]["request"]["model"] == "claude-second-model"
    assert sent[switch + 1]["message"]["content"][0]["text"] == "after the switch"
    assert of(ev3, three.turn_id, EventKind.TURN_COMPLETED)
    assert driver.model == "claude-second-model"


async def test_same_model_sends_no_set_model(tmp_path: Path):
    log = tmp_path / "stdin.jsonl"
    driver = fake_driver("claude_bidi_replay_two_turns", env={"FAKE_CLAUDE_STDIN_LOG": str(log)})
    driver.model = "m1"
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        for text in ("first turn", "second turn"):
            ref = await s.submit(RunRequest(user_text=text, model="m1"))
            await collect(s, {ref.turn_id})
    assert not any(
        m.get("type") == "control_request" and m["request"]["subtype"] == "set_model"
        for m in stdin_lines(log)
    )


@pytest.mark.parametrize("answer", ["error", None])
async def test_a_refused_or_unanswered_model_switch_raises(tmp_path: Path, answer):
    """Never silently on the old model: the submit raises and nothing is written."""
    lines = [
        json.loads(x) for x in timeline("claude_bidi_replay_two_turns").read_text().splitlines()
    ]
    init_in = next(e for e in lines if e["dir"] == "in")
    init_out = next(e for e in lines if e["dir"] == "out")
    steps = [
        init_in,
        init_out,
        {
            "dir": "in",
            "line": json.dumps(
                {"type": "control_request", "request_id": "sm", "request": {"subtype": "set_model"}}
            ),
        },
    ]
    if answer == "error":
        steps.append(
            {
                "dir": "out",
                "line": json.dumps(
                    {
                        "type": "control_response",
                        "response": {
                            "subtype": "error",
                            "request_id": "sm",
                            "error": "unknown model",
                        },
                    }
                ),
            }
        )
    script = tmp_path / "t.jsonl"
    script.write_text("\n".join(json.dumps(e) for e in steps) + "\n")
    log = tmp_path / "stdin.jsonl"
    inv = Invocation(
        argv=(sys.executable, str(FAKE), str(script)),
        env={"FAKE_CLAUDE_STDIN_LOG": str(log)},
        limits=RunLimits(kill_grace=0.2),
    )
    driver = ClaudeStreamDriver(
        ClaudeConfig(model="m1"), req("x"), invocation=inv, interrupt_deadline=0.5, close_grace=0.5
    )
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        with pytest.raises(ProtocolError, match="model 'm2'") as info:
            await s.submit(RunRequest(user_text="hello", model="m2"))
        if answer == "error":
            assert "unknown model" in str(info.value)
    assert driver.model == "m1"
    assert [m["type"] for m in stdin_lines(log)] == ["control_request", "control_request"]


def test_permission_request_kinds_and_responses():
    from alice_trio.protocols.claude_stream import permission_request, permission_response

    write = permission_request("r1", {"tool_name": "Write", "input": {"file_path": "/w/a.txt"}})
    assert write.kind == "file_change" and write.paths == ("/w/a.txt",)
    other = permission_request("r2", {"tool_name": "WebFetch", "input": {"url": "u"}})
    assert other.kind == "tool" and "WebFetch" in other.summary
    cancel = json.loads(permission_response("r2", other, ApprovalDecision.CANCEL))
    assert cancel["response"]["response"]["interrupt"] is True
    junk = json.loads(permission_response("r2", other, object()))
    assert junk["response"]["response"]["behavior"] == "deny"
    q = permission_request(
        "r3",
        {
            "tool_name": "AskUserQuestion",
            "input": {
                "questions": [
                    {
                        "question": "Which color?",
                        "header": "Color",
                        "multiSelect": False,
                        "options": [
                            {"label": "red", "description": ""},
                            {"label": "blue", "description": ""},
                        ],
                    }
                ]
            },
        },
    )
    assert q.kind == "question" and q.question.questions[0].options[1].label == "blue"
    yes = json.loads(permission_response("r3", q, {"Which color?": "blue"}))["response"]["response"]
    assert yes["behavior"] == "allow" and yes["updatedInput"]["answers"] == {"Which color?": "blue"}
    no = json.loads(permission_response("r3", q, None))["response"]["response"]
    assert no["behavior"] == "deny"


def test_mapper_without_permission_handling_refuses_can_use_tool():
    m = ClaudeBidiMapper()
    line = json.dumps(
        {
            "type": "control_request",
            "request_id": "p1",
            "request": {"subtype": "can_use_tool", "tool_name": "Bash", "input": {}},
        }
    )
    m.feed(line)
    assert not m.permission_requests and b'"error"' in m.outgoing[0]
    m2 = ClaudeBidiMapper(handles_permissions=True)
    assert m2.feed(line) == [] and m2.permission_requests[0][0] == "p1"
    m2.feed('{"type":"control_cancel_request","request_id":"p1"}')
    assert m2.cancelled_requests == ["p1"]


# -- the warm pool's spare warm-up -------------------------------------------------------------

ECHO = HERE / "fake_claude_echo.py"


def _stdin_lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _echo_factory(log: Path, refuse: str = ""):
    env = {"FAKE_CLAUDE_STDIN_LOG": str(log), "FAKE_CLAUDE_REFUSE": refuse}

    def factory(config, initial):
        inv = Invocation(argv=(sys.executable, str(ECHO)), env=env, limits=RunLimits())
        return ClaudeStreamDriver(ClaudeConfig(), initial, invocation=inv, close_grace=1.0)

    return factory


async def _spare_ready(backend: SessionBackend) -> None:
    with trio.fail_after(30):
        while not backend.pool.spares:  # noqa: ASYNC110 - the pool has no event for it
            await trio.sleep(0.02)


@pytest.mark.parametrize("refuse", ["", "get_context_usage"])
async def test_a_spare_is_warmed_up_with_a_summary_context_usage_and_no_message(
    tmp_path: Path, refuse: str
):
    """claude sets a conversation up lazily at its first user message; a spare of the warm
    pool is ready only after ``get_context_usage`` (``detail: summary``: local estimates, no
    token-count or model call) was answered. No user message is sent before the first run,
    and a claude that refuses the request (an older one) still serves the run."""
    log = tmp_path / "stdin.jsonl"
    factory = _echo_factory(log, refuse)
    async with SessionBackend("claude", driver_factory=factory, scaling=ScalingConfig()) as b:
        await _spare_ready(b)
        sent = _stdin_lines(log)
        assert [m["request"]["subtype"] for m in sent] == ["initialize", "get_context_usage"]
        assert sent[1]["request"]["detail"] == "summary"
        assert b.pool.spares[0].warmed_up is (not refuse)
        result = await b.run(RunRequest(user_text="hi", env={"ALICE_SESSION_KEY": "k"}))
        assert result.reply == "echo: hi"
    first_process = _stdin_lines(log)[:3]
    assert [m["type"] for m in first_process] == ["control_request", "control_request", "user"]


async def test_warm_up_of_a_closed_driver_raises_session_closed(tmp_path: Path):
    from alice_trio.errors import SessionClosedError

    driver = _echo_factory(tmp_path / "log")(ClaudeConfig(), RunRequest(user_text=""))
    with pytest.raises(SessionClosedError):
        await driver.warm_up()


# -- what a submit is told when claude is gone ---------------------------------------------------

#: answers initialize, waits for the first bytes of a message, then closes its stdout (saying
#: why on stderr) and either exits 5 without reading on (``exit``) or reads stdin to its end
#: and exits 0 (``stay``: only stopped by us)
GONE_CLAUDE = r"""
import json, os, select, sys
req = json.loads(sys.stdin.readline())
print(json.dumps({"type": "control_response", "response": {"subtype": "success",
      "request_id": req["request_id"], "response": {}}}), flush=True)
select.select([0], [], [])
sys.stderr.write("fatal: lost my output\n"); sys.stderr.flush()
os.close(1)
if sys.argv[1] == "exit":
    os._exit(5)
while os.read(0, 65536):
    pass
"""


def _gone_driver(mode: str) -> ClaudeStreamDriver:
    inv = Invocation(
        argv=(sys.executable, "-c", GONE_CLAUDE, mode), limits=RunLimits(kill_grace=0.5)
    )
    return ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)


async def test_a_message_to_a_claude_that_died_says_it_exited_with_its_status_and_stderr():
    """Before: ``claude process closed its input (still running)`` — claude had exited 5."""
    async with open_session("claude", initial=req("x"), driver=_gone_driver("exit")) as s:
        with pytest.raises(TransportClosedError) as info:
            await s.submit(req("y" * (4 << 20)))  # bigger than the pipe: written as it dies
    assert info.value.message.startswith("claude exited (exit status 5)"), info.value.message
    assert "fatal: lost my output" in info.value.stderr_tail


async def test_a_claude_that_closed_its_output_is_reported_as_such_not_as_exited():
    """Before: ``claude exited during the turn (exit status 0)`` — claude closed its output
    and exited 0 only when we closed its stdin."""
    async with open_session("claude", initial=req("x"), driver=_gone_driver("stay")) as s:
        ref = await s.submit(req("hello"))
        events = await collect(s, {ref.turn_id})
    err = events[-1]
    assert err.kind is EventKind.ERROR and err.turn_id == ref.turn_id
    assert err.error.startswith(
        "claude closed its output and was stopped during the turn (exit status 0)"
    ), err.error
    assert "fatal: lost my output" in err.error


def with_spurious_result(tmp_path: Path, name: str, after_in: int) -> Path:
    """Timeline ``name`` with a copy of the first ``result`` printed right after claude read
    its ``after_in``-th stdin line (a duplicate: no CLI turn printed anything since)."""
    entries = [json.loads(x) for x in timeline(name).read_text().splitlines() if x.strip()]
    first = next(e for e in entries if e["dir"] == "out" and '"type":"result"' in e["line"])
    ins = [i for i, e in enumerate(entries) if e["dir"] == "in"]
    at = ins[after_in - 1] + 1
    entries.insert(at, {**first})
    path = tmp_path / f"{name}.spurious.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [("claude_bidi_replay_two_turns", "first turn", "second turn"),  # claude echoes messages
     ("claude_bidi", "first turn: say hello", "[[TOOL]] second turn: run a command")],  # no echo
)  # fmt: skip
async def test_a_duplicate_result_read_while_the_next_turn_waits_is_not_its_reply(
    tmp_path: Path, name: str, first: str, second: str
) -> None:
    """A ``result`` with no CLI turn output since the previous one (here the first turn's,
    again, read once the second message was sent) completed the oldest pending message: the
    second turn ended with the first turn's reply, and every later reply shifted by one."""
    inv = Invocation(
        argv=(sys.executable, str(FAKE), str(with_spurious_result(tmp_path, name, 3))),
        limits=RunLimits(kill_grace=0.5),
    )
    driver = ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        one = await s.submit(req(first))
        ev1 = await collect(s, {one.turn_id})
        two = await s.submit(req(second))
        ev2 = await collect(s, {two.turn_id})
    reply1 = of(ev1, one.turn_id, EventKind.ASSISTANT_TEXT)[-1].text
    texts2 = [e.text for e in of(ev2, two.turn_id, EventKind.ASSISTANT_TEXT)]
    assert texts2 and reply1 not in texts2
    if name == "claude_bidi":
        assert texts2[-1].startswith("The tool returned")
    else:
        assert texts2[-1].endswith("You said: second turn")
    assert len(of(ev2, two.turn_id, EventKind.TURN_COMPLETED)) == 1
    stray = [e for e in ev2 if e.kind is EventKind.UNKNOWN and "no submitted message" in e.text]
    assert len(stray) == 1 and stray[0].turn_id == ""


def test_mapper_a_result_right_after_a_result_completes_nothing() -> None:
    m = ClaudeBidiMapper()
    m.submit("t1", "hi")
    result = '{"type":"result","subtype":"success","is_error":false,"result":"one"}'
    m.feed('{"type":"system","subtype":"init","session_id":"s"}')
    assert [e.turn_id for e in m.feed(result) if e.kind.terminal] == ["t1"]
    m.submit("t2", "again")
    assert not any(e.kind.terminal or e.turn_id for e in m.feed(result))  # the duplicate
    assert [s.turn_id for s in m.pending] == ["t2"]
    m.feed('{"type":"assistant","message":{"content":[{"type":"text","text":"two"}]}}')
    assert [e.turn_id for e in m.feed(result) if e.kind.terminal] == ["t2"]


def bare_result_timeline(tmp_path: Path, *, duplicate: bool = False) -> Path:
    """The recorded handshake, then a turn whose only output is its ``result`` (no init, no
    echo, no assistant text: ``result`` ``""``), then a normal turn; ``duplicate``: the bare
    result is printed twice."""
    recorded = [json.loads(x) for x in timeline("claude_bidi").read_text().splitlines() if x]
    handshake = recorded[:2]
    assert handshake[0]["dir"] == "in" and handshake[1]["dir"] == "out"

    def out(obj: dict) -> dict:
        return {"dir": "out", "line": json.dumps(obj)}

    bare = out({"type": "result", "subtype": "success", "is_error": False, "result": "",
                "session_id": "S", "uuid": "u-1", "usage": {"input_tokens": 3}})  # fmt: skip
    entries = [*handshake, {"dir": "in", "line": ""}, bare, *([bare] if duplicate else []),
               {"dir": "in", "line": ""},
               out({"type": "system", "subtype": "init", "session_id": "S", "tools": []}),
               out({"type": "assistant", "session_id": "S",
                    "message": {"content": [{"type": "text", "text": "two"}]}}),
               out({"type": "result", "subtype": "success", "is_error": False, "result": "two",
                    "session_id": "S", "uuid": "u-2"})]  # fmt: skip
    path = tmp_path / "bare.timeline.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return path


@pytest.mark.parametrize("duplicate", [False, True], ids=["bare", "bare-then-duplicate"])
async def test_a_result_with_no_output_before_it_ends_the_turn_at_once(
    tmp_path: Path, duplicate: bool
) -> None:
    """A turn whose only output is its ``result`` waited for the session's timeout (the
    result was taken for a stray duplicate); it ends at once with no reply, like a one-shot
    run. A real duplicate of it (same uuid) still completes nothing."""
    inv = Invocation(argv=(sys.executable, str(FAKE), str(bare_result_timeline(
        tmp_path, duplicate=duplicate))), limits=RunLimits(kill_grace=0.5))  # fmt: skip
    driver = ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        one = await s.submit(req("first"))
        with trio.fail_after(20):
            ev1 = await collect(s, {one.turn_id})
        ends = [e.kind for e in ev1 if e.turn_id == one.turn_id and e.kind.terminal]
        assert ends == [EventKind.TURN_COMPLETED], ev1
        assert not [e.text for e in of(ev1, one.turn_id, EventKind.ASSISTANT_TEXT) if e.text]
        two = await s.submit(req("second"))
        with trio.fail_after(20):
            ev2 = await collect(s, {two.turn_id})
        assert [e.text for e in of(ev2, two.turn_id, EventKind.ASSISTANT_TEXT)] == ["two"]
        assert len(of(ev2, two.turn_id, EventKind.TURN_COMPLETED)) == 1


def steer_taken_after_the_last_text(tmp_path: Path) -> Path:
    """The recorded steer_tool timeline, with claude taking the steered message in (its echo)
    only after the turn's last assistant text, right before the ``result``."""
    entries = [
        json.loads(x)
        for x in timeline("claude_bidi_replay_steer_tool").read_text().splitlines()
        if x.strip()
    ]
    echo = next(
        i for i, e in enumerate(entries)
        if e["dir"] == "out" and '"isReplay":true' in e["line"].replace(" ", "")
        and "second message" in e["line"]
    )  # fmt: skip
    moved = entries.pop(echo)
    result = next(
        i for i, e in enumerate(entries) if e["dir"] == "out" and '"type":"result"' in e["line"]
    )
    entries.insert(result, moved)
    path = tmp_path / "steer_late_echo.timeline.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return path


async def test_a_steered_message_taken_in_after_the_last_text_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    """The steered message's turn got the running turn's final text as its reply although
    claude wrote that text before it took the message in (it repeated the previous turn's
    reply). Now such a turn ends with no reply of its own; a steered message taken in before
    the text (the recording) still shares the reply written after it."""
    inv = Invocation(argv=(sys.executable, str(FAKE), str(steer_taken_after_the_last_text(
        tmp_path))), limits=RunLimits(kill_grace=0.5))  # fmt: skip
    driver = ClaudeStreamDriver(ClaudeConfig(), req("x"), invocation=inv, close_grace=1.0)
    async with open_session("claude", initial=req("x"), driver=driver) as s:
        first = await s.submit(req("[[TOOL]] [[CMD:sleep 1.5; echo hi]] first"))
        second = await s.submit(req("second message"))
        events = await collect(s, {first.turn_id, second.turn_id})
    assert of(events, first.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == (
        "The tool returned: hi. Done."
    )
    assert of(events, second.turn_id, EventKind.STEER_CONSUMED)
    assert of(events, second.turn_id, EventKind.TURN_COMPLETED)
    assert of(events, second.turn_id, EventKind.ASSISTANT_TEXT) == []
