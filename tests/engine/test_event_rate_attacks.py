"""``RunRequest.informational_rate`` under attack: the one-shot engine on trio's MockClock
through a fake process (no real waiting; what is checked holds however slow the machine)."""

from __future__ import annotations

import json

import trio
import trio.testing
from test_mock_clock import FakeChild, spawner_of

from alice_trio.engine.oneshot import run_invocation
from alice_trio.models import EventKind, TurnEvent
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.codex import CodexExecDecoder


def _line(**obj: object) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _tool(command: str) -> bytes:
    item = {"type": "command_execution", "command": command, "exit_code": 0}
    return _line(type="item.completed", item=item)


def _message(text: str) -> bytes:
    return _line(type="item.completed", item={"type": "agent_message", "text": text})


async def test_quiet_is_decided_again_after_the_reader_waited_for_the_callbacks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A read chunk whose lines wait for the callbacks part way (an over-long line's notice
    behind a full buffer) spans windows: the lines after the wait are decoded for the window
    they are offered in, not left unbuilt by the full window the chunk started in. Here the
    tool call after the wait is the first of a new second: it must reach the callback."""
    limits = RunLimits(
        kill_grace=0.5, drain_timeout=1.0, max_line_bytes=512, line_policy="skip",
        callback_buffer=2,
    )  # fmt: skip
    got: list[TurnEvent] = []

    async def slow(events: list[TurnEvent]) -> None:
        first = not got
        got.extend(events)
        if first:
            await trio.sleep(5)  # the first batch takes five seconds (virtual time)

    child = FakeChild()

    async def cli() -> None:
        await child.say(_tool("first") + _tool("second"))  # the window's two
        await trio.sleep(0.1)  # the callback holds those two: the buffer is full
        await child.say(
            _tool("counted")  # the window is full: counted, not built
            + _message("hello")  # waits for room (never shed): five seconds pass
            + b"x" * 2000 + b"\n"  # an over-long line: its notice (a new window)
            + _tool("after") + _tool("over")  # in that new window: shown, then counted
            + _message("done")
            + _line(type="turn.completed", usage={"input_tokens": 1, "output_tokens": 1})
        )  # fmt: skip
        await trio.sleep(60)  # exits when the engine is done with it (after the terminal)
        child.exit(0)

    inv = Invocation(argv=("fake",), limits=limits)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cli)
        result = await run_invocation(
            inv, CodexExecDecoder(), provider="codex", on_events=slow,
            informational_rate=2, spawner=spawner_of(child),
        )  # fmt: skip
    assert result.reply == "done"
    shown = [e.text for e in got if e.kind is EventKind.TOOL_USE]
    assert any("`first`" in t for t in shown) and any("`second`" in t for t in shown)
    assert any("`after`" in t for t in shown), "\n".join(f"{e.kind.value} {e.text}" for e in got)
    assert not any("`counted`" in t or "`over`" in t for t in shown)
    notices = [e.text for e in got if e.kind is EventKind.SKIPPED]
    assert sum(int(t.split()[0]) for t in notices) == 2, notices
