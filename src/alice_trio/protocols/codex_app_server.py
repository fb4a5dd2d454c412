"""codex ``app-server`` protocol, sans I/O: request params, notification → event mapping, approvals.

Checked against ``codex app-server generate-json-schema`` of codex 0.171 and the recorded wire
traffic (``tests/transcripts/codex_app_server``). Messages carry no ``jsonrpc`` member; request
ids may be integers or strings (``RequestId = string | int64``): codex's own server requests use
integers starting at ``0``, and answers echo them unchanged.

Mapping (:class:`CodexNotificationMapper`), every event tagged with the notification's
``threadId`` / ``turnId`` (falling back to ``params.turn.id``):

* ``thread/started`` → ``thread_started``; ``turn/started`` → ``turn_started``;
* ``item/completed``: ``agentMessage`` → ``assistant_text`` (the complete text; deltas are never
  surfaced); ``reasoning`` → ``reasoning`` (summary, else content); ``fileChange`` →
  ``file_change`` listing the paths (:func:`~alice_trio.providers.codex.format_file_change`);
  ``commandExecution`` (also on ``item/started``), ``mcpToolCall``, ``dynamicToolCall``,
  ``webSearch`` → ``tool_use`` with the command / server+tool / query; a second ``userMessage`` in
  one turn is steered input → ``steer_consumed``;
* ``thread/tokenUsage/updated`` → ``usage`` (the turn's usage so far: the sum of ``last`` over
  the updates that advanced the thread total, so a repeated update is not counted twice);
* ``error`` → ``retry`` when ``willRetry``, else the message is kept for the turn;
* ``turn/completed``: ``interrupted`` → ``turn_interrupted``; ``failed`` → ``error`` with
  ``turn.error.message`` (else the kept ``error`` notification, else "codex turn failed");
  anything else → ``turn_completed`` with the turn's usage.

Known chatter (deltas, status/rate-limit updates, ``serverRequest/resolved``…) maps to nothing;
an unknown method or item type becomes a visible ``unknown`` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import EventKind, ExecPolicy, QuestionInfo, QuestionOption, TurnEvent, TurnQuestion
from ..models import Usage as _Usage
from ..providers.base import as_int, as_list, as_map, as_str
from ..providers.codex import format_file_change
from .approval import ApprovalDecision, ApprovalRequest
from .jsonrpc import Notification

__all__ = [
    "APPROVAL_METHODS",
    "CLIENT_NAME",
    "CodexNotificationMapper",
    "approval_request",
    "approval_result",
    "initialize_params",
    "interrupt_params",
    "steer_found_no_turn",
    "steer_params",
    "text_input",
    "thread_params",
    "turn_start_params",
]

CLIENT_NAME = "alice_trio"
PROVIDER = "codex"

_QUIET = frozenset(
    {
        "item/agentMessage/delta", "item/reasoning/summaryTextDelta", "item/reasoning/textDelta",
        "item/reasoning/summaryPartAdded", "item/commandExecution/outputDelta",
        "item/fileChange/outputDelta", "item/plan/delta", "item/mcpToolCall/progress",
        "thread/status/changed", "account/rateLimits/updated", "serverRequest/resolved",
        "remoteControl/status/changed", "deprecationNotice", "thread/name/updated",
        "mcpServer/startupStatus/updated", "account/updated", "turn/diff/updated",
        "turn/plan/updated", "sessionConfigured", "configWarning", "thread/compacted",
        "item/updated", "skills/changed", "app/list/updated",
    }
)  # fmt: skip


def initialize_params(version: str = "0.1.0") -> dict[str, Any]:
    return {
        "clientInfo": {"name": CLIENT_NAME, "title": CLIENT_NAME, "version": version},
        "capabilities": {"experimentalApi": True},
    }


def text_input(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "text_elements": []}]


def thread_params(
    *, thread_id: str, model: str, cwd: str, policy: ExecPolicy
) -> tuple[str, dict[str, Any]]:
    """``thread/start`` (no thread id) or ``thread/resume`` and its params; empty values are
    left out. ``policy`` is the effective one (config merged with the request)."""
    params: dict[str, Any] = {}
    method = "thread/start"
    if thread_id:
        method, params["threadId"] = "thread/resume", thread_id
    if model:
        params["model"] = model
    if cwd:
        params["cwd"] = cwd
    if policy.ask_for_approval:
        params["approvalPolicy"] = policy.ask_for_approval
    if policy.sandbox:
        params["sandbox"] = policy.sandbox
    return method, params


def turn_start_params(
    *,
    thread_id: str,
    text: str,
    model: str = "",
    effort: str = "",
    personality: str = "",
    cwd: str = "",
    approval: str = "",
) -> dict[str, Any]:
    params: dict[str, Any] = {"threadId": thread_id, "input": text_input(text)}
    for key, value in (
        ("model", model), ("effort", effort), ("personality", personality), ("cwd", cwd),
        ("approvalPolicy", approval),
    ):  # fmt: skip
        if value:
            params[key] = value
    return params


def steer_params(*, thread_id: str, turn_id: str, text: str) -> dict[str, Any]:
    return {"threadId": thread_id, "expectedTurnId": turn_id, "input": text_input(text)}


def steer_found_no_turn(code: int, message: str) -> bool:
    """Whether codex's error answer to ``turn/steer`` says the turn to steer is not running:
    -32600 "no active turn to steer" (it ended before the steer arrived) or "expected active
    turn id `X` but found `Y`" (another one runs)."""
    message = message.strip()
    return code == -32600 and (
        message == "no active turn to steer" or message.startswith("expected active turn id")
    )


