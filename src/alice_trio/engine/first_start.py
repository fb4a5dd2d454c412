"""Serialised first starts: one CLI start at a time per state directory until one came up.

Some CLIs create and migrate a database in their state directory when they start (opencode
runs its SQLite migrations before ``serve`` prints its URL). Two first starts of such a CLI on
one fresh directory race on that migration and one of them dies (opencode: ``Unexpected
error`` on ``CREATE TABLE``, or ``database is locked``, exit status 1). The provider record
says which directories a CLI writes this way
(:attr:`~alice_trio.providers.record.Flavor.state`); the invocations its builders make carry
them (:attr:`~alice_trio.providers.base.Invocation.state`), and the engine's one spawn path
(:func:`alice_trio.engine.spawn.spawn`) takes a :class:`StartTicket` here before it starts the
process:

* the **key** is the CLI's command (with the identity of the file it runs, so an in-place
  upgrade is a new key) and the resolved, real paths of those directories in the process's
  effective environment (:func:`state_key`): starts that do not share a directory (another
  ``HOME``, ``XDG_DATA_HOME``, ``CODEX_HOME``…) never wait for each other;
* until a start on a key has **reported ready** (:meth:`StartTicket.ready`: the session
  driver's handshake answered, opencode printed its URL, a one-shot CLI printed its first
  line), starts on that key run one at a time, in FIFO order. A start that ends without being
  ready (it failed, was cancelled, or the process exited) lets the next one try as the first;
* once one start on a key was ready, every later start on it goes at once (the directory is
  initialised).

Where this state lives: per ``trio.run`` (a :class:`trio.lowlevel.RunVar`), so a test's fresh
directory under a reused path is never taken for an initialised one. Across OS processes
nothing is serialised (two programs starting the same CLI on one fresh home still race).

Cancellation: waiting for the ticket is cancellable and leaves nothing held; a ticket is
released synchronously (:meth:`StartTicket.release`, idempotent), so the spawn path can
release it in a ``finally`` or a shielded close without a checkpoint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

import attrs
import trio

from ..providers.record import StateDir

__all__ = ["StartTicket", "acquire", "command_id", "state_key", "waiting"]


@attrs.define(eq=False)
class _Gate:
    """One key's state: a FIFO semaphore of one, and whether a start on it was ready."""

    sem: trio.Semaphore = attrs.Factory(lambda: trio.Semaphore(1, max_value=1))
    ready: bool = False
    waiting: int = 0


_GATES: trio.lowlevel.RunVar[dict[tuple[str, ...], _Gate]] = trio.lowlevel.RunVar(
    "alice_trio_first_start"
)


def _gates() -> dict[tuple[str, ...], _Gate]:
    try:
        return _GATES.get()
    except LookupError:
        gates: dict[tuple[str, ...], _Gate] = {}
        _GATES.set(gates)
        return gates


def state_key(command: str, dirs: tuple[StateDir, ...], env: Mapping[str, str]) -> tuple[str, ...]:
    """``(command, real path, …)`` of ``dirs`` in ``env`` (the effective environment of the
    process); ``()`` when there is nothing to serialise. The command is named with the
    identity of the file it runs (:func:`command_id`). Touches the file system only to find
    and ``stat`` the command and resolve symbolic links (a missing directory is fine)."""
    if not dirs:
        return ()
    paths = sorted({os.path.realpath(d.resolve(env)) for d in dirs})
    return (command_id(command, env), *paths)


def command_id(command: str, env: Mapping[str, str]) -> str:
    """``command`` and the device, inode and mtime of the file it runs (found on ``env``'s
    ``PATH``): a CLI upgraded in place is a new key, whose first start may migrate the state
    again. Just ``command`` when it cannot be found."""
    path = command if "/" in command else shutil.which(command, path=env.get("PATH"))
    if not path:
        return command
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return command
    return f"{command}@{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}"


class StartTicket:
    """The right to start a process on a key (see the module docstring). :meth:`ready` ends
    the hold and marks the key initialised; :meth:`release` ends it without (a failed start).
    Both are synchronous and idempotent; the ticket of an empty key holds nothing.

    :meth:`ready` after :meth:`release` still marks the key: a one-shot CLI that printed its
    output and exited at once may be seen exiting (the spawn path releases) before its first
    output is read (the reader reports ready) — that start did come up, and the starts after it
    must not each wait as a first one."""

    __slots__ = ("_gate", "_held", "key")

    def __init__(self, key: tuple[str, ...], gate: _Gate | None) -> None:
        self.key = key
        self._gate = gate
        self._held = gate is not None

    @property
    def held(self) -> bool:
        return self._held

    def ready(self) -> None:
        """The process reported ready: its first start is over, later starts go at once."""
        if self._gate is not None:
            self._gate.ready = True
        self.release()

    def release(self) -> None:
        """Let the next start on the key go (it is the first again unless :meth:`ready`)."""
        if self._held:
            self._held = False
            assert self._gate is not None
            self._gate.sem.release()


async def acquire(key: tuple[str, ...]) -> StartTicket:
    """Wait until a process may be started on ``key`` and return its ticket. Returns at once
    (a ticket holding nothing) for an empty key or a key a start was ready on. Cancellable:
    cancelled, it holds nothing."""
    if not key:
        return StartTicket(key, None)
    gates = _gates()
    gate = gates.setdefault(key, _Gate())
    if gate.ready:
        return StartTicket(key, None)
    gate.waiting += 1
    try:
        await gate.sem.acquire()
    finally:
        gate.waiting -= 1
    if gate.ready:  # a start that was ready went before us
        gate.sem.release()
        return StartTicket(key, None)
    return StartTicket(key, gate)


def waiting(key: tuple[str, ...]) -> int:
    """Starts waiting for ``key`` now (for tests and diagnostics)."""
    gate = _gates().get(key)
    return gate.waiting if gate is not None else 0
