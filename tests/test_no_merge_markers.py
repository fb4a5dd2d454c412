"""No merge-conflict marker is left in a tracked text file (one slipped into docs/ once)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARKER = re.compile(rb"^(<{7}|>{7}) ", re.M)


def test_no_tracked_file_holds_a_conflict_marker() -> None:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
        files = [ROOT / name.decode() for name in listed.split(b"\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file
        files = [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    marked = [
        str(p.relative_to(ROOT))
        for p in files
        if p.suffix in (".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".sh", ".cfg")
        and p.is_file()
        and _MARKER.search(p.read_bytes())
    ]
    assert marked == []
