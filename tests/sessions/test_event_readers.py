"""A session's ``events()`` has one reader at a time: a second task reading while another
waits raises :class:`SessionError` instead of silently taking half of the events (before, two
``async for`` loops over one session each saw every other event)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from alice_trio.errors import SessionError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.sessions.driver import SteerMode
from alice_trio.sessions.session import open_session
from alice_trio.testing import ScriptedDriver


def req(text: str) -> RunRequest:
    return RunRequest(user_text=text)


async def test_a_second_concurrent_reader_is_refused_and_the_first_sees_everything() -> None:
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        first: list[TurnEvent] = []
        refused: list[BaseException] = []

        async def read_all() -> None:
            async for event in s.events():
                first.append(event)
                if event.kind.terminal and len([e for e in first if e.kind.terminal]) == 3:
                    return

        async def second_reader() -> None:
            try:
                async for _ in s.events():
                    raise AssertionError("the second reader got an event")
            except SessionError as exc:
                refused.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            await trio.testing.wait_all_tasks_blocked()  # the first reader waits
            nursery.start_soon(second_reader)
            await trio.testing.wait_all_tasks_blocked()
            for text in ("one", "two", "three"):
                ref = await s.submit(req(text))
                started = driver.started[-1][0]
                assert started.turn_id == ref.turn_id
                await driver.finish(started, text=f"reply {text}")
        assert len(refused) == 1 and "one event reader at a time" in str(refused[0])
        texts = [e.text for e in first if e.kind is EventKind.ASSISTANT_TEXT]
        assert texts == ["reply one", "reply two", "reply three"]  # nothing split off


async def test_readers_one_after_the_other_in_different_tasks_are_fine() -> None:
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY, auto_reply=True)
    async with open_session("fake", initial=req("x"), driver=driver) as s:
        for text in ("one", "two"):
            got: list[TurnEvent] = []

            async def read_turn(into: list[TurnEvent] = got) -> None:
                async for event in s.events():
                    into.append(event)
                    if event.kind.terminal:
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_turn)
                await s.submit(req(text))
            assert got[-1].kind is EventKind.TURN_COMPLETED
            assert [e.text for e in got if e.kind is EventKind.ASSISTANT_TEXT] == [
                f"reply to {text}"
            ]
        with pytest.raises(SessionError):
            s.events().clone()
        assert s.events() is s.events()
