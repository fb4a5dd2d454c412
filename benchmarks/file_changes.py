"""What reporting a turn's file changes costs: the workspace snapshot taken before and after
each turn (``alice_trio.engine.workspace``), on a generated repository.

    python -m benchmarks.file_changes [--quick]

* ``snapshot``: one stat walk of N files in 100 folders (plus a ``.git`` and a ``node_modules``
  folder the walk skips), median of several; ``take_snapshot`` is what a turn pays twice (inline
  up to 2,000 entries, in a worker thread above).
* ``diff``: comparing two snapshots after 10 files were modified, 5 added and 5 deleted.
* ``per_turn``: a whole ``watch_workspace`` + ``finish`` (both snapshots and the diff).
Alice ran ``git diff``/``git status`` after every stdout line instead (spec §7, §13.21).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from alice_trio.engine.workspace import snapshot, take_snapshot, watch_workspace
from alice_trio.file_changes import diff_snapshots

from .common import median, quick_main, tmpdir


def make_repo(root: Path, files: int) -> None:
    per = max(1, files // 100)
    for d in range(100):
        folder = root / f"pkg{d}" / "sub"
        folder.mkdir(parents=True)
        for f in range(per):
            (folder / f"m{f}.py").write_text("x = 1\n")
    for skipped in (".git/objects", "node_modules/dep"):
        (root / skipped).mkdir(parents=True)
        for i in range(200):
            (root / skipped / f"o{i}").write_text("o")


def touch_some(root: Path) -> None:
    for i in range(10):
        with open(root / f"pkg{i}" / "sub" / "m0.py", "a") as f:
            f.write("y = 2\n")
    for i in range(5):
        (root / f"new{i}.txt").write_text("n")
        (root / f"pkg{50 + i}" / "sub" / "m0.py").unlink()


async def main_async(quick: bool) -> dict[str, Any]:
    files = 2_000 if quick else 10_000
    repeats = 5 if quick else 15
    out: dict[str, Any] = {"files": files, "repeats": repeats}
    with tmpdir("files") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root, files)
        walk, taken = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            before = snapshot(str(root))
            walk.append(time.perf_counter() - t)
            t = time.perf_counter()
            await take_snapshot(str(root), 100_000)
            taken.append(time.perf_counter() - t)
        assert before is not None and len(before) == files
        touch_some(root)
        after = snapshot(str(root))
        assert after is not None
        diffs = []
        for _ in range(repeats):
            t = time.perf_counter()
            changes = diff_snapshots(before, after)
            diffs.append(time.perf_counter() - t)
        assert len(changes) == 20, changes
        turns = []
        for _ in range(repeats):
            t = time.perf_counter()
            watch = await watch_workspace(str(root))
            (root / "turn.txt").write_text(str(time.time()))
            await watch.finish()
            turns.append(time.perf_counter() - t)
            os.unlink(root / "turn.txt")
    out["snapshot_ms_p50"] = round(median(walk) * 1000, 2)
    out["take_snapshot_ms_p50"] = round(median(taken) * 1000, 2)
    out["diff_ms_p50"] = round(median(diffs) * 1000, 3)
    out["per_turn_ms_p50"] = round(median(turns) * 1000, 2)
    return out


def main() -> int:
    return quick_main(main_async)


if __name__ == "__main__":
    sys.exit(main())
