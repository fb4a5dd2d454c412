"""File changes in interactive sessions: a write tool's event made workspace-relative and
refined, then — before the event that ends the turn — what no tool reported; SessionBackend's
result lists them all. Nothing stays registered after the session."""

from __future__ import annotations

from pathlib import Path

import trio
from scripted_driver import ScriptedDriver

from alice_trio.engine import workspace
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.codex import CodexConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.driver import SteerMode
from alice_trio.sessions.session import open_session

A, M, D, W = (
    FileChangeKind.ADDED,
    FileChangeKind.MODIFIED,
    FileChangeKind.DELETED,
    FileChangeKind.WRITTEN,
)


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "old.txt").write_text("old")
    (ws / "gone.txt").write_text("bye")
    return ws


async def _agent_works(driver: ScriptedDriver, ws: Path, *, fast_end: bool = False) -> None:
    ref = driver.started[-1][0]
    (ws / "tool.py").write_text("new file")
    tool = FileChange(path=str(ws / "tool.py"), kind=W)  # the CLI names it absolute
    await driver.push(
        TurnEvent(kind=EventKind.FILE_CHANGE, files=(tool,), text="x", turn_id=ref.turn_id)
    )
    (ws / "old.txt").write_text("changed by a shell")
    (ws / "gone.txt").unlink()
    await driver.finish(ref, text="done")


async def test_session_reports_tool_then_turn_end_changes(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY)
    request = RunRequest(user_text="go", workspace_dir=str(ws))
    async with open_session("codex", CodexConfig(), initial=request, driver=driver) as s:
        await s.submit(request)
        await _agent_works(driver, ws)
        seen = []
        async for event in s.events():
            seen.append(event)
            if event.kind.terminal:
                break
    changes = [e for e in seen if e.kind is EventKind.FILE_CHANGE]
    assert [e.files for e in changes] == [
        (FileChange(path="tool.py", kind=A),),
        (FileChange(path="gone.txt", kind=D), FileChange(path="old.txt", kind=M)),
    ]
    assert changes[0].text == "- `tool.py` added"
    assert seen[-1].kind is EventKind.TURN_COMPLETED  # the turn-end changes come before it
    assert changes[1].turn_id == seen[-1].turn_id
    assert workspace.active_roots() == {}


async def test_session_backend_result_lists_every_change(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    drivers: list[ScriptedDriver] = []

    def factory(config: object, initial: RunRequest) -> ScriptedDriver:
        drivers.append(ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY))
        return drivers[-1]

    progress: list[str] = []
    started = trio.Event()

    def on_progress(text: str) -> None:
        progress.append(text)

    async def agent() -> None:
        await started.wait()
        await _agent_works(drivers[0], ws)

    def factory_and_signal(config: object, initial: RunRequest) -> ScriptedDriver:
        driver = factory(config, initial)
        original = driver.start_turn

        async def start_turn(request: RunRequest):  # type: ignore[no-untyped-def]
            ref = await original(request)
            started.set()
            return ref

        driver.start_turn = start_turn  # type: ignore[method-assign]
        return driver

    async with SessionBackend("codex", CodexConfig(), driver_factory=factory_and_signal) as backend:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent)
            result = await backend.run(
                RunRequest(
                    user_text="go", workspace_dir=str(ws), on_progress=on_progress,
                    env={"ALICE_SESSION_KEY": "k"},
                )
            )  # fmt: skip
    assert result.reply == "done"
    assert result.file_changes == (
        FileChange(path="gone.txt", kind=D),
        FileChange(path="old.txt", kind=M),
        FileChange(path="tool.py", kind=A),
    )
    assert "[file_change] - `gone.txt` deleted\n- `old.txt` modified" in progress
    assert workspace.active_roots() == {}


async def test_no_workspace_no_snapshot(tmp_path: Path) -> None:
    driver = ScriptedDriver(SteerMode.QUEUE_WHEN_BUSY, auto_reply=True)
    request = RunRequest(user_text="go")
    async with open_session("codex", CodexConfig(), initial=request, driver=driver) as s:
        await s.submit(request)
        seen = []
        async for event in s.events():
            seen.append(event.kind)
            if event.kind.terminal:
                break
    assert EventKind.FILE_CHANGE not in seen
    assert workspace.active_roots() == {}
