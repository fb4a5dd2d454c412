"""What the stream drivers (claude stream-json, opencode serve) share about submitted turns."""

from __future__ import annotations

from contextlib import nullcontext

import attrs
import pytest
import trio
import trio.testing

from alice_trio.errors import SessionClosedError
from alice_trio.models import EventKind, TurnEvent
from alice_trio.sessions.driver import TurnRef
from alice_trio.sessions.stream_turns import TAIL_CHARS, report_exit, send_turn


@attrs.define
class _Proc:
    tail: str
    rc: str = "exit status 3"

    def end_state(self) -> tuple[str, str]:
        return "exited", self.rc

    def stderr_tail(self) -> str:
        return self.tail


async def _report(proc: _Proc, turn_ids: list[str]) -> list[TurnEvent]:
    got: list[TurnEvent] = []

    async def emit(event: TurnEvent) -> None:
        got.append(event)

    await report_exit(emit, proc, "claude", turn_ids, "claude", "t1")
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


REF = TurnRef(thread_id="t1", turn_id="turn-1")


@pytest.mark.parametrize("stop", ["cancel", "error"])
@pytest.mark.parametrize("announce", [True, False])
async def test_a_send_stopped_by_anything_withdraws_the_submission(
    stop: str, announce: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """A cancelled send is withdrawn too (opencode's driver used to keep it pending, where the
    next prompt's user message could be bound to it); a send that did not happen announced
    its turn all the same (a ``turn_started`` for input the dead agent never got)."""
    withdrawn: list[str] = []
    events: list[TurnEvent] = []

    async def emit(event: TurnEvent) -> None:
        events.append(event)

    async def send() -> None:
        if stop == "error":
            raise SessionClosedError(provider="claude")
        await trio.sleep_forever()

    with trio.move_on_after(1) as scope:  # autojump clock: no real wait
        with pytest.raises(SessionClosedError) if stop == "error" else nullcontext():
            await send_turn(REF, send, withdrawn.append, emit, provider="claude", announce=announce)
    assert scope.cancelled_caught is (stop == "cancel")
    assert withdrawn == ["turn-1"]
    assert events == []  # a turn is announced once it is sent, never before


async def test_a_sent_turn_is_announced_once_and_kept() -> None:
    withdrawn: list[str] = []
    events: list[TurnEvent] = []
    sent: list[str] = []

    async def emit(event: TurnEvent) -> None:
        events.append(event)

    async def send() -> None:
        sent.append("x")

    got = await send_turn(REF, send, withdrawn.append, emit, provider="opencode", announce=True)
    assert got is REF and sent == ["x"] and withdrawn == []
    assert [(e.kind, e.turn_id, e.thread_id, e.provider) for e in events] == [
        (EventKind.TURN_STARTED, "turn-1", "t1", "opencode")
    ]


@pytest.mark.parametrize("fails", [False, True], ids=["sent", "send-failed"])
async def test_output_read_before_the_send_returned_is_announced_first(fails: bool) -> None:
    """The turn is announced once its prompt is sent; output of it that the reader gets
    before the sending task runs again announces it right before that output (turn_started
    stays the turn's first event, once). A send that then fails ends the announced turn."""
    from alice_trio.sessions.stream_turns import Sending

    events: list[TurnEvent] = []
    sending = Sending("claude")

    async def emit(event: TurnEvent) -> None:
        events.append(event)

    reply = TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="hi", turn_id=REF.turn_id)

    async def send() -> None:  # the reader gets the turn's output meanwhile
        await sending.before(reply, emit)
        await emit(reply)
        if fails:
            raise SessionClosedError(provider="claude")

    withdrawn: list[str] = []
    with pytest.raises(SessionClosedError) if fails else nullcontext():
        await send_turn(REF, send, withdrawn.append, emit, provider="claude", announce=True,
                        sending=sending)  # fmt: skip
    kinds = [e.kind for e in events]
    if fails:
        assert kinds == [EventKind.TURN_STARTED, EventKind.ASSISTANT_TEXT, EventKind.ERROR]
        assert withdrawn == ["turn-1"]
    else:
        assert kinds == [EventKind.TURN_STARTED, EventKind.ASSISTANT_TEXT]
    assert REF.turn_id not in sending
    # a steer is never announced, also not by its output
    events.clear()
    steer = TurnRef(thread_id="t1", turn_id="turn-2")

    async def send_steer() -> None:
        await sending.before(attrs.evolve(reply, turn_id="turn-2"), emit)

    await send_turn(steer, send_steer, withdrawn.append, emit, provider="claude",
                    announce=False, sending=sending)  # fmt: skip
    assert events == []


async def test_rpc_turn_output_read_before_the_write_returned_is_announced_first() -> None:
    """The JSON-RPC drivers (ACP) announce a turn once its request is written; output of it
    the reader emits before the writing task runs again announces it first, once."""
    from alice_trio.providers.base import Invocation
    from alice_trio.sessions.rpc_driver import RpcDriver, TurnStart

    events: list[TurnEvent] = []

    async def emit(event: TurnEvent) -> None:
        events.append(event)

    driver = RpcDriver(Invocation(argv=("true",)))
    driver._emit = emit
    driver._started = True
    text = TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="hi", turn_id=REF.turn_id)

    class Client:
        closed = trio.Event()

        async def request(self, method, params, *, on_cancel, ordered, on_written):
            await driver.announce_before(text.turn_id)  # the pump got the turn's output
            await emit(text)
            await on_written()
            return {}

    driver.client = Client()  # type: ignore[assignment]

    async def announce() -> None:
        await emit(TurnEvent(kind=EventKind.TURN_STARTED, turn_id=REF.turn_id))

    start = TurnStart()
    await driver.request_turn(REF, "session/prompt", {}, lambda result: [], start=start,
                              announce=announce)  # fmt: skip
    await start.wait()
    assert [e.kind for e in events] == [EventKind.TURN_STARTED, EventKind.ASSISTANT_TEXT]
