"""Leave nothing behind: find and kill what a run started outside its process group.

Real CLIs start shell tools with ``setsid()`` (claude, gemini ``-p``, opencode, kimi), so killing
the CLI's process group leaves them running, re-parented away from us. Two mechanisms catch them:

* **subreaper** (Linux, ``prctl(PR_SET_CHILD_SUBREAPER)``): orphans of our descendants are
  re-parented to *this* process instead of init. After a run ends, every living process of the
  run is then one of our children or below one. The sweep walks our children, keeps those that
  are provably the run's (same session/group as the run's leader, or the run's marker in their
  environment), SIGKILLs each one's whole subtree, reaps the zombies with ``waitpid(pid,
  WNOHANG)`` for exactly those pids (never ``waitpid(-1)``, which would steal trio's children),
  and repeats until nothing is left.
* **marker scan** (fallback: subreaper unavailable or opted out): every run's environment carries
  ``ALICE_TRIO_RUN_ID=<uuid>``; the sweep scans ``/proc/*/environ`` and SIGKILLs the processes
  that carry this run's id, repeating until none is left (init reaps them).

A process is only ever touched when it is provably ours: it carries this run's marker or it is in
the session/group the engine created for the run (or below such a process). Concurrent runs in
the same host process have different markers and sessions, so they never touch each other.

The subreaper flag is process-wide. :func:`configure` decides it explicitly: ``"auto"`` (the
default) turns it on at the first run on Linux unless ``ALICE_TRIO_SUBREAPER=0`` is set;
``"on"`` requires it; ``"off"`` never sets it (use this when the host reaps its own orphans with
``waitpid(-1)``, which would race with us). :func:`mechanism` says which one is in force.
**Adopted orphans are reaped** (:func:`reap_orphans`, after every teardown and before every
spawn): a subreaper inherits every orphan below it, and an orphan that exits — a CLI's
un-waited ``setsid`` child, a kept background job — stays a zombie of the host until someone
waits for it. ``waitpid(-1)`` would also take the exit status of the host's *own* children
(trio's, asyncio's, ``subprocess``'s), so a zombie child is reaped only when it cannot be one of
those: it is not in the host's session (a child forked by the host stays there unless it calls
``setsid``) and no living ``subprocess.Popen`` object of the host holds its pid (trio and asyncio
start their processes through ``Popen`` too); while a ``Popen`` is still being constructed (trio
does that in a worker thread, and its child may already have exited) nothing is reaped. The
one case this cannot tell apart is a process the host forks by other means
(``os.fork``/``os.posix_spawn``) into a new session and waits for later; such a host should use
``configure("off")``.

No threads and no blocking waits: every ``waitpid`` is ``WNOHANG`` and the sweep sleeps with
``trio.sleep`` between passes.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import signal
import subprocess
import sys

import trio

__all__ = [
    "MARKER_ENV",
    "cgroup_kill_available",
    "configure",
    "describe",
    "find_marked",
    "group_has_running_member",
    "mechanism",
    "reap_group_zombies",
    "reap_orphans",
    "subreaper_active",
    "sweep",
]

MARKER_ENV = "ALICE_TRIO_RUN_ID"
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_mode = "auto"
_subreaper_on: bool | None = None  # None: not decided yet


def configure(subreaper: str = "auto") -> str:
    """Choose the orphan mechanism: ``"auto"``, ``"on"`` or ``"off"``. Returns :func:`mechanism`.

    ``"on"`` raises ``OSError`` where the subreaper cannot be set (non-Linux). Turning it off
    does not unset a flag already set by this process (the kernel keeps it); it only stops
    alice_trio from relying on it.
    """
    global _mode, _subreaper_on
    if subreaper not in ("auto", "on", "off"):
        raise ValueError("subreaper must be 'auto', 'on' or 'off'")
    _mode = subreaper
    _subreaper_on = None
    if subreaper == "on":
        if not _set_subreaper():
            raise OSError("PR_SET_CHILD_SUBREAPER is not available on this system")
        _subreaper_on = True
    elif subreaper == "off":
        _subreaper_on = False
    return mechanism()


def _set_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def subreaper_active() -> bool:
    """Whether this process is a subreaper alice_trio relies on (decided on first use)."""
    global _subreaper_on
    if _subreaper_on is None:
        if _mode == "auto" and os.environ.get("ALICE_TRIO_SUBREAPER", "").strip() in ("0", "off"):
            _subreaper_on = False
        else:
            _subreaper_on = _set_subreaper()
    return _subreaper_on


def mechanism() -> str:
    """``"subreaper"``, ``"marker-scan"`` (Linux /proc without subreaper) or ``"group-only"``."""
    if subreaper_active():
        return "subreaper"
    if os.path.isdir("/proc/self"):
        return "marker-scan"
    return "group-only"


def cgroup_kill_available() -> bool:
    """True where cgroup v2 is mounted and this process's cgroup offers ``cgroup.kill`` and is
    writable (delegated). alice_trio reports it but does not move runs into cgroups: doing so
    needs a delegated subtree set up by the host (systemd ``Delegate=yes``); the subreaper sweep
    catches the same escapees without privileges."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    unified = [ln.split("::", 1)[1] for ln in lines if ln.startswith("0::")]
    if not unified or not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return False
    path = "/sys/fs/cgroup" + unified[0].rstrip("/")
    return os.path.exists(f"{path}/cgroup.kill") and os.access(path, os.W_OK)


