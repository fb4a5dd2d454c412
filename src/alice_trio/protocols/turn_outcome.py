"""How a turn ended, and the one mapping from that ending to the error raised or the event sent.

Three places decide "how did the turn end → which error / which terminal event": the one-shot
engine (a decoder's verdict or the run's failure → the exception ``run`` raises), the one-shot
session driver (a run's result or exception → the turn's terminal event) and the session backend
(a terminal event → the exception ``SessionBackend.run`` raises). They all go through
:class:`TurnEnd`, so one ending is reported the same way everywhere:

============================  ====================  ===========================================
ending                        terminal event        error raised
============================  ====================  ===========================================
completed                     ``turn_completed``    none (the result is returned)
interrupted                   ``turn_interrupted``  :class:`RunInterruptedError`
failed, typed error known     ``error``             that error (a copy, with partial and tail)
failed, agent's message only  ``error``             :class:`AgentError` (``status``)
============================  ====================  ===========================================

Pure: no I/O, no trio.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from ..errors import AgentError, AliceError, RunInterruptedError
from ..models import EventKind, RunResult, TurnEvent, Usage

__all__ = ["Ending", "TurnEnd", "clone_error"]


class Ending(enum.Enum):
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


_EVENT_KIND = {
    Ending.COMPLETED: EventKind.TURN_COMPLETED,
    Ending.INTERRUPTED: EventKind.TURN_INTERRUPTED,
    Ending.FAILED: EventKind.ERROR,
}


def clone_error(error: AliceError, **changes: Any) -> AliceError:
    """A copy of ``error`` (same type, same attributes) with ``changes`` applied; the original
    is never mutated (one process failure can end several turns)."""
    clone = type(error).__new__(type(error), *error.args)
    clone.__dict__.update(error.__dict__)
    clone.__dict__.update(changes)
    clone.__cause__ = error.__cause__
    return clone


@attrs.frozen(kw_only=True)
class TurnEnd:
    """One turn's ending. ``error`` is the typed error when the ending came from one (a process
    failure, a too-long line, a timeout), else the agent's ``message`` and ``status`` describe
    a failure."""

    ending: Ending
    message: str = ""
    status: int | None = None
    usage: Usage | None = None
    error: AliceError | None = None

    # -- from what each place observes -----------------------------------------------------------
    @classmethod
    def from_event(cls, event: TurnEvent, error: AliceError | None = None) -> TurnEnd:
        """A terminal event (``error`` is the typed error behind an ``error`` event, if the
        session knows one)."""
        if event.kind is EventKind.TURN_COMPLETED:
            return cls(ending=Ending.COMPLETED, usage=event.usage)
        if event.kind is EventKind.TURN_INTERRUPTED:
            return cls(ending=Ending.INTERRUPTED, message=event.text, usage=event.usage)
        if event.kind is EventKind.ERROR:
            return cls(
                ending=Ending.FAILED, message=event.error, status=event.status,
                usage=event.usage, error=error,
            )  # fmt: skip
        raise ValueError(f"not a terminal event: {event.kind.value}")

    @classmethod
    def from_error(cls, error: AliceError) -> TurnEnd:
        """A run that raised: interrupted, or failed with that typed error."""
        usage = error.partial.usage if error.partial.usage.has_usage else None
        if isinstance(error, RunInterruptedError):
            return cls(ending=Ending.INTERRUPTED, message=error.message, usage=usage, error=error)
        status = error.status if isinstance(error, AgentError) else None
        return cls(
            ending=Ending.FAILED, message=str(error), status=status, usage=usage, error=error
        )

    @classmethod
    def from_verdict(
        cls, *, error: str = "", status: int | None = None, interrupted: bool = False
    ) -> TurnEnd:
        """A decoder's verdict (:class:`~alice_trio.providers.base.DecodeOutcome` fields)."""
        if error:
            return cls(ending=Ending.FAILED, message=error, status=status)
        if interrupted:
            return cls(ending=Ending.INTERRUPTED)
        return cls(ending=Ending.COMPLETED)

    # -- to what each place reports --------------------------------------------------------------
    def event(self, *, thread_id: str, turn_id: str, provider: str) -> TurnEvent:
        """The turn's terminal event."""
        return TurnEvent(
            kind=_EVENT_KIND[self.ending],
            text=self.message if self.ending is Ending.INTERRUPTED else "",
            error=(self.message or f"{provider or 'agent'} turn failed")
            if self.ending is Ending.FAILED
            else "",
            status=self.status,
            usage=self.usage,
            thread_id=thread_id,
            turn_id=turn_id,
            provider=provider,
        )

    def exception(
        self, *, provider: str, partial: RunResult, stderr_tail: str = ""
    ) -> AliceError | None:
        """The error to raise for this ending (None: the turn completed)."""
        if self.ending is Ending.COMPLETED:
            return None
        if self.error is not None:
            return clone_error(
                self.error, partial=partial, provider=self.error.provider or provider,
                stderr_tail=stderr_tail or self.error.stderr_tail,
            )  # fmt: skip
        if self.ending is Ending.INTERRUPTED:
            return RunInterruptedError(
                f"{provider} turn interrupted", partial=partial, provider=provider,
                stderr_tail=stderr_tail,
            )  # fmt: skip
        return AgentError(
            self.message or f"{provider} turn failed", status=self.status, partial=partial,
            provider=provider, stderr_tail=stderr_tail,
        )  # fmt: skip
