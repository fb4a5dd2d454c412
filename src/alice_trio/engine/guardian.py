"""The guardian: ends a host's runs when the host itself dies (SIGKILL, OOM kill, crash).

Every teardown in :mod:`alice_trio.engine.process_group` and :mod:`alice_trio.engine.reaper`
runs *in* the host process, so a host killed with SIGKILL cannot clean up: its CLIs run in their
own sessions (needed for the group kill) and their tools in sessions of their own. The guardian
closes that gap without any per-run cost: at the first run, the host starts one tiny stdlib-only
Python process in a session of its own and keeps the write end of a pipe to it. Every process a
run starts carries ``ALICE_TRIO_HOST_ID=<uuid of this host>`` in its environment (inherited by
everything below it, setsid'd tools included). When the pipe reaches EOF — the host exited or was
killed, the kernel closes the pipe either way — the guardian SIGKILLs every process carrying the
host's id, repeats until none is left (at most 10 s), and exits.

The host keeps only two integers — the guardian's pid and the raw write end of the pipe (not
inherited by anything the host spawns) — never a ``Popen`` or file object, so nothing warns or
closes the pipe when the interpreter tears down its objects (``python -X dev`` used to report a
``ResourceWarning`` for both): the kernel closes the pipe when the process is really gone.

Opt out with ``ALICE_TRIO_GUARDIAN=0`` in the host's environment or :func:`configure("off")`
(before the first run). It needs Linux ``/proc``; elsewhere it is off. A background job kept
with ``RunLimits(keep_background=True)`` outlives its turn, but not the host.
"""

from __future__ import annotations

import os
import sys
import uuid

__all__ = [
    "GUARDIAN_SOURCE",
    "HOST_ENV",
    "configure",
    "enabled",
    "ensure_started",
    "host_id",
    "running",
]

HOST_ENV = "ALICE_TRIO_HOST_ID"

#: the guardian's whole program (stdlib only; run with ``python -I -S -c``)
GUARDIAN_SOURCE = r"""
import os, signal, sys, time
needle = ("%s=" % sys.argv[1]).encode() + sys.argv[2].encode()
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
while True:
    try:
        if not os.read(0, 4096):
            break
    except InterruptedError:
        continue
    except OSError:
        break
me = os.getpid()
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env:
            found.append(int(name))
    if not found:
        break
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.05)
"""

_mode = "auto"
_host_id = uuid.uuid4().hex
_pid: int | None = None  # the guardian, our child
_pipe: int | None = None  # write end of its stdin; closed only by the kernel at our exit


def host_id() -> str:
    """This host's id, carried by every process its runs start (``ALICE_TRIO_HOST_ID``)."""
    return _host_id


def configure(mode: str = "auto") -> None:
    """``"auto"`` (default: on where ``/proc`` exists unless ``ALICE_TRIO_GUARDIAN=0``),
    ``"on"`` or ``"off"``. Turning it off does not stop a guardian already started."""
    global _mode
    if mode not in ("auto", "on", "off"):
        raise ValueError("guardian mode must be 'auto', 'on' or 'off'")
    _mode = mode


def enabled() -> bool:
    """Whether runs of this host will be guarded (decided by :func:`configure`, the
    ``ALICE_TRIO_GUARDIAN`` variable and the platform); starts nothing."""
    if _mode == "off" or not os.path.isdir("/proc/self"):
        return False
    if _mode == "auto" and os.environ.get("ALICE_TRIO_GUARDIAN", "").strip() in ("0", "off"):
        return False
    return True


def running() -> bool:
    """Whether this host's guardian is alive."""
    global _pid, _pipe
    if _pid is None:
        return False
    try:
        done, _ = os.waitpid(_pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: it is gone
        done = _pid
    if done == 0:
        return True
    _pid = None
    if _pipe is not None:
        os.close(_pipe)
        _pipe = None
    return False


def ensure_started() -> bool:
    """Start the guardian once per host process (and again if it died). Returns whether one is
    running. Synchronous and quick (one spawn of a stdlib-only interpreter); never raises:
    without a guardian the rest of the teardown still works."""
    global _pid, _pipe
    if running():
        return True
    if not enabled():
        return False
    read_end, write_end = os.pipe()  # both close-on-exec: no CLI of ours inherits them
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            _pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", GUARDIAN_SOURCE, HOST_ENV, _host_id],
                {},  # it needs nothing: no markers, no secrets of the host
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(devnull)
    except (OSError, AttributeError, NotImplementedError):
        os.close(write_end)
        _pid = None
        return False
    finally:
        os.close(read_end)
    _pipe = write_end
    return True
