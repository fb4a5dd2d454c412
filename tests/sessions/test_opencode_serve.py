"""The opencode serve driver against an in-process fake server replaying recorded events."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import trio
from fake_opencode import (
    SID,
    TRANSCRIPTS,
    FakeOpenCode,
    assistant,
    idle,
    recorded_segments,
    user_msg,
)
from hypothesis import given
from hypothesis import strategies as st

from alice_trio.errors import AliceError, LineTooLongError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.protocols.opencode_events import OpenCodeMapper
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.driver import SubmitMode
from alice_trio.sessions.opencode_serve import OpenCodeServeDriver, find_url, prompt_body
from alice_trio.sessions.session import open_session
from alice_trio.transports.http_sse import SSEParser

WS = "/tmp/oc-ws"


def req(text: str, **kw) -> RunRequest:
    return RunRequest(user_text=text, **kw)


def driver_for(fake: FakeOpenCode, **kw) -> OpenCodeServeDriver:
    cfg = OpenCodeConfig(server_url="http://oc.test/", workspace_dir=WS)
    return OpenCodeServeDriver(cfg, req("x"), transport=fake.transport, reconnect_delay=0.01, **kw)


async def collect(session, turn_ids) -> list[TurnEvent]:
    out, left = [], set(turn_ids)
    with trio.fail_after(60):  # a hang guard, not a timing check (loaded machines)
        async for ev in session.events():
            out.append(ev)
            if ev.kind.terminal:
                left.discard(ev.turn_id)
                if not left:
                    return out
    return out


def of(events, turn_id, kind):
    return [e for e in events if e.turn_id == turn_id and e.kind is kind]


async def test_recorded_session_three_turns_tool_usage_and_abort():
    t1, t2, t3, after_abort = recorded_segments()
    fake = FakeOpenCode()
    fake.on_prompt = [t1, t2, t3]
    fake.on_abort = [after_abort]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("Say hello"))
        ea = await collect(s, {a.turn_id})
        b = await s.submit(req("FAKE_TOOL: run echo hi"))
        eb = await collect(s, {b.turn_id})
        c = await s.submit(req("FAKE_STALL hold on"))
        await s.interrupt()
        ec = await collect(s, {c.turn_id})
    assert a.thread_id == SID
    assert of(ea, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "Hello from the fake model."
    done = of(ea, a.turn_id, EventKind.TURN_COMPLETED)[0]
    assert (done.usage.input_tokens, done.usage.cached_input_tokens, done.usage.output_tokens) == (
        234,
        1000,
        49,
    )
    # defect 16: one tool_use and one tool_result for a part updated five times
    assert len(of(eb, b.turn_id, EventKind.TOOL_USE)) == 1
    assert len(of(eb, b.turn_id, EventKind.TOOL_RESULT)) == 1
    assert of(eb, b.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "The command printed: hi"
    usage_b = of(eb, b.turn_id, EventKind.TURN_COMPLETED)[0].usage
    assert usage_b.input_tokens == 2 * 234 and usage_b.output_tokens == 2 * 49  # summed
    assert ec[-1].kind is EventKind.TURN_INTERRUPTED and ec[-1].turn_id == c.turn_id


def late_abort_split():
    """The recorded aftermath of an abort cut where the real opencode may cut it: the first
    copies of its end (session.error, idle) come at once, the aborted message's final text part,
    its ``message.updated`` (MessageAbortedError) and a second idle come later — on the real CLI
    sometimes after the next prompt's user message (issue 12.10)."""
    *_, after_abort = recorded_segments()
    first = after_abort[:3]
    late = after_abort[3:] + after_abort[:1]  # + a late copy of the session.error
    assert [e["type"] for e in first] == ["session.error", "session.status", "session.idle"]
    assert any(
        e["type"] == "message.updated" and e["properties"]["info"].get("error") for e in late
    )
    return first, late


