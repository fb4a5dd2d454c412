"""A SessionBackend closed while runs of tasks outside its ``async with`` still wait — for
their key's lock, a turn slot, a conversation slot or their session's start — ends those runs
with SessionClosedError at once: before, they opened sessions in (or after) the closing
nursery, so the close waited for sessions nobody closed (a hang), and later ones raised
trio's ``RuntimeError('Nursery is closed to new arrivals')`` or an ``AttributeError``."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from scripted_driver import ScriptedDriver

from alice_trio.errors import AliceError, ConfigError, SessionClosedError
from alice_trio.models import RunRequest
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig


class Factory:
    def __init__(self, driver: type[ScriptedDriver] = ScriptedDriver) -> None:
        self.driver = driver
        self.drivers: list[ScriptedDriver] = []

    def __call__(self, config: Any, initial: RunRequest) -> ScriptedDriver:
        d = self.driver()
        self.drivers.append(d)
        return d


class NeverStarts(ScriptedDriver):
    async def run(self, emit: Any, *, task_status: Any) -> None:
        await trio.sleep_forever()


def keyed(text: str, key: str) -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": key})


async def close_under(backend: SessionBackend, requests: list[RunRequest]) -> list[Any]:
    """Start every request in a task outside the backend's ``async with``, close the backend
    once they all wait, and return each run's outcome (the exception, or the result)."""
    outcomes: list[Any] = [None] * len(requests)

    async def run(i: int) -> None:
        try:
            outcomes[i] = await backend.run(requests[i])
        except Exception as exc:  # what the caller sees, typed or not
            outcomes[i] = exc

    with trio.fail_after(10):  # virtual seconds: a close that waits for a session hangs here
        async with trio.open_nursery() as nursery:
            async with backend:
                for i in range(len(requests)):
                    nursery.start_soon(run, i)
                await trio.sleep(1)  # every run is now at its turn or waiting before it
    return outcomes


@pytest.mark.parametrize(
    "scaling",
    [
        ScalingConfig(warm=0),  # the others wait for the first run's key lock
        ScalingConfig(warm=0, max_turns=1),  # ... and for the one turn slot
        ScalingConfig(warm=0, max_conversations=1),  # ... and for the one conversation
    ],
    ids=["key-lock", "max-turns", "max-conversations"],
)
async def test_runs_waiting_before_their_turn_get_session_closed(autojump_clock, scaling):
    f = Factory()
    backend = SessionBackend("codex", driver_factory=f, idle_ttl=30, scaling=scaling)
    requests = [keyed("held", "a"), keyed("second", "a"), keyed("third", "a")]
    requests += [keyed("other", "b"), keyed("another", "c")]
    outcomes = await close_under(backend, requests)
    for outcome in outcomes:
        assert isinstance(outcome, AliceError), repr(outcome)  # never RuntimeError & co.
    held = [o for o in outcomes if not isinstance(o, SessionClosedError)]
    waited = [o for o in outcomes if isinstance(o, SessionClosedError)]
    # at most one run of key "a" held its turn (its session was closed under it), the others
    # waited for its lock; with one turn or conversation slot only one run of all held one
    assert len([o for o in outcomes[:3] if o in held]) <= 1, outcomes
    assert len(held) == (1 if scaling.max_turns or scaling.max_conversations else 3), outcomes
    assert all("closed before this run's turn started" in str(o) for o in waited)
    # a session per run that held a turn, none opened after the close began, all closed
    assert len(f.drivers) == len(held) and all(d.closed_with for d in f.drivers)
    assert [len(d.started) for d in f.drivers] == [1] * len(held)


async def test_a_run_whose_session_is_still_starting_gets_session_closed(autojump_clock):
    f = Factory(NeverStarts)
    backend = SessionBackend("codex", driver_factory=f, start_timeout=3600)
    [outcome] = await close_under(backend, [keyed("x", "a")])
    assert isinstance(outcome, SessionClosedError), repr(outcome)


async def test_a_run_that_ends_during_the_close_arms_no_idle_timer(autojump_clock):
    """The second run of a key gets its turn only as the close ends the first one's: it must
    neither keep the closing backend open for its idle timer nor run on a new session."""
    f = Factory()
    backend = SessionBackend("codex", driver_factory=f, idle_ttl=3600)
    outcomes = await close_under(backend, [keyed("held", "a"), keyed("next", "a")])
    assert all(isinstance(o, AliceError) for o in outcomes), outcomes
    assert len(f.drivers) == 1


async def test_runs_during_and_after_the_close_are_refused(autojump_clock):
    f = Factory()
    backend = SessionBackend("codex", driver_factory=f)
    late: list[BaseException] = []

    async def run_late() -> None:
        try:
            await backend.run(keyed("late", "z"))
        except AliceError as exc:
            late.append(exc)

    async with trio.open_nursery() as nursery:
        async with backend:
            nursery.start_soon(run_late)  # runs once the close has begun
    assert len(late) == 1 and isinstance(late[0], (SessionClosedError, ConfigError))
    with pytest.raises(ConfigError):
        await backend.run(keyed("after", "z"))
    assert f.drivers == []
