"""``HostPool`` used directly (without ``SessionBackend``'s thread hand-over, threads.py): the
resume of a thread that a live conversation holds on one agent process never goes to another
process (codex refuses it there: "already has an active writer"; gemini would load a second
copy). It waits until that conversation is closed, then goes to the process that still holds
the thread (parked there). Before, it was routed to another process at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from test_hosted_conversations import MODES, make_config, provider_of

from alice_trio.models import EventKind, RunRequest
from alice_trio.providers import get_provider
from alice_trio.sessions.pool import HostPool, ScalingConfig
from alice_trio.sessions.session import open_session


async def reply_of(session: object, text: str) -> str:
    await session.submit(RunRequest(user_text=text))  # type: ignore[attr-defined]
    reply = ""
    with trio.fail_after(30):
        async for event in session.events():  # type: ignore[attr-defined]
            if event.kind is EventKind.ASSISTANT_TEXT:
                reply = event.text
            if event.kind.terminal:
                assert event.kind is EventKind.TURN_COMPLETED, event
                return reply
    raise AssertionError("the session ended")


@pytest.mark.parametrize("mode", MODES)
async def test_a_resume_of_a_live_thread_waits_for_it_and_goes_to_its_process(
    tmp_path: Path, mode: str
) -> None:
    config, _ = make_config(tmp_path, mode)
    provider = get_provider(provider_of(mode))
    async with HostPool(provider, config, scaling=ScalingConfig(warm=0)) as pool:
        initial = RunRequest(user_text="")
        first = await pool.driver(initial)
        handed: list[object] = []
        async with open_session(provider, config, initial=initial, driver=first) as a:
            thread = a.thread_id or ""
            assert (await reply_of(a, "one")).endswith(": one")
            thread = a.thread_id
            assert thread
            pid = pool.hosts[0].pid
            resume = RunRequest(user_text="", thread_id=thread)

            async def second() -> None:
                handed.append(await pool.driver(resume))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(second)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert not handed, "a resume of a thread open in a live conversation was routed"
                assert len(pool.hosts) == 1
                nursery.cancel_scope.deadline = trio.current_time() + 0.3
        # a closed: the thread is free (parked on its process, or released)
        driver = await pool.driver(resume)
        async with open_session(provider, config, initial=resume, driver=driver) as b:
            assert (await reply_of(b, "two")) == f"reply to {thread}: two"
            assert b.thread_id == thread
        assert [h.pid for h in pool.hosts if h.alive] == [pid]  # no second process


@pytest.mark.parametrize("mode", MODES)
async def test_the_waiting_resume_goes_on_once_the_conversation_closed(
    tmp_path: Path, mode: str
) -> None:
    config, _ = make_config(tmp_path, mode)
    provider = get_provider(provider_of(mode))
    async with HostPool(provider, config, scaling=ScalingConfig(warm=0)) as pool:
        initial = RunRequest(user_text="")
        replies: list[str] = []
        async with trio.open_nursery() as nursery:
            a_cm = open_session(
                provider, config, initial=initial, driver=await pool.driver(initial)
            )
            a = await a_cm.__aenter__()
            try:
                await reply_of(a, "one")
                thread = a.thread_id
                pid = pool.hosts[0].pid

                async def resume() -> None:
                    req = RunRequest(user_text="", thread_id=thread)
                    driver = await pool.driver(req)
                    async with open_session(provider, config, initial=req, driver=driver) as b:
                        replies.append(await reply_of(b, "two"))

                nursery.start_soon(resume)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert not replies
            finally:
                await a_cm.__aexit__(None, None, None)
        assert replies == [f"reply to {thread}: two"]
        assert pid in [h.pid for h in pool.hosts]
        assert len({h.pid for h in pool.hosts}) == 1
