"""opencode serve events → turn events, pure (spec §6.5.1 with the §13.5/§13.16 fixes).

The payload of each SSE event is ``{"type": …, "properties": {…}}``; only events of our
session (``sessionID`` of the properties, the message info or the part) count.

**Attribution, by the messages' own ids.** Each ``prompt_async`` is a *submission* with a turn
id. opencode creates one user message per prompt (``message.updated`` role ``user`` + its text
part, possibly *after* the POST returned); the text binds that message id to the oldest unbound
submission with the same text (else the oldest unbound one). Assistant messages carry
``parentID`` = the user message they answer, and parts carry their ``messageID``, so they belong
to that submission. A prompt sent while the session is busy may be answered together with the
one before it (opencode answers the latest user message): completing a submission completes
every earlier bound one too, each getting the final reply.

**Late events of a finished turn are never credited to a later one.** When a submission ends,
its user message id is *retired*: an assistant message answering it, the parts of such a
message and a re-published copy of the user message are dropped from then on. opencode sends
the end of an aborted turn more than once and out of order (its ``session.idle`` first, then
``session.error``/``message.updated`` with ``MessageAbortedError``, then another idle), and those
late copies can arrive after the next prompt's user message. So the events that carry no
message id (``session.idle``, ``session.error``) only end submissions the session is known to
have worked on (*active*: an assistant message answered it, or ``session.status`` ``busy`` came
after it was bound) or that were asked to stop (an interrupt marks the submissions pending at
that moment; a later prompt is never taken as interrupted). A submission interrupted before its
user message existed is remembered by its text, and that user message — when opencode creates
it after all — is retired instead of being bound to a later prompt.

**Completion.** An assistant ``message.updated`` with ``time.completed`` and a ``finish`` other
than ``tool-calls``/``unknown`` completes its submission (usage = the sum over the assistant
messages of the turn, last tokens per message). ``info.error`` ends it (``MessageAbortedError``
→ ``turn_interrupted``, else ``error``); when no text of that message was seen yet, the driver
first fetches its parts (:meth:`OpenCodeMapper.completes_without_text`: under load opencode
published an answer's first ``message.updated`` already completed, before any of its parts).
``session.idle`` ends the interrupted submissions (also unbound ones) as ``turn_interrupted``
and completes the active ones — also a tool-only turn or one whose ``message.updated`` was
lost (an idle *before* a prompt's user message exists, or before the session worked on it,
never completes that prompt).
``session.error`` with ``MessageAbortedError`` ends the interrupted and the active submissions
as interrupted; another ``session.error`` fails the bound ones. After a reconnect
:meth:`OpenCodeMapper.resync_idle` (the session is idle per ``/session/status``) ends every
bound submission.

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

from ..file_changes import format_file_changes
from ..models import EventKind, QuestionInfo, QuestionOption, TurnEvent, TurnQuestion, Usage
from ..providers.base import as_list, as_str
from ..providers.opencode import format_tool_part, part_file_changes, usage_from_tokens
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
    #: the session worked on it (an assistant message answers it, or busy after binding)
    active: bool = False
    #: an interrupt was asked while it was pending
    interrupted: bool = False


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
        self._roles: dict[str, str] = {}
        self._parents: dict[str, str] = {}  # assistant message id -> user message id
        self._emitted: set[str] = set()  # keys of parts already reported
        self._completed_msgs: set[str] = set()
        self._retired_users: set[str] = set()  # user messages of finished submissions
        self._texted: set[str] = set()  # assistant messages whose text was reported
        self._orphans: list[str] = []  # texts of submissions interrupted before binding

    def submit(self, turn_id: str, text: str) -> None:
        self.pending.append(OcSubmission(turn_id=turn_id, text=text.strip()))

    def take_pending(self) -> list[str]:
        """The turn ids of every pending submission, forgetting them (the process is gone)."""
        pending, self.pending = self.pending, []
        return [sub.turn_id for sub in pending]

    def withdraw(self, turn_id: str) -> None:
        """Forget a submission whose prompt was not accepted: no output will ever belong to it."""
        self.pending = [sub for sub in self.pending if sub.turn_id != turn_id]

    def request_interrupt(self) -> None:
        """Mark the submissions pending now as asked to stop (later ones are not)."""
        for sub in self.pending:
            sub.interrupted = True

    @property
    def interrupt_requested(self) -> bool:
        return any(s.interrupted for s in self.pending)

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

    def _retired(self, msg_id: str) -> bool:
        """Whether ``msg_id`` is (or answers) the user message of a finished submission."""
        return bool(msg_id) and (
            msg_id in self._retired_users or self._parents.get(msg_id, "") in self._retired_users
        )

    def _owner(self, msg_id: str) -> OcSubmission | None:
        parent = self._parents.get(msg_id, "")
        if parent:
            if parent in self._retired_users:
                return None
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

    def _upto(self, sub: OcSubmission) -> list[OcSubmission]:
        """``sub`` and every bound submission before it (answered together, see module)."""
        done: list[OcSubmission] = []
        for s in self.pending:
            if s is sub:
                break
            if s.user_msg:
                done.append(s)
        return [*done, sub]

    def _close(
        self, done: list[OcSubmission], kind: EventKind, raw: str, *, error: str = ""
    ) -> list[TurnEvent]:
        """End the submissions ``done`` (pending order; the last one owns usage and reply)."""
        if not done:
            return []
        ids = {id(s) for s in done}
        done = [s for s in self.pending if id(s) in ids]
        owner = done[-1]
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
            if sub.user_msg:
                self._retired_users.add(sub.user_msg)
            elif sub.interrupted:
                self._orphans.append(sub.text)
        self.pending = [s for s in self.pending if id(s) not in ids]
        return out

    def _idle(self, raw: str, *, authoritative: bool) -> list[TurnEvent]:
        out = self._close(
            [s for s in self.pending if s.interrupted], EventKind.TURN_INTERRUPTED, raw
        )
        active = [s for s in self.pending if s.user_msg and (s.active or authoritative)]
        if active:
            out += self._close(self._upto(active[-1]), EventKind.TURN_COMPLETED, raw)
        return out

    def resync_idle(self, raw: str = "") -> list[TurnEvent]:
        """The session is idle per a fresh ``/session/status`` (after a reconnect and the replay
        of its messages): end the interrupted submissions and complete every bound one."""
        return self._idle(raw, authoritative=True)

    def completes_without_text(self, payload: Mapping[str, Any]) -> str:
        """The id of the assistant message whose ``message.updated`` ``payload`` would complete a
        turn although none of its text parts was reported yet, else "". Under load opencode
        published an answer's first ``message.updated`` already completed, before any of its parts
        (seen on 1.18.33); the driver then fetches the message's parts and feeds them first, so
        the reply is not lost."""
        if as_str(payload.get("type")) != "message.updated":
            return ""
        props = _d(payload.get("properties"))
        info = _d(props.get("info"))
        msg_id = as_str(info.get("id"))
        if (
            not msg_id
            or not self._ours(props.get("sessionID"), info.get("sessionID"))
            or as_str(info.get("role")).lower() != "assistant"
            or info.get("error") is not None
            or "completed" not in _d(info.get("time"))
            or as_str(info.get("finish")).lower() in _CONTINUE
            or msg_id in self._completed_msgs
            or msg_id in self._texted
        ):
            return ""
        parent = as_str(info.get("parentID")) or self._parents.get(msg_id, "")
        if parent in self._retired_users or not self.pending:
            return ""
        return msg_id

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
        if kind == "session.status":
            if self._ours(props.get("sessionID")):
                if as_str(_d(props.get("status")).get("type")) == "busy":
                    for sub in self.pending:
                        sub.active = sub.active or bool(sub.user_msg)
            return []
        if kind == "session.idle":
            if not self._ours(props.get("sessionID")):
                return []
            return self._idle(raw, authoritative=False)
        if kind == "session.error":
            if not self._ours(props.get("sessionID")):
                return []
            error = _d(props.get("error"))
            stopped = [s for s in self.pending if s.interrupted]
            if as_str(error.get("name")) == _ABORTED:
                # an abort nobody here asked for ends what the session was working on; a late
                # copy of an earlier abort finds no active submission and ends nothing
                stopped += [s for s in self.pending if s.active and not s.interrupted]
                return self._close(stopped, EventKind.TURN_INTERRUPTED, raw)
            out = self._close(stopped, EventKind.TURN_INTERRUPTED, raw)
            text = f"opencode turn failed: {_error_text(error) or 'unknown error'}"
            return out + self._close(
                [s for s in self.pending if s.user_msg], EventKind.ERROR, raw, error=text
            )
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
        if msg_id in self._completed_msgs or self._retired(msg_id):
            return []
        sub = self._owner(msg_id)
        if sub is None:
            return []
        sub.active = True
        completed = "completed" in _d(info.get("time"))
        if info.get("error") is not None and "error" in info:
            self._completed_msgs.add(msg_id)
            error = _d(info.get("error"))
            if as_str(error.get("name")) == _ABORTED:
                return self._close(self._upto(sub), EventKind.TURN_INTERRUPTED, raw)
            text = f"opencode turn failed: {_error_text(error) or 'unknown error'}"
            return self._close(self._upto(sub), EventKind.ERROR, raw, error=text)
        if completed:
            self._completed_msgs.add(msg_id)
            tokens = info.get("tokens")
            if isinstance(tokens, dict):
                sub.usage[msg_id] = usage_from_tokens(tokens)
            if as_str(info.get("finish")).lower() not in _CONTINUE:
                return self._close(self._upto(sub), EventKind.TURN_COMPLETED, raw)
        return []

    def _part(self, props: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        part = _d(props.get("part"))
        if not part or not self._ours(props.get("sessionID"), part.get("sessionID")):
            return []
        ptype = as_str(part.get("type")).lower()
        msg_id = as_str(part.get("messageID")) or as_str(props.get("messageID"))
        part_id = as_str(part.get("id")) or f"{msg_id}:{ptype}"
        if self._retired(msg_id):
            return []
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
            self._texted.add(msg_id)
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
                out += self._file_changes(part, sub, raw)
            return out
        if ptype == "patch" and f"{part_id}:files" not in self._emitted:
            self._emitted.add(f"{part_id}:files")
            return self._file_changes(part, self._owner(msg_id), raw)
        return []

    def _file_changes(
        self, part: Mapping[str, Any], sub: OcSubmission | None, raw: str
    ) -> list[TurnEvent]:
        """A completed write/edit tool part, or a ``patch`` part (opencode's own list of the
        files a step changed), as a ``file_change`` event."""
        files = part_file_changes(part)
        if not files:
            return []
        text = format_file_changes(files)
        return [self._event(EventKind.FILE_CHANGE, sub, raw, text=text, files=tuple(files))]

    def _user_text(self, msg_id: str, part_id: str, text: str, raw: str) -> list[TurnEvent]:
        if not msg_id or not text:
            return []
        sub = self._sub_for_user(msg_id)
        if sub is None:
            if text.strip() in self._orphans:
                # the prompt of a submission interrupted before it was bound, created late
                self._orphans.remove(text.strip())
                self._retired_users.add(msg_id)
                return []
            unbound = [s for s in self.pending if not s.user_msg]
            sub = next((s for s in unbound if s.text == text), unbound[0] if unbound else None)
            if sub is not None:
                sub.user_msg = msg_id
                self._orphans.clear()  # user messages come in prompt order: those never will
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