def interrupt_params(*, thread_id: str, turn_id: str) -> dict[str, Any]:
    return {"threadId": thread_id, "turnId": turn_id}


# -- notifications -------------------------------------------------------------------------------


def _usage(raw: Any) -> _Usage | None:
    if not isinstance(raw, Mapping):
        return None
    return _Usage(
        input_tokens=as_int(raw.get("inputTokens")),
        cached_input_tokens=as_int(raw.get("cachedInputTokens")),
        output_tokens=as_int(raw.get("outputTokens")),
    )


def _tool_text(item: Mapping[str, Any]) -> str:
    itype = item.get("type")
    status = as_str(item.get("status"))
    if itype == "commandExecution":
        text = f"command=`{as_str(item.get('command'))}` status=`{status}`"
        if item.get("exitCode") is not None:
            text += f" exit_code=`{as_int(item.get('exitCode'))}`"
        return text
    if itype == "mcpToolCall":
        text = (
            f"mcp server=`{as_str(item.get('server'))}` tool=`{as_str(item.get('tool'))}` "
            f"status=`{status}`"
        )
        err = item.get("error")
        if isinstance(err, Mapping) and as_str(err.get("message")):
            text += f" error=`{as_str(err.get('message'))}`"
        return text
    if itype == "dynamicToolCall":
        ns = as_str(item.get("namespace"))
        tool = as_str(item.get("tool"))
        return f"tool=`{ns + '.' if ns else ''}{tool}` status=`{status}`"
    if itype == "webSearch":
        return f"web_search query=`{as_str(item.get('query'))}`"
    return ""


def _strings(value: Any) -> list[str]:
    out: list[str] = []
    for v in value if isinstance(value, list) else []:
        if isinstance(v, Mapping):
            v = v.get("text")
        s = as_str(v)
        if s:
            out.append(s)
    return out


