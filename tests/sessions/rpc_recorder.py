"""An ``emit`` that records driver events and lets a test wait for one (tests only)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from alice_trio.models import EventKind, TurnEvent


class Recorder:
    def __init__(self) -> None:
        self.events: list[TurnEvent] = []
        self._changed = trio.Event()

    async def __call__(self, event: TurnEvent) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, pred: Callable[[TurnEvent], bool], start: int = 0) -> TurnEvent:
        with trio.fail_after(20):
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                await self._changed.wait()

    async def terminal(self, turn_id: str | None = None, start: int = 0) -> TurnEvent:
        return await self.wait_for(
            lambda e: e.kind.terminal and (turn_id is None or e.turn_id == turn_id), start
        )

    def of(self, kind: EventKind, turn_id: str | None = None) -> list[TurnEvent]:
        return [
            e for e in self.events if e.kind is kind and (turn_id is None or e.turn_id == turn_id)
        ]

    def texts(self, kind: EventKind, turn_id: str | None = None) -> list[str]:
        return [e.text for e in self.of(kind, turn_id)]
