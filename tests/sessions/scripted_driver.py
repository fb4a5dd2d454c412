"""A scripted in-memory SessionDriver for session/backend tests (no process, no I/O)."""

from __future__ import annotations

import itertools

import trio

from alice_trio.errors import SessionClosedError, TransportClosedError
from alice_trio.models import EventKind, RunRequest, TurnEvent, Usage
from alice_trio.sessions.driver import Emit, SteerMode, TurnRef


class ScriptedDriver:
    """Records every call; the test pushes events with :meth:`push` / :meth:`finish`.

    ``auto_reply``: on start_turn, immediately emit ``turn_started``, an assistant text equal to
    ``"reply to <prompt>"`` and ``turn_completed`` with usage (a fast provider). ``enqueue``: a
    steer gets its own turn id (native_enqueue style) instead of the active one.
    """

    def __init__(
        self,
        steer_mode: SteerMode = SteerMode.QUEUE_WHEN_BUSY,
        *,
        auto_reply: bool = False,
        enqueue: bool = False,
        thread_id: str = "thr-1",
    ) -> None:
        self.steer_mode = steer_mode
        self.auto_reply = auto_reply
        self.enqueue = enqueue
        self.thread_id = thread_id
        self.started: list[tuple[TurnRef, RunRequest]] = []
        self.steered: list[tuple[TurnRef, RunRequest]] = []
        self.interrupted: list[TurnRef] = []
        self.closed_with: list[bool] = []
        self._ids = itertools.count(1)
        self._emit: Emit | None = None
        self._end = trio.Event()
        self.fail_start: BaseException | None = None
        self.start_gate: trio.Event | None = None
        self.crash: BaseException | None = None
        self.interrupt_reply = True

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        task_status.started()
        await self._end.wait()
        if self.crash is not None:
            raise self.crash

    async def push(self, event: TurnEvent) -> None:
        assert self._emit is not None
        await self._emit(event)

    async def finish(
        self,
        ref: TurnRef,
        kind: EventKind = EventKind.TURN_COMPLETED,
        text: str = "",
        usage: Usage | None = None,
        error: str = "",
    ) -> None:
        if text:
            await self.push(
                TurnEvent(
                    kind=EventKind.ASSISTANT_TEXT,
                    text=text,
                    thread_id=ref.thread_id,
                    turn_id=ref.turn_id,
                )
            )
        await self.push(
            TurnEvent(
                kind=kind, thread_id=ref.thread_id, turn_id=ref.turn_id, usage=usage, error=error
            )
        )

    def end(self, crash: BaseException | None = None) -> None:
        """The process ends by itself (EOF / crash)."""
        self.crash = crash
        self._end.set()

    async def start_turn(self, request: RunRequest) -> TurnRef:
        if self._end.is_set():
            raise SessionClosedError()
        if self.start_gate is not None:
            await self.start_gate.wait()
        if self.fail_start is not None:
            raise self.fail_start
        ref = TurnRef(thread_id=request.thread_id or self.thread_id, turn_id=f"t{next(self._ids)}")
        self.started.append((ref, request))
        if self.auto_reply:
            await self.push(
                TurnEvent(kind=EventKind.TURN_STARTED, thread_id=ref.thread_id, turn_id=ref.turn_id)
            )
            await self.finish(
                ref, text=f"reply to {request.prompt}", usage=Usage(input_tokens=3, output_tokens=2)
            )
        return ref

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        if self._end.is_set():
            raise TransportClosedError()
        ref = (
            TurnRef(thread_id=turn.thread_id, turn_id=f"t{next(self._ids)}")
            if self.enqueue
            else turn
        )
        self.steered.append((ref, request))
        return ref

    async def interrupt_turn(self, turn: TurnRef) -> None:
        self.interrupted.append(turn)
        if self.interrupt_reply:
            await self.finish(turn, EventKind.TURN_INTERRUPTED)

    async def aclose(self, *, graceful: bool) -> None:
        self.closed_with.append(graceful)
        self._end.set()

    def stderr_tail(self) -> str:
        return "scripted stderr"
