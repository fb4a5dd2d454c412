"""claude bidirectional stream-json, pure: stdin messages and stdout → turn events with the
reply attributed to the submission that caused it.

``claude -p --input-format stream-json --output-format stream-json --verbose
--replay-user-messages`` (checked against claude 2.1.197, recordings in
``tests/transcripts/claude_bidi/``):

* stdin: ``control_request`` ``initialize`` → ``control_response``; user messages
  ``{"type":"user","message":{"role":"user","content":[{"type":"text","text":…}]},…}``;
  ``control_request`` ``interrupt`` → ``control_response`` at once, then the partial assistant
  message, ``[Request interrupted by user]`` and a ``result`` ``error_during_execution``.
* Each CLI turn prints ``system/init`` … ``result``. A message written while a turn runs is
  **not** one turn per message: claude injects it into the running turn at the next tool
  boundary, or merges every message that waited into the *next* turn (one ``result`` for
  several messages). Counting ``result`` lines per message therefore mis-attributes replies
  (the Go driver's §13.5 problem in another form).
* With ``--replay-user-messages`` claude echoes each user message it takes into a turn as a
  ``user`` line with ``isReplay: true`` (its own uuid, our text; merged messages come back as
  one line with several text blocks; the same message can be echoed twice).

Attribution (:class:`ClaudeBidiMapper`): submissions are kept in order; an echo marks the
submissions whose text it carries as *consumed* by the current CLI turn (a steered one also
yields ``steer_consumed``). Events of a CLI turn carry the turn id of its oldest consumed
submission (else the oldest pending one). A ``result`` completes every consumed submission:
the oldest gets the terminal event with the usage; each other one gets the same terminal kind
under its own turn id, and the turn's final reply as ``assistant_text`` when claude wrote
assistant text after it took that message in (text written before claude saw a steered message
is never that message's reply: it then ends with none). A ``result`` without
any echo (a CLI that does not replay) completes the oldest pending submission — also a bare
``result`` (a turn that printed nothing else: it ends at once, with no reply, as a one-shot run
does). A ``result`` that repeats the previous one (same ``uuid``, else the same line) with no
output of a CLI turn since (no ``system``, ``assistant``, ``stream_event`` or tool ``user``
line, no echo of a pending message) is a duplicate and belongs to no turn: it completes nothing
(an ``unknown`` event without a turn id), so it can never be taken as the reply of the turn in
flight and shift every later reply by one. Per-line
decoding is :class:`~alice_trio.providers.claude.ClaudeStreamDecoder` (one per CLI turn; a line
printed while nothing is pending belongs to no turn and leaves no state for the next one).
Nothing here raises on input: unknown lines become ``unknown`` events.

Permission prompts (``--permission-prompt-tool=stdio``, recorded in
``claude_bidi_approvals_set_model``): claude writes ``control_request`` ``can_use_tool``
``{tool_name, input, description, blocked_path, tool_use_id, permission_suggestions}`` and
waits; the answer is a ``control_response`` ``success`` whose ``response`` is
``{"behavior": "allow", "updatedInput": <input>}`` (the tool runs) or ``{"behavior": "deny",
"message": …}`` (the tool does not run: the message becomes its error ``tool_result`` and the
turn goes on). claude may withdraw a prompt with ``control_cancel_request``. The mapper queues
both in :attr:`ClaudeBidiMapper.permission_requests` / ``cancelled_requests`` for the driver
(:func:`permission_request` builds the :class:`ApprovalRequest`, :func:`permission_response`
the answer line). ``AskUserQuestion`` arrives the same way; it is a ``question`` request whose
answers go back as ``updatedInput.answers`` (``{question: answer}``). ``set_model`` is a control
request of ours (``{"subtype": "set_model", "model": M}`` → ``control_response`` ``success``,
and the next API call uses ``M``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .. import safejson
from ..models import EventKind, QuestionInfo, QuestionOption, TurnEvent, TurnQuestion
from ..providers.base import as_map, as_str
from ..providers.claude import ClaudeStreamDecoder
from .approval import ApprovalDecision, ApprovalRequest

__all__ = [
    "DECLINE_MESSAGE",
    "ClaudeBidiMapper",
    "Submission",
    "control_request",
    "control_response_error",
    "permission_request",
    "permission_response",
    "user_message",
]

#: what claude's tool result says when a prompt was declined
DECLINE_MESSAGE = "The user declined this tool call."
QUESTION_TOOL = "AskUserQuestion"
_FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})


def _line(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def user_message(text: str) -> bytes:
    """One stdin line carrying a user message."""
    return _line(
        {
            "type": "user",
            "session_id": "",
            "message": {"role": "user", "content": [{"type": "text", "text": text}]},
            "parent_tool_use_id": None,
        }
    )


def control_request(request_id: str, subtype: str, **fields: Any) -> bytes:
    return _line(
        {
            "type": "control_request",
            "request_id": request_id,
            "request": {"subtype": subtype, **fields},
        }
    )


def control_response_error(request_id: str, message: str) -> bytes:
    """Our answer to a control request from claude that we do not support."""
    return _line(
        {
            "type": "control_response",
            "response": {"subtype": "error", "request_id": request_id, "error": message},
        }
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def control_response_success(request_id: str, response: Mapping[str, Any]) -> bytes:
    return _line(
        {
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": response},
        }
    )


def _question(request_id: str, data: Mapping[str, Any]) -> TurnQuestion:
    infos = []
    for q in data.get("questions") or ():
        if not isinstance(q, Mapping) or not as_str(q.get("question")):
            continue
        options = tuple(
            QuestionOption(label=as_str(o.get("label")), description=as_str(o.get("description")))
            for o in q.get("options") or ()
            if isinstance(o, Mapping) and as_str(o.get("label"))
        )
        infos.append(
            QuestionInfo(
                question=as_str(q.get("question")), header=as_str(q.get("header")),
                options=options, multiple=q.get("multiSelect") is True, custom=True,
            )
        )  # fmt: skip
    return TurnQuestion(request_id=request_id, questions=tuple(infos))


def permission_request(
    request_id: str, request: Mapping[str, Any], *, thread_id: str = "", turn_id: str = ""
) -> ApprovalRequest:
    """The :class:`ApprovalRequest` of a ``can_use_tool`` control request: ``command`` for a
    ``Bash`` call, ``file_change`` for the file-writing tools (``paths`` from ``file_path`` /
    ``notebook_path``), ``question`` for ``AskUserQuestion``, else ``tool``."""
    tool = as_str(request.get("tool_name"))
    data = _mapping(request.get("input"))
    description = as_str(request.get("description")) or as_str(request.get("title"))
    common: dict[str, Any] = {
        "provider": "claude", "method": "can_use_tool", "params": request,
        "thread_id": thread_id, "turn_id": turn_id,
    }  # fmt: skip
    if tool == QUESTION_TOOL:
        question = _question(request_id, data)
        if question.questions:
            summary = "; ".join(q.question for q in question.questions)
            return ApprovalRequest(kind="question", summary=summary, question=question, **common)
    if tool == "Bash":
        command = as_str(data.get("command"))
        summary = f"run `{command}`" + (f" ({description})" if description else "")
        return ApprovalRequest(kind="command", command=command, summary=summary, **common)
    if tool in _FILE_TOOLS:
        path = as_str(data.get("file_path")) or as_str(data.get("notebook_path"))
        paths = (path,) if path else ()
        summary = f"{tool} {path}".strip()
        return ApprovalRequest(kind="file_change", paths=paths, summary=summary, **common)
    summary = f"use {tool}" + (f" ({description})" if description else "")
    return ApprovalRequest(kind="tool", summary=summary, **common)


def permission_response(request_id: str, approval: ApprovalRequest, answer: Any) -> bytes:
    """The ``control_response`` line answering a ``can_use_tool`` request with ``answer``
    (an :class:`ApprovalDecision`, or question answers). ACCEPT and ACCEPT_FOR_SESSION allow
    with the original input (claude's own "always" rules are not written); DECLINE denies;
    CANCEL denies and asks claude to stop the turn (``interrupt``). A dismissed question is
    denied, so the agent goes on without an answer."""
    data = _mapping(_mapping(approval.params).get("input"))
    if approval.kind == "question":
        if isinstance(answer, Mapping) and answer:
            answers = {str(k): _joined(v) for k, v in answer.items()}
            allow = {"behavior": "allow", "updatedInput": {**data, "answers": answers}}
            return control_response_success(request_id, allow)
        deny = {"behavior": "deny", "message": "The user did not answer the question."}
        return control_response_success(request_id, deny)
    decision = answer if isinstance(answer, ApprovalDecision) else ApprovalDecision.DECLINE
    if decision in (ApprovalDecision.ACCEPT, ApprovalDecision.ACCEPT_FOR_SESSION):
        return control_response_success(
            request_id, {"behavior": "allow", "updatedInput": dict(data)}
        )
    response: dict[str, Any] = {"behavior": "deny", "message": DECLINE_MESSAGE}
    if decision is ApprovalDecision.CANCEL:
        response["interrupt"] = True
    return control_response_success(request_id, response)


#: stdout line types a CLI turn prints before its ``result`` (an echo counts when it consumed)
_TURN_OUTPUT = frozenset({"system", "assistant", "user", "stream_event"})


def _joined(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


@attrs.define
class Submission:
    turn_id: str
    text: str
    steered: bool = False
    consumed: bool = False
    #: how many assistant texts the CLI turn had printed when claude took this message in
    texts_before: int = 0


def _texts(message: Any) -> list[str]:
    content = message.get("content") if isinstance(message, Mapping) else None
    if isinstance(content, str):
        return [content.strip()]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping) and as_str(block.get("type")).lower() == "text":
                out.append(as_str(block.get("text")))
    return out


class ClaudeBidiMapper:
    """Stdout lines of one bidirectional claude process → events (see module docstring).

    ``control_responses`` collects ``request_id → response`` for the driver;
    ``outgoing`` collects stdin lines the driver must write (answers to claude's own control
    requests). With ``handles_permissions`` the ``can_use_tool`` requests are queued in
    ``permission_requests`` (``(request_id, ApprovalRequest)``, for the driver to answer) and
    withdrawn ones in ``cancelled_requests``; without it they are refused like any other.
    """

    provider = "claude"

    def __init__(self, *, thread_id: str = "", handles_permissions: bool = False) -> None:
        self.thread_id = thread_id
        self.handles_permissions = handles_permissions
        self.pending: list[Submission] = []
        self.control_responses: dict[str, Mapping[str, Any]] = {}
        self.outgoing: list[bytes] = []
        self.permission_requests: list[tuple[str, ApprovalRequest, str]] = []
        self.cancelled_requests: list[str] = []
        self._decoder = ClaudeStreamDecoder(thread_id=thread_id)
        #: a CLI turn printed output since the last ``result`` (see the module docstring)
        self._in_turn = False
        #: the last ``result``'s ``uuid`` (else its line): a duplicate repeats it
        self._last_result = ""
        #: assistant texts the current CLI turn printed (a steered message's reply is text
        #: printed after claude took it in: :meth:`_result`)
        self._texts = 0

    # -- submissions ----------------------------------------------------------------------------
    def submit(self, turn_id: str, text: str, *, steered: bool = False) -> None:
        self.pending.append(Submission(turn_id=turn_id, text=text.strip(), steered=steered))

    def take_pending(self) -> list[str]:
        """The turn ids of every pending submission, forgetting them (the process is gone)."""
        pending, self.pending = self.pending, []
        return [sub.turn_id for sub in pending]

    def withdraw(self, turn_id: str) -> None:
        """Forget a submission whose send failed: no output will ever belong to it."""
        self.pending = [sub for sub in self.pending if sub.turn_id != turn_id]

    def owner(self) -> str:
        """Turn id that output arriving now belongs to."""
        for sub in self.pending:
            if sub.consumed:
                return sub.turn_id
        return self.pending[0].turn_id if self.pending else ""

    # -- stdout ---------------------------------------------------------------------------------
    def feed(self, line: str) -> list[TurnEvent]:
        s = line.strip()
        if not s:
            return []
        try:
            obj = safejson.loads(s)
        except safejson.NotJSON:
            obj = None
        if not isinstance(obj, dict):
            return self._tag(self._decoder.feed(line))  # the decoder reports it as unknown
        kind = obj.get("type")
        if kind == "control_response":
            response = obj.get("response")
            if isinstance(response, Mapping):
                self.control_responses[as_str(response.get("request_id"))] = response
            return []
        if kind == "control_cancel_request":
            self.cancelled_requests.append(as_str(obj.get("request_id")))
            return []
        if kind == "control_request":
            rid = as_str(obj.get("request_id"))
            request = as_map(obj.get("request"))
            subtype = as_str(request.get("subtype"))
            if subtype == "can_use_tool" and self.handles_permissions and rid:
                approval = permission_request(
                    rid, request, thread_id=self.thread_id, turn_id=self.owner()
                )
                self.permission_requests.append((rid, approval, s))
                return []
            self.outgoing.append(
                control_response_error(rid, f"alice_trio does not handle {subtype!r} requests")
            )
            return [self._event(EventKind.UNKNOWN, s, text=f"claude control_request {subtype!r}")]
        if kind == "user" and obj.get("isReplay") is True:
            return self._replay(obj, s)
        session = as_str(obj.get("session_id"))
        if session:
            self.thread_id = session
        events = self._decoder.feed(line)
        if kind == "result":
            return self._result(events, s, as_str(obj.get("uuid")) or s)
        if isinstance(kind, str) and kind in _TURN_OUTPUT:
            self._in_turn = True
        self._texts += sum(1 for e in events if e.kind is EventKind.ASSISTANT_TEXT)
        if not self.pending:  # no submission's output: it must not shape the next turn's reply
            self._decoder = ClaudeStreamDecoder(thread_id=self.thread_id)
        return self._tag(events)

    def _event(self, kind: EventKind, raw: str, **kw: Any) -> TurnEvent:
        return TurnEvent(
            kind=kind,
            raw=raw,
            provider=self.provider,
            thread_id=kw.pop("thread_id", self.thread_id),
            turn_id=kw.pop("turn_id", self.owner()),
            **kw,
        )

    def _tag(self, events: list[TurnEvent]) -> list[TurnEvent]:
        owner = self.owner()
        return [
            attrs.evolve(e, turn_id=owner, thread_id=e.thread_id or self.thread_id) for e in events
        ]

    def _replay(self, obj: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        for text in _texts(obj.get("message")):
            text = text.strip()
            for sub in self.pending:
                if not sub.consumed and sub.text == text:
                    sub.consumed = True
                    sub.texts_before = self._texts
                    self._in_turn = True
                    if sub.steered:
                        events.append(
                            self._event(
                                EventKind.STEER_CONSUMED, raw, text=text, turn_id=sub.turn_id
                            )
                        )
                    break
        return events

    def _result(self, events: list[TurnEvent], raw: str, key: str) -> list[TurnEvent]:
        done = [sub for sub in self.pending if sub.consumed] or self.pending[:1]
        if not self._in_turn and key == self._last_result:
            done = []  # the previous result again, with no CLI turn output since: a duplicate
        self._in_turn = False
        self._last_result = key
        out: list[TurnEvent] = []
        terminal = next((e for e in events if e.kind.terminal), None)
        if not done:
            out += [attrs.evolve(e, turn_id="") for e in events if not e.kind.terminal]
            if terminal is not None:
                out.append(
                    self._event(
                        EventKind.UNKNOWN,
                        raw,
                        turn_id="",
                        text="claude result for no submitted message",
                    )
                )
        else:
            head = done[0].turn_id
            out += [
                attrs.evolve(e, turn_id=head, thread_id=e.thread_id or self.thread_id)
                for e in events
            ]
            reply = self._decoder.current_reply
            for sub in done[1:]:
                # the reply claude wrote after it took this message in (text written before
                # it saw the message is never its reply: it ends with no reply of its own)
                answered = self._texts > sub.texts_before
                if (
                    reply
                    and answered
                    and terminal is not None
                    and terminal.kind is EventKind.TURN_COMPLETED
                ):
                    out.append(
                        self._event(EventKind.ASSISTANT_TEXT, raw, text=reply, turn_id=sub.turn_id)
                    )
                if terminal is not None:
                    out.append(
                        attrs.evolve(
                            terminal, turn_id=sub.turn_id, usage=None, thread_id=self.thread_id
                        )
                    )
            finished = {sub.turn_id for sub in done}
            self.pending = [sub for sub in self.pending if sub.turn_id not in finished]
        self._decoder = ClaudeStreamDecoder(thread_id=self.thread_id)
        self._texts = 0
        return out
