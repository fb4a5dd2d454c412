"""Workspace snapshots around a turn: which files a turn added, modified or deleted.

:func:`watch_workspace` stats every file under the workspace when a turn starts and again when
it ends (:func:`alice_trio.file_changes.diff_snapshots` compares them). The walk runs in a worker
thread — a stat walk is blocking filesystem work, not pipe I/O — skips version-control and
dependency folders (:data:`SKIP_DIRS`), never follows symlinks, and gives up (reporting nothing
at turn end, tool events still count) past ``max_files`` entries, so a huge tree costs a bounded
amount. 10,000 files take a few tens of milliseconds (``benchmarks/``).

Two turns watching overlapping trees at the same time cannot tell whose change is whose: both
are marked *contaminated* and report no snapshot changes (Alice's RunGuard, spec §7.2.4); tool
events still report their own files.

Cancellation: cancelling :meth:`WorkspaceWatch.finish` (or the start) abandons the walk's thread
at once; it finishes in the background and its result is dropped. Errors: an unreadable folder
is skipped; nothing here raises except :class:`trio.Cancelled`.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterable, Mapping

import attrs
import trio

from ..file_changes import FileChange, Stamp, diff_snapshots, merge_changes, refine_written

__all__ = ["DEFAULT_MAX_FILES", "SKIP_DIRS", "WorkspaceWatch", "snapshot", "watch_workspace"]

DEFAULT_MAX_FILES = 100_000
#: Folders never walked: version-control metadata and tool caches whose churn is not a change
#: the agent made to the project.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".tox", ".venv", "venv", ".cache"}
)  # fmt: skip


def snapshot(root: str, max_files: int = DEFAULT_MAX_FILES) -> dict[str, Stamp] | None:
    """``relative path → Stamp`` of every regular file (and symlink) under ``root``; None when
    ``root`` is not a directory or holds more than ``max_files`` entries. Blocking."""
    out: dict[str, Stamp] = {}
    stack = [("", root)]
    seen = 0
    while stack:
        prefix, path = stack.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_files:
                        return None
                    name = prefix + entry.name
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat_mod.S_ISDIR(st.st_mode):
                        if entry.name not in SKIP_DIRS:
                            stack.append((name + "/", entry.path))
                    elif stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISLNK(st.st_mode):
                        out[name] = Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            if not prefix:
                return None
    return out


_active: set[WorkspaceWatch] = set()


def _overlaps(a: str, b: str) -> bool:
    a, b = a.rstrip("/") + "/", b.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


@attrs.define(eq=False)
class WorkspaceWatch:
    """One turn's view of its workspace (see module docstring)."""

    root: str
    max_files: int
    before: dict[str, Stamp] | None = None
    contaminated: bool = False
    reported: set[str] = attrs.field(factory=set)

    def note(self, changes: Iterable[FileChange]) -> list[FileChange]:
        """Record changes a tool event reported (so the turn-end diff does not repeat them) and
        return them with WRITTEN refined to ADDED/MODIFIED where the start snapshot knows."""
        changes = list(changes)
        self.reported.update(c.path for c in changes)
        if self.before is None:
            return changes
        return refine_written(changes, self.before)

    async def finish(self) -> list[FileChange]:
        """The changes not reported by tool events; ``[]`` when the start snapshot failed, the
        tree grew past ``max_files`` or another turn watched an overlapping tree meanwhile."""
        try:
            if self.before is None or self.contaminated:
                return []
            after = await trio.to_thread.run_sync(
                snapshot, self.root, self.max_files, abandon_on_cancel=True
            )
            if after is None or self.contaminated:
                return []
            return merge_changes(diff_snapshots(self.before, after, already_reported=self.reported))
        finally:
            _active.discard(self)


async def watch_workspace(root: str, *, max_files: int = DEFAULT_MAX_FILES) -> WorkspaceWatch:
    """Snapshot ``root`` (in a worker thread) and register the watch; call
    :meth:`WorkspaceWatch.finish` exactly once at turn end (it unregisters)."""
    watch = WorkspaceWatch(root=os.path.realpath(root), max_files=max_files)
    for other in _active:
        if _overlaps(other.root, watch.root):
            other.contaminated = watch.contaminated = True
    _active.add(watch)
    try:
        watch.before = await trio.to_thread.run_sync(
            snapshot, watch.root, max_files, abandon_on_cancel=True
        )
    except BaseException:
        _active.discard(watch)
        raise
    return watch


def active_roots() -> Mapping[str, bool]:
    """For tests and ``doctor``: the roots watched now → contaminated."""
    return {w.root: w.contaminated for w in _active}
