"""The engine's one spawn path: check, start and end an agent CLI process.

One-shot runs (:mod:`.oneshot`) and long-lived session processes
(:mod:`alice_trio.transports.process`) both start their CLI here, so a bad command, workspace or
environment fails the same way, with the same message, whichever path met it:

1. :func:`check_invocation` validates what the OS would choke on, before anything is spawned:
   an empty command, a NUL byte in an argument, the workspace or the environment (variables are
   named, their values never shown), a workspace that is not a directory →
   :class:`~alice_trio.errors.ConfigError`.
2. :func:`spawn` builds the environment (host env < invocation env − ``env_remove`` < the run
   marker and host id, see :mod:`.reaper` and :mod:`.guardian`), starts the CLI in a new
   session (its pid is its group and session id) and maps whatever the OS answers to one typed
   error (:func:`spawn_error`): not found / not executable / not a program →
   :class:`~alice_trio.errors.CLINotFoundError`; a vanished workspace or an argument list too
   long → :class:`~alice_trio.errors.ConfigError`; anything else (no fds, no memory) →
   :class:`~alice_trio.errors.ProcessFailedError`. Never a bare ``OSError``/``ValueError``.
   A CLI whose invocation names state directories (:attr:`Invocation.state
   <alice_trio.providers.base.Invocation.state>`) is started one process at a time per
   directory until one reported ready (:mod:`.first_start`): :func:`spawn` waits for the
   ticket, the caller calls :meth:`Child.ready` once the CLI is up, and the ticket is also
   given back when the process has exited or is closed.
3. :func:`close_child` ends it — always shielded, always the same order: terminate the group
   (SIGTERM, ``kill_grace``, SIGKILL; :func:`.process_group.terminate`), sweep what escaped the
   group (unless the caller keeps background jobs), reap adopted orphans, close the pipes.

The engine only ever talks to a started process through :class:`Child`, a protocol small enough
to fake: escalation and timeouts can then be tested on trio's ``MockClock``.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import uuid
from typing import Literal, Protocol

import attrs
import trio

from ..errors import AliceError, CLINotFoundError, ConfigError, ProcessFailedError
from ..providers.base import Invocation
from . import first_start, guardian, process_group, reaper

__all__ = [
    "Child",
    "SpawnedProcess",
    "Spawner",
    "build_env",
    "check_invocation",
    "close_child",
    "describe_exit",
    "spawn",
    "spawn_error",
]

StdinMode = Literal["pipe", "devnull"]


class Child(Protocol):
    """What the engine needs of a started CLI (the real one is :class:`SpawnedProcess`)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdin(self) -> trio.abc.SendStream | None: ...
    @property
    def stdout(self) -> trio.abc.ReceiveStream | None: ...
    @property
    def stderr(self) -> trio.abc.ReceiveStream | None: ...

    async def wait(self) -> int:
        """Wait for the leader's exit; return its status (negative: killed by a signal)."""
        ...

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the whole process group; False when the group is gone."""
        ...

    def group_running(self) -> bool:
        """True while a member of the group is still running (zombies are dead)."""
        ...

    async def sweep(self) -> None:
        """Kill and reap the run's processes that escaped the group (call shielded)."""
        ...

    def pending_output(self) -> int:
        """Bytes written to stdout and not read yet (0 where unknown)."""
        ...

    def ready(self) -> None:
        """The CLI is up (its handshake answered, its URL printed, its first line read): a
        first start on its state directories is over (:mod:`.first_start`). Idempotent."""
        ...


class Spawner(Protocol):
    """:func:`spawn`'s signature: what the one-shot engine and the session transport call to
    start a process (a test passes a fake one to run them on trio's ``MockClock``)."""

    async def __call__(self, invocation: Invocation, *, name: str, stdin: StdinMode) -> Child: ...


