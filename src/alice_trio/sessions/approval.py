"""Approval and question requests from an agent, and who answers them.

When a CLI asks before running a command or changing files (codex
``item/commandExecution/requestApproval``, ACP ``session/request_permission``, kimi wire
``ApprovalRequest``) the driver builds an :class:`ApprovalRequest` and asks its **approver**:
a user callback ``(ApprovalRequest) -> ApprovalDecision`` (sync or async) given to the driver
factory. Without a callback the decision comes from :func:`default_decision`, which never
blanket-accepts (the Go driver accepted everything whatever the policy, spec §13.14):

* the config explicitly auto-approves (``yolo`` / ``auto_approve``) → accept;
* the effective exec policy is ``danger-full-access`` with approval ``never`` (or unset) —
  the caller already granted everything, so a prompt has nothing left to protect → accept.
  The effective policy is the caller's with the **provider's defaults** for the fields left
  unset: kimi's are :data:`KIMI_DEFAULT_POLICY` (spec §10: claude and kimi default to
  ``danger-full-access``/``never``; both kimi one-shot modes run tools unasked), so a kimi
  session with a default config runs the same tools its one-shot run does, and a caller who
  sets a sandbox or an approval policy gets exactly that;
* otherwise → **decline**: the caller asked for approvals or a sandbox and nobody is there to
  approve, so the agent is told no and continues (codex/ACP/kimi all carry on after a decline).

A callback that raises declines the request (the error is kept on the driver as
``approval_errors``); it never kills the session.

Questions (kimi ``QuestionRequest``, codex ``item/tool/requestUserInput``) go to the same
callback with ``kind == "question"``; it returns the answers as ``{question: answer}``. Without
a callback (or when it returns no answers) the question is **dismissed** (the protocol's
"no answer"), never answered with an empty string (spec §13.15).
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from ..models import ExecPolicy, TurnQuestion

__all__ = [
    "KIMI_DEFAULT_POLICY",
    "Answer",
    "ApprovalDecision",
    "ApprovalOption",
    "ApprovalRequest",
    "Approver",
    "ask",
    "default_decision",
]


class ApprovalDecision(enum.Enum):
    ACCEPT = "accept"  # this once
    ACCEPT_FOR_SESSION = "accept_for_session"  # and similar requests for the rest of the session
    DECLINE = "decline"  # no; the agent continues the turn
    CANCEL = "cancel"  # no, and stop the turn (where the protocol can)


@attrs.frozen(kw_only=True)
class ApprovalOption:
    """An answer the agent offered (ACP ``options[]``): ``kind`` is ``allow_once``,
    ``allow_always``, ``reject_once`` or ``reject_always``."""

    id: str
    name: str = ""
    kind: str = ""


@attrs.frozen(kw_only=True)
class ApprovalRequest:
    """What the agent wants to do.

    ``kind``: ``command`` | ``file_change`` | ``permissions`` | ``tool`` | ``question`` | ….
    ``summary`` is a one-line human description; ``command``/``cwd``/``paths`` are filled where
    the protocol gives them; ``question`` holds the structured questions of a question request.
    ``params`` is the protocol's raw request params.
    """

    provider: str
    kind: str
    summary: str = ""
    command: str = ""
    cwd: str = ""
    paths: tuple[str, ...] = ()
    options: tuple[ApprovalOption, ...] = ()
    question: TurnQuestion | None = None
    thread_id: str = ""
    turn_id: str = ""
    method: str = ""
    params: Any = attrs.field(default=None, eq=False, repr=False)


Answer = ApprovalDecision | Mapping[str, str] | None
Approver = Callable[[ApprovalRequest], Awaitable[Answer] | Answer]


#: kimi's own defaults (both of its one-shot modes auto-approve tools); see the module docstring
KIMI_DEFAULT_POLICY = ExecPolicy(sandbox="danger-full-access", ask_for_approval="never")


def default_decision(policy: ExecPolicy, *, auto_approve: bool = False) -> ApprovalDecision:
    """The decision when no callback is configured (see the module docstring)."""
    if auto_approve:
        return ApprovalDecision.ACCEPT
    if policy.sandbox == "danger-full-access" and policy.ask_for_approval in ("", "never"):
        return ApprovalDecision.ACCEPT
    return ApprovalDecision.DECLINE


async def ask(
    approver: Approver | None,
    request: ApprovalRequest,
    fallback: ApprovalDecision,
    errors: list[BaseException] | None = None,
) -> Answer:
    """The approver's answer, ``fallback`` without one (questions: ``None``, i.e. dismissed).

    A raising callback gives DECLINE (questions: ``None``) and its exception is appended to
    ``errors``. A string answer is read as an :class:`ApprovalDecision` value.
    """
    if approver is None:
        return None if request.kind == "question" else fallback
    try:
        answer = fn_result = approver(request)
        if inspect.isawaitable(fn_result):
            answer = await fn_result
    except Exception as exc:
        if errors is not None:
            errors.append(exc)
        return None if request.kind == "question" else ApprovalDecision.DECLINE
    if isinstance(answer, str):
        try:
            return ApprovalDecision(answer.strip().lower())
        except ValueError:
            return ApprovalDecision.DECLINE
    if request.kind == "question":
        return answer if isinstance(answer, Mapping) and answer else None
    if isinstance(answer, ApprovalDecision):
        return answer
    return ApprovalDecision.DECLINE
