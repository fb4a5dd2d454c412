"""Workspace snapshots around a turn: which files a turn added, modified or deleted.

:func:`watch_workspace` stats every file under the workspace when a turn starts and again when
it ends (:func:`alice_trio.file_changes.diff_snapshots` compares them). A small tree (up to
:data:`INLINE_ENTRIES` entries) is walked inline; a larger one in a worker thread — a stat walk
is blocking filesystem work, not pipe I/O, and must not stall other conversations. The walk
skips version-control and dependency folders (:data:`SKIP_DIRS`), never follows symlinks, stays
on the workspace's filesystem (like ``find -xdev``: a folder on another device — ``/proc``,
``/sys``, ``/dev`` of a workspace ``/``, a mount inside the workspace — is not entered; its
pseudo-files would count as changes at every turn, and another disk is not the project), and
gives up (reporting nothing at turn end, tool events still count) past ``max_files`` entries, so
a huge tree costs a bounded amount. 10,000 files take a few tens of milliseconds.

:class:`TurnFiles` is what the one-shot engine and the interactive sessions share: a turn's
``file_change`` events made workspace-relative and refined, the turn-end event, the total.

Two turns watching overlapping trees at the same time cannot tell whose change is whose: both
are marked *contaminated* and report no snapshot changes (Alice's RunGuard, spec §7.2.4); tool
events still report their own files.

Cancellation: cancelling :meth:`WorkspaceWatch.finish` (or the start) abandons a walk's thread
at once; the thread stops at its next entry and its result is dropped (abandoned walks that ran
on held the GIL and every worker-thread token: 100 cancelled runs on a 140,000-entry tree made
the next run on a small tree take a minute). At most :data:`MAX_WALKERS` walks run in threads
at once per trio run; the others wait for one, cancellably. Errors: an unreadable folder
is skipped; nothing here raises except :class:`trio.Cancelled`.
"""

from __future__ import annotations

import math
import os
import stat as stat_mod
from collections.abc import Iterable, Mapping

import attrs
import trio

from ..file_changes import (
    FileChange,
    Stamp,
    diff_snapshots,
    format_file_changes,
    merge_changes,
    refine_written,
    relative_path,
)
from ..models import EventKind, TurnEvent

__all__ = [
    "DEFAULT_MAX_FILES",
    "SKIP_DIRS",
    "TurnFiles",
    "WorkspaceWatch",
    "snapshot",
    "watch_workspace",
]

DEFAULT_MAX_FILES = 100_000
#: trees up to this many entries are walked inline, larger ones in a worker thread
INLINE_ENTRIES = 2_000
#: Folders never walked: version-control metadata and tool caches whose churn is not a change
#: the agent made to the project.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache",
     ".ruff_cache", ".tox", ".venv", "venv", ".cache"}
)  # fmt: skip


def snapshot(root: str, max_files: int = DEFAULT_MAX_FILES) -> dict[str, Stamp] | None:
    """``relative path → Stamp`` of every regular file (and symlink) under ``root``; None when
    ``root`` is not a directory or holds more than ``max_files`` entries. Blocking."""
    walk = _Walk(root, max_files)
    walk.run()
    return walk.result()


async def take_snapshot(root: str, max_files: int) -> dict[str, Stamp] | None:
    """:func:`snapshot` without blocking the event loop for long: the first
    :data:`INLINE_ENTRIES` entries are walked inline (a few milliseconds, and no thread, so a
    small workspace costs no thread and trio's MockClock tests keep working); the rest of a
    larger tree in a worker thread, abandoned when cancelled."""
    walk = _Walk(root, max_files)
    if not walk.run(budget=INLINE_ENTRIES):
        try:
            await trio.to_thread.run_sync(walk.run, abandon_on_cancel=True, limiter=_walkers())
        except BaseException:
            walk.stopped = True  # the abandoned thread stops at its next entry
            raise
    return walk.result()


_WALKERS: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("alice_trio_walkers")
#: snapshot walks in worker threads at once (per trio run): stat walks hold the GIL, and more of
#: them at once only take it from the event loop, and from each other
MAX_WALKERS = 2


def _walkers() -> trio.CapacityLimiter:
    try:
        return _WALKERS.get()
    except LookupError:
        limiter = trio.CapacityLimiter(MAX_WALKERS)
        _WALKERS.set(limiter)
        return limiter


