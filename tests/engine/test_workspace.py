"""Workspace snapshots around a turn: added/modified/deleted, bounds, overlap, cancellation."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from alice_trio.engine import workspace
from alice_trio.engine.workspace import snapshot, watch_workspace
from alice_trio.file_changes import FileChange, FileChangeKind

A, M, D, W = (
    FileChangeKind.ADDED,
    FileChangeKind.MODIFIED,
    FileChangeKind.DELETED,
    FileChangeKind.WRITTEN,
)


def _tree(root: Path) -> None:
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    (root / ".git").mkdir()
    (root / ".git" / "index").write_text("i")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "dep.js").write_text("d")


async def test_turn_end_reports_shell_made_changes(tmp_path: Path) -> None:
    _tree(tmp_path)
    watch = await watch_workspace(str(tmp_path))
    (tmp_path / "src" / "a.py").write_text("changed, longer\n")
    (tmp_path / "b.txt").unlink()
    (tmp_path / "new dir").mkdir()
    (tmp_path / "new dir" / "c.md").write_text("c")
    (tmp_path / ".git" / "index").write_text("churn")  # not the agent's change
    (tmp_path / "node_modules" / "other.js").write_text("x")
    assert await watch.finish() == [
        FileChange(path="b.txt", kind=D),
        FileChange(path="new dir/c.md", kind=A),
        FileChange(path="src/a.py", kind=M),
    ]
    assert not workspace.active_roots()


async def test_tool_reported_changes_are_refined_and_not_repeated(tmp_path: Path) -> None:
    _tree(tmp_path)
    watch = await watch_workspace(str(tmp_path))
    (tmp_path / "b.txt").write_text("rewritten by the Write tool\n")
    (tmp_path / "made.txt").write_text("new")
    noted = watch.note([FileChange(path="b.txt", kind=W), FileChange(path="made.txt", kind=W)])
    assert noted == [FileChange(path="b.txt", kind=M), FileChange(path="made.txt", kind=A)]
    assert await watch.finish() == []


async def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    os.symlink(outside, ws / "link")
    watch = await watch_workspace(str(ws))
    (outside / "f").write_text("not in the workspace")
    assert await watch.finish() == []


async def test_too_many_files_reports_nothing(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("x")
    assert snapshot(str(tmp_path), max_files=4) is None
    watch = await watch_workspace(str(tmp_path), max_files=4)
    (tmp_path / "f0").write_text("changed")
    assert await watch.finish() == []


async def test_overlapping_turns_are_contaminated(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    first = await watch_workspace(str(tmp_path))
    second = await watch_workspace(str(tmp_path / "sub"))
    (tmp_path / "sub" / "x").write_text("whose?")
    assert await second.finish() == []
    assert await first.finish() == []
    third = await watch_workspace(str(tmp_path))  # alone again: reports
    (tmp_path / "y").write_text("mine")
    assert await third.finish() == [FileChange(path="y", kind=A)]


async def test_missing_workspace_reports_nothing(tmp_path: Path) -> None:
    watch = await watch_workspace(str(tmp_path / "absent"))
    assert watch.before is None
    assert await watch.finish() == []


async def test_cancelled_finish_unregisters(tmp_path: Path) -> None:
    watch = await watch_workspace(str(tmp_path))
    with trio.CancelScope() as scope:
        scope.cancel()
        await watch.finish()
    assert not workspace.active_roots()


async def test_a_large_tree_is_finished_in_a_thread(tmp_path: Path, monkeypatch) -> None:
    """Past the inline budget the same walk goes on in a worker thread: same result."""
    for d in range(6):
        (tmp_path / f"d{d}").mkdir()
        for f in range(4):
            (tmp_path / f"d{d}" / f"f{f}").write_text("x")
    monkeypatch.setattr(workspace, "INLINE_ENTRIES", 3)
    whole = snapshot(str(tmp_path))
    assert whole is not None and len(whole) == 24
    assert await workspace.take_snapshot(str(tmp_path), 1000) == whole
    assert await workspace.take_snapshot(str(tmp_path), 10) is None  # over max_files
