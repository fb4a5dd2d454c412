"""Where processes are killed: spawning a CLI in its own session and ending its whole group.

A CLI is started (:mod:`.spawn`) with ``start_new_session=True``, so its pid is also its
process-group id and session id, and every descendant that does not call ``setsid()`` itself
shares that group.
Ending a run is always the same shape, whatever the reason (cancel, timeout, error, normal exit):

1. SIGTERM to the **group** (the CLI may flush; kimi kills its own tool group on SIGTERM);
2. wait up to ``grace`` for the leader to exit and the group to empty;
3. SIGKILL to the group, then reap the leader.

Processes that escaped the group with ``setsid()`` are the reaper's job
(:mod:`alice_trio.engine.reaper`), which runs right after.
"""

from __future__ import annotations

import os
import signal
from typing import Protocol

import attrs
import trio

from . import reaper

__all__ = [
    "GroupLeader",
    "group_alive",
    "group_running",
    "signal_group",
    "terminate",
    "terminate_group",
]


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed uid; nothing we may do about it
        return False
    return True


def group_alive(pgid: int) -> bool:
    """True while any process is left in group ``pgid``, zombies that no one reaped yet
    included (``killpg(pgid, 0)`` succeeds on them)."""
    return signal_group(pgid, 0)


def group_running(pgid: int) -> bool:
    """True while a process of group ``pgid`` is still running (not a zombie).

    Cheap when the group is gone; otherwise one ``/proc`` scan. Zombies re-parented to an init
    that reaps slowly (seen: every 1.5–2 s) must not make teardown wait: they are dead.
    """
    if not group_alive(pgid):
        return False
    return reaper.group_has_running_member(pgid)


class GroupLeader(Protocol):
    """The part of a started CLI that :func:`terminate` needs (fakeable for MockClock tests)."""

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def signal_group(self, sig: int) -> bool: ...

    def group_running(self) -> bool: ...


async def _wait_group_empty(leader: GroupLeader, deadline: float) -> bool:
    """Poll until no process of the group runs, or ``deadline``; reaps our own zombies of the
    group on the way (``group_running`` does)."""
    delay = 0.0005
    while True:
        if not leader.group_running():
            return True
        if trio.current_time() >= deadline:
            return False
        await trio.sleep(delay)
        delay = min(delay * 2, 0.02)


async def terminate(leader: GroupLeader, grace: float) -> None:
    """End a session leader and every process of its group; return when reaped.

    SIGTERM to the group, up to ``grace`` for the leader to exit and the group to empty, then
    SIGKILL to the group. Safe when the leader already exited (then only the rest of the group
    is ended) and more than once. Call it shielded: it must finish even when the caller is
    being cancelled. Never raises for processes that are already gone.
    """
    leader_running = leader.returncode is None
    if not leader_running and not leader.group_running():
        return
    deadline = trio.current_time() + max(0.0, grace)
    leader.signal_group(signal.SIGTERM)
    if leader_running:
        with trio.move_on_at(deadline):
            await leader.wait()
    if leader.returncode is not None and await _wait_group_empty(leader, deadline):
        return
    leader.signal_group(signal.SIGKILL)
    await leader.wait()
    # SIGKILL cannot be ignored: the group empties as soon as the kernel has torn it down.
    await _wait_group_empty(leader, trio.current_time() + 2.0)


@attrs.define
class _TrioLeader:
    proc: trio.Process

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def wait(self) -> int:
        return await self.proc.wait()

    def signal_group(self, sig: int) -> bool:
        return signal_group(self.proc.pid, sig)

    def group_running(self) -> bool:
        reaper.reap_group_zombies(self.proc.pid)
        return group_running(self.proc.pid)


async def terminate_group(proc: trio.Process, grace: float) -> None:
    """:func:`terminate` for a :class:`trio.Process` started with ``start_new_session=True``."""
    await terminate(_TrioLeader(proc), grace)