class _Walk:
    """A resumable stat walk, one directory at a time (see :func:`snapshot`)."""

    def __init__(self, root: str, max_files: int) -> None:
        try:
            self.device: int | None = os.stat(root).st_dev  # the walk stays on this filesystem
        except OSError:
            self.device = None  # the first scandir fails the walk
        self.max_files = max_files
        self.out: dict[str, Stamp] = {}
        self.stack = [("", root)]
        self.seen = 0
        self.failed = False
        self.stopped = False  # set from the event loop when the walk's caller gave up

    def result(self) -> dict[str, Stamp] | None:
        return None if self.failed or self.stack else self.out

    def run(self, budget: int | None = None) -> bool:
        """Walk until done (True) or until ``budget`` more entries were seen (False)."""
        stop = math.inf if budget is None else self.seen + budget
        out, stack = self.out, self.stack
        while stack and not self.failed:
            if self.seen >= stop:
                return False
            prefix, path = stack.pop()
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        if self.stopped:
                            self.failed = True
                            return True
                        self.seen += 1
                        if self.seen > self.max_files:
                            self.failed = True
                            return True
                        name = prefix + entry.name
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        if stat_mod.S_ISDIR(st.st_mode):
                            if entry.name not in SKIP_DIRS and st.st_dev == self.device:
                                stack.append((name + "/", entry.path))
                        elif stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISLNK(st.st_mode):
                            out[name] = Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                if not prefix:  # the workspace itself is gone or not a directory
                    self.failed = True
        return True


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

    def close(self) -> None:
        """Unregister without a final snapshot (the turn failed or was cancelled)."""
        _active.discard(self)

    async def finish(self) -> list[FileChange]:
        """The changes not reported by tool events; ``[]`` when the start snapshot failed, the
        tree grew past ``max_files`` or another turn watched an overlapping tree meanwhile."""
        try:
            if self.before is None or self.contaminated:
                return []
            after = await take_snapshot(self.root, self.max_files)
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
        watch.before = await take_snapshot(watch.root, max_files)
    except BaseException:
        _active.discard(watch)
        raise
    return watch


@attrs.define(eq=False)
class TurnFiles:
    """The file changes of one turn as its events pass: what the engine and the sessions share.

    :meth:`event` gives a ``file_change`` event its workspace-relative, refined form and
    records it; :meth:`end` snapshots the workspace once more and returns the event for the
    changes no tool reported (or None). ``watch`` is None when no workspace is watched."""

    root: str = ""
    watch: WorkspaceWatch | None = None
    files: list[FileChange] = attrs.field(factory=list)

    def relative(self, path: str) -> str:
        """``path`` relative to the workspace when it lies under it (as given or resolved)."""
        if not self.root or not path.startswith("/"):
            return path
        for root in (os.path.abspath(self.root), os.path.realpath(self.root)):
            rel = relative_path(path, root)
            if not rel.startswith("/"):
                return rel
        return path

    def event(self, event: TurnEvent) -> TurnEvent:
        if event.kind is not EventKind.FILE_CHANGE or not event.files:
            return event
        files = [attrs.evolve(c, path=self.relative(c.path)) for c in event.files]
        if self.watch is not None:
            files = self.watch.note(files)
        self.files += files
        return attrs.evolve(event, files=tuple(files), text=format_file_changes(files))

    async def end(
        self, *, provider: str, thread_id: str = "", turn_id: str = ""
    ) -> TurnEvent | None:
        """Finish the watch (at most once) and return the turn-end ``file_change`` event."""
        watch, self.watch = self.watch, None
        if watch is None:
            return None
        changes = await watch.finish()
        if not changes:
            return None
        self.files += changes
        return TurnEvent(
            kind=EventKind.FILE_CHANGE, text=format_file_changes(changes), files=tuple(changes),
            thread_id=thread_id, turn_id=turn_id, provider=provider,
        )  # fmt: skip

    def close(self) -> None:
        """Drop the watch without a final snapshot (idempotent)."""
        watch, self.watch = self.watch, None
        if watch is not None:
            watch.close()

    def all(self) -> tuple[FileChange, ...]:
        """Every change of the turn, one entry per path."""
        return tuple(merge_changes(self.files))


async def watch_turn(root: str, *, enabled: bool, max_files: int) -> TurnFiles:
    """A :class:`TurnFiles` watching ``root`` (none when disabled or ``root`` is empty)."""
    if not enabled or not root:
        return TurnFiles(root=root)
    return TurnFiles(root=root, watch=await watch_workspace(root, max_files=max_files))


def active_roots() -> Mapping[str, bool]:
    """For tests and ``doctor``: the roots watched now → contaminated."""
    return {w.root: w.contaminated for w in _active}
