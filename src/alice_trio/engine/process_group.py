"""Where processes are killed: spawning a CLI in its own session and ending its whole group.

A CLI is started with ``start_new_session=True``, so its pid is also its process-group id and
session id, and every descendant that does not call ``setsid()`` itself shares that group.
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

import trio

from . import reaper

__all__ = ["group_alive", "group_running", "signal_group", "terminate_group"]


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


async def _wait_group_empty(pgid: int, deadline: float) -> bool:
    """Poll until no process of group ``pgid`` runs, or ``deadline``; reaps our own zombies of
    the group on the way."""
    delay = 0.0005
    while True:
        reaper.reap_group_zombies(pgid)
        if not group_running(pgid):
            return True
        if trio.current_time() >= deadline:
            return False
        await trio.sleep(delay)
        delay = min(delay * 2, 0.02)


async def terminate_group(proc: trio.Process, grace: float) -> None:
    """End ``proc`` (a session leader) and every process of its group; return when reaped.

    Safe to call when the leader already exited (then only the rest of the group is ended) and
    more than once. Call it inside a shielded cancel scope: it must finish even when the caller
    is being cancelled. Never raises for processes that are already gone.
    """
    pgid = proc.pid
    leader_running = proc.returncode is None
    if not leader_running and not group_running(pgid):
        return
    deadline = trio.current_time() + max(0.0, grace)
    signal_group(pgid, signal.SIGTERM)
    if leader_running:
        with trio.move_on_at(deadline):
            await proc.wait()
    if proc.returncode is not None and await _wait_group_empty(pgid, deadline):
        return
    signal_group(pgid, signal.SIGKILL)
    await proc.wait()
    # SIGKILL cannot be ignored: the group empties as soon as the kernel has torn it down.
    await _wait_group_empty(pgid, trio.current_time() + 2.0)