class CodexNotificationMapper:
    """Pure state machine: one app-server notification → events (see the module docstring)."""

    def __init__(self, *, thread_id: str = "", workspace: str = "") -> None:
        self.thread_id = thread_id
        self.workspace = workspace
        self.turn_usage: dict[str, _Usage] = {}
        self.turn_errors: dict[str, str] = {}
        self._user_messages: dict[str, int] = {}
        self._last_total = -1

    def _event(self, kind: EventKind, params: Mapping[str, Any], raw: str, **kw: Any) -> TurnEvent:
        turn = params.get("turn")
        turn_id = as_str(params.get("turnId")) or (
            as_str(turn.get("id")) if isinstance(turn, Mapping) else ""
        )
        thread_id = as_str(params.get("threadId")) or self.thread_id
        return TurnEvent(kind=kind, thread_id=thread_id, turn_id=turn_id, raw=raw,
                         provider=PROVIDER, **kw)  # fmt: skip

    def feed(self, msg: Notification) -> list[TurnEvent]:
        method, params, raw = msg.method, msg.params, msg.raw
        if not isinstance(params, Mapping):
            params = {}
        if method in _QUIET:
            return []
        if method == "thread/started":
            thread = params.get("thread")
            if isinstance(thread, Mapping) and as_str(thread.get("id")):
                self.thread_id = as_str(thread.get("id"))
            return [self._event(EventKind.THREAD_STARTED, {"threadId": self.thread_id}, raw)]
        if method == "turn/started":
            return [self._event(EventKind.TURN_STARTED, params, raw)]
        if method in ("item/completed", "item/started"):
            item = params.get("item")
            if not isinstance(item, Mapping):
                return [self._event(EventKind.UNKNOWN, params, raw, text=f"{method} without item")]
            return self._item(item, params, raw, completed=method == "item/completed")
        if method == "thread/tokenUsage/updated":
            return self._token_usage(params, raw)
        if method == "error":
            return self._error(params, raw)
        if method == "turn/completed":
            return self._turn_completed(params, raw)
        return [self._event(EventKind.UNKNOWN, params, raw, text=f"codex notification {method}")]

    def _item(
        self, item: Mapping[str, Any], params: Mapping[str, Any], raw: str, *, completed: bool
    ) -> list[TurnEvent]:
        itype = as_str(item.get("type"))
        if itype == "commandExecution":
            return [self._event(EventKind.TOOL_USE, params, raw, text=_tool_text(item))]
        if not completed:
            return []
        if itype == "agentMessage":
            text = item.get("text")
            if not isinstance(text, str) or not text.strip():
                return []
            return [self._event(EventKind.ASSISTANT_TEXT, params, raw, text=text)]
        if itype == "reasoning":
            text = "\n".join(_strings(item.get("summary")) or _strings(item.get("content")))
            return [self._event(EventKind.REASONING, params, raw, text=text)] if text else []
        if itype == "fileChange":
            text = format_file_change(item, self.workspace) or "file_change"
            return [self._event(EventKind.FILE_CHANGE, params, raw, text=text)]
        if itype in ("mcpToolCall", "dynamicToolCall", "webSearch"):
            return [self._event(EventKind.TOOL_USE, params, raw, text=_tool_text(item))]
        if itype == "userMessage":
            turn_id = as_str(params.get("turnId"))
            n = self._user_messages.get(turn_id, 0) + 1
            self._user_messages[turn_id] = n
            if n == 1:
                return []
            text = "\n".join(_strings(item.get("content")))
            return [self._event(EventKind.STEER_CONSUMED, params, raw, text=text)]
        if itype == "plan":
            text = as_str(item.get("text"))
            return [self._event(EventKind.REASONING, params, raw, text=text)] if text else []
        if itype in ("contextCompaction", "hookPrompt", "enteredReviewMode", "exitedReviewMode"):
            return []
        return [self._event(EventKind.UNKNOWN, params, raw, text=f"codex item type {itype!r}")]

    def _token_usage(self, params: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        tu = params.get("tokenUsage")
        if not isinstance(tu, Mapping):
            return []
        total = tu.get("total")
        total_tokens = as_int(total.get("totalTokens")) if isinstance(total, Mapping) else -1
        turn_id = as_str(params.get("turnId"))
        usage = self.turn_usage.get(turn_id, _Usage())
        if total_tokens != self._last_total:
            self._last_total = total_tokens
            usage = usage + (_usage(tu.get("last")) or _Usage())
            self.turn_usage[turn_id] = usage
        return [self._event(EventKind.USAGE, params, raw, usage=usage)]

    def _error(self, params: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        err = params.get("error")
        message = as_str(err.get("message")) if isinstance(err, Mapping) else as_str(err)
        message = message or "codex reported an error"
        if params.get("willRetry") is True:
            return [self._event(EventKind.RETRY, params, raw, text=message)]
        self.turn_errors[as_str(params.get("turnId"))] = message
        return []

    def _turn_completed(self, params: Mapping[str, Any], raw: str) -> list[TurnEvent]:
        turn = params.get("turn")
        turn = turn if isinstance(turn, Mapping) else {}
        turn_id = as_str(params.get("turnId")) or as_str(turn.get("id"))
        status = as_str(turn.get("status"))
        usage = self.turn_usage.pop(turn_id, None)
        kept = self.turn_errors.pop(turn_id, "")
        self._user_messages.pop(turn_id, None)
        if status == "interrupted":
            return [self._event(EventKind.TURN_INTERRUPTED, params, raw, usage=usage)]
        if status == "failed":
            err = turn.get("error")
            message = as_str(err.get("message")) if isinstance(err, Mapping) else ""
            message = message or kept or "codex turn failed"
            return [self._event(EventKind.ERROR, params, raw, error=message, usage=usage)]
        return [self._event(EventKind.TURN_COMPLETED, params, raw, usage=usage or _Usage())]


# -- server requests -----------------------------------------------------------------------------

APPROVAL_METHODS = frozenset(
    {
        "item/commandExecution/requestApproval", "item/fileChange/requestApproval",
        "item/permissions/requestApproval", "execCommandApproval", "applyPatchApproval",
        "mcpServer/elicitation/request", "item/tool/requestUserInput",
    }
)  # fmt: skip


def _question(params: Mapping[str, Any], request_id: str) -> TurnQuestion:
    infos = []
    for q in as_list(params.get("questions")):
        if not isinstance(q, Mapping):
            continue
        opts = tuple(
            QuestionOption(label=as_str(o.get("label")), description=as_str(o.get("description")))
            for o in as_list(q.get("options"))
            if isinstance(o, Mapping)
        )
        infos.append(
            QuestionInfo(
                question=as_str(q.get("question")), header=as_str(q.get("header")),
                options=opts, custom=bool(q.get("isOther")),
            )
        )  # fmt: skip
    return TurnQuestion(request_id=request_id, questions=tuple(infos))


def approval_request(method: str, params: Any, request_id: str = "") -> ApprovalRequest | None:
    """The :class:`ApprovalRequest` for a codex server request; ``None`` for a method that is
    not an approval or question (answer those with a JSON-RPC error)."""
    if method not in APPROVAL_METHODS:
        return None
    p: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
    common: dict[str, Any] = {
        "provider": PROVIDER, "method": method, "params": p,
        "thread_id": as_str(p.get("threadId")) or as_str(p.get("conversationId")),
        "turn_id": as_str(p.get("turnId")),
    }  # fmt: skip
    if method in ("item/commandExecution/requestApproval", "execCommandApproval"):
        command = p.get("command")
        if isinstance(command, list):
            command = " ".join(str(c) for c in command)
        command = as_str(command)
        reason = as_str(p.get("reason"))
        return ApprovalRequest(
            kind="command", command=command, cwd=as_str(p.get("cwd")),
            summary=f"run `{command}`" + (f" ({reason})" if reason else ""), **common,
        )  # fmt: skip
    if method in ("item/fileChange/requestApproval", "applyPatchApproval"):
        changes = p.get("fileChanges") or p.get("changes")
        paths = tuple(sorted(changes)) if isinstance(changes, Mapping) else ()
        root = as_str(p.get("grantRoot"))
        reason = as_str(p.get("reason"))
        summary = "change files" + (f" under {root}" if root else "")
        summary += f": {', '.join(paths)}" if paths else ""
        summary += f" ({reason})" if reason else ""
        return ApprovalRequest(kind="file_change", paths=paths, summary=summary, **common)
    if method == "item/permissions/requestApproval":
        reason = as_str(p.get("reason"))
        return ApprovalRequest(kind="permissions", summary=reason or "grant permissions", **common)
    if method == "mcpServer/elicitation/request":
        message = as_str(p.get("message")) or as_str(p.get("serverName"))
        return ApprovalRequest(kind="mcp_elicitation", summary=message, **common)
    # item/tool/requestUserInput
    question = _question(p, request_id)
    summary = "; ".join(q.question for q in question.questions)
    return ApprovalRequest(kind="question", summary=summary, question=question, **common)


_V2 = {
    ApprovalDecision.ACCEPT: "accept",
    ApprovalDecision.ACCEPT_FOR_SESSION: "acceptForSession",
    ApprovalDecision.DECLINE: "decline",
    ApprovalDecision.CANCEL: "cancel",
}
_V1 = {
    ApprovalDecision.ACCEPT: "approved",
    ApprovalDecision.ACCEPT_FOR_SESSION: "approved_for_session",
    ApprovalDecision.DECLINE: "denied",
    ApprovalDecision.CANCEL: "abort",
}


def _answer_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def approval_result(request: ApprovalRequest, answer: Any) -> dict[str, Any] | None:
    """The response ``result`` for ``answer`` (an :class:`ApprovalDecision`, or question answers
    ``{question id or text: answer}``). ``None`` means: answer with a JSON-RPC error (a dismissed
    question)."""
    method = request.method
    if request.kind == "question":
        if not isinstance(answer, Mapping):
            return None
        ids = {}
        for q in as_list(as_map(request.params).get("questions")):
            if isinstance(q, Mapping):
                ids[as_str(q.get("question"))] = as_str(q.get("id"))
        answers = {ids.get(k, k): {"answers": _answer_list(v)} for k, v in answer.items()}
        return {"answers": answers}
    decision = answer if isinstance(answer, ApprovalDecision) else ApprovalDecision.DECLINE
    accept = decision in (ApprovalDecision.ACCEPT, ApprovalDecision.ACCEPT_FOR_SESSION)
    if method in ("execCommandApproval", "applyPatchApproval"):
        return {"decision": _V1[decision]}
    if method == "item/permissions/requestApproval":
        granted = as_map(request.params).get("permissions") if accept else {}
        scope = "session" if decision is ApprovalDecision.ACCEPT_FOR_SESSION else "turn"
        return {"permissions": granted if isinstance(granted, Mapping) else {}, "scope": scope}
    if method == "mcpServer/elicitation/request":
        action = "accept" if accept else "decline"
        if decision is ApprovalDecision.CANCEL:
            action = "cancel"
        return {"action": action}
    return {"decision": _V2[decision]}
