"""A long-lived CLI process for interactive sessions: frames in, lines out, nothing left behind.

:func:`open_agent_process` is an async context manager that starts the CLI through the engine's
one spawn path (:func:`alice_trio.engine.spawn.spawn`: same checks, same typed errors, same
environment and run marker as one-shot runs), drains stderr into a bounded tail for the whole
life of the process, frames stdout into lines with the byte limit, and owns stdin through one
**writer task**.

**Frames are written whole** (issue 12.1). :meth:`AgentProcess.send` hands a frame to the
writer task and waits for it to be written; the caller's cancellation can no longer cut a frame
in half, because the caller never writes: a frame is either not queued at all (cancelled before
the queue took it) or queued whole and then written whole even if the caller stopped waiting
(:meth:`AgentProcess.enqueue` queues without any checkpoint, for callers that must know which).
When a frame cannot be written whole, the transport fails for good and the process group is
killed (:meth:`AgentProcess.abort`): a stdin the CLI closed or broke raises
:class:`~alice_trio.errors.TransportClosedError` for that frame and every later one, and so does
a peer that stopped reading its input for too long (the JSON-RPC client's ``write_timeout``);
what is left of a half-written frame is never followed by anything. The error says what really
happened (:meth:`AgentProcess.end_state`): the CLI exited (with its status), closed its output,
closed its input while running, or is being stopped by us — a broken stdin is mostly a CLI that
died, so the writer gives the exit :data:`EXIT_GRACE` to be seen before it words the error.

A CLI whose invocation names state directories is started one process at a time per directory
until one came up (:mod:`alice_trio.engine.first_start`): the driver calls
:meth:`AgentProcess.ready` once the CLI answered its handshake.

Leaving the context ends the process:

* ``graceful=True`` (the default after a finished turn): close stdin (EOF, after the queued
  frames), give the CLI ``close_grace`` seconds to exit by itself and flush (C7), then end it;
* on cancellation or error, or with ``graceful=False``: end it at once.

Ending is :func:`alice_trio.engine.spawn.close_child` (shielded: group SIGTERM, ``kill_grace``,
SIGKILL, sweep of what escaped unless ``keep_background`` after a clean exit, orphans reaped).

After the CLI exits, ``lines`` delivers everything it wrote (the bytes left in the pipe at its
death, at the consumer's pace), then gives the pipe ``drain_timeout`` more before it counts as
EOF: a background job holding stdout, silent or chatty, cannot keep ``lines`` open (C9, 12.2).
"""

from __future__ import annotations

import math
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..engine.pipes import receive_chunk
from ..engine.spawn import Child, Spawner, close_child, describe_exit, spawn
from ..engine.stderr_tail import StderrTail
from ..errors import AliceError, LineTooLongError, TransportClosedError
from ..framing import LineFramer, OversizedLine, decode_line
from ..providers.base import Invocation

__all__ = ["EXIT_GRACE", "AgentProcess", "Frame", "open_agent_process"]

#: how long a closed pipe waits for the CLI's exit to be seen before an error describes it (the
#: kernel closes a dying process's pipes a moment before its exit status can be collected)
EXIT_GRACE = 0.25


class Frame:
    """One queued write. :meth:`written` waits until it is on the pipe (or failed)."""

    __slots__ = ("_done", "data", "eof", "error")

    def __init__(self, data: bytes, *, eof: bool = False) -> None:
        self.data = data
        self.eof = eof
        self.error: AliceError | None = None
        self._done = trio.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _finish(self, error: AliceError | None = None) -> None:
        if not self._done.is_set():
            self.error = error
            self._done.set()

    async def written(self) -> None:
        """Wait until the frame is written whole; raise its TransportClosedError if it could not
        be. Cancelling this wait does not take the frame back."""
        await self._done.wait()
        if self.error is not None:
            raise _copy(self.error)


def _copy(error: AliceError) -> TransportClosedError:
    return TransportClosedError(
        error.message, provider=error.provider, stderr_tail=error.stderr_tail
    )


