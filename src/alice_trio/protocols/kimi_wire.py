"""Legacy kimi-cli (≤ 1.51) wire protocol (``kimi --wire``), sans I/O.

JSON-RPC 2.0 over stdio with **string** ids (kimi-cli validates ``id: str``), wire protocol
1.10 as recorded from kimi-cli 1.50.0 and read from its ``kimi_cli.wire`` models.

* ``initialize {protocol_version: "1.10", client, capabilities}``; ``prompt {user_input}``
  whose **response** ends the turn (``{status: finished | cancelled | max_steps_reached}``);
  ``steer {user_input}`` → ``{status: "steered"}``; ``cancel {}``.
* ``event`` notifications ``{type, payload}`` (:class:`KimiWireMapper`): ``TurnBegin`` →
  ``turn_started``; ``ContentPart`` text parts are joined **verbatim** (no trimming, spec
  §13.15) into one ``assistant_text`` per message, flushed at a tool call, a new step, a steer
  or the turn's end; ``think`` parts → ``reasoning``; a part without text never contributes its
  type name; ``ToolCall`` / ``ToolResult`` → ``tool_use``, and a successful ``ToolResult`` of a
  write tool (``WriteFile`` / ``StrReplaceFile``: its arguments, which ``ToolCallPart`` deltas
  stream after the ``ToolCall``) → ``file_change``; ``StatusUpdate.token_usage`` (per
  step) → ``usage``, summed over the turn; ``StepRetry`` → ``retry``; ``SteerInput`` →
  ``steer_consumed``; ``PlanDisplay`` → ``reasoning``; step/compaction/MCP/hook chatter →
  nothing; an unknown type → ``unknown``.
* ``request`` server requests ``{type, payload}``: ``ApprovalRequest`` → ``{request_id,
  response: approve | approve_for_session | reject}``; ``QuestionRequest`` → ``{request_id,
  answers}`` (or a JSON-RPC error, which kimi reads as "dismissed"); ``HookRequest`` → allow;
  ``ToolCallRequest`` → a tool error (we register no external tools).

Late events: ``event`` notifications carry no turn id, so one that arrives after the prompt's
response belongs to the finished turn and is dropped until the next :meth:`KimiWireMapper.begin`;
after it, a ``ToolResult`` of a call made in an earlier turn is dropped too — never credited to
the new turn.

The session id: kimi-cli reports it only on stderr at exit, so the driver picks it: a new
session is started with ``--session <fresh uuid4>`` (kimi-cli 1.50 creates a missing session
under the given id), never a placeholder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import safejson
from ..file_changes import changes_from_tool_call, format_file_changes
from ..models import EventKind, QuestionInfo, QuestionOption, TurnEvent, TurnQuestion, Usage
from ..providers.base import as_int, as_list, as_map, as_str
from ..providers.kimi import WRITE_TOOLS
from .approval import ApprovalDecision, ApprovalRequest

__all__ = [
    "PROTOCOL_VERSION",
    "KimiWireMapper",
    "approval_request",
    "approval_result",
    "initialize_params",
    "no_turn_in_progress",
    "step_usage",
    "user_input_text",
]

PROTOCOL_VERSION = "1.10"
PROVIDER = "kimi"

_QUIET = frozenset(
    {
        "StepBegin", "StepInterrupted", "CompactionBegin", "CompactionEnd", "MCPLoadingBegin",
        "MCPLoadingEnd", "HookTriggered", "HookResolved", "ApprovalResponse", "SubagentEvent",
        "BtwBegin", "BtwEnd", "TurnEnd",
    }
)  # fmt: skip
_FLUSH = frozenset({"ToolCall", "StepBegin", "StepInterrupted", "SteerInput", "TurnEnd"})


def initialize_params(*, supports_question: bool, version: str = "0.1.0") -> dict[str, Any]:
    return {
        "protocol_version": PROTOCOL_VERSION,
        "client": {"name": "alice_trio", "version": version},
        "capabilities": {"supports_question": supports_question, "supports_plan_mode": False},
    }


#: kimi-cli's ``ErrorCodes.INVALID_STATE``
INVALID_STATE = -32000


def no_turn_in_progress(code: int, message: str) -> bool:
    """Whether kimi-cli's error answer to ``steer`` / ``cancel`` says no turn runs (it ended
    before the request arrived): -32000 "No agent turn is in progress"."""
    return code == INVALID_STATE and message.strip() == "No agent turn is in progress"


def user_input_text(value: Any) -> str:
    """``user_input`` as text: a string, or the text parts of a list joined with newlines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(
            p["text"] for p in value if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def step_usage(payload: Mapping[str, Any]) -> Usage | None:
    tu = payload.get("token_usage")
    if not isinstance(tu, Mapping):
        return None
    cache_read = as_int(tu.get("input_cache_read"))
    return Usage(
        input_tokens=as_int(tu.get("input_other")) + cache_read
        + as_int(tu.get("input_cache_creation")),
        cached_input_tokens=cache_read,
        output_tokens=as_int(tu.get("output")),
    )  # fmt: skip


class KimiWireMapper:
    """Pure state machine over ``event`` notifications (see the module docstring)."""

    def __init__(self, *, session_id: str) -> None:
        self.session_id = session_id
        self.turn_id = ""
        self.usage = Usage()
        self._text: list[str] = []
        self._text_raw = ""
        self._think: list[str] = []
        self._think_raw = ""
        self._tools: dict[str, str] = {}
        self._tool_turn: dict[str, str] = {}  # tool call id -> turn that made the call
        self._tool_args: dict[str, list[str]] = {}  # write tool call id -> its argument text
        self._last_call = ""  # the call that ToolCallPart deltas continue
        self._ended = False  # the current turn got its terminal event
        self.dropped = 0  # late events of finished turns

    def begin(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.usage = Usage()
        self._ended = False
        self._tool_args.clear()  # an earlier turn's results are dropped, never credited here

    def _event(self, kind: EventKind, raw: str, **kw: Any) -> TurnEvent:
        return TurnEvent(kind=kind, thread_id=self.session_id, turn_id=self.turn_id, raw=raw,
                         provider=PROVIDER, **kw)  # fmt: skip

    def flush(self) -> list[TurnEvent]:
        out = []
        think = "".join(self._think)
        if think.strip():
            out.append(self._event(EventKind.REASONING, self._think_raw, text=think))
        text = "".join(self._text)
        if text.strip():
            out.append(self._event(EventKind.ASSISTANT_TEXT, self._text_raw, text=text))
        self._text, self._think = [], []
        return out

    def feed(self, params: Any, raw: str = "") -> list[TurnEvent]:
        if not isinstance(params, Mapping):
            return [self._event(EventKind.UNKNOWN, raw, text="event without params")]
        etype = as_str(params.get("type"))
        payload = params.get("payload")
        payload = payload if isinstance(payload, Mapping) else {}
        late = self._ended and bool(self.turn_id)
        if etype == "ToolResult":
            call = as_str(payload.get("tool_call_id"))
            late = late or self._tool_turn.pop(call, self.turn_id) != self.turn_id
        if late:
            self.dropped += 1
            return []
        if etype == "ContentPart":
            ptype = as_str(payload.get("type"))
            if ptype == "think":
                if isinstance(payload.get("think"), str):
                    self._think.append(payload["think"])
                    self._think_raw = raw
            elif ptype in ("", "text") and isinstance(payload.get("text"), str):
                self._text.append(payload["text"])
                self._text_raw = raw
            return []
        out = self.flush() if etype in _FLUSH else []
        if etype == "TurnBegin":
            text = user_input_text(payload.get("user_input"))
            return [*out, self._event(EventKind.TURN_STARTED, raw, text=text)]
        if etype == "SteerInput":
            text = user_input_text(payload.get("user_input"))
            return [*out, self._event(EventKind.STEER_CONSUMED, raw, text=text)]
        if etype == "StatusUpdate":
            usage = step_usage(payload)
            if usage is None:
                return out
            self.usage = self.usage + usage
            return [*out, self._event(EventKind.USAGE, raw, usage=self.usage)]
        if etype == "ToolCallPart":
            part = payload.get("arguments_part")
            if isinstance(part, str) and self._last_call in self._tool_args:
                self._tool_args[self._last_call].append(part)
            return out
        if etype == "ToolCall":
            fn = payload.get("function")
            name = as_str(fn.get("name")) if isinstance(fn, Mapping) else ""
            name = name or as_str(payload.get("name"))
            call = as_str(payload.get("id"))
            self._tools[call] = name
            self._tool_turn[call] = self.turn_id
            self._last_call = call
            if name in WRITE_TOOLS:
                args = fn.get("arguments") if isinstance(fn, Mapping) else None
                self._tool_args[call] = [args] if isinstance(args, str) else []
            return [*out, self._event(EventKind.TOOL_USE, raw, text=f"ToolCall {name}".strip())]
        if etype == "ToolResult":
            call = as_str(payload.get("tool_call_id"))
            name = self._tools.pop(call, "")
            rv = payload.get("return_value")
            failed = isinstance(rv, Mapping) and rv.get("is_error") is True
            message = as_str(rv.get("message")) if isinstance(rv, Mapping) else ""
            text = f"ToolResult {name}".strip() + (" (error)" if failed else "")
            text += f": {message}" if message else ""
            out.append(self._event(EventKind.TOOL_USE, raw, text=text))
            args = self._tool_args.pop(call, None)
            return out + ([] if failed or args is None else self._written(name, args, raw))
        if etype == "StepRetry":
            text = (
                f"retry {as_int(payload.get('next_attempt'))}/"
                f"{as_int(payload.get('max_attempts'))}: {as_str(payload.get('error_type'))}"
            )
            status = as_int(payload.get("status_code")) or None
            return [*out, self._event(EventKind.RETRY, raw, text=text, status=status)]
        if etype == "PlanDisplay":
            text = as_str(payload.get("content"))
            return out + ([self._event(EventKind.REASONING, raw, text=text)] if text else [])
        if etype in _QUIET:
            return out
        if etype == "Notification":
            text = as_str(payload.get("title")) or as_str(payload.get("body"))
            return [*out, self._event(EventKind.UNKNOWN, raw, text=f"notification: {text}")]
        return [*out, self._event(EventKind.UNKNOWN, raw, text=f"kimi wire event {etype!r}")]

    def _written(self, name: str, parts: list[str], raw: str) -> list[TurnEvent]:
        """The ``file_change`` event of a write tool that ran (none when its streamed
        arguments are not JSON or name no path: the turn-end snapshot still sees the change)."""
        try:
            arguments = safejson.loads("".join(parts))
        except safejson.NotJSON:
            return []
        files = changes_from_tool_call(WRITE_TOOLS, name, arguments)
        if not files:
            return []
        text = format_file_changes(files)
        return [self._event(EventKind.FILE_CHANGE, raw, text=text, files=tuple(files))]

    def finish(self, result: Any, raw: str = "") -> list[TurnEvent]:
        """The ``prompt`` response: flush, then the terminal event of the current turn."""
        out = self.flush()
        self._ended = True
        status = as_str(result.get("status")) if isinstance(result, Mapping) else ""
        usage = self.usage
        if status == "cancelled":
            out.append(self._event(EventKind.TURN_INTERRUPTED, raw, usage=usage))
        else:
            text = "" if status in ("", "finished") else f"status: {status}"
            out.append(self._event(EventKind.TURN_COMPLETED, raw, text=text, usage=usage))
        return out


# -- server requests -----------------------------------------------------------------------------


def approval_request(params: Any, *, session_id: str, turn_id: str) -> ApprovalRequest | None:
    """The request behind a ``request`` server call; ``None`` for types we answer ourselves."""
    p = params if isinstance(params, Mapping) else {}
    rtype = as_str(p.get("type"))
    payload = as_map(p.get("payload"))
    common: dict[str, Any] = {"provider": PROVIDER, "thread_id": session_id, "turn_id": turn_id,
                              "method": rtype, "params": payload}  # fmt: skip
    if rtype == "ApprovalRequest":
        command = ""
        for block in as_list(payload.get("display")):
            if isinstance(block, Mapping) and block.get("type") == "shell":
                command = as_str(block.get("command"))
        summary = as_str(payload.get("description")) or as_str(payload.get("action"))
        kind = "command" if command else "tool"
        return ApprovalRequest(kind=kind, summary=summary, command=command, **common)
    if rtype == "QuestionRequest":
        infos = []
        for q in as_list(payload.get("questions")):
            if not isinstance(q, Mapping):
                continue
            opts = tuple(
                QuestionOption(label=as_str(o.get("label")),
                               description=as_str(o.get("description")))
                for o in as_list(q.get("options")) if isinstance(o, Mapping)
            )  # fmt: skip
            infos.append(
                QuestionInfo(
                    question=as_str(q.get("question")), header=as_str(q.get("header")),
                    options=opts, multiple=bool(q.get("multi_select")), custom=True,
                )
            )  # fmt: skip
        question = TurnQuestion(request_id=as_str(payload.get("id")), questions=tuple(infos))
        summary = "; ".join(q.question for q in question.questions)
        return ApprovalRequest(kind="question", summary=summary, question=question, **common)
    return None


_RESPONSES = {
    ApprovalDecision.ACCEPT: "approve",
    ApprovalDecision.ACCEPT_FOR_SESSION: "approve_for_session",
    ApprovalDecision.DECLINE: "reject",
    ApprovalDecision.CANCEL: "reject",
}


def _answer_text(value: Any) -> str:
    """kimi takes one string per question: the labels of a multiple choice joined by ", "."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def approval_result(request: ApprovalRequest, answer: Any) -> dict[str, Any] | None:
    """The result for ``answer``; ``None`` for a dismissed question (answer with an error)."""
    rid = as_str(as_map(request.params).get("id"))
    if request.kind == "question":
        if not isinstance(answer, Mapping) or not answer:
            return None
        return {"request_id": rid, "answers": {str(k): _answer_text(v) for k, v in answer.items()}}
    decision = answer if isinstance(answer, ApprovalDecision) else ApprovalDecision.DECLINE
    return {"request_id": rid, "response": _RESPONSES[decision]}
