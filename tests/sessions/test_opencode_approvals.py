"""opencode serve: permission prompts and questions go through the one approver (issue 14).

The ``permission.asked`` shape is the one the real opencode 1.18.33 published for a ``bash``
call with ``"permission": {"bash": "ask"}`` (recorded 2026-12-01 against the e2e fake model
server); the replies are ``/permission/{id}/reply {reply, message?}`` and
``/question/{id}/reply|reject`` (``protocol-schemas/opencode_openapi.json``).
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from fake_opencode import SID, TRANSCRIPTS, FakeOpenCode, assistant, idle, user_msg

from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent
from alice_trio.protocols.opencode_events import (
    DECLINE_MESSAGE,
    permission_reply,
    permission_request,
)
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.approval import ApprovalDecision
from alice_trio.sessions.opencode_serve import OpenCodeServeDriver
from alice_trio.sessions.session import open_session

PERMISSION = {
    "id": "evt_2319bf119001wOf3JiU03bkDsm",
    "type": "permission.asked",
    "properties": {
        "id": "per_2319bf115001XMo0fLVoSyJ3hR",
        "sessionID": SID,
        "permission": "bash",
        "patterns": ["touch oc_made.txt"],
        "metadata": {"command": "touch oc_made.txt"},
        "always": ["touch *"],
        "tool": {"messageID": "msg_a1", "callID": "call_fake_0002"},
    },
}
PER_ID = PERMISSION["properties"]["id"]


class Fake(FakeOpenCode):
    """FakeOpenCode that also serves ``/permission/{id}/reply`` (publishing ``on_permission``)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_permission: list[list[dict]] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/permission/"):
            body = json.loads(request.content) if request.content else None
            self.requests.append((request.method, request.url.path, {}, body))
            if self.on_permission:
                self.publish(self.on_permission.pop(0))
            return httpx.Response(200, json=True)
        return await super().handle(request)


def driver_for(fake: FakeOpenCode, policy: ExecPolicy | None = None, **kw) -> OpenCodeServeDriver:
    cfg = OpenCodeConfig(server_url="http://oc.test/", exec_policy=policy or ExecPolicy())
    return OpenCodeServeDriver(
        cfg, RunRequest(user_text="x"), transport=fake.transport, reconnect_delay=0.01, **kw
    )


async def collect(session, turn_id: str) -> list[TurnEvent]:
    out = []
    with trio.fail_after(5):
        async for ev in session.events():
            out.append(ev)
            if ev.kind.terminal and ev.turn_id == turn_id:
                return out
    return out


def posted(fake: FakeOpenCode, path: str) -> list:
    return [body for _, p, _, body in fake.requests if p == path]


def permission_turn(fake: Fake, reply_text: str) -> None:
    fake.on_prompt = [[*user_msg("msg_u1", "run it"), PERMISSION, PERMISSION]]  # twice: once
    fake.on_permission = [assistant("msg_a1", "msg_u1", reply_text) + idle()]


@pytest.mark.parametrize(
    ("decision", "body"),
    [
        (ApprovalDecision.ACCEPT, {"reply": "once"}),
        (ApprovalDecision.ACCEPT_FOR_SESSION, {"reply": "always"}),
        (ApprovalDecision.DECLINE, {"reply": "reject", "message": DECLINE_MESSAGE}),
        (ApprovalDecision.CANCEL, {"reply": "reject"}),
    ],
)
async def test_permission_goes_to_the_approver(decision, body):
    fake = Fake()
    permission_turn(fake, "done")
    asked = []

    async def approver(request):
        asked.append(request)
        return decision

    async with open_session(
        "opencode", initial=RunRequest(user_text="x"), driver=driver_for(fake, approver=approver)
    ) as s:
        ref = await s.submit(RunRequest(user_text="run it"))
        events = await collect(s, ref.turn_id)
    assert [(r.kind, r.command, r.turn_id) for r in asked] == [
        ("command", "touch oc_made.txt", ref.turn_id)
    ]
    assert posted(fake, f"/permission/{PER_ID}/reply") == [body]
    notice = [e.text for e in events if e.kind is EventKind.TOOL_USE]
    assert notice == [f"approval command: run `touch oc_made.txt` -> {decision.value}"]
    assert events[-1].kind is EventKind.TURN_COMPLETED


@pytest.mark.parametrize(
    ("policy", "body"),
    [
        (ExecPolicy(), {"reply": "reject", "message": DECLINE_MESSAGE}),
        (ExecPolicy(sandbox="danger-full-access", ask_for_approval="never"), {"reply": "once"}),
    ],
)
async def test_permission_without_approver_follows_the_policy_never_waits(policy, body):
    """Before: nobody answered ``permission.asked`` and the turn hung until the run timeout."""
    fake = Fake()
    permission_turn(fake, "done")
    async with open_session(
        "opencode", initial=RunRequest(user_text="x"), driver=driver_for(fake, policy)
    ) as s:
        ref = await s.submit(RunRequest(user_text="run it"))
        events = await collect(s, ref.turn_id)
    assert posted(fake, f"/permission/{PER_ID}/reply") == [body]
    assert events[-1].kind is EventKind.TURN_COMPLETED


