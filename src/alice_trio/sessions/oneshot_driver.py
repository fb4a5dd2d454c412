"""Any one-shot provider as a session driver (steer mode ``queue_when_busy``); gemini's default.

Each turn is one :func:`~alice_trio.engine.oneshot.run_invocation` (one CLI process) run as a
task in the driver's nursery. The provider's decoder is wrapped so that every event it produces
reaches the session as it happens, tagged with the turn id (``run-<n>``) — never through the
``on_progress`` strings, so a reply is never emitted twice and a file change is a
``file_change`` event without a ``[file_change]`` prefix (spec §13.22 fixed). The driver emits
the turn's one ``turn_started`` and, once the process is gone, its one terminal event
(:class:`~alice_trio.protocols.turn_outcome.TurnEnd`: ``turn_completed`` with the usage,
``error`` with the error text and status, or ``turn_interrupted``); the decoder's own
``turn_started`` and terminal events are held back. The typed error behind an ``error`` event
(a too-long line, a timeout, a crash) stays available through :meth:`OneShotDriver.turn_error`,
so a session run raises it rather than a generic ``AgentError``.

:meth:`OneShotDriver.interrupt_turn` cancels the run: its process group is killed and the turn
ends with ``turn_interrupted`` carrying what was decoded so far. :meth:`OneShotDriver.aclose`
with ``graceful=False`` cancels every running turn the same way; graceful close waits for them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import trio

from ..engine.oneshot import run_invocation
from ..errors import (
    AliceError,
    EmptyPromptError,
    RunInterruptedError,
    SessionClosedError,
    SteerUnsupportedError,
)
from ..models import EventKind, RunRequest, TurnEvent
from ..protocols.turn_outcome import Ending, TurnEnd
from ..providers.base import CLIConfig, DecodeOutcome, Decoder, Provider
from .driver import Emit, SteerMode, TurnErrors, TurnRef

__all__ = ["OneShotDriver", "open_gemini_driver"]


class _TeeDecoder:
    """A decoder proxy that also hands each event to the driver's forwarder."""

    def __init__(self, inner: Decoder, sink: trio.MemorySendChannel[TurnEvent]) -> None:
        self.inner = inner
        self.sink = sink

    @property
    def terminal(self) -> bool:
        return self.inner.terminal

    def feed(self, line: str) -> list[TurnEvent]:
        events = self.inner.feed(line)
        for event in events:
            try:
                self.sink.send_nowait(event)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass
        return events

    def finish(self) -> DecodeOutcome:
        return self.inner.finish()


class OneShotDriver:
    """See the module docstring. ``provider`` is any registered one-shot provider."""

    steer_mode = SteerMode.QUEUE_WHEN_BUSY

    def __init__(self, provider: Provider, config: CLIConfig) -> None:
        self.provider = provider
        self.config = config
        self._emit: Emit | None = None
        self._nursery: trio.Nursery | None = None
        self._turns: dict[str, trio.CancelScope] = {}
        self._ids = itertools.count(1)
        self._closed = trio.Event()
        self._last_stderr = ""
        self._errors = TurnErrors()

    def stderr_tail(self) -> str:
        return self._last_stderr

    def turn_error(self, turn_id: str) -> AliceError | None:
        """The typed error turn ``turn_id`` failed with (None: it did not fail, or is old)."""
        return self._errors.get(turn_id)

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await self._closed.wait()

    async def start_turn(self, request: RunRequest) -> TurnRef:
        if self._nursery is None or self._closed.is_set():
            raise SessionClosedError(provider=self.provider.name)
        if not request.prompt:
            raise EmptyPromptError(provider=self.provider.name)
        # build before accepting, so configuration errors reach the caller of submit()
        invocation = self.provider.build_invocation(request, self.config)
        decoder = self.provider.new_decoder(request, self.config)
        ref = TurnRef(thread_id=request.thread_id, turn_id=f"run-{next(self._ids)}")
        scope = trio.CancelScope()
        self._turns[ref.turn_id] = scope
        self._nursery.start_soon(self._run_turn, ref, invocation, decoder, scope)
        return ref

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        raise SteerUnsupportedError(provider=self.provider.name)

    async def interrupt_turn(self, turn: TurnRef) -> None:
        scope = self._turns.get(turn.turn_id)
        if scope is not None:
            scope.cancel()

    async def aclose(self, *, graceful: bool) -> None:
        if not graceful:
            for scope in list(self._turns.values()):
                scope.cancel()
        self._closed.set()  # run() then waits for the turns still running

    # -- one turn --------------------------------------------------------------------------------
    async def _run_turn(
        self, ref: TurnRef, invocation: Any, decoder: Decoder, scope: trio.CancelScope
    ) -> None:
        assert self._emit is not None
        emit = self._emit
        name = self.provider.name
        send, recv = trio.open_memory_channel[TurnEvent](math.inf)
        tee = _TeeDecoder(decoder, send)
        state = {"text": False, "thread": ref.thread_id}

        def tag(event: TurnEvent) -> TurnEvent:
            if event.thread_id:
                state["thread"] = event.thread_id
            # the event as decoded (files, question, usage...), with this turn's ids
            return attrs.evolve(
                event,
                thread_id=event.thread_id or str(state["thread"]),
                turn_id=ref.turn_id,
                provider=event.provider or name,
            )

        async def forward() -> None:
            async with recv:
                async for event in recv:
                    if event.kind.terminal or event.kind is EventKind.TURN_STARTED:
                        continue  # the driver reports both once (start here, end when gone)
                    if event.kind is EventKind.ASSISTANT_TEXT:
                        state["text"] = True
                    await emit(tag(event))

        end: TurnEnd
        try:
            await emit(tag(TurnEvent(kind=EventKind.TURN_STARTED)))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(forward)
                try:
                    with scope:
                        result = await run_invocation(
                            invocation,
                            tee,
                            provider=name,
                            fallback_thread_id=ref.thread_id,
                            explain_exit=self.provider.explain_exit,
                        )
                finally:
                    send.close()
            if scope.cancelled_caught:
                raise RunInterruptedError(f"{name} turn interrupted", provider=name)
            state["thread"] = result.next_thread_id or state["thread"]
            if result.reply and not state["text"]:
                await emit(tag(TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=result.reply)))
            end = TurnEnd(ending=Ending.COMPLETED, usage=result.usage)
        except AliceError as exc:
            if isinstance(exc, RunInterruptedError) and not exc.partial.usage.has_usage:
                exc.partial = decoder.finish().result  # what was decoded before the kill
            if exc.stderr_tail:
                self._last_stderr = exc.stderr_tail
            end = TurnEnd.from_error(exc)
            if end.ending is Ending.FAILED:
                self._errors.record(ref.turn_id, exc)
        finally:
            self._turns.pop(ref.turn_id, None)
        terminal = end.event(thread_id="", turn_id=ref.turn_id, provider=name)
        await emit(tag(terminal))


def open_gemini_driver(config: Any, initial: RunRequest) -> OneShotDriver:
    """Session factory for gemini: each turn is one ``gemini -p`` run (steer: queue)."""
    from ..providers.registry import get_provider

    return OneShotDriver(get_provider("gemini"), config)
