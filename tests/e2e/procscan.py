"""Find live processes by environment marker, working directory or process group (``/proc``).

Zombies are not "alive" (they hold no resources but a pid slot, and their parent reaps them).
Processes we may not read (other users) are skipped.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import attrs


@attrs.frozen
class ProcInfo:
    pid: int
    pgid: int
    state: str
    cmdline: str


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ..." — comm may hold spaces and parentheses
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[0], int(rest[2])


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return needle in environ.split(b"\0")


def live_processes() -> list[ProcInfo]:
    out: list[ProcInfo] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X"):
            continue
        out.append(ProcInfo(pid=pid, pgid=st[1], state=st[0], cmdline=_cmdline(pid)))
    return out


def alive_with_marker(env_name: str, value: str) -> list[ProcInfo]:
    """Live processes whose environment holds ``env_name=value`` (never the caller itself)."""
    needle = f"{env_name}={value}".encode()
    me = os.getpid()
    return [p for p in live_processes() if p.pid != me and _has_marker(p.pid, needle)]


def alive_in_dir(root: str) -> list[ProcInfo]:
    """Live processes whose working directory is ``root`` or below it. Catches a CLI whose
    environ can no longer be read: setproctitle (legacy kimi-cli) overwrites that memory."""
    prefix = os.path.realpath(root).rstrip("/") + "/"
    out: list[ProcInfo] = []
    for p in live_processes():
        try:
            cwd = os.readlink(f"/proc/{p.pid}/cwd")
        except OSError:
            continue
        if (cwd.rstrip("/") + "/").startswith(prefix) and p.pid != os.getpid():
            out.append(p)
    return out


def alive_in_group(pgid: int) -> list[ProcInfo]:
    return [p for p in live_processes() if p.pgid == pgid]


def kill_all(procs: list[ProcInfo]) -> None:
    """SIGKILL leftovers by pid (test clean-up after a failed assertion)."""
    for p in procs:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except OSError:
            pass