@pytest.mark.parametrize("late_at", ["before_user_message", "after_user_message"])
async def test_late_events_of_an_aborted_turn_are_not_credited_to_the_next(late_at):
    _, _, t3, _ = recorded_segments()
    first, late = late_abort_split()
    fresh = user_msg("msg_u4", "after the interrupt")
    busy = {"type": "session.status", "properties": {"sessionID": SID, "status": {"type": "busy"}}}
    answer = [busy, *assistant("msg_a4", "msg_u4", "fresh answer"), *idle()]
    fake = FakeOpenCode()
    fake.on_prompt = [
        t3,
        (late + fresh if late_at == "before_user_message" else fresh + late) + answer,
    ]
    fake.on_abort = [first]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        c = await s.submit(req("FAKE_STALL hold on"))
        await s.interrupt()
        ec = await collect(s, {c.turn_id})
        d = await s.submit(req("after the interrupt"))
        ed = await collect(s, {d.turn_id})
        with trio.move_on_after(0.2):  # nothing more may come for either turn
            ed.append(await s.events().receive())
    assert [e.kind for e in ec if e.kind.terminal] == [EventKind.TURN_INTERRUPTED]
    assert [e.kind for e in ed if e.kind.terminal] == [EventKind.TURN_COMPLETED]
    assert all(e.turn_id == d.turn_id for e in ed)
    assert [e.text for e in ed if e.kind is EventKind.ASSISTANT_TEXT] == ["fresh answer"]


@pytest.mark.parametrize("stored", [True, False])
async def test_a_completion_before_its_text_part_fetches_the_parts(stored):
    """Seen on the real opencode under load: the assistant message's completion was published
    before the final update of its text part — the reply must not be lost (nor, when the fetch
    finds nothing, may the turn hang)."""
    answer = assistant("msg_a1", "msg_u1", "the reply")
    text_part, completion = answer[1], answer[2]
    fake = FakeOpenCode()
    fake.on_prompt = [[*user_msg("msg_u1", "hi"), answer[0], completion, text_part, *idle()]]
    if stored:
        info = completion["properties"]["info"]
        fake.messages = [{"info": info, "parts": [text_part["properties"]["part"]]}]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("hi"))
        got = await collect(s, {a.turn_id})
        with trio.move_on_after(0.2):
            got.append(await s.events().receive())
    texts = [e.text for e in got if e.kind is EventKind.ASSISTANT_TEXT]
    assert texts == (["the reply"] if stored else [])
    assert [e.kind for e in got if e.kind.terminal] == [EventKind.TURN_COMPLETED]
    assert ("GET", f"/session/{SID}/message/msg_a1") in [(m, p) for m, p, *_ in fake.requests]


def test_an_interrupt_with_nothing_pending_does_not_mark_the_next_turn():
    m = OpenCodeMapper(session_id=SID)
    m.request_interrupt()  # raced with the end of the previous turn: nothing pending any more
    m.submit("t1", "hi")
    out = []
    for e in user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", finish="tool-calls"):
        out += m.feed(e)
    out += m.feed(idle()[0])
    assert [(e.kind, e.turn_id) for e in out if e.kind.terminal] == [
        (EventKind.TURN_COMPLETED, "t1")
    ]


def test_a_prompt_interrupted_before_its_user_message_keeps_its_late_answer():
    m = OpenCodeMapper(session_id=SID)
    m.submit("t1", "one")
    m.request_interrupt()
    out = m.feed(idle()[0])  # aborted before opencode created the user message
    assert [(e.kind, e.turn_id) for e in out] == [(EventKind.TURN_INTERRUPTED, "t1")]
    m.submit("t2", "two")
    out = []
    # opencode creates the first prompt's message after all and answers it, then the second
    for e in (
        user_msg("msg_u1", "one")
        + assistant("msg_a1", "msg_u1", "answer one")
        + user_msg("msg_u2", "two")
        + assistant("msg_a2", "msg_u2", "answer two")
        + idle()
    ):
        out += m.feed(e)
    assert {e.turn_id for e in out} == {"t2"}
    assert [e.text for e in out if e.kind is EventKind.ASSISTANT_TEXT] == ["answer two"]
    assert [e.kind for e in out if e.kind.terminal] == [EventKind.TURN_COMPLETED]


def test_an_idle_before_the_session_worked_on_a_bound_prompt_does_not_complete_it():
    m = OpenCodeMapper(session_id=SID)
    m.submit("t1", "hi")
    out = []
    for e in user_msg("msg_u1", "hi") + idle():  # a late idle of an earlier turn
        out += m.feed(e)
    assert not [e for e in out if e.kind.terminal]
    for e in assistant("msg_a1", "msg_u1", "yes") + idle():
        out += m.feed(e)
    assert [(e.kind, e.text) for e in out if e.kind is not EventKind.USER_TEXT] == [
        (EventKind.ASSISTANT_TEXT, "yes"),
        (EventKind.TURN_COMPLETED, ""),
    ]


