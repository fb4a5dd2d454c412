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
``approval_errors``); it never kills the session. A callback that returns ``None`` for an
approval leaves it to the default decision above (so a caller who only wants to answer
questions does not have to re-implement the policy).

Questions (kimi ``QuestionRequest``, codex ``item/tool/requestUserInput``, opencode
``question.asked``) go to the same callback with ``kind == "question"``; it returns the answers
as ``{question text: answer}`` (an answer is a string, or a list of option labels for a
multiple-choice question). Without a callback (or when it returns no answers) the question is
**dismissed** at once with the protocol's "no answer" (opencode: reject; codex/kimi: an error
reply), never answered with an empty string (spec §13.15) and never left waiting: the agent
carries on without an answer. Either way a ``question`` event is emitted first.

Every driver runs the round trip through one :class:`ApprovalGate`: it emits the ``question``
event, calls the approver (or applies the default) and reports the decision as a ``tool_use``
notice ``approval <kind>: <summary> -> <decision>``; the driver only translates the answer into
its protocol. The callback may wait as long as it likes (a human answering in a chat): the
turn waits with it; cancelling the session cancels the wait.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Mapping

import attrs
import trio

from ..errors import ConfigError
from ..models import EventKind, TurnEvent
from ..protocols.approval import (
    KIMI_DEFAULT_POLICY,
    Answer,
    ApprovalDecision,
    ApprovalOption,
    ApprovalRequest,
    Approver,
    default_decision,
    question_answers,
)

__all__ = [
    "KIMI_DEFAULT_POLICY",
    "Answer",
    "ApprovalDecision",
    "ApprovalGate",
    "ApprovalOption",
    "ApprovalRequest",
    "Approver",
    "ask",
    "default_decision",
    "question_answers",
]


async def ask(
    approver: Approver | None,
    request: ApprovalRequest,
    fallback: ApprovalDecision,
    errors: list[BaseException] | None = None,
) -> Answer:
    """The approver's answer, ``fallback`` without one (questions: ``None``, i.e. dismissed).

    A raising callback gives DECLINE (questions: ``None``) and its exception is appended to
    ``errors`` — also a ``trio.Cancelled`` it raises while no scope around it is cancelled
    (a real cancellation propagates). A string answer is read as an :class:`ApprovalDecision`
    value; ``None`` for an approval gives ``fallback``; anything else declines (questions:
    dismissed), and a :class:`ConfigError` naming the answer is appended to ``errors`` — a
    ``True`` or ``"approve"`` is a caller's mistake to see, not a silent "no".
    """
    if approver is None:
        return None if request.kind == "question" else fallback
    try:
        answer = fn_result = approver(request)
        if inspect.isawaitable(fn_result):
            answer = await fn_result
    except trio.Cancelled as exc:
        if trio.current_effective_deadline() == -math.inf:
            raise  # a real cancellation: the request is withdrawn, or the session closes
        # a Cancelled no cancelled scope asked for is the approver's own failure, like any
        # other (it took the agent's whole connection down with it)
        if errors is not None:
            errors.append(exc)
        return None if request.kind == "question" else ApprovalDecision.DECLINE
    except Exception as exc:
        if errors is not None:
            errors.append(exc)
        return None if request.kind == "question" else ApprovalDecision.DECLINE
    if isinstance(answer, str):
        try:
            return ApprovalDecision(answer.strip().lower())
        except ValueError:
            _wrong_answer(request, answer, errors)
            return ApprovalDecision.DECLINE
    if request.kind == "question":
        if isinstance(answer, Mapping) and answer:
            return answer
        if not isinstance(answer, (Mapping, ApprovalDecision)) and answer is not None:
            _wrong_answer(request, answer, errors)
        return None
    if isinstance(answer, ApprovalDecision):
        return answer
    if answer is None:
        return fallback
    _wrong_answer(request, answer, errors)
    return ApprovalDecision.DECLINE


def _wrong_answer(
    request: ApprovalRequest, answer: object, errors: list[BaseException] | None
) -> None:
    """Keep an answer the approver may not give as a :class:`ConfigError` in ``errors``."""
    if errors is None:
        return
    if request.kind == "question":
        expected = "{question text: answer} or None; the question is dismissed"
    else:
        values = ", ".join(repr(d.value) for d in ApprovalDecision)
        expected = f"an ApprovalDecision, one of its values ({values}) or None; declined"
    text = repr(answer)
    if len(text) > 200:
        text = text[:200] + "…"
    errors.append(
        ConfigError(f"approver answered a {request.kind} request with {text}: expected {expected}")
    )


def _label(answer: Answer) -> str:
    if isinstance(answer, ApprovalDecision):
        return answer.value
    return "answered" if answer else "dismissed"


async def _no_emit(event: TurnEvent) -> None:
    return None


@attrs.define(eq=False)
class ApprovalGate:
    """The approval/question round trip shared by every session driver (module docstring).

    ``decide`` never raises for a bad callback (see :func:`ask`); it is cancelled with the
    task that awaits it (the driver's request task), which abandons the callback's wait.
    :meth:`withdraw_all` (the drivers call it when a turn is interrupted) answers every pending
    request CANCEL at once, so an interrupt never waits for a human.
    """

    provider: str
    approver: Approver | None = None
    errors: list[BaseException] = attrs.Factory(list)
    _asking: set[trio.CancelScope] = attrs.field(factory=set, init=False)

    def withdraw_all(self) -> int:
        """Stop waiting for every pending answer (the turn is being interrupted): each
        pending :meth:`decide` returns CANCEL at once (questions too; drivers treat a
        non-mapping answer to a question as dismissed). Returns how many were pending."""
        pending = list(self._asking)
        for scope in pending:
            scope.cancel()
        return len(pending)

    async def decide(
        self,
        request: ApprovalRequest,
        fallback: ApprovalDecision,
        emit: Callable[[TurnEvent], Awaitable[None]] = _no_emit,
        *,
        raw: str = "",
        thread_id: str = "",
        turn_id: str = "",
    ) -> Answer:
        """Ask, emitting the ``question`` event before and the decision notice after."""
        thread_id = thread_id or request.thread_id
        turn_id = turn_id or request.turn_id
        question = request.kind == "question"
        if question and request.question is not None:
            await emit(
                TurnEvent(
                    kind=EventKind.QUESTION, question=request.question, text=request.summary,
                    thread_id=thread_id, turn_id=turn_id, raw=raw, provider=self.provider,
                )
            )  # fmt: skip
        with trio.CancelScope() as scope:
            self._asking.add(scope)
            try:
                answer = await ask(self.approver, request, fallback, self.errors)
            finally:
                self._asking.discard(scope)
        if scope.cancelled_caught:  # withdrawn: the turn is being interrupted
            answer = ApprovalDecision.CANCEL
        if not question:
            await emit(
                TurnEvent(
                    kind=EventKind.TOOL_USE,
                    text=f"approval {request.kind}: {request.summary} -> {_label(answer)}",
                    thread_id=thread_id, turn_id=turn_id, raw=raw, provider=self.provider,
                )
            )  # fmt: skip
        return answer
