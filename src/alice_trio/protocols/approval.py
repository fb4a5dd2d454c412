"""The pure data of an approval round trip: what an agent asks (:class:`ApprovalRequest`), the
answers (:class:`ApprovalDecision`, question answers), and the default decision when nobody is
there to ask. The protocol mappings build and read these; :mod:`alice_trio.sessions.approval`
(which re-exports them: that is the public place) runs the round trip with the caller's approver.

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

import enum
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
    "default_decision",
    "question_answers",
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


Answer = ApprovalDecision | Mapping[str, Any] | None
Approver = Callable[[ApprovalRequest], Awaitable[Answer] | Answer]


#: kimi's own defaults (both of its one-shot modes auto-approve tools); see
#: :mod:`alice_trio.sessions.approval`
KIMI_DEFAULT_POLICY = ExecPolicy(sandbox="danger-full-access", ask_for_approval="never")


def default_decision(policy: ExecPolicy, *, auto_approve: bool = False) -> ApprovalDecision:
    """The decision when no callback is configured (see :mod:`alice_trio.sessions.approval`)."""
    if auto_approve:
        return ApprovalDecision.ACCEPT
    if policy.sandbox == "danger-full-access" and policy.ask_for_approval in ("", "never"):
        return ApprovalDecision.ACCEPT
    return ApprovalDecision.DECLINE


def question_answers(question: TurnQuestion, answer: Mapping[str, Any]) -> list[list[str]]:
    """``{question text (or header, or index as a string): answer}`` → one list of answers per
    question, in the question's order (opencode's reply shape). A string answer is one item; a
    list/tuple gives its items; an unanswered question gets ``[]``."""
    out: list[list[str]] = []
    for i, info in enumerate(question.questions):
        value: Any = None
        for key in (info.question, info.header, str(i)):
            if key and key in answer:
                value = answer[key]
                break
        if value is None:
            out.append([])
        elif isinstance(value, (list, tuple)):
            out.append([str(v) for v in value])
        else:
            out.append([str(value)])
    return out