def describe() -> dict[str, object]:
    """What cleans up escaped processes here, for ``alice-trio doctor`` and benchmarks."""
    from . import guardian

    return {
        "mechanism": mechanism(),
        "guardian": "running" if guardian.running() else ("on" if guardian.enabled() else "off"),
        "subreaper_mode": _mode,
        "cgroup_v2_kill_available": cgroup_kill_available(),
        "platform": sys.platform,
    }


# -- /proc helpers ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, pgrp, session) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rparen = data.rfind(b")")
    fields = data[rparen + 2 :].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def _subtree(root: int) -> list[int]:
    """``root`` and all its descendants (root first)."""
    seen = [root]
    i = 0
    while i < len(seen):
        seen.extend(c for c in _children(seen[i]) if c not in seen)
        i += 1
    return seen


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> bool:
    """Reap ``pid`` if it is our exited child; True when it was reaped or is not our child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    except OSError as exc:  # pragma: no cover - defensive
        return exc.errno == errno.ECHILD
    return done == pid


def reap_group_zombies(pgid: int) -> None:
    """Reap our zombie children that belong to group/session ``pgid`` (subreaper orphans)."""
    if not _subreaper_on:
        return
    for pid in _children(os.getpid()):
        st = _stat(pid)
        if st is not None and st[0] == "Z" and (st[2] == pgid or st[3] == pgid):
            _reap(pid)


def _direct_child_pids() -> set[int] | None:
    """Pids of the host's own children still waited for by a ``subprocess.Popen`` object
    (trio's and asyncio's processes included); None while a ``Popen`` is being constructed.

    trio starts its processes in a worker thread: the child exists (and a quick one is already
    a zombie) before its ``Popen`` has a ``pid``. While any ``Popen`` has no pid yet, no zombie
    can be told apart from that child, so the caller reaps nothing this time. A heap walk:
    call only when needed."""
    pids = {p.pid for p in getattr(subprocess, "_active", None) or () if p.returncode is None}
    for obj in gc.get_objects():
        if isinstance(obj, subprocess.Popen) and obj.returncode is None:
            pid = getattr(obj, "pid", None)
            if pid is None:
                return None
            pids.add(pid)
    return pids


def reap_orphans() -> int:
    """Reap the zombies this subreaper adopted (see the module docstring); returns how many.

    Never takes the exit status of a child the host itself started: host-session children and
    pids held by a living ``Popen`` object are left to their waiters. Quick when nothing is
    left (one ``/proc`` read per child of the host)."""
    if not _subreaper_on:
        return 0
    me = os.getpid()
    try:
        own_session = os.getsid(0)
    except OSError:  # pragma: no cover - getsid(0) cannot fail on Linux
        return 0
    candidates = []
    for pid in _children(me):
        st = _stat(pid)
        if st is not None and st[0] == "Z" and st[3] != own_session:
            candidates.append(pid)
    if not candidates:
        return 0
    direct = _direct_child_pids()
    if direct is None:  # a spawn is under way: its child may be one of the zombies
        return 0
    reaped = 0
    for pid in candidates:
        if pid not in direct and _stat(pid) is not None and _reap(pid):
            reaped += 1
    return reaped


def group_has_running_member(pgid: int) -> bool:
    """True when a non-zombie process of group ``pgid`` exists (one ``/proc`` scan).

    Where ``/proc`` is missing, assume yes (the caller then relies on its deadline)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for name in entries:
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[2] == pgid and (st[0] != "Z" or _threads_left(int(name))):
                return True
    return False