class AgentProcess:
    """Handle on a running CLI (see :func:`open_agent_process`).

    ``lines`` yields decoded stdout lines until EOF (then the channel closes). ``send(frame)``
    writes one frame to stdin, whole (see the module docstring). ``stderr_tail()`` is the end of
    what the CLI wrote to stderr. ``exited`` is set when the process has exited; ``returncode``
    then holds its status. ``failure`` is the error that ended the transport, if any.
    """

    def __init__(self, child: Child, invocation: Invocation, name: str) -> None:
        self.child = child
        self.invocation = invocation
        self.name = name
        self.tail = StderrTail(invocation.limits.stderr_tail_bytes)
        self.exited = trio.Event()
        self.stdout_closed = trio.Event()
        self.failure: TransportClosedError | None = None
        self._send_lines, self.lines = trio.open_memory_channel[str](1024)
        self._send_frames, self._frames = trio.open_memory_channel[Frame](math.inf)
        self._receive_scope: trio.CancelScope | None = None
        # the writer outlives a cancellation of the process context's body until the body is
        # done: a shielded protocol cancel sent while the caller is being cancelled still goes
        self._writer_scope = trio.CancelScope(shield=True)
        self._eof_deadline = math.inf
        self._drain_target: int | None = None
        self.bytes_read = 0
        self.bytes_handled = 0
        self.oversized = 0
        self._stopping = False  # we closed its stdin, killed it, or the context is ending
        self._stdin_broken = False  # a write found its stdin closed
        self._exited_by_itself: bool | None = None  # known once the exit was seen

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    def stderr_tail(self) -> str:
        return self.tail.text()

    def ready(self) -> None:
        """Say the CLI is up (its handshake answered, its URL printed). Until then, or until it
        exits or the process context ends, no other first start on its state directories
        begins (:mod:`alice_trio.engine.first_start`); a driver calls this where it reports
        itself started. Idempotent, no checkpoint."""
        self.child.ready()

    def exit_description(self) -> str:
        rc = self.child.returncode
        return "still running" if rc is None else describe_exit(rc)

    def end_state(self) -> tuple[str, str]:
        """What became of the CLI, for error messages: ``(what it did, its status)``, e.g.
        ``("exited", "exit status 5")``, ``("closed its output", "still running")``,
        ``("closed its input", "still running")``, ``("closed its output and was stopped",
        "exit status 0")`` or ``("is being stopped", "still running")``."""
        rc = self.child.returncode
        output = self.stdout_closed.is_set()
        if rc is None:
            if self._stdin_broken:
                what = "closed its input and its output" if output else "closed its input"
            elif output:
                what = "closed its output"
            elif self._stopping:
                what = "is being stopped"
            else:
                what = "is running"
            return what, "still running"
        by_itself = self._exited_by_itself
        if by_itself is None:  # exited, not yet seen by _wait: stopped by us if we were at it
            by_itself = not self._stopping
        if by_itself:
            return "exited", describe_exit(rc)
        return ("closed its output and was stopped" if output else "was stopped"), describe_exit(rc)

    # -- writing -----------------------------------------------------------------------------
    def enqueue(self, data: bytes) -> Frame:
        """Queue ``data`` to be written whole; no checkpoint, so it cannot be cancelled.

        Raises :class:`TransportClosedError` (and queues nothing) once stdin is closed, broken
        or the transport failed."""
        return self._enqueue(Frame(data))

    def _enqueue(self, frame: Frame) -> Frame:
        if self.failure is not None:
            raise _copy(self.failure)
        try:
            self._send_frames.send_nowait(frame)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._closed_input() from None
        return frame

    async def send(self, data: bytes) -> None:
        """Write one frame to stdin and wait until it is written whole.

        Cancel-safe: cancelled at its first checkpoint, nothing is queued; cancelled later, the
        frame is still written whole by the writer task. Raises TransportClosedError when the
        frame cannot be written (stdin closed or broken, transport aborted)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        frame = self.enqueue(data)
        await frame.written()

    async def close_stdin(self) -> None:
        """EOF on stdin after the frames already queued; returns when it is closed. Closing
        twice, or after the process is gone, is a no-op."""
        self._stopping = True
        try:
            frame = self._enqueue(Frame(b"", eof=True))
        except TransportClosedError:
            return
        await frame._done.wait()

    def abort(self, error: TransportClosedError) -> None:
        """Fail the transport for good and SIGKILL the process group now (a frame may be cut;
        nothing will follow it). Later sends raise ``error``; readers see EOF."""
        if self.failure is None:
            self.failure = error
        self._stopping = True
        self._send_frames.close()
        self.child.signal_group(signal.SIGKILL)

    def _closed_input(self) -> TransportClosedError:
        """The error of a frame that cannot be written, saying what happened to the CLI."""
        if self.failure is not None:
            return _copy(self.failure)
        what, status = self.end_state()
        return TransportClosedError(
            f"{self.name} {what} ({status}): the message was not written",
            provider=self.name,
            stderr_tail=self.stderr_tail(),
        )

    # -- tasks -------------------------------------------------------------------------------
    async def _write_frames(self) -> None:
        stdin = self.child.stdin
        try:
            with self._writer_scope:
                await self._write_loop(stdin)
        finally:
            # the process context is ending: whatever is queued will never be written
            self._send_frames.close()
            while True:
                try:
                    self._frames.receive_nowait()._finish(self._closed_input())
                except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                    break
            self._frames.close()

    async def _write_loop(self, stdin: trio.abc.SendStream | None) -> None:
        frame: Frame | None = None
        try:
            async for frame in self._frames:
                if stdin is None or self.failure is not None:
                    frame._finish(self._closed_input())
                    continue
                try:
                    if frame.eof:
                        self._send_frames.close()  # nothing may follow the EOF
                        await stdin.aclose()
                    else:
                        await stdin.send_all(frame.data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    if frame.eof:
                        frame._finish()
                        continue
                    # the CLI closed its stdin (or died) with this frame maybe half-written:
                    # the transport fails for good and the process is killed — once the error
                    # says which of the two it was (a dying CLI's stdin closes before its exit
                    # status can be collected)
                    self._stdin_broken = True
                    with trio.move_on_after(EXIT_GRACE):
                        await self.exited.wait()
                    self.abort(self._closed_input())
                    frame._finish(self._closed_input())
                    continue
                frame._finish()
        finally:
            if frame is not None:  # cut by the end of the process context (it is killed next)
                frame._finish(self._closed_input())

    async def _read_stdout(self) -> None:
        stream = self.child.stdout
        assert stream is not None
        limits = self.invocation.limits
        framer = LineFramer(limits.max_line_bytes, eager=limits.line_policy == "error")
        async with self._send_lines:
            while True:
                chunk = b""
                with trio.CancelScope(deadline=self._eof_deadline) as scope:
                    self._receive_scope = scope
                    chunk = await receive_chunk(stream)
                self._receive_scope = None
                self.bytes_read += len(chunk)
                items = framer.feed(chunk) if chunk else framer.feed_eof()
                for item in items:
                    if isinstance(item, OversizedLine):
                        self.oversized += 1
                        if self.invocation.limits.line_policy == "error":
                            raise LineTooLongError(
                                f"{self.name} printed {item.describe()}",
                                limit=self.invocation.limits.max_line_bytes,
                                provider=self.name,
                            )
                        continue
                    await self._send_lines.send(decode_line(item))
                if not chunk:
                    self.stdout_closed.set()
                    return
                self.bytes_handled += len(chunk)
                self._arm_drain()

    def _arm_drain(self) -> None:
        """Once the CLI is dead and what it wrote was delivered, stdout gets ``drain_timeout``
        (in total, not of silence) to reach EOF."""
        target = self._drain_target
        if target is None or self.bytes_handled < target or self._eof_deadline != math.inf:
            return
        self._eof_deadline = trio.current_time() + self.invocation.limits.drain_timeout
        if self._receive_scope is not None:
            self._receive_scope.deadline = self._eof_deadline

    async def _read_stderr(self) -> None:
        stream = self.child.stderr
        assert stream is not None
        while True:
            chunk = await receive_chunk(stream)
            if not chunk:
                return
            self.tail.write(chunk)

    async def _wait(self) -> None:
        await self.child.wait()
        self._exited_by_itself = not self._stopping
        self._drain_target = self.bytes_read + self.child.pending_output()
        self.exited.set()
        self._arm_drain()


@asynccontextmanager
async def open_agent_process(
    invocation: Invocation,
    *,
    name: str,
    graceful: bool = True,
    close_grace: float = 2.0,
    stdin: bool = True,
    spawner: Spawner = spawn,
) -> AsyncIterator[AgentProcess]:
    """Start ``invocation`` as a long-lived process; see the module docstring.

    Raises what :func:`alice_trio.engine.spawn.spawn` raises when the command cannot be started
    (the same errors as a one-shot run). ``stdin=False`` gives the process /dev/null (e.g.
    ``opencode serve``, which ignores stdin EOF anyway). ``spawner`` starts the process
    (tests pass a fake one, see :class:`alice_trio.engine.spawn.Child`).
    """
    limits = invocation.limits
    child = await spawner(invocation, name=name, stdin="pipe" if stdin else "devnull")
    agent = AgentProcess(child, invocation, name)
    clean_exit = False
    single: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent._read_stdout)
            nursery.start_soon(agent._read_stderr)
            nursery.start_soon(agent._wait)
            nursery.start_soon(agent._write_frames)
            try:
                yield agent
                clean_exit = True
                if graceful and child.returncode is None:
                    with trio.move_on_after(close_grace):
                        await agent.close_stdin()
                        await child.wait()
            finally:
                agent._stopping = True
                agent._writer_scope.cancel()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # one failure (a reader's typed error such as LineTooLongError, or the caller's own
        # exception from the body) propagates as itself, not wrapped in a strict group
        if len(group.exceptions) != 1 or isinstance(group.exceptions[0], BaseExceptionGroup):
            raise
        single = group.exceptions[0]
    finally:
        keep = limits.keep_background and clean_exit and agent.failure is None
        await close_child(child, kill_grace=limits.kill_grace, sweep=limits.sweep and not keep)
    if single is not None:
        raise single