@attrs.define(eq=False)
class SpawnedProcess:
    """A CLI started by :func:`spawn`: a :class:`trio.Process` leading its own session."""

    process: trio.Process
    run_id: str
    ticket: first_start.StartTicket = attrs.field(factory=lambda: first_start.StartTicket((), None))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def stdin(self) -> trio.abc.SendStream | None:
        return self.process.stdin

    @property
    def stdout(self) -> trio.abc.ReceiveStream | None:
        return self.process.stdout

    @property
    def stderr(self) -> trio.abc.ReceiveStream | None:
        return self.process.stderr

    async def wait(self) -> int:
        status = await self.process.wait()
        self.ticket.release()  # it exited: its start is over, ready or not
        return status

    def ready(self) -> None:
        self.ticket.ready()

    def signal_group(self, sig: int) -> bool:
        return process_group.signal_group(self.pid, sig)

    def group_running(self) -> bool:
        reaper.reap_group_zombies(self.pid)
        return process_group.group_running(self.pid)

    async def sweep(self) -> None:
        await reaper.sweep(self.run_id, self.pid)

    def pending_output(self) -> int:
        stream = self.process.stdout
        if not isinstance(stream, trio.lowlevel.FdStream):
            return 0
        return _fionread(stream.fileno())


def _fionread(fd: int) -> int:
    try:
        import fcntl
        import struct
        import termios

        buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        return max(0, int(struct.unpack("i", buf)[0]))
    except (ImportError, OSError, AttributeError):
        return 0