def _threads_left(pid: int) -> bool:
    """A zombie main thread whose other threads are still exiting (node, bun, …): the process
    is not dead yet and its children are not re-parented yet."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def find_marked(run_id: str) -> list[int]:
    """Every process on the host whose environment carries this run's marker."""
    marker = f"{MARKER_ENV}={run_id}".encode()
    me = os.getpid()
    out: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if name.isdigit():
            pid = int(name)
            if pid != me and _has_marker(pid, marker):
                out.append(pid)
    return out


def _ours(pid: int, run_id: str, sid: int, marker: bytes) -> tuple[bool, bool]:
    """(is the run's, is a zombie) for one of our children."""
    st = _stat(pid)
    if st is None:
        return False, False
    state, _ppid, pgrp, session = st
    if session == sid or pgrp == sid:
        return True, state == "Z"
    if state == "Z":
        return False, True
    return _has_marker(pid, marker), False


async def sweep(run_id: str, sid: int, *, max_seconds: float = 5.0) -> int:
    """Kill and reap every process of run ``run_id`` (session ``sid``) still alive.

    Returns how many processes were killed. Runs to completion; call it shielded. Bounded by
    ``max_seconds`` (a process that survives SIGKILL that long is in uninterruptible sleep).
    """
    if not os.path.isdir("/proc/self"):
        return 0
    marker = f"{MARKER_ENV}={run_id}".encode()
    killed: set[int] = set()
    deadline = trio.current_time() + max_seconds
    delay = 0.0005
    me = os.getpid()
    while True:
        pending = False
        if subreaper_active():
            for pid in _children(me):
                ours, zombie = _ours(pid, run_id, sid, marker)
                if zombie and (ours or pid in killed):
                    # look again either way: a process that exited handed its children to us
                    # after this pass listed ours (a killed tool's command, still dying), and a
                    # multi-threaded one (node) whose main thread is a zombie while its other
                    # threads still exit has not handed them over yet
                    _reap(pid)
                    pending = True
                    continue
                if pid in killed:  # dying: its environ may already be gone; wait for it
                    pending = True
                    continue
                if ours:
                    pending = True
                    for p in _subtree(pid):
                        _kill(p)
                        killed.add(p)
        else:
            pending = _kill_marked(run_id, me, killed) or pending
        if not pending or trio.current_time() >= deadline:
            return len(killed)
        await trio.sleep(delay)
        delay = min(delay * 2, 0.02)


def _kill_marked(run_id: str, me: int, killed: set[int]) -> bool:
    """One marker-scan pass; True while marked processes are still alive."""
    pending = False
    for pid in list(killed):
        st = _stat(pid)
        if st is None:
            continue
        if st[0] == "Z":
            if st[1] == me:  # the kernel flag is still set: the orphan came back to us
                _reap(pid)
        else:
            pending = True  # SIGKILLed and still tearing down
    for pid in find_marked(run_id):
        st = _stat(pid)
        if st is None or st[0] == "Z":
            if st is not None and st[1] == me:
                _reap(pid)
            continue
        pending = True
        _kill(pid)
        killed.add(pid)
    return pending
