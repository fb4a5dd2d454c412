"""The one-shot wrapping driver (gemini's session driver) over the engine's fake CLI."""

from __future__ import annotations

import trio
import trio.testing

from alice_trio.models import EventKind, RunRequest
from alice_trio.sessions.driver import SubmitMode
from alice_trio.sessions.oneshot_driver import OneShotDriver
from alice_trio.sessions.session import open_session

from fake_provider import FAST, PROVIDER, FakeConfig


def driver(*args: str) -> OneShotDriver:
    return OneShotDriver(PROVIDER, FakeConfig(args=args, limits=FAST))


async def turn_events(session, turn_id):
    out = []
    with trio.fail_after(10):
        async for ev in session.events():
            if ev.turn_id == turn_id:
                out.append(ev)
                if ev.kind.terminal:
                    return out
    return out


async def test_defect_22_progress_is_not_duplicated_and_file_change_has_no_prefix():
    d = driver("--text", "step one", "--text", "final answer")
    async with open_session("fake", initial=RunRequest(user_text="x"), driver=d) as s:
        ref = await s.submit(RunRequest(user_text="go"))
        events = await turn_events(s, ref.turn_id)
    texts = [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT]
    assert texts == ["step one", "final answer"]  # the reply is not emitted a second time
    assert events[0].kind is EventKind.TURN_STARTED
    assert events[-1].kind is EventKind.TURN_COMPLETED and events[-1].usage is not None
    assert events[-1].thread_id == "thread-1"
    assert not any("[file_change]" in e.text for e in events)


async def test_queue_when_busy_and_interrupt_kills_the_run():
    d = driver("--text", "working", "--sleep", "30")
    async with open_session("fake", initial=RunRequest(user_text="x"), driver=d) as s:
        first = await s.submit(RunRequest(user_text="one"))
        queued = await s.submit(RunRequest(user_text="two"))
        assert queued.mode is SubmitMode.QUEUED and queued.queue_depth == 1
        with trio.fail_after(10):
            async for ev in s.events():
                if ev.kind is EventKind.ASSISTANT_TEXT:
                    break
        await s.interrupt()
        events = await turn_events(s, first.turn_id)
        assert events[-1].kind is EventKind.TURN_INTERRUPTED
        await trio.testing.wait_all_tasks_blocked()
        assert s.active_turn is not None  # the queued input started
        assert s.active_turn.thread_id == "thread-1"  # inheriting the finished turn's thread


async def test_failed_run_is_an_error_event_with_stderr():
    d = driver("--crash", "7", "--stderr", "it broke")
    async with open_session("fake", initial=RunRequest(user_text="x"), driver=d) as s:
        ref = await s.submit(RunRequest(user_text="go"))
        events = await turn_events(s, ref.turn_id)
    assert events[-1].kind is EventKind.ERROR
    assert "exit status 7" in events[-1].error and "it broke" in events[-1].error


async def test_a_tool_reported_file_change_keeps_its_files(tmp_path):
    """The driver re-tagged each event field by field and left out ``files``: a one-shot
    session's tool-reported file change reached the caller with no file (only the turn-end
    snapshot then said what changed). Now every field but the turn's ids is kept (and the
    write is refined to ADDED: the start snapshot had no such file)."""
    import json
    import sys

    from alice_trio.file_changes import FileChangeKind
    from alice_trio.providers import gemini
    from alice_trio.providers.gemini import GeminiConfig

    work = tmp_path / "work"
    work.mkdir()
    lines = [
        {"type": "init", "session_id": "22222222-3333-4444-8555-666666666666", "model": "m"},
        {"type": "tool_use", "tool_name": "write_file", "tool_id": "g1",
         "parameters": {"file_path": str(work / "new.py"), "content": "x"}},
        {"type": "tool_result", "tool_id": "g1", "status": "success"},
        {"type": "message", "role": "assistant", "content": "done"},
        {"type": "result", "status": "success", "stats": {"input_tokens": 1, "output_tokens": 1}},
    ]  # fmt: skip
    script = tmp_path / "gemini"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdin.read()\n"
        f"print({chr(10).join(json.dumps(x) for x in lines)!r})\n"
    )
    script.chmod(0o755)
    config = GeminiConfig(command=str(script), workspace_dir=str(work), limits=FAST)
    d = OneShotDriver(gemini.PROVIDER, config)
    initial = RunRequest(user_text="x", workspace_dir=str(work))
    async with open_session("gemini", initial=initial, driver=d) as s:
        ref = await s.submit(RunRequest(user_text="write it"))
        events = await turn_events(s, ref.turn_id)
    changes = [e for e in events if e.kind is EventKind.FILE_CHANGE]
    assert changes and changes[0].files, events
    assert [(f.path, f.kind) for f in changes[0].files] == [("new.py", FileChangeKind.ADDED)]
    assert changes[0].turn_id == ref.turn_id
