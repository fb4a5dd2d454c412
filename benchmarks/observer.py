"""Watch processes from the outside: when each exits and when each is reaped. Own process.

Run as ``python -m benchmarks.observer``. Protocol on stdin/stdout, one line each way:

* ``watch <timeout> <pid> <pid> …`` → opens a pidfd per pid (a pid already gone counts as exited and
  reaped at once), answers ``armed``;
* then, on its own, answers one JSON line ``{"exit": {pid: t}, "gone": {pid: t}}`` once every
  pid is reaped (or after ``timeout``), times being ``time.monotonic()`` (CLOCK_MONOTONIC, the
  same clock in every process of the host).

"Exited" is the pidfd turning readable (the process is a zombie or gone). "Reaped" is
``/proc/<pid>`` disappearing, polled every 100 µs only between the exit and the reap. Being a
separate process, it neither shares the GIL nor trio's run loop with the code it measures.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import TextIO


def _gone(pid: int) -> bool:
    try:
        os.stat(f"/proc/{pid}")
    except FileNotFoundError:
        return True
    return False


def watch(pids: list[int], timeout: float, out: TextIO) -> None:
    exits: dict[int, float] = {}
    gones: dict[int, float] = {}
    ep = select.epoll()
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            now = time.monotonic()
            exits[pid] = gones[pid] = now
            continue
        fds[fd] = pid
        ep.register(fd, select.EPOLLIN)
    out.write("armed\n")
    out.flush()
    deadline = time.monotonic() + timeout
    exited_pending: set[int] = set()
    while len(gones) < len(pids) and time.monotonic() < deadline:
        wait = 0.0001 if exited_pending else max(0.0, deadline - time.monotonic())
        for fd, _ in ep.poll(wait):
            pid = fds.pop(fd)
            exits[pid] = time.monotonic()
            ep.unregister(fd)
            os.close(fd)
            exited_pending.add(pid)
        for pid in list(exited_pending):
            if _gone(pid):
                gones[pid] = time.monotonic()
                exited_pending.discard(pid)
    for fd in fds:
        os.close(fd)
    ep.close()
    out.write(json.dumps({"exit": exits, "gone": gones}) + "\n")
    out.flush()


def main() -> int:
    for line in sys.stdin:
        parts = line.split()
        if parts and parts[0] == "watch":
            watch([int(p) for p in parts[2:]], float(parts[1]), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
