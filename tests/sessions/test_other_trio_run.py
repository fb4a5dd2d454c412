"""A session object used from another ``trio.run`` than the one that opened it (another
thread's event loop) is refused with ``ConfigError``; the run that opened it goes on unharmed
(before, trio raised ``TrioInternalError`` in both runs)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from alice_trio import (
    ConfigError,
    ReplayConfig,
    RunRequest,
    SessionBackend,
    get_provider,
    open_session,
)

CONFIG = ReplayConfig(speed=0)


def _from_another_run(
    opener: Callable[[Callable[[], Awaitable[Any]]], Awaitable[str]],
    misuse: Callable[[], Awaitable[Any]],
) -> tuple[str, BaseException | None]:
    """Run ``opener`` in a thread's own ``trio.run``; once it opened its object, await
    ``misuse()`` in this thread's ``trio.run``. Returns the opener's result and what the misuse
    raised."""
    ready = threading.Event()
    outcome: dict[str, Any] = {}

    async def hold() -> None:
        outcome["resume"] = trio.Event()
        outcome["token"] = trio.lowlevel.current_trio_token()
        ready.set()
        await outcome["resume"].wait()

    def thread() -> None:
        try:
            outcome["opener"] = trio.run(opener, hold)
        except BaseException as exc:
            outcome["opener"] = exc

    worker = threading.Thread(target=thread)
    worker.start()
    try:
        assert ready.wait(120)
        try:
            trio.run(misuse)
            raised: BaseException | None = None
        except BaseException as exc:
            raised = exc
    finally:
        if ready.is_set():
            trio.from_thread.run_sync(outcome["resume"].set, trio_token=outcome["token"])
        worker.join(120)
    assert not worker.is_alive()
    result = outcome["opener"]
    if isinstance(result, BaseException):
        raise AssertionError(f"the run that opened it failed: {result!r}") from result
    return result, raised


def _refused(raised: BaseException | None) -> None:
    assert isinstance(raised, ConfigError), repr(raised)
    assert "another trio.run" in str(raised)


@pytest.mark.parametrize("method", ["run", "steer"])
def test_a_session_backend_used_from_another_trio_run_is_refused(method: str) -> None:
    backend = SessionBackend(get_provider("replay"), CONFIG)

    async def opener(hold: Callable[[], Awaitable[Any]]) -> str:
        async with backend:
            await hold()
            # still whole: a run of its own run works
            return (await backend.run(RunRequest(user_text="hi"))).reply

    async def misuse() -> None:
        await getattr(backend, method)(RunRequest(user_text="from another thread"))

    reply, raised = _from_another_run(opener, misuse)
    _refused(raised)
    assert reply.startswith("The command printed")


@pytest.mark.parametrize("method", ["submit", "steer", "interrupt", "aclose", "events"])
def test_an_interactive_session_used_from_another_trio_run_is_refused(method: str) -> None:
    box: dict[str, Any] = {}

    async def opener(hold: Callable[[], Awaitable[Any]]) -> str:
        async with open_session("replay", CONFIG, initial=RunRequest(user_text="")) as session:
            box["session"] = session
            await hold()
            await session.submit(RunRequest(user_text="hi"))
            async for event in session.events():
                if event.kind.terminal:
                    return event.kind.value
        return "no terminal event"

    async def misuse() -> None:
        session = box["session"]
        if method == "events":
            session.events()
        elif method in ("interrupt", "aclose"):
            await getattr(session, method)()
        else:
            await getattr(session, method)(RunRequest(user_text="from another thread"))

    ending, raised = _from_another_run(opener, misuse)
    _refused(raised)
    assert ending == "turn_completed"