def describe_exit(returncode: int) -> str:
    """``"exit status 3"`` / ``"killed by SIGKILL"``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"


def build_env(invocation: Invocation, run_id: str) -> dict[str, str]:
    """Host env < invocation env (config env < request env, merged by the provider), minus
    ``env_remove`` < the run's marker and the host's id (see :mod:`.reaper`, :mod:`.guardian`)."""
    env = dict(os.environ)
    env.update(invocation.env)
    for key in invocation.env_remove:
        env.pop(key, None)
    env[reaper.MARKER_ENV] = run_id
    env[guardian.HOST_ENV] = guardian.host_id()
    return env


def check_invocation(invocation: Invocation, name: str) -> None:
    """Raise :class:`ConfigError` for what no OS would run and for a missing input file; quick,
    no I/O but ``stat``/``access`` calls."""
    argv = invocation.argv
    if not argv or not isinstance(argv[0], str) or not argv[0]:
        raise ConfigError(f"{name}: empty command", provider=name)
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise ConfigError(
                f"{name}: argument {i} is {type(arg).__name__}, not text", provider=name
            )
        if "\0" in arg:
            what = "the command" if i == 0 else f"argument {i}"
            raise ConfigError(f"{name}: {what} contains a NUL byte", provider=name)
    for key, value in invocation.env.items():
        if not key or "=" in key or "\0" in key:
            raise ConfigError(f"{name}: invalid environment variable name {key!r}", provider=name)
        if "\0" in value:  # the value may be a secret: name the variable only
            raise ConfigError(
                f"{name}: environment variable {key} contains a NUL byte", provider=name
            )
    cwd = invocation.cwd
    if cwd:
        if "\0" in cwd:
            raise ConfigError(f"{name}: the workspace dir contains a NUL byte", provider=name)
        if not os.path.isdir(cwd):
            what = "is not a directory" if os.path.exists(cwd) else "does not exist"
            raise ConfigError(f"{name}: workspace dir {what}: {cwd}", provider=name)
    for label, path in invocation.inputs.items():
        _check_input(name, label, path, cwd)


def _check_input(name: str, label: str, path: str, cwd: str | None) -> None:
    """Raise :class:`ConfigError` unless ``path`` (relative to ``cwd``) is a readable regular
    file."""
    if not path or "\0" in path:
        raise ConfigError(
            f"{name}: the {label} path is empty or contains a NUL byte", provider=name
        )
    full = os.path.join(cwd or "", path)
    if not os.path.exists(full):
        raise ConfigError(f"{name}: {label} does not exist: {path}", provider=name)
    if os.path.isdir(full):
        raise ConfigError(f"{name}: {label} is a directory: {path}", provider=name)
    if not os.path.isfile(full):  # a device, FIFO or socket: /dev/zero would never end
        raise ConfigError(f"{name}: {label} is not a regular file: {path}", provider=name)
    if not os.access(full, os.R_OK):
        raise ConfigError(f"{name}: {label} is not readable: {path}", provider=name)


def spawn_error(exc: BaseException, invocation: Invocation, name: str) -> AliceError:
    """The typed error for a failed spawn (``exc`` as trio raised it)."""
    cmd = invocation.argv[0] if invocation.argv else ""
    cwd = invocation.cwd or ""
    if isinstance(exc, ValueError | TypeError):
        err: AliceError = ConfigError(f"{name}: cannot start {cmd}: {exc}", provider=name)
    elif not isinstance(exc, OSError):  # pragma: no cover - trio raises nothing else
        err = ProcessFailedError(f"{name}: cannot start {cmd}: {exc!r}", provider=name)
    elif cwd and exc.filename == cwd:  # the child's chdir failed (raced the check)
        err = ConfigError(
            f"{name}: workspace dir is not usable: {cwd} ({exc.strerror})", provider=name
        )
    elif exc.errno == errno.ENOENT:
        err = CLINotFoundError(f"{name}: command not found: {cmd}", provider=name)
    elif exc.errno in (errno.EACCES, errno.EPERM):
        err = CLINotFoundError(f"{name}: command is not executable: {cmd}", provider=name)
    elif exc.errno in (errno.ENOEXEC, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG,
                       errno.EISDIR, errno.ETXTBSY, errno.ELIBBAD):  # fmt: skip
        err = CLINotFoundError(f"{name}: cannot execute {cmd}: {exc.strerror}", provider=name)
    elif exc.errno == errno.E2BIG:
        size = sum(len(a.encode("utf-8", "surrogateescape")) + 1 for a in invocation.argv)
        err = ConfigError(
            f"{name}: the command line is too long for the OS ({size} bytes of arguments "
            f"plus the environment; E2BIG)",
            provider=name,
        )
    else:
        err = ProcessFailedError(
            f"{name}: cannot start {cmd}: {exc.strerror or exc}", provider=name
        )
    err.__cause__ = exc
    return err


async def spawn(invocation: Invocation, *, name: str, stdin: StdinMode) -> SpawnedProcess:
    """Check ``invocation`` and start it in a new session, stdout/stderr as pipes.

    With :attr:`Invocation.state <alice_trio.providers.base.Invocation.state>`, it first waits
    until no other first start on those directories is under way (:mod:`.first_start`;
    cancellable while it waits, nothing held then); the returned process holds that turn until
    :meth:`SpawnedProcess.ready`, its exit (:meth:`SpawnedProcess.wait`) or
    :func:`close_child`.

    Raises the typed errors of :func:`check_invocation` / :func:`spawn_error`; nothing is left
    running when it raises. Not cancellable half-way: the process exists or it does not.
    """
    check_invocation(invocation, name)
    run_id = uuid.uuid4().hex
    if invocation.limits.sweep:
        reaper.subreaper_active()  # decide the mechanism before the first spawn
        guardian.ensure_started()
    env = build_env(invocation, run_id)
    key = first_start.state_key(invocation.argv[0], invocation.state, env)
    ticket = await first_start.acquire(key)
    reaper.reap_orphans()
    try:
        proc = await trio.lowlevel.open_process(
            list(invocation.argv),
            stdin=subprocess.PIPE if stdin == "pipe" else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=invocation.cwd or None,
            env=env,
            start_new_session=True,
        )
    except (OSError, ValueError, TypeError) as exc:
        ticket.release()
        raise spawn_error(exc, invocation, name) from exc
    except BaseException:
        ticket.release()
        raise
    return SpawnedProcess(proc, run_id, ticket)


async def close_child(child: Child, *, kill_grace: float, sweep: bool) -> None:
    """End ``child`` and everything it started; return when all of it is reaped.

    Shielded from cancellation (a second cancel cannot orphan anything); never raises for
    processes or pipes that are already gone. ``sweep=False`` keeps the processes that escaped
    the group (``keep_background`` after a clean exit). A first start it still held
    (:mod:`.first_start`) is given back: the next start on its state directories goes."""
    with trio.CancelScope(shield=True):
        await process_group.terminate(child, kill_grace)
        if isinstance(child, SpawnedProcess):
            child.ticket.release()
        if sweep:
            await child.sweep()
        reaper.reap_orphans()
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                try:
                    await stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
