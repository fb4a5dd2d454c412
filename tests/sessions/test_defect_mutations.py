"""Defect tests of spec §13 that must fail with their defect put back (issue 12, "tests that
can fail"): each was checked by reintroducing the defect by hand (see each docstring). §13.3
is ``test_defects_03_12.py::test_defect_03_events_emitted_after_close_never_crash``."""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio
import trio.testing
from fake_opencode import FakeOpenCode, assistant, idle, user_msg
from scripted_driver import ScriptedDriver

from alice_trio.errors import AgentError
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.base import Provider
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.driver import SteerMode
from alice_trio.sessions.oneshot_driver import OneShotDriver
from alice_trio.sessions.opencode_serve import OpenCodeServeDriver
from alice_trio.sessions.session import open_session

from fake_provider import FAST, PROVIDER, FakeConfig, FakeDecoder


def req(text: str, **kw: Any) -> RunRequest:
    return RunRequest(user_text=text, **kw)


def keyed(text: str, key: str = "k") -> RunRequest:
    return req(text, env={"ALICE_SESSION_KEY": key})


# -- §13.10, three callers ------------------------------------------------------------------------
async def test_defect_10_a_third_caller_waits_for_the_lock_a_dropped_session_left_held(
    autojump_clock,
):
    """A's turn fails (its session is dropped) while B waits for the key's lock; B then holds
    it on a fresh session when C arrives. Go deleted the lock on the drop, so C got a new one
    and ran into B's turn. Defect put back (``_forget_lock`` without ``not lock.locked()``):
    C's submit lands on B's busy session (queued → "busy" AgentError) instead of waiting."""
    drivers: list[ScriptedDriver] = []

    def factory(config, initial):
        drivers.append(ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY))
        return drivers[-1]

    results: dict[str, Any] = {}

    async def run(name: str) -> None:
        try:
            results[name] = (await b.run(keyed(name))).reply
        except AgentError as exc:
            results[name] = exc

    async with SessionBackend("codex", driver_factory=factory) as b, trio.open_nursery() as n:
        n.start_soon(run, "a")
        await trio.testing.wait_all_tasks_blocked()
        n.start_soon(run, "b")
        await trio.testing.wait_all_tasks_blocked()
        await drivers[0].finish(drivers[0].started[0][0], EventKind.ERROR, error="boom")
        await trio.testing.wait_all_tasks_blocked()
        assert isinstance(results["a"], AgentError) and len(drivers) == 2
        n.start_soon(run, "c")
        await trio.testing.wait_all_tasks_blocked()
        assert "c" not in results  # C waits for B
        assert [r.prompt for _, r in drivers[1].started] == ["b"]
        await drivers[1].finish(drivers[1].started[0][0], text="reply b")
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prompt for _, r in drivers[1].started] == ["b", "c"]
        await drivers[1].finish(drivers[1].started[1][0], text="reply c")
    assert results["b"] == "reply b" and results["c"] == "reply c"


# -- §13.16: the event subscription is live before the first prompt -------------------------------
class SlowSubscribe(FakeOpenCode):
    """A fake opencode whose ``/event`` subscription becomes live only after a while, as on a
    loaded host: a driver that posts the prompt before the stream is open loses the events."""

    async def handle(self, request):
        if request.method == "GET" and request.url.path == "/event":
            await trio.sleep(0.3)
        return await super().handle(request)


async def test_defect_16_the_prompt_waits_until_the_subscription_is_live():
    """Defect put back (``OpenCodeServeDriver._events`` reporting started before its stream
    opened): the fast reply is published before anyone listens and the turn never ends."""
    fake = SlowSubscribe()
    fake.on_prompt = [user_msg("msg_u1", "hi") + assistant("msg_a1", "msg_u1", "fast") + idle()]
    cfg = OpenCodeConfig(server_url="http://oc.test/", workspace_dir="/tmp/oc-ws")
    driver = OpenCodeServeDriver(cfg, req("x"), transport=fake.transport, reconnect_delay=0.01)
    async with open_session("opencode", initial=req("x"), driver=driver) as s:
        a = await s.submit(req("hi"))
        with trio.fail_after(10):
            async for ev in s.events():
                if ev.kind.terminal and ev.turn_id == a.turn_id:
                    break
    assert ev.kind is EventKind.TURN_COMPLETED


