"""The one exit report of the stream drivers (claude stream-json, opencode serve)."""

from __future__ import annotations

import attrs

from alice_trio.models import EventKind, TurnEvent
from alice_trio.sessions.exit_report import TAIL_CHARS, report_exit


@attrs.define
class _Proc:
    tail: str
    rc: str = "exit status 3"

    def exit_description(self) -> str:
        return self.rc

    def stderr_tail(self) -> str:
        return self.tail


async def _report(proc: _Proc, turn_ids: list[str]) -> list[TurnEvent]:
    got: list[TurnEvent] = []

    async def emit(event: TurnEvent) -> None:
        got.append(event)

    await report_exit(emit, proc, "claude", turn_ids, provider="claude", thread_id="t1")
    return got


async def test_every_pending_turn_gets_one_error_naming_the_exit_and_stderr() -> None:
    got = await _report(_Proc(tail="  boom\n"), ["a", "b"])
    assert [(e.kind, e.turn_id, e.thread_id, e.provider) for e in got] == [
        (EventKind.ERROR, "a", "t1", "claude"),
        (EventKind.ERROR, "b", "t1", "claude"),
    ]
    assert got[0].error == "claude exited during the turn (exit status 3): boom"


async def test_silent_stderr_adds_nothing_and_a_long_one_is_cut_to_its_end() -> None:
    (quiet,) = await _report(_Proc(tail=" \n"), ["a"])
    assert quiet.error == "claude exited during the turn (exit status 3)"
    (loud,) = await _report(_Proc(tail="x" * TAIL_CHARS + "END"), ["a"])
    assert loud.error.endswith("x" * (TAIL_CHARS - 3) + "END")
    assert len(loud.error) == len("claude exited during the turn (exit status 3): ") + TAIL_CHARS


async def test_no_pending_turn_emits_nothing() -> None:
    assert await _report(_Proc(tail="boom"), []) == []