def recorded_questions() -> list[dict]:
    path = TRANSCRIPTS / "opencode_question_asked.events.ASSEMBLED.jsonl"
    out = [json.loads(x) for x in path.read_text().splitlines()]
    for q in out:
        q["properties"]["sessionID"] = SID
    return out


async def test_question_answered_by_the_approver_in_question_order():
    fake = Fake()
    multi = recorded_questions()[1]  # Q1 (single), Q2 (multiple)
    fake.on_prompt = [[*user_msg("msg_u1", "ask me"), multi]]
    fake.on_reply = [assistant("msg_a1", "msg_u1", "thanks") + idle()]
    asked = []

    def approver(request):
        asked.append(request)
        return {"Q2": ["X", "Y"], "Q1": "A"}

    async with open_session(
        "opencode", initial=RunRequest(user_text="x"), driver=driver_for(fake, approver=approver)
    ) as s:
        ref = await s.submit(RunRequest(user_text="ask me"))
        events = await collect(s, ref.turn_id)
    assert asked[0].kind == "question" and asked[0].question.request_id == "que_multi"
    assert posted(fake, "/question/que_multi/reply") == [{"answers": [["A"], ["X", "Y"]]}]
    assert len([e for e in events if e.kind is EventKind.QUESTION]) == 1
    assert events[-1].kind is EventKind.TURN_COMPLETED


@pytest.mark.parametrize("answer", ["no approver", None, {}, RuntimeError("boom")])
async def test_unanswered_question_is_rejected_at_once(answer):
    """Before: without ``on_question`` the question only reached ``reply_question``, which no
    caller of a session can reach: the turn waited until the run timeout (48 h)."""
    fake = Fake()
    fake.on_prompt = [[*user_msg("msg_u1", "ask me"), recorded_questions()[0]]]
    kw = {}
    if answer != "no approver":

        def approver(request):
            if isinstance(answer, Exception):
                raise answer
            return answer

        kw["approver"] = approver
    driver = driver_for(fake, **kw)
    async with open_session("opencode", initial=RunRequest(user_text="x"), driver=driver) as s:
        ref = await s.submit(RunRequest(user_text="ask me"))
        with trio.fail_after(5):
            while not any(p == "/question/que_parsed/reject" for _, p, _, _ in fake.requests):  # noqa: ASYNC110
                await trio.sleep(0.01)
        fake.publish(assistant("msg_a1", "msg_u1", "fine, no answer") + idle())
        events = await collect(s, ref.turn_id)
    assert [e.kind for e in events].count(EventKind.QUESTION) == 1
    assert events[-1].kind is EventKind.TURN_COMPLETED
    assert not posted(fake, "/question/que_parsed/reply")
    if isinstance(answer, Exception):
        assert driver.approval_errors == [answer]


async def test_permission_of_another_session_is_not_answered():
    fake = Fake()
    other = json.loads(json.dumps(PERMISSION))
    other["properties"]["sessionID"] = "ses_other"
    fake.on_prompt = [[*user_msg("msg_u1", "hi"), other, *assistant("msg_a1", "msg_u1", "ok"),
                       *idle()]]  # fmt: skip
    asked = []
    driver = driver_for(fake, approver=asked.append)
    async with open_session("opencode", initial=RunRequest(user_text="x"), driver=driver) as s:
        ref = await s.submit(RunRequest(user_text="hi"))
        await collect(s, ref.turn_id)
    assert asked == [] and not posted(fake, f"/permission/{PER_ID}/reply")


def test_permission_request_kinds():
    edit = permission_request(
        {"id": "per_1", "permission": "edit", "patterns": ["a.txt"], "metadata": {}}
    )
    assert edit is not None and edit.kind == "file_change" and edit.paths == ("a.txt",)
    other = permission_request({"id": "per_2", "permission": "webfetch", "patterns": ["u"]})
    assert other is not None and other.kind == "permissions" and "webfetch" in other.summary
    assert permission_request({"permission": "bash"}) is None
    assert permission_reply(object()) == {"reply": "reject"}


def test_registry_gives_the_approver_to_the_opencode_driver():
    """It raised ConfigError ("takes no approver") before."""
    from alice_trio.providers.registry import get_provider
    from alice_trio.sessions.registry import create_driver

    def approver(request):
        return ApprovalDecision.ACCEPT

    driver = create_driver(
        get_provider("opencode"), OpenCodeConfig(), RunRequest(user_text="x"), approver=approver
    )
    assert driver.gate.approver is approver
