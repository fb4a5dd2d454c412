"""opencode serve events → turn events, pure (spec §6.5.1 with the §13.5/§13.16 fixes).

The payload of each SSE event is ``{"type": …, "properties": {…}}``; only events of our
session (``sessionID`` of the properties, the message info or the part) count.

**Attribution.** Each ``prompt_async`` is a *submission* with a turn id. opencode creates one
user message per prompt (``message.updated`` role ``user`` + its text part, possibly *after* the
POST returned); the text binds that message id to the oldest unbound submission with the same
text (else the oldest unbound one). Assistant messages carry ``parentID`` = the user message
they answer, so their parts belong to that submission. A prompt sent while the session is busy
may be answered together with the one before it (opencode answers the latest user message):
completing a submission completes every earlier bound one too, each getting the final reply.

**Completion.** An assistant ``message.updated`` with ``time.completed`` and a ``finish`` other
than ``tool-calls``/``unknown`` completes its submission (usage = the sum over the assistant
messages of the turn, last tokens per message). ``info.error`` ends it (``MessageAbortedError``
→ ``turn_interrupted``, else ``error``); so does ``session.error``. ``session.idle`` completes
every bound submission — also a tool-only turn or one whose ``message.updated`` was lost —
and, after an interrupt, the unbound ones as well (an idle *before* a prompt's user message
exists never completes that prompt).

**Parts.** Text and reasoning parts are emitted once, when complete (``time.end`` or no
``time``); tool parts give ``tool_use`` once when the call starts and ``tool_result`` once when
it ends (no duplicate per state update); deltas are ignored. ``question.asked`` gives a
``question`` event. Feeding the same event twice (a replayed snapshot after a reconnect) emits
nothing new. Nothing here raises on input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..models import EventKind, QuestionInfo, QuestionOption, TurnEvent, TurnQuestion, Usage
from ..providers.base import as_list, as_str
from ..providers.opencode import format_tool_part, usage_from_tokens
from .approval import ApprovalDecision, ApprovalRequest

__all__ = ["OcSubmission", "OpenCodeMapper", "parse_question"]

_CONTINUE = frozenset({"", "tool-calls", "unknown"})
_ABORTED = "MessageAbortedError"


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@attrs.define
class OcSubmission:
    turn_id: str
    text: str
    user_msg: str = ""
    reply: str = ""
    usage: dict[str, Usage] = attrs.Factory(dict)


def parse_question(props: Mapping[str, Any]) -> TurnQuestion | None:
    rid = as_str(props.get("requestID")) or as_str(props.get("id"))
    items = props.get("questions")
    questions: list[QuestionInfo] = []
    for q in items if isinstance(items, list) else ():
        q = _d(q)
        text = as_str(q.get("question"))
        if not text:
            continue
        options = tuple(
            QuestionOption(
                label=as_str(_d(o).get("label")), description=as_str(_d(o).get("description"))
            )
            for o in as_list(q.get("options"))
            if as_str(_d(o).get("label"))
        )
        questions.append(
            QuestionInfo(
                question=text,
                header=as_str(q.get("header")),
                options=options,
                multiple=q.get("multiple") is True,
                custom=q.get("custom") is True,
            )
        )
    if not rid or not questions:
        return None
    return TurnQuestion(request_id=rid, questions=tuple(questions))


def _error_text(error: Any) -> str:
    err = _d(error)
    return (
        as_str(_d(err.get("data")).get("message"))
        or as_str(err.get("message"))
        or as_str(err.get("name"))
    )


class OpenCodeMapper:
    """State of one opencode session's event stream (see the module docstring)."""

    provider = "opencode"

    def __init__(self, *, session_id: str = "") -> None:
        self.session_id = session_id
        self.pending: list[OcSubmission] = []
        self.interrupt_requested = False
        self._roles: dict[str, str] = {}
        self._parents: dict[str, str] = {}  # assistant message id -> user message id
        self._emitted: set[str] = set()  # keys of parts already reported
        self._completed_msgs: set[str] = set()

    def submit(self, turn_id: str, text: str) -> None:
        self.pending.append(OcSubmission(turn_id=turn_id, text=text.strip()))

    def take_pending(self) -> list[str]:
        """The turn ids of every pending submission, forgetting them (the process is gone)."""
        pending, self.pending = self.pending, []
        return [sub.turn_id for sub in pending]

    def withdraw(self, turn_id: str) -> None:
        """Forget a submission whose post failed: no output will ever belong to it."""
        self.pending = [sub for sub in self.pending if sub.turn_id != turn_id]

    # -- helpers --------------------------------------------------------------------------------
    def _ours(self, *candidates: Any) -> bool:
        for c in candidates:
            sid = as_str(c)
            if sid:
                return sid == self.session_id
        return False

    def _sub_for_user(self, user_msg: str) -> OcSubmission | None:
        for sub in self.pending:
            if sub.user_msg and sub.user_msg == user_msg:
                return sub
        return None

    def _owner(self, msg_id: str) -> OcSubmission | None:
        parent = self._parents.get(msg_id, "")
        if parent:
            sub = self._sub_for_user(parent)
            if sub is not None:
                return sub
        bound = [s for s in self.pending if s.user_msg]
        return bound[-1] if bound else (self.pending[0] if self.pending else None)

    def _event(self, kind: EventKind, sub: OcSubmission | None, raw: str, **kw: Any) -> TurnEvent:
        return TurnEvent(
            kind=kind,
            raw=raw,
            provider=self.provider,
            thread_id=self.session_id,
            turn_id=sub.turn_id if sub else "",
            **kw,
        )

    def _finish(
        self,
        upto: OcSubmission | None,
        kind: EventKind,
        raw: str,
        *,
        error: str = "",
        include_unbound: bool = False,
    ) -> list[TurnEvent]:
        """End ``upto`` and every earlier bound submission (all bound ones when None)."""
        done: list[OcSubmission] = []
        for sub in self.pending:
            if sub.user_msg or include_unbound:
                done.append(sub)
            if sub is upto:
                break
        if upto is not None and upto not in done:
            done.append(upto)
        if not done:
            return []
        owner = upto if upto is not None else done[-1]
        total = Usage()
        for sub in done:
            for u in sub.usage.values():
                total = total + u
        out: list[TurnEvent] = []
        for sub in done:
            usage = total if sub is owner and total.has_usage else None
            if kind is EventKind.TURN_COMPLETED and sub is not owner and owner.reply:
                out.append(self._event(EventKind.ASSISTANT_TEXT, sub, raw, text=owner.reply))
            out.append(self._event(kind, sub, raw, usage=usage, error=error))
        finished = {id(s) for s in done}
        self.pending = [s for s in self.pending if id(s) not in finished]
        if not self.pending:
            self.interrupt_requested = False
        return out

    # -- events ---------------------------------------------------------------------------------
    def feed(self, payload: Mapping[str, Any], raw: str = "") -> list[TurnEvent]:
        kind = as_str(payload.get("type"))
        props = _d(payload.get("properties"))
        if not props:
            return []
        if kind == "message.updated":
            return self._message(props, raw)
        if kind == "message.part.updated":
            return self._part(props, raw)
        if kind == "session.idle":
            if not self._ours(props.get("sessionID")):
                return []
            final = (
                EventKind.TURN_INTERRUPTED
                if self.interrupt_requested
                else (EventKind.TURN_COMPLETED)
            )
            return self._finish(None, final, raw, include_unbound=self.interrupt_requested)
        if kind == "session.error":
            if not self._ours(props.get("sessionID")):
                return []
            error = _d(props.get("error"))
            if as_str(error.get("name")) == _ABORTED or self.interrupt_requested:
                return self._finish(
                    None, EventKind.TURN_INTERRUPTED, raw, include_unbound=self.interrupt_requested
                )
            text = f"opencode turn failed: {_error_text(error) or 'unknown error'}"
            return self._finish(None, EventKind.ERROR, raw, error=text)
        if kind == "question.asked":
            if not self._ours(props.get("sessionID")):
                return []
            question = parse_question(props)
            if question is None:
                return []
            key = f"question:{question.request_id}"
            if key in self._emitted:
                return []
            self._emitted.add(key)
            return [
                self._event(
                    EventKind.QUESTION,
                    self._owner(""),
                    raw,
                    question=question,
                    text=question.questions[0].question,
                )
            ]
        return []

    def _message(self, props: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        info = _d(props.get("info"))
        if not self._ours(props.get("sessionID"), info.get("sessionID")):
            return []
        msg_id = as_str(info.get("id"))
        role = as_str(info.get("role")).lower()
        if msg_id:
            self._roles[msg_id] = role
        if role != "assistant":
            return []
        parent = as_str(info.get("parentID"))
        if msg_id and parent:
            self._parents[msg_id] = parent
        if msg_id in self._completed_msgs:
            return []
        sub = self._owner(msg_id)
        if sub is None:
            return []
        completed = "completed" in _d(info.get("time"))
        if info.get("error") is not None and "error" in info:
            self._completed_msgs.add(msg_id)
            error = _d(info.get("error"))
            if as_str(error.get("name")) == _ABORTED:
                return self._finish(sub, EventKind.TURN_INTERRUPTED, raw)
            text = f"opencode turn failed: {_error_text(error) or 'unknown error'}"
            return self._finish(sub, EventKind.ERROR, raw, error=text)
        if completed:
            self._completed_msgs.add(msg_id)
            tokens = info.get("tokens")
            if isinstance(tokens, dict):
                sub.usage[msg_id] = usage_from_tokens(tokens)
            if as_str(info.get("finish")).lower() not in _CONTINUE:
                return self._finish(sub, EventKind.TURN_COMPLETED, raw)
        return []

    def _part(self, props: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        part = _d(props.get("part"))
        if not part or not self._ours(props.get("sessionID"), part.get("sessionID")):
            return []
        ptype = as_str(part.get("type")).lower()
        msg_id = as_str(part.get("messageID")) or as_str(props.get("messageID"))
        part_id = as_str(part.get("id")) or f"{msg_id}:{ptype}"
        role = self._roles.get(msg_id, "")
        if ptype == "text":
            text = as_str(part.get("text"))
            if role == "user":
                return self._user_text(msg_id, part_id, text, raw)
            if part.get("ignored") is True or part.get("synthetic") is True or not text:
                return []
            time = part.get("time")
            if isinstance(time, dict) and time and "end" not in time:
                return []
            if part_id in self._emitted:
                return []
            self._emitted.add(part_id)
            sub = self._owner(msg_id)
            if sub is not None:
                sub.reply = text
            return [self._event(EventKind.ASSISTANT_TEXT, sub, raw, text=text)]
        if ptype == "reasoning":
            text = as_str(part.get("text"))
            time = part.get("time")
            if not text or (isinstance(time, dict) and time and "end" not in time):
                return []
            if part_id in self._emitted:
                return []
            self._emitted.add(part_id)
            return [self._event(EventKind.REASONING, self._owner(msg_id), raw, text=text)]
        if ptype == "tool":
            status = as_str(_d(part.get("state")).get("status")).lower()
            out: list[TurnEvent] = []
            sub = self._owner(msg_id)
            if status in ("running", "completed", "error") and f"{part_id}:use" not in (
                self._emitted
            ):
                self._emitted.add(f"{part_id}:use")
                out.append(self._event(EventKind.TOOL_USE, sub, raw, text=format_tool_part(part)))
            if status in ("completed", "error") and f"{part_id}:end" not in self._emitted:
                self._emitted.add(f"{part_id}:end")
                state = _d(part.get("state"))
                result = as_str(state.get("output")) or as_str(state.get("error"))
                text = f"tool_result tool=`{as_str(part.get('tool'))}` status=`{status}`"
                out.append(
                    self._event(
                        EventKind.TOOL_RESULT,
                        sub,
                        raw,
                        text=f"{text}: {result}" if result else text,
                    )
                )
            return out
        return []

    def _user_text(self, msg_id: str, part_id: str, text: str, raw: str) -> list[TurnEvent]:
        if not msg_id or not text:
            return []
        sub = self._sub_for_user(msg_id)
        if sub is None:
            unbound = [s for s in self.pending if not s.user_msg]
            sub = next((s for s in unbound if s.text == text), unbound[0] if unbound else None)
            if sub is not None:
                sub.user_msg = msg_id
        if part_id in self._emitted or sub is None:
            return []
        self._emitted.add(part_id)
        return [self._event(EventKind.USER_TEXT, sub, raw, text=text)]


# -- permission prompts (``permission.asked``) and questions as approval requests ----------------
# (used by :mod:`alice_trio.sessions.opencode_serve`)

#: the ``message`` of a declined permission: opencode hands it to the model and the turn goes on
DECLINE_MESSAGE = "The user declined this tool call."


def permission_request(props: Mapping[str, Any], *, turn_id: str = "") -> ApprovalRequest | None:
    """The :class:`ApprovalRequest` of a ``permission.asked`` event (``None`` without an id):
    ``command`` for ``bash`` (the command from ``metadata.command`` or the patterns),
    ``file_change`` for ``edit``/``write`` (paths from ``metadata.filepath`` / the patterns),
    else ``permissions``."""
    rid = as_str(props.get("id"))
    if not rid:
        return None
    permission = as_str(props.get("permission"))
    meta = _d(props.get("metadata"))
    patterns = tuple(as_str(p) for p in props.get("patterns") or () if as_str(p))
    common: dict[str, Any] = {
        "provider": "opencode", "method": "permission.asked", "params": dict(props),
        "thread_id": as_str(props.get("sessionID")), "turn_id": turn_id,
    }  # fmt: skip
    if permission == "bash":
        command = as_str(meta.get("command")) or " ".join(patterns)
        return ApprovalRequest(kind="command", command=command, summary=f"run `{command}`",
                               **common)  # fmt: skip
    if permission in ("edit", "write"):
        path = as_str(meta.get("filepath")) or as_str(meta.get("filePath"))
        paths = (path,) if path else patterns
        summary = f"{permission} {', '.join(paths)}".strip()
        return ApprovalRequest(kind="file_change", paths=paths, summary=summary, **common)
    summary = f"{permission or 'permission'}: {', '.join(patterns)}".strip().rstrip(":")
    return ApprovalRequest(kind="permissions", summary=summary, **common)


def permission_reply(answer: Any) -> dict[str, Any]:
    """The ``/permission/{id}/reply`` body: ACCEPT → ``once``, ACCEPT_FOR_SESSION →
    ``always``, DECLINE → ``reject`` with :data:`DECLINE_MESSAGE` (the model is told and
    continues), CANCEL (or anything else) → ``reject`` alone (opencode ends the turn)."""
    if answer is ApprovalDecision.ACCEPT:
        return {"reply": "once"}
    if answer is ApprovalDecision.ACCEPT_FOR_SESSION:
        return {"reply": "always"}
    if answer is ApprovalDecision.DECLINE:
        return {"reply": "reject", "message": DECLINE_MESSAGE}
    return {"reply": "reject"}


def question_request(
    question: TurnQuestion, *, session_id: str = "", turn_id: str = ""
) -> ApprovalRequest:
    """A ``question.asked`` question as a ``question`` :class:`ApprovalRequest`."""
    return ApprovalRequest(
        provider="opencode", kind="question", question=question, method="question.asked",
        summary="; ".join(q.question for q in question.questions), thread_id=session_id,
        turn_id=turn_id,
    )  # fmt: skip
