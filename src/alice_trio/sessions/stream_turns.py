"""What the stream drivers (claude stream-json, opencode serve) share about submitted turns.

Both keep their submitted turns in their mapper's ``pending`` list, registered before the
prompt is sent (its first output can arrive before the send returns).

* :func:`send_turn` sends a new turn and, once it is sent, announces it (``turn_started``): a
  prompt that could not be sent (the process is gone: :class:`TransportClosedError`) is no turn
  and leaves no event. If either is cancelled or fails, whatever stopped it, the submission is
  withdrawn from the mapper before the exception propagates — a prompt the caller got no ref
  for must not stay pending, where the next prompt's output would be credited to it.
* :func:`report_exit`: when the process exits under them (not closed by us) each pending turn
  gets one ``error`` event naming the exit status and the end of stderr (spec §13.13), so no
  caller waits for a terminal event that will never come. Emitting is the only await: a cancel
  stops it there, and the caller has emptied the pending list already (reported at most once).

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Protocol

from ..errors import TransportClosedError
from ..models import EventKind, TurnEvent
from .driver import Emit, TurnErrors, TurnRef

__all__ = ["ExitedProcess", "exit_error", "report_exit", "send_turn"]

#: how much of stderr an exit report quotes
TAIL_CHARS = 2000


class ExitedProcess(Protocol):
    def end_state(self) -> tuple[str, str]: ...

    def stderr_tail(self) -> str: ...

    @property
    def returncode(self) -> int | None: ...


async def send_turn(
    ref: TurnRef,
    send: Callable[[], Awaitable[None]],
    withdraw: Callable[[str], None],
    emit: Emit | None,
    *,
    provider: str,
    announce: bool,
    sending: set[str] | None = None,
) -> TurnRef:
    """``await send()``, then emit ``turn_started`` for ``ref`` (when ``announce``: a new turn,
    not a steer); on any exception (cancellation included) ``withdraw(ref.turn_id)`` first.
    ``sending`` holds the turn id while it is being sent (:func:`report_exit` leaves it out:
    a send the process's end stopped raises instead)."""
    if sending is not None:
        sending.add(ref.turn_id)
    try:
        try:
            await send()
        finally:
            if sending is not None:
                sending.discard(ref.turn_id)
        if announce and emit is not None:
            started = TurnEvent(
                kind=EventKind.TURN_STARTED,
                thread_id=ref.thread_id,
                turn_id=ref.turn_id,
                provider=provider,
            )
            await emit(started)
    except BaseException:
        withdraw(ref.turn_id)
        raise
    return ref


def exit_error(proc: ExitedProcess | None, what: str, provider: str) -> TransportClosedError | None:
    """The :class:`TransportClosedError` of a process that ended: ``<what> exited (<exit>)``
    with its stderr tail (None while it runs, or before it was spawned)."""
    if proc is None or proc.returncode is None:
        return None
    ended, status = proc.end_state()
    return TransportClosedError(
        f"{what} {ended} ({status})", provider=provider, stderr_tail=proc.stderr_tail()
    )


async def report_exit(
    emit: Emit | None,
    proc: ExitedProcess,
    what: str,
    turn_ids: Sequence[str],
    provider: str,
    thread_id: str,
    errors: TurnErrors | None = None,
    sending: Collection[str] = (),
) -> None:
    """One ``error`` event per turn in ``turn_ids``: ``<what> exited during the turn (<exit>)``
    (or what else ended it: ``closed its output and was stopped``, see
    :meth:`~alice_trio.transports.process.AgentProcess.end_state`), then ``: <stderr tail>``
    when stderr said anything; ``errors`` records the :class:`TransportClosedError` behind each
    (the driver's ``turn_error``). Turns in ``sending`` get nothing: their send fails. Nothing
    when no turn was pending."""
    turn_ids = [t for t in turn_ids if t not in sending]
    if not turn_ids:
        return
    assert emit is not None  # a driver has turns only once its run() got the emitter
    ended, status = proc.end_state()
    message = f"{what} {ended} during the turn ({status})"
    tail = proc.stderr_tail().strip()
    if tail:
        message += f": {tail[-TAIL_CHARS:]}"
    for turn_id in turn_ids:
        if errors is not None:
            errors.record(
                turn_id,
                TransportClosedError(message, provider=provider, stderr_tail=proc.stderr_tail()),
            )
        await emit(
            TurnEvent(
                kind=EventKind.ERROR,
                error=message,
                turn_id=turn_id,
                thread_id=thread_id,
                provider=provider,
            )
        )
