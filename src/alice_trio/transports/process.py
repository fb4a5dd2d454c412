"""A long-lived CLI process for interactive sessions: lines in, lines out, nothing left behind.

:func:`open_agent_process` is an async context manager that spawns the CLI in a new session
(with the run marker, like one-shot runs), drains stderr into a bounded tail for the whole life
of the process, frames stdout into lines with the byte limit, and serializes writes to stdin.

Leaving the context ends the process:

* ``graceful=True`` (the default after a finished turn): close stdin (EOF), give the CLI
  ``close_grace`` seconds to exit by itself and flush (C7), then terminate the group;
* on cancellation or error, or with ``graceful=False``: terminate the group at once
  (SIGTERM, ``kill_grace``, SIGKILL).

Either way the escaped processes of the session are swept (:mod:`alice_trio.engine.reaper`) and
the context exits only when everything is reaped. Writes never deadlock the reader: the reader
runs in its own task and :meth:`AgentProcess.send` only waits for the pipe.
"""

from __future__ import annotations

import math
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..engine import guardian, reaper
from ..engine.oneshot import build_env, describe_exit
from ..engine.pipes import receive_chunk
from ..engine.process_group import terminate_group
from ..engine.stderr_tail import StderrTail
from ..errors import CLINotFoundError, LineTooLongError, TransportClosedError
from ..framing import LineFramer, OversizedLine, decode_line
from ..providers.base import Invocation

__all__ = ["AgentProcess", "open_agent_process"]


class AgentProcess:
    """Handle on a running CLI (see :func:`open_agent_process`).

    ``lines`` yields decoded stdout lines until EOF (then the channel closes). ``send(data)``
    writes bytes to stdin (raises :class:`TransportClosedError` once the process is gone).
    ``stderr_tail()`` is the end of what the CLI wrote to stderr. ``exited`` is set when the
    process has exited; ``returncode`` then holds its status.
    """

    def __init__(self, proc: trio.Process, invocation: Invocation, run_id: str, name: str) -> None:
        self.proc = proc
        self.invocation = invocation
        self.run_id = run_id
        self.name = name
        self.tail = StderrTail(invocation.limits.stderr_tail_bytes)
        self.exited = trio.Event()
        self.stdout_closed = trio.Event()
        self._send_lines, self.lines = trio.open_memory_channel[str](1024)
        self._write_lock = trio.Lock()
        self._receive_scope: trio.CancelScope | None = None
        self.oversized = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr_tail(self) -> str:
        return self.tail.text()

    def exit_description(self) -> str:
        rc = self.proc.returncode
        return "still running" if rc is None else describe_exit(rc)

    async def send(self, data: bytes) -> None:
        """Write ``data`` to stdin. Raises TransportClosedError when stdin is gone."""
        stdin = self.proc.stdin
        if stdin is None:
            raise TransportClosedError(f"{self.name}: no stdin", provider=self.name)
        async with self._write_lock:
            try:
                await stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise TransportClosedError(
                    f"{self.name} process closed its input ({self.exit_description()})",
                    provider=self.name,
                    stderr_tail=self.stderr_tail(),
                ) from exc

    async def close_stdin(self) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            return
        async with self._write_lock:
            try:
                await stdin.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    # -- tasks -------------------------------------------------------------------------------
    async def _read_stdout(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        framer = LineFramer(self.invocation.limits.max_line_bytes)
        async with self._send_lines:
            while True:
                chunk = b""
                # once the process has exited, stdout silent for drain_timeout counts as EOF:
                # a grandchild holding the pipe cannot keep ``lines`` open (C9)
                with trio.CancelScope(deadline=self._eof_deadline()) as scope:
                    self._receive_scope = scope
                    chunk = await receive_chunk(stream)
                self._receive_scope = None
                items = framer.feed(chunk) if chunk else framer.feed_eof()
                for item in items:
                    if isinstance(item, OversizedLine):
                        self.oversized += 1
                        if self.invocation.limits.line_policy == "error":
                            raise LineTooLongError(
                                f"{self.name} printed a line of {item.size} bytes",
                                limit=self.invocation.limits.max_line_bytes,
                                provider=self.name,
                            )
                        continue
                    await self._send_lines.send(decode_line(item))
                if not chunk:
                    self.stdout_closed.set()
                    return

    async def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        while True:
            chunk = await receive_chunk(stream)
            if not chunk:
                return
            self.tail.write(chunk)

    def _eof_deadline(self) -> float:
        if not self.exited.is_set():
            return math.inf
        return trio.current_time() + self.invocation.limits.drain_timeout

    async def _wait(self) -> None:
        await self.proc.wait()
        self.exited.set()
        if self._receive_scope is not None:
            self._receive_scope.deadline = self._eof_deadline()


@asynccontextmanager
async def open_agent_process(
    invocation: Invocation,
    *,
    name: str,
    graceful: bool = True,
    close_grace: float = 2.0,
    stdin: bool = True,
) -> AsyncIterator[AgentProcess]:
    """Spawn ``invocation`` as a long-lived process; see the module docstring.

    Raises :class:`CLINotFoundError` when the command cannot be executed. ``stdin=False`` gives
    the process /dev/null (e.g. ``opencode serve``, which ignores stdin EOF anyway).
    """
    run_id = uuid.uuid4().hex
    limits = invocation.limits
    if limits.sweep:
        reaper.subreaper_active()
        guardian.ensure_started()
    try:
        proc = await trio.lowlevel.open_process(
            list(invocation.argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=invocation.cwd or None,
            env=build_env(invocation, run_id),
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise CLINotFoundError(
            f"{name}: cannot execute {invocation.argv[0]}: {exc.strerror}", provider=name
        ) from exc
    agent = AgentProcess(proc, invocation, run_id, name)
    clean_exit = False
    single: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent._read_stdout)
            nursery.start_soon(agent._read_stderr)
            nursery.start_soon(agent._wait)
            yield agent
            clean_exit = True
            if graceful and proc.returncode is None:
                await agent.close_stdin()
                with trio.move_on_after(close_grace):
                    await proc.wait()
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # one failure (a reader's typed error such as LineTooLongError, or the caller's own
        # exception from the body) propagates as itself, not wrapped in a strict group
        if len(group.exceptions) != 1 or isinstance(group.exceptions[0], BaseExceptionGroup):
            raise
        single = group.exceptions[0]
    finally:
        with trio.CancelScope(shield=True):
            await terminate_group(proc, limits.kill_grace)
            if limits.sweep and not (limits.keep_background and clean_exit):
                await reaper.sweep(run_id, proc.pid)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    await stream.aclose()
    if single is not None:
        raise single
