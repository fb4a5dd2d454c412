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


def new_mark() -> str:
    return uuid.uuid4().hex


def read_pids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(x) for x in path.read_text().split()]
