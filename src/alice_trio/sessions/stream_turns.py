"""What the stream drivers (claude stream-json, opencode serve) share about submitted turns.

Both keep their submitted turns in their mapper's ``pending`` list, registered before the
prompt is sent (its first output can arrive before the send returns).

* :func:`send_turn` sends a new turn and, once it is sent, announces it (``turn_started``): a
  prompt that could not be sent (the process is gone: :class:`TransportClosedError`) is no turn
  and leaves no event. Output of the turn the reader gets before that announces it first
  (:class:`Sending`), so ``turn_started`` is always the turn's first event. If either is
  cancelled or fails, whatever stopped it, the submission is withdrawn from the mapper before
  the exception propagates — a prompt the caller got no ref for must not stay pending, where
  the next prompt's output would be credited to it.
* :func:`report_exit`: when the process exits under them (not closed by us) each pending turn
  gets one ``error`` event naming the exit status and the end of stderr (spec §13.13), so no
  caller waits for a terminal event that will never come. Emitting is the only await: a cancel
  stops it there, and the caller has emptied the pending list already (reported at most once).

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Sequence
from typing import Protocol

from ..errors import TransportClosedError
from ..models import EventKind, TurnEvent
from .driver import Emit, TurnErrors, TurnRef

__all__ = ["ExitedProcess", "Sending", "exit_error", "report_exit", "send_turn"]

#: how much of stderr an exit report quotes
TAIL_CHARS = 2000


class ExitedProcess(Protocol):
    def end_state(self) -> tuple[str, str]: ...

    def stderr_tail(self) -> str: ...

    @property
    def returncode(self) -> int | None: ...


def _started(ref: TurnRef, provider: str) -> TurnEvent:
    return TurnEvent(
        kind=EventKind.TURN_STARTED, thread_id=ref.thread_id, turn_id=ref.turn_id, provider=provider
    )


class Sending:
    """The turns whose prompt is being sent (:func:`send_turn`). A turn is announced
    (``turn_started``) once its prompt is sent — or, when the reader already has output of it
    (the agent answered before the sending task ran again), right before that output
    (:meth:`before`), so ``turn_started`` always comes first. :func:`report_exit` leaves
    unannounced turns out: their send fails instead."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._refs: dict[str, TurnRef | None] = {}  # None: a steer (never announced)

    def __contains__(self, turn_id: object) -> bool:
        return turn_id in self._refs

    async def before(self, event: TurnEvent, emit: Emit) -> None:
        """Announce ``event``'s turn first when it is still being sent."""
        ref = self._refs.get(event.turn_id)
        if ref is not None:
            self._refs[event.turn_id] = None  # announced: the sending task does not again
            await emit(_started(ref, self.provider))


async def send_turn(
    ref: TurnRef,
    send: Callable[[], Awaitable[None]],
    withdraw: Callable[[str], None],
    emit: Emit | None,
    *,
    provider: str,
    announce: bool,
    sending: Sending | None = None,
) -> TurnRef:
    """``await send()``, then emit ``turn_started`` for ``ref`` (when ``announce``: a new turn,
    not a steer) unless ``sending`` announced it already (:class:`Sending`); on any exception
    (cancellation included) ``withdraw(ref.turn_id)`` first — and a turn announced already
    gets an ``error`` event (its prompt was not sent whole, the caller gets the exception)."""
    refs = sending._refs if sending is not None else {}
    refs[ref.turn_id] = ref if announce else None
    try:
        try:
            await send()
        finally:
            pending = refs.pop(ref.turn_id, None)
        if announce and emit is not None and pending is not None:
            await emit(_started(ref, provider))
    except BaseException as exc:
        withdraw(ref.turn_id)
        if announce and emit is not None and pending is None and isinstance(exc, Exception):
            # the announced turn ends (not when the caller is being cancelled)
            ended = TurnEvent(kind=EventKind.ERROR, error=str(exc) or type(exc).__name__,
                              thread_id=ref.thread_id, turn_id=ref.turn_id,
                              provider=provider)  # fmt: skip
            await emit(ended)
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
    sending: Container[str] = (),
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