# -- §13.22 (prefix half) and one turn_started per turn -------------------------------------------
class FileChangeDecoder(FakeDecoder):
    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        if obj.get("type") == "file":
            return [self._event(EventKind.FILE_CHANGE, line, text=obj["text"])]
        if obj.get("type") == "turn":
            return [self._event(EventKind.TURN_STARTED, line)]
        return super()._decode(obj, line)


FILE_PROVIDER = attrs.evolve(
    PROVIDER, new_decoder=lambda request, config: FileChangeDecoder(thread_id=request.thread_id)
)


def file_driver(config=None, initial=None) -> OneShotDriver:
    raw = [json.dumps({"type": "turn"}), json.dumps({"type": "file", "text": "src/a.py (+3 -1)"})]
    args = ("--raw", raw[0], "--raw", raw[1], "--text", "done it")
    return OneShotDriver(FILE_PROVIDER, FakeConfig(args=args, limits=FAST))


async def test_defect_22_file_change_progress_has_exactly_one_prefix():
    """Go: the gemini adapter emitted "[file_change] x" as text and the bootstrap prefixed it
    again. Defect put back (the one-shot driver turning a file change into prefixed text, or
    emitting it through on_progress as well): the callback sees a doubled prefix or twice."""
    assert isinstance(FILE_PROVIDER, Provider)
    progress: list[str] = []
    async with SessionBackend(FILE_PROVIDER, driver_factory=file_driver) as b:
        result = await b.run(keyed("go").evolve(on_progress=progress.append))
    assert result.reply == "done it"
    assert progress == ["[file_change] src/a.py (+3 -1)", "done it"]


async def test_one_turn_started_per_turn_on_the_oneshot_driver():
    """Issue 12 item 12: the decoder's own turn_started was forwarded beside the driver's."""
    async with open_session("fake", initial=req("x"), driver=file_driver()) as s:
        for prompt in ("one", "two"):
            ref = await s.submit(req(prompt))
            with trio.fail_after(20):
                events = []
                async for ev in s.events():
                    events.append(ev)
                    if ev.kind.terminal and ev.turn_id == ref.turn_id:
                        break
            kinds = [e.kind for e in events if e.turn_id == ref.turn_id]
            assert kinds.count(EventKind.TURN_STARTED) == 1 and kinds[0] is EventKind.TURN_STARTED
            changes = [e for e in events if e.kind is EventKind.FILE_CHANGE]
            assert [e.text for e in changes] == ["src/a.py (+3 -1)"]


# -- an event with an empty turn id belongs to no turn ---------------------------------------------
async def test_a_terminal_event_without_turn_id_ends_no_run(autojump_clock):
    """Go (§13.6) let an event without a turn id end whichever run listened."""
    drivers: list[ScriptedDriver] = []

    def factory(config, initial):
        drivers.append(ScriptedDriver())
        return drivers[-1]

    async with SessionBackend("codex", driver_factory=factory) as b, trio.open_nursery() as n:
        box: list[str] = []

        async def run() -> None:
            box.append((await b.run(keyed("x"))).reply)

        n.start_soon(run)
        await trio.testing.wait_all_tasks_blocked()
        d = drivers[0]
        await d.push(TurnEvent(kind=EventKind.ASSISTANT_TEXT, text="stray", turn_id=""))
        await d.push(TurnEvent(kind=EventKind.TURN_COMPLETED, turn_id=""))
        await d.push(TurnEvent(kind=EventKind.ERROR, error="stray", turn_id=""))
        await trio.testing.wait_all_tasks_blocked()
        assert box == [] and drivers[0].started  # still running
        ref = d.started[0][0]
        await d.finish(ref, text="mine")
    assert box == ["mine"]
