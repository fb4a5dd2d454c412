"""The one way a stream driver reports its agent process exiting with turns in flight.

claude's stream-json driver and opencode's serve driver keep their submitted turns in their
mapper's ``pending`` list; when the process exits under them (not closed by us) each such turn
gets one ``error`` event naming the exit status and the end of stderr (spec §13.13), so no
caller waits for a terminal event that will never come. Emitting is the only await: a cancel
stops it there, and the pending list is already empty then (a turn is reported at most once).

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..models import EventKind, TurnEvent
from .driver import Emit

__all__ = ["ExitedProcess", "report_exit"]

#: how much of stderr an exit report quotes
TAIL_CHARS = 2000


class ExitedProcess(Protocol):
    def exit_description(self) -> str: ...

    def stderr_tail(self) -> str: ...


async def report_exit(
    emit: Emit,
    proc: ExitedProcess,
    what: str,
    turn_ids: Sequence[str],
    *,
    provider: str,
    thread_id: str,
) -> None:
    """One ``error`` event per turn in ``turn_ids``: ``<what> exited during the turn (<exit>)``,
    then ``: <stderr tail>`` when stderr said anything."""
    message = f"{what} exited during the turn ({proc.exit_description()})"
    tail = proc.stderr_tail().strip()
    if tail:
        message += f": {tail[-TAIL_CHARS:]}"
    for turn_id in turn_ids:
        await emit(
            TurnEvent(
                kind=EventKind.ERROR,
                error=message,
                turn_id=turn_id,
                thread_id=thread_id,
                provider=provider,
            )
        )
