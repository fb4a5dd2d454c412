"""Any one-shot provider as a session driver (steer mode ``queue_when_busy``); gemini's default.

Each turn is one :func:`~alice_trio.engine.oneshot.run_invocation` (one CLI process) run as a
task in the driver's nursery. The provider's decoder is wrapped so that every event it produces
reaches the session as it happens, tagged with the turn id (``run-<n>``) — never through the
``on_progress`` strings, so a reply is never emitted twice and a file change is a
``file_change`` event without a ``[file_change]`` prefix (spec §13.22 fixed). The decoder's own
terminal events are held back: the driver emits the turn's terminal event once the process is
gone (``turn_completed`` with the usage, ``error`` with the error text and status, or
``turn_interrupted``).

:meth:`OneShotDriver.interrupt_turn` cancels the run: its process group is killed and the turn
ends with ``turn_interrupted`` carrying what was decoded so far. :meth:`OneShotDriver.aclose`
with ``graceful=False`` cancels every running turn the same way; graceful close waits for them.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import trio

from ..engine.oneshot import run_invocation
from ..errors import (
    AgentError,
    AliceError,
    EmptyPromptError,
    RunInterruptedError,
    SteerUnsupportedError,
)
from ..models import EventKind, RunRequest, TurnEvent, Usage
from ..providers.base import CLIConfig, DecodeOutcome, Decoder, Provider
from .driver import Emit, SteerMode, TurnRef

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

    def stderr_tail(self) -> str:
        return self._last_stderr

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await self._closed.wait()

    async def start_turn(self, request: RunRequest) -> TurnRef:
        if self._nursery is None or self._closed.is_set():
            from ..errors import SessionClosedError

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
            return TurnEvent(
                kind=event.kind,
                text=event.text,
                thread_id=event.thread_id or str(state["thread"]),
                turn_id=ref.turn_id,
                usage=event.usage,
                error=event.error,
                status=event.status,
                raw=event.raw,
                question=event.question,
                provider=event.provider or name,
            )

        async def forward() -> None:
            async with recv:
                async for event in recv:
                    if event.kind.terminal:
                        continue  # the driver reports the end once the process is gone
                    if event.kind is EventKind.ASSISTANT_TEXT:
                        state["text"] = True
                    await emit(tag(event))

        terminal: TurnEvent
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
                raise RunInterruptedError(f"{name} turn interrupted")
            state["thread"] = result.next_thread_id or state["thread"]
            if result.reply and not state["text"]:
                await emit(tag(TurnEvent(kind=EventKind.ASSISTANT_TEXT, text=result.reply)))
            terminal = tag(TurnEvent(kind=EventKind.TURN_COMPLETED, usage=result.usage))
        except RunInterruptedError as exc:
            partial = exc.partial if exc.partial.usage.has_usage else decoder.finish().result
            terminal = tag(
                TurnEvent(kind=EventKind.TURN_INTERRUPTED, usage=partial.usage, text=exc.message)
            )
        except AliceError as exc:
            self._last_stderr = exc.stderr_tail
            usage: Usage | None = exc.partial.usage if exc.partial.usage.has_usage else None
            status = exc.status if isinstance(exc, AgentError) else None
            terminal = tag(
                TurnEvent(kind=EventKind.ERROR, error=str(exc), status=status, usage=usage)
            )
        finally:
            self._turns.pop(ref.turn_id, None)
        await emit(terminal)


def open_gemini_driver(config: Any, initial: RunRequest) -> OneShotDriver:
    """Session factory for gemini: each turn is one ``gemini -p`` run (steer: queue)."""
    from ..providers.registry import get_provider

    return OneShotDriver(get_provider("gemini"), config)