async def test_defect_16_subscription_is_live_before_the_first_prompt():
    fake = FakeOpenCode()
    fake.on_prompt = [user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", "fast") + idle()]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("hi"))  # the fake publishes everything before answering 204
        events = await collect(s, {a.turn_id})
    assert of(events, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "fast"
    order = [(m, p) for m, p, _, _ in fake.requests]
    assert order.index(("GET", "/event")) < order.index(("POST", f"/session/{SID}/prompt_async"))


async def test_defect_16_directory_param_on_every_call():
    fake = FakeOpenCode()
    fake.on_prompt = [user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", "ok") + idle()]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("hi"))
        await collect(s, {a.turn_id})
        await s.driver.reply_question("que_1", [["A"]])
        await s.driver.reject_question("que_2")
        b = await s.submit(req("slow"))
        await s.interrupt()
    assert b.mode is SubmitMode.STARTED
    assert {p for _, p, _, _ in fake.requests} >= {
        "/event",
        "/session",
        "/question/que_1/reply",
        f"/session/{SID}/abort",
    }
    assert all(params.get("directory") == WS for _, _, params, _ in fake.requests)


async def test_defect_16_tool_only_turn_completes_on_idle():
    fake = FakeOpenCode()
    events = user_msg("msg_u1", "run it") + assistant(
        "msg_a1", "msg_u1", finish="tool-calls", tool=True
    )
    fake.on_prompt = [events + idle()]  # no final message.updated with finish=stop
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("run it"))
        got = await collect(s, {a.turn_id})
    assert got[-1].kind is EventKind.TURN_COMPLETED and got[-1].turn_id == a.turn_id


async def test_defect_05_opencode_steer_gets_its_own_reply():
    fake = FakeOpenCode()
    fake.on_prompt = [
        user_msg("msg_u1", "first"),  # turn 1 starts, still busy
        user_msg("msg_u2", "second")  # the steer's user message
        + assistant("msg_a1", "msg_u1", "answer one")
        + assistant("msg_a2", "msg_u2", "answer two")
        + idle(),
    ]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("first"))
        b = await s.submit(req("second"))
        assert b.mode is SubmitMode.STEERED and b.turn_id != a.turn_id
        got = await collect(s, {a.turn_id, b.turn_id})
    assert of(got, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "answer one"
    assert of(got, b.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "answer two"
    assert of(got, b.turn_id, EventKind.TURN_COMPLETED)


async def test_merged_steers_complete_together_with_the_final_reply():
    fake = FakeOpenCode()
    fake.on_prompt = [
        user_msg("msg_u1", "first"),
        user_msg("msg_u2", "second"),
        user_msg("msg_u3", "third") + assistant("msg_a1", "msg_u3", "all answered") + idle(),
    ]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        refs = [await s.submit(req(t)) for t in ("first", "second", "third")]
        got = await collect(s, {r.turn_id for r in refs})
    for r in refs:
        assert of(got, r.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "all answered"
        assert of(got, r.turn_id, EventKind.TURN_COMPLETED)


async def test_idle_before_the_prompt_user_message_does_not_complete_it():
    fake = FakeOpenCode()
    # the idle of an earlier turn is still in flight when the prompt's events arrive
    fake.on_prompt = [idle() + user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", "yes")]
    async with open_session("opencode", initial=req("x"), driver=driver_for(fake)) as s:
        a = await s.submit(req("hi"))
        got = await collect(s, {a.turn_id})
    assert of(got, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "yes"
    assert [e.kind for e in got if e.kind.terminal] == [EventKind.TURN_COMPLETED]


async def test_question_round_trip_by_callback_and_by_method():
    questions = [
        json.loads(x)
        for x in (TRANSCRIPTS / "opencode_question_asked.events.ASSEMBLED.jsonl")
        .read_text()
        .splitlines()
    ]
    for q in questions:
        q["properties"]["sessionID"] = SID
    fake = FakeOpenCode()
    fake.on_prompt = [[*user_msg("msg_u1", "ask me"), questions[0]]]
    fake.on_reply = [assistant("msg_a1", "msg_u1", "PostgreSQL it is") + idle()]
    asked = []

    def on_question(q):
        asked.append(q)
        return [["PostgreSQL"]]

    async with open_session(
        "opencode", initial=req("x"), driver=driver_for(fake, on_question=on_question)
    ) as s:
        a = await s.submit(req("ask me"))
        got = await collect(s, {a.turn_id})
    q_event = of(got, a.turn_id, EventKind.QUESTION)[0]
    assert q_event.question.request_id == "que_parsed"
    assert q_event.question.questions[0].options[0].label == "PostgreSQL"
    assert asked[0].request_id == "que_parsed"
    reply = next(r for r in fake.requests if r[1] == "/question/que_parsed/reply")
    assert reply[3] == {"answers": [["PostgreSQL"]]}
    assert got[-1].kind is EventKind.TURN_COMPLETED
    assert of(got, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "PostgreSQL it is"


async def test_reconnect_replays_the_snapshot_so_the_turn_still_ends():
    fake = FakeOpenCode()
    lost = assistant("msg_a1", "msg_u1", "said in the gap")
    fake.on_prompt = [user_msg("msg_u1", "hi")]
    fake.messages = [
        {"info": lost[-1]["properties"]["info"], "parts": [lost[1]["properties"]["part"]]}
    ]
    drv = driver_for(fake)
    async with open_session("opencode", initial=req("x"), driver=drv) as s:
        a = await s.submit(req("hi"))
        got = [await s.events().receive() for _ in range(2)]  # turn_started, user_text
        fake.drop_streams()  # the answer is published while nobody listens
        got += await collect(s, {a.turn_id})
    assert drv.reconnects >= 1
    assert of(got, a.turn_id, EventKind.ASSISTANT_TEXT)[-1].text == "said in the gap"
    assert got[-1].kind is EventKind.TURN_COMPLETED


def test_mapper_alice_normalization_fixture():
    m = OpenCodeMapper(session_id="session-1")
    m.submit("turn-1", "hello")
    out = []
    for line in (TRANSCRIPTS / "opencode_sse_normalization.events.jsonl").read_text().splitlines():
        out += m.feed(json.loads(line), line)
    kinds = [(e.kind, e.text) for e in out]
    assert (EventKind.ASSISTANT_TEXT, "middle") in kinds
    assert kinds.count((EventKind.ASSISTANT_TEXT, "middle")) == 1
    assert out[-1].kind is EventKind.TURN_COMPLETED
    assert (out[-1].usage.input_tokens, out[-1].usage.output_tokens) == (7, 11)


def test_prompt_body_and_url():
    body = prompt_body(
        req(" hi ", model="fake/fake-model", variant="high", profile="plan"), OpenCodeConfig()
    )
    assert body["parts"] == [{"type": "text", "text": "hi"}]
    assert body["model"] == {"providerID": "fake", "modelID": "fake-model"}
    assert body["variant"] == "high" and body["agent"] == "plan"
    assert find_url("opencode server listening on http://127.0.0.1:4096.") == (
        "http://127.0.0.1:4096"
    )


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_sse_parser_is_chunking_independent(cuts):
    stream = b': comment\nevent: x\ndata: {"a":1}\n\ndata: line1\ndata:line2\r\n\nid: 3\n\n'
    parser, out, pos = SSEParser(), [], 0
    for c in cuts:
        out += parser.feed(stream[pos : pos + c])
        pos += c
    out += parser.feed(stream[pos:]) + parser.feed_eof()
    assert out == ['{"a":1}', "line1\nline2"]


def test_sse_frame_limit_raises():
    parser = SSEParser(max_frame_bytes=16)
    with pytest.raises(LineTooLongError):
        parser.feed(b"data: " + b"x" * 40 + b"\n\n")


SERVE = textwrap.dedent("""
    import sys, time, os, json
    with open(sys.argv[1] + ".env", "w") as f:
        json.dump({"argv": sys.argv, "password": os.environ.get("OPENCODE_SERVER_PASSWORD"),
                   "user": os.environ.get("OPENCODE_SERVER_USERNAME")}, f)
    if not os.environ.get("OPENCODE_SERVER_PASSWORD"):
        print("Warning: OPENCODE_SERVER_PASSWORD is not set", flush=True)
    print("opencode server listening on http://127.0.0.1:4096", flush=True)
    for i in range(40000):
        sys.stdout.write("log line %d padding padding padding padding padding\\n" % i)
    sys.stdout.flush()
    open(sys.argv[1], "w").close()
    if sys.argv[2] == "crash":
        sys.stderr.write("serve crashed\\n"); sys.stderr.flush(); sys.exit(3)
    time.sleep(60)
""")


def serve_driver(fake, tmp_path, mode):
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    inv = Invocation(
        argv=(sys.executable, str(script), str(tmp_path / "drained"), mode),
        limits=RunLimits(kill_grace=0.2),
    )
    return OpenCodeServeDriver(
        OpenCodeConfig(), req("x"), transport=fake.transport, invocation=inv, reconnect_delay=0.01
    )


async def test_spawned_serve_url_is_read_and_stdout_kept_drained(tmp_path):
    fake = FakeOpenCode()
    drv = serve_driver(fake, tmp_path, "stay")
    async with open_session("opencode", initial=req("x"), driver=drv):
        assert drv.base_url == "http://127.0.0.1:4096"
        with trio.fail_after(60):
            while not (tmp_path / "drained").exists():  # noqa: ASYNC110
                await trio.sleep(0.02)
        pid = drv._proc.pid
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_serve_crash_mid_turn_is_an_error_with_stderr(tmp_path):
    fake = FakeOpenCode()
    drv = serve_driver(fake, tmp_path, "crash")
    async with open_session("opencode", initial=req("x"), driver=drv) as s:
        a = await s.submit(req("hi"))
        got = await collect(s, {a.turn_id})
    assert got[-1].kind is EventKind.ERROR
    assert "exit status 3" in got[-1].error and "serve crashed" in got[-1].error


async def test_issue_12_11_spawned_serve_gets_a_password_in_its_env_only(tmp_path):
    fake = FakeOpenCode()
    drv = serve_driver(fake, tmp_path, "stay")
    other = serve_driver(FakeOpenCode(), tmp_path, "stay")
    password = drv.secret.password
    assert len(password) >= 32 and password != other.secret.password  # one per server
    fake.password = password  # the fake answers 401 without it, like opencode serve
    fake.on_prompt = [user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", "ok") + idle()]
    async with open_session("opencode", initial=req("x"), driver=drv) as s:
        a = await s.submit(req("hi"))
        got = await collect(s, {a.turn_id})
    assert got[-1].kind is EventKind.TURN_COMPLETED
    seen = json.loads((tmp_path / "drained.env").read_text())
    assert seen["password"] == password and seen["user"] == "opencode"
    assert not any(password in arg for arg in seen["argv"])
    # every request, the event subscription included, carried the credentials
    assert {m for m, *_ in fake.requests} >= {"GET", "POST"}
    assert set(fake.authorizations) == {fake.basic(password)}
    for text in (repr(drv.secret), repr(drv.serve_invocation()), repr(drv.config)):
        assert password not in text


async def test_issue_12_11_a_wrong_password_is_a_typed_error_not_a_hang():
    fake = FakeOpenCode()
    fake.password = "the-real-one"
    drv = driver_for(fake)  # attaches without credentials
    with trio.fail_after(60), pytest.raises(AliceError) as info:
        async with open_session("opencode", initial=req("x"), driver=drv):
            pass
    assert "401" in str(info.value) and "the-real-one" not in str(info.value)


async def test_issue_12_11_attached_server_gets_the_configured_credentials():
    fake = FakeOpenCode()
    fake.password = "pw-from-env"
    cfg = OpenCodeConfig(
        server_url="http://oc.test/",
        workspace_dir=WS,
        env={"OPENCODE_SERVER_PASSWORD": "pw-from-env"},
    )
    drv = OpenCodeServeDriver(cfg, req("x"), transport=fake.transport, reconnect_delay=0.01)
    fake.on_prompt = [user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", "ok") + idle()]
    async with open_session("opencode", initial=req("x"), driver=drv) as s:
        a = await s.submit(req("hi"))
        got = await collect(s, {a.turn_id})
    assert got[-1].kind is EventKind.TURN_COMPLETED
    assert set(fake.authorizations) == {fake.basic("pw-from-env")}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_ids = st.sampled_from(["msg_u1", "msg_a1", "msg_u2", "", 7, None])
_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "message.updated",
                "message.part.updated",
                "session.idle",
                "session.error",
                "session.status",
                "question.asked",
                "other",
            ]
        ),
        "properties": st.fixed_dictionaries(
            {"sessionID": st.sampled_from([SID, "other", None])},
            optional={
                "info": st.fixed_dictionaries(
                    {
                        "id": _ids,
                        "parentID": _ids,
                        "role": st.sampled_from(["user", "assistant", 3]),
                    },
                    optional={"error": _json, "time": _json, "finish": _json, "tokens": _json},
                ),
                "part": st.fixed_dictionaries(
                    {"messageID": _ids, "type": st.sampled_from(["text", "tool", "reasoning"])},
                    optional={"text": _json, "time": _json, "state": _json, "id": _ids},
                ),
                "status": _json,
                "error": _json,
            },
        ),
    }
)


@given(st.lists(_events | _json, max_size=25), st.integers(0, 3))
def test_mapper_never_raises_and_ends_each_turn_at_most_once(events, interrupt_at):
    m = OpenCodeMapper(session_id=SID)
    m.submit("t1", "hi")
    m.submit("t2", "there")
    ended: list[str] = []
    for i, e in enumerate(events):
        if i == interrupt_at:
            m.request_interrupt()
        for out in m.feed(e) if isinstance(e, dict) else []:
            if out.kind.terminal:
                ended.append(out.turn_id)
    ended += [e.turn_id for e in m.resync_idle() if e.kind.terminal]
    assert sorted(ended) == sorted(set(ended)) and set(ended) <= {"t1", "t2"}


def _part(mid: str, part: dict) -> dict:
    return {
        "type": "message.part.updated",
        "properties": {"sessionID": SID, "part": {"messageID": mid, "sessionID": SID, **part}},
    }


def test_write_tool_and_patch_parts_are_file_changes():
    """A completed ``write`` tool part and a ``patch`` part (opencode's own list of what a
    step changed) become ``file_change`` events of the turn, each once."""
    from alice_trio.file_changes import FileChange, FileChangeKind

    m = OpenCodeMapper(session_id=SID)
    m.submit("t1", "write it")
    write = {
        "type": "tool", "tool": "write", "id": "tool_w", "callID": "c1",
        "state": {"status": "completed", "input": {"filePath": "/ws/a.py", "content": "x"}},
    }  # fmt: skip
    patch = {"type": "patch", "id": "patch_1", "hash": "h", "files": ["/ws/a.py", "/ws/b.py"]}
    events = user_msg("msg_u1", "write it") + assistant("msg_a1", "msg_u1", finish="tool-calls")
    events[-1:-1] = [_part("msg_a1", write), _part("msg_a1", write), _part("msg_a1", patch)]
    out = []
    for e in events + assistant("msg_a2", "msg_u1", "done") + idle():
        out += m.feed(e)
    changes = [(e.turn_id, e.files) for e in out if e.kind is EventKind.FILE_CHANGE]
    w = FileChangeKind.WRITTEN
    assert changes == [
        ("t1", (FileChange(path="/ws/a.py", kind=w),)),
        ("t1", (FileChange(path="/ws/a.py", kind=w), FileChange(path="/ws/b.py", kind=w))),
    ]


@pytest.mark.parametrize("base", ["initial", "config"])
async def test_a_model_switch_holds_for_its_own_turn(base):
    """opencode runs a prompt without a model on the session's *last* one: after a switch the
    driver names the base model again (the initial request's, else GET /config's). A model that
    is not provider/model raises ConfigError (before: left out, so the turn ran on whatever
    model the session last had)."""
    from fake_opencode import assistant, idle, user_msg

    from alice_trio.errors import ConfigError

    fake = FakeOpenCode()
    fake.config = {"model": "fake/base-model"}
    fake.on_prompt = [
        user_msg(f"msg_u{n}", "t") + assistant(f"msg_a{n}", f"msg_u{n}", "ok") + idle()
        for n in range(1, 4)
    ]
    initial = req("x", model="fake/base-model") if base == "initial" else req("x")
    cfg = OpenCodeConfig(server_url="http://oc.test/", workspace_dir=WS)
    driver = OpenCodeServeDriver(cfg, initial, transport=fake.transport, reconnect_delay=0.01)
    async with open_session("opencode", initial=req("x"), driver=driver) as s:
        for r in (req("one"), req("two", model="fake/other"), req("three")):
            turn = await s.submit(r)
            await collect(s, {turn.turn_id})
        with pytest.raises(ConfigError, match="provider/model"):
            await s.submit(req("four", model="no-slash"))
    models = [body.get("model") for _, path, _, body in fake.requests if "prompt_async" in path]
    other = {"providerID": "fake", "modelID": "other"}
    assert models == [None, other, {"providerID": "fake", "modelID": "base-model"}], models
    configs = [path for method, path, _, _ in fake.requests if path == "/config"]
    assert configs == ([] if base == "initial" else ["/config"])
