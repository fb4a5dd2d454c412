"""A callback that raises ``trio.Cancelled`` no scope asked for fails the run with
CallbackError (the exception contract in alice_trio.errors: a bare Cancelled only when the
caller's own scope cancelled) — not a false RunTimeoutError after the run's 48 h "timeout".
A real cancellation of the caller while a callback runs still comes out as bare Cancelled."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from alice_trio import OneShotBackend, ReplayConfig, RunRequest, SessionBackend
from alice_trio.engine.callbacks import CallbackCancelled
from alice_trio.errors import CallbackError
from alice_trio.models import EventKind, RawEvent, TurnEvent


def stray_cancel_sync(_: Any) -> None:
    raise trio.Cancelled._create()


async def stray_cancel_async(_: Any) -> None:
    await trio.lowlevel.checkpoint()
    raise trio.Cancelled._create()


async def run_once(kind: str, request: RunRequest) -> Any:
    if kind == "oneshot":
        return await OneShotBackend("replay", ReplayConfig(speed=0)).run(request)
    async with SessionBackend("replay", ReplayConfig(speed=0)) as b:
        return await b.run(request)


@pytest.mark.parametrize("kind", ["oneshot", "session"])
@pytest.mark.parametrize("hook", ["on_progress", "on_raw_event", "on_events"])
@pytest.mark.parametrize("cb", [stray_cancel_sync, stray_cancel_async], ids=["sync", "async"])
async def test_a_callbacks_stray_cancelled_is_a_callback_error(kind, hook, cb):
    with trio.fail_after(60):  # the bug: a false RunTimeoutError, never a hang, but be safe
        with pytest.raises(CallbackError) as info:
            await run_once(kind, RunRequest(user_text="hi", **{hook: cb}))
    assert isinstance(info.value.__cause__, CallbackCancelled)
    assert isinstance(info.value.__cause__.__cause__, trio.Cancelled)


@pytest.mark.parametrize("kind", ["oneshot", "session"])
async def test_the_callers_cancellation_inside_a_callback_stays_bare(kind):
    in_callback = trio.Event()

    async def slow(_: Any) -> None:
        in_callback.set()
        await trio.sleep_forever()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as n:

            async def cancel_when_inside() -> None:
                await in_callback.wait()
                scope.cancel()

            n.start_soon(cancel_when_inside)
            await run_once(kind, RunRequest(user_text="hi", on_progress=slow))
    assert scope.cancelled_caught


@pytest.mark.parametrize("kind", ["oneshot", "session"])
async def test_on_events_gets_the_typed_events_raw_callbacks_get(kind):
    """``on_events`` on both paths: every event the raw callback gets, typed, in order."""
    batches: list[list[TurnEvent]] = []
    raw: list[RawEvent] = []
    request = RunRequest(
        user_text="hi", on_events=lambda e: batches.append(list(e)), on_raw_event=raw.append
    )
    with trio.fail_after(60):
        result = await run_once(kind, request)
    events = [e for b in batches for e in b]
    assert all(type(e) is TurnEvent for e in events)
    shown = [e for e in events if e.kind not in (EventKind.THREAD_STARTED, EventKind.TURN_STARTED)]
    assert [e.to_raw_event() for e in shown] == raw and raw
    assert events[-1].kind is EventKind.TURN_COMPLETED
    assert [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT][-1] == result.reply


@pytest.mark.parametrize("kind", ["oneshot", "session"])
async def test_a_rate_holds_back_informational_events_on_both_paths(kind):
    """``informational_rate`` on both paths: the same events less the informational ones over
    the rate, which one ``skipped`` event counts before the terminal one; the same result."""
    every: list[TurnEvent] = []
    rated: list[TurnEvent] = []
    raw: list[RawEvent] = []
    with trio.fail_after(60):
        full = await run_once(kind, RunRequest(user_text="hi", on_events=every.extend))
        result = await run_once(
            kind,
            RunRequest(
                user_text="hi", on_events=rated.extend, on_raw_event=raw.append,
                informational_rate=1,
            ),
        )  # fmt: skip
    assert result == full
    tools = [e for e in every if e.kind is EventKind.TOOL_USE]
    assert len(tools) == 2  # the replay's two tool calls, in well under a second
    # the first tool call passes, the second is counted
    assert rated[:-2] == [e for e in every[:-1] if e is not tools[1]]
    notice, end = rated[-2:]
    assert end == every[-1] and end.kind is EventKind.TURN_COMPLETED
    assert notice.text == "1 events skipped: over 1 a second (tool_use 1)"
    assert raw[-2] == RawEvent(kind="skipped", detail=notice.text)
