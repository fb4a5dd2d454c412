#!/usr/bin/env python3
"""A fake CLI that, like opencode, initialises a database in its state directory when it
starts, and breaks when two of its first starts overlap (tests only; stdlib).

State directory: ``$FAKE_STATE``. A start that finds no ``db`` there "migrates": it creates
``migrating`` exclusively, stays ``$FAKE_MIGRATION`` seconds (default 1.0), writes ``db`` and
removes ``migrating``. A start that finds ``migrating`` present fails like opencode does
(``Unexpected error`` / ``database is locked`` on stderr, exit status 1). Then it prints
``ready <pid>`` (after ``$FAKE_HOLD`` exists, when that is set) and echoes stdin lines back
until EOF — or, with ``$FAKE_ONESHOT`` set, prints one turn of the fake protocol of
``tests/fake_provider.py`` (reply ``ready <pid>``) and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    state = os.environ["FAKE_STATE"]
    os.makedirs(state, exist_ok=True)
    db = os.path.join(state, "db")
    migrating = os.path.join(state, "migrating")
    if os.path.exists(migrating):
        sys.stderr.write("Error: Unexpected error\n\ndatabase is locked\n")
        return 1
    if not os.path.exists(db):
        try:
            fd = os.open(migrating, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            sys.stderr.write("Error: Unexpected error\n\nFailed query: CREATE TABLE `workspace`\n")
            return 1
        os.close(fd)
        time.sleep(float(os.environ.get("FAKE_MIGRATION", "1.0")))
        with open(db, "w") as f:
            f.write("migrated\n")
        os.unlink(migrating)
    hold = os.environ.get("FAKE_HOLD", "")
    while hold and not os.path.exists(hold):
        time.sleep(0.02)
    if os.environ.get("FAKE_ONESHOT"):
        text = json.dumps({"type": "text", "text": f"ready {os.getpid()}"})
        done = json.dumps({"type": "done", "input": 1, "cached": 0, "output": 1})
        sys.stdout.write(f"{text}\n{done}\n")
        return 0
    sys.stdout.write(f"ready {os.getpid()}\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(line)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
