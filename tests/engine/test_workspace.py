"""Workspace snapshots around a turn: added/modified/deleted, bounds, overlap, cancellation."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
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


class _OnDevice:
    """A scandir entry that reports ``device`` as its filesystem (a mount point, as seen by
    the walk)."""

    def __init__(self, entry: os.DirEntry[str], device: int) -> None:
        self.name, self.path, self._entry, self._device = entry.name, entry.path, entry, device

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        st = self._entry.stat(follow_symlinks=follow_symlinks)
        fields = list(st)
        fields[stat.ST_DEV] = self._device
        return os.stat_result(fields)


def test_the_walk_does_not_cross_into_another_filesystem(tmp_path: Path, monkeypatch) -> None:
    """Hostile-use finding (round 4): a workspace ``/`` counted ``/proc``'s files (sizes and
    times change at every look: every turn "modified" them). Folders on another device than
    the workspace — ``/proc``, ``/sys``, ``/dev``, any mount inside it — are not entered."""
    _tree(tmp_path)
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "stat").write_text("cpu 1 2 3")
    (tmp_path / "src" / "mnt").mkdir()
    (tmp_path / "src" / "mnt" / "disk.img").write_text("other disk")
    mounts = {str(tmp_path / "proc"), str(tmp_path / "src" / "mnt")}
    other = os.stat(tmp_path).st_dev + 1
    real_scandir = os.scandir

    class _Entries:
        def __init__(self, path: str) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> list[object]:
            with self._it as it:
                return [_OnDevice(e, other) if e.path in mounts else e for e in it]

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(workspace.os, "scandir", _Entries)
    assert snapshot(str(tmp_path)).keys() == {"src/a.py", "b.txt"}


def test_a_real_mount_inside_the_workspace_is_not_walked() -> None:
    """The same on a real mount: ``/dev/shm`` (its own tmpfs) under a workspace ``/dev``."""
    dev, shm = Path("/dev"), Path("/dev/shm")
    if (
        not shm.is_dir()
        or os.stat(shm).st_dev == os.stat(dev).st_dev
        or not os.access(shm, os.W_OK)
    ):
        pytest.skip("no writable /dev/shm on its own filesystem here")
    fd, name = tempfile.mkstemp(dir=shm, prefix="alice-trio-snapshot-")
    os.close(fd)
    try:
        snap = snapshot(str(dev))
        assert snap is not None
        assert not any(path.startswith("shm/") for path in snap), sorted(snap)[:20]
    finally:
        os.unlink(name)
