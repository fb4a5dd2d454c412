"""Process-inspection helpers for tests (Linux /proc)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    state = data[data.rfind(b")") + 2 :].split()[0]
    return state != b"Z"


def marked(mark: str, key: str = "TEST_MARK") -> list[int]:
    """Live processes whose environment has ``key=mark``."""
    needle = f"{key}={mark}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\0") and alive(int(name)):
                    out.append(int(name))
        except OSError:
            continue
    return out


def cmdline(pid: int) -> bytes | None:
    """The raw ``/proc/PID/cmdline`` of ``pid`` (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def started(mark: str, root: int, key: str = "TEST_MARK") -> bool:
    """Whether the command ``root`` (marked ``mark``) has started a process of its own: a
    marked process other than ``root`` running another program. A fork of ``root`` that has
    not exec'd yet does not count — trio's import runs ``ldconfig`` that way, long before the
    command's run begins."""
    own = cmdline(root)
    for pid in marked(mark, key):
        if pid != root:
            line = cmdline(pid)
            if line is not None and line != own:
                return True
    return False


def new_mark() -> str:
    return uuid.uuid4().hex


def read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(x) for x in path.read_text().split()]
