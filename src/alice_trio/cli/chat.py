"""``alice-trio chat``: an interactive loop over one session at a time.

Each line read from stdin is submitted to an :func:`~alice_trio.sessions.session.open_session`
session: it starts a turn, or — while a turn runs — is steered into it (providers with native
steer) or queued until the turn ends. Progress goes to stderr (framed, see
:mod:`alice_trio.cli.progress`), each turn's final reply to stdout.

A line starting with ``/`` is a command, never sent to the agent (``//text`` sends ``/text``):
``/help``, ``/quit`` and ``/exit`` (end now: a running turn is killed with the session),
``/interrupt`` (stop the running turn), ``/new`` (a fresh conversation: new session, no
thread), ``/model NAME`` (the next turns use NAME: once the running and queued turns ended, a
new session resumes the current thread with it, since a session's model is fixed when its
process starts), ``/thread`` (show the
thread id). An unknown command is reported and dropped.

Ctrl-C interrupts the running turn (a second Ctrl-C, or one while idle, ends the chat with exit
130; SIGTERM ends it with 143); Ctrl-D (end of input) waits for the running and queued turns
and ends the chat (exit 0). Signals are watched from the start, also while a session starts.
Closing a session kills the agent's process group. A turn silent for the profile's
``idle_timeout_secs`` or running past its ``timeout_secs`` ends its session (reported; the next
message resumes the thread in a new one).

stdin is read through a non-blocking :class:`trio.lowlevel.FdStream` on a duplicate of fd 0
(no threads), decoded as UTF-8 with replacement; its blocking mode is restored on exit. No
readable stdin (closed, write-only) is exit 2 before a session starts; a read error later ends
the input as Ctrl-D does; a line over 16 MiB is reported and not sent.

A reply that cannot be written (stdout's reader left, ``| head``; stdout failed) ends the chat
at once: the running turn with its session, the queued messages not sent; the exit code is
:func:`~alice_trio.cli.streams.stdout_outcome`'s (0 for a reader that left).
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..errors import AliceError, ConfigError, SessionClosedError
from ..models import EventKind, RunRequest, TurnEvent
from .console import config_error as _config_error
from .console import err as _err
from .console import isatty as _isatty
from .console import signal_receiver
from .exits import EXIT_OK, UsageError, exit_code_for, signal_exit
from .main import MAX_STDIN_PROMPT_BYTES, resolve_profile, run_trio
from .progress import ProgressPrinter, write_text
from .signals import interrupt_signal
from .streams import write_reply

__all__ = ["COMMANDS", "cmd_chat", "parse_line"]

#: command → help text (``/help`` prints these)
COMMANDS: dict[str, str] = {
    "/help": "this list",
    "/quit": "end the chat now (a running turn is stopped); also /exit, Ctrl-D waits for it",
    "/exit": "same as /quit",
    "/interrupt": "stop the running turn (Ctrl-C does the same)",
    "/new": "start a fresh conversation (new session, no thread)",
    "/model": "/model NAME: use model NAME from the next turn (resumes this thread)",
    "/thread": "show the thread id",
}
_HELP = "type a message; /help lists commands; Ctrl-C interrupts the turn, Ctrl-D ends the chat"


@attrs.frozen
class Line:
    """One input line: a message for the agent, or a command with its argument."""

    text: str
    command: str = ""  # "" for a message; "/quit", … or an unknown "/cmd"
    arg: str = ""


def parse_line(raw: str) -> Line | None:
    """A typed line → :class:`Line`; None for a blank line. ``//x`` is the message ``/x``."""
    text = raw.strip()
    if not text:
        return None
    if text.startswith("//"):
        return Line(text=text[1:])
    if text.startswith("/"):
        word, _, arg = text.partition(" ")
        return Line(text=text, command=word.lower(), arg=arg.strip())
    return Line(text=text)


def open_stdin() -> int:
    """A duplicate of fd 0 to read the chat from. Raises :class:`UsageError` when there is no
    readable stdin (closed with ``<&-``, open for writing only): exit 2 before any session
    starts, never a traceback."""
    stream = sys.stdin
    try:
        if stream is None:
            raise OSError(errno.EBADF, "it is closed")
        fd = os.dup(stream.fileno())
    except (OSError, ValueError) as exc:  # io.UnsupportedOperation is both
        raise UsageError(f"cannot read stdin: {getattr(exc, 'strerror', None) or exc}") from exc
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
        os.close(fd)
        raise UsageError("cannot read stdin: it is open for writing only")
    return fd


async def _read_lines(
    fd: int, send: trio.MemorySendChannel[str], report: Callable[[str], None]
) -> None:
    """Read ``fd`` (from :func:`open_stdin`, closed here) line by line into ``send``; closes
    ``send`` at end of input. A line over :data:`MAX_LINE_BYTES` is reported and dropped; a read
    error is reported and ends the input as Ctrl-D does."""
    was_blocking = os.get_blocking(fd)
    stream = trio.lowlevel.FdStream(fd)
    buf = bytearray()
    scanned = 0  # buf[:scanned] holds no newline
    dropping = False  # inside a line over the bound: skip up to its newline
    try:
        async with send:
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except (OSError, trio.BrokenResourceError) as exc:
                    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
                    report(f"cannot read stdin: {getattr(cause, 'strerror', None) or cause}")
                    chunk = b""
                if not chunk:
                    if buf.strip() and not dropping:  # the bound holds: see below
                        await send.send(buf.decode("utf-8", "replace"))
                    return
                buf += chunk
                while (end := buf.find(b"\n", scanned)) >= 0:
                    line = bytes(buf[:end])
                    del buf[: end + 1]
                    scanned = 0
                    if len(line) > MAX_LINE_BYTES and not dropping:
                        report(f"a line over {MAX_LINE_BYTES >> 20} MiB was not sent")
                    elif not dropping:
                        await send.send(line.decode("utf-8", "replace"))
                    dropping = False
                scanned = len(buf)
                if len(buf) > MAX_LINE_BYTES:
                    if not dropping:
                        report(f"a line over {MAX_LINE_BYTES >> 20} MiB was not sent")
                    dropping = True
                    buf.clear()
                    scanned = 0
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        try:
            os.set_blocking(0, was_blocking)
        except OSError:
            pass


class _Chat:
    def __init__(
        self, args: argparse.Namespace, provider: Any, config: Any, printer: ProgressPrinter
    ) -> None:
        self.args = args
        self.provider = provider
        self.config = config
        self.printer = printer
        self.thread_id: str = args.thread or ""
        self.model: str = args.model or ""
        self.turn_reply = ""
        self.interrupts = 0
        self.signal: int | None = None
        self.session: Any = None
        self.failure: AliceError | None = None
        #: the model before a /model whose session has not opened yet (None: no switch pending)
        self.switched_from: str | None = None
        #: trio time of the session's last event and of the running turn's start (the turn
        #: watchdog, :meth:`_watch_turns`)
        self.last_seen = 0.0
        self.turn_since = 0.0
        #: why the watchdog ended the session ("" while it did not)
        self.timed_out = ""
        #: the whole chat's scope (set by :func:`_chat`): cancelled once stdout is lost
        self.chat_scope: trio.CancelScope | None = None
        #: the reply could not be written: stdout's reader left (``| head``) or it failed
        self.stdout_lost = False

    # -- events ---------------------------------------------------------------------------
    def on_event(self, event: TurnEvent) -> None:
        self.last_seen = trio.current_time()
        if event.kind is EventKind.TURN_STARTED:
            self.turn_since = self.last_seen
        if event.thread_id:
            self.thread_id = event.thread_id
        if event.kind is EventKind.ASSISTANT_TEXT and event.text.strip():
            self.turn_reply = event.text
        if event.kind in (EventKind.THREAD_STARTED, EventKind.TURN_STARTED):
            return
        if event.kind is EventKind.TURN_COMPLETED:
            self.printer.finish(self.turn_reply)
            self.printer.close()
            if self.turn_reply and not (
                write_reply(sys.stdout, self.turn_reply.strip()) and write_text(sys.stdout, "\n")
            ):
                self._stdout_lost()
                return
            if event.usage is not None and event.usage.has_usage:
                u = event.usage
                self.printer.message(
                    f"{u.input_tokens} input ({u.cached_input_tokens} cached), "
                    f"{u.output_tokens} output tokens"
                )
            self.turn_reply = ""
            return
        if event.kind is EventKind.TURN_INTERRUPTED:
            self.printer.finish("")
            self.printer.message("turn interrupted", "33")
            self.turn_reply = ""
            return
        self.printer.on_raw_event(event.to_raw_event())

    def _stdout_lost(self) -> None:
        """Nobody reads the replies any more: end the chat now (the running turn stops with
        its session, whose process group is killed) instead of running the queue unseen.
        The queued messages are named on stderr (dropped too when stderr is lost); the exit
        code is :func:`~alice_trio.cli.streams.stdout_outcome`'s."""
        self.stdout_lost = True
        session = self.session
        queued = session.queue_depth if session is not None else 0
        if queued:
            self.printer.message(
                f"stdout is gone: {queued} queued message{'s' if queued > 1 else ''} not sent"
            )
        if self.chat_scope is not None:
            self.chat_scope.cancel()

    # -- the conversation -----------------------------------------------------------------
    async def converse(self, lines: trio.MemoryReceiveChannel[str]) -> None:
        """Sessions one after the other until /quit, end of input or a signal."""
        while self.failure is None:
            try:
                outcome = await self._one_session(lines)
            except AliceError as exc:
                if self.switched_from is None:
                    raise
                # the session for a /model did not open (a refused name, a CLI that exits on
                # it): say so and go on with the model before, on the same thread
                was, self.switched_from = self.switched_from, None
                self.printer.error(f"model {self.model}: {exc}")
                self.printer.message(f"staying on {was or 'the default model'}")
                self.model = was
                continue
            if outcome == "end":
                break
        if self.failure is not None:
            raise self.failure

    async def _one_session(self, lines: trio.MemoryReceiveChannel[str]) -> str:
        """One session; "end" (quit / end of input) or "restart" (/new, /model)."""
        from ..sessions.session import open_session

        initial = RunRequest(
            user_text="(chat)",
            thread_id=self.thread_id,
            model=self.model,
            workspace_dir=self.args.cwd or "",
        )
        outcome = "end"
        async with open_session(self.provider, self.config, initial=initial) as session:
            self.session = session
            self.switched_from = None  # the model (if switched) is running
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, session, nursery.cancel_scope)
                    nursery.start_soon(self._watch_turns, session, nursery.cancel_scope)
                    outcome = await self._submit_lines(session, lines)
                    nursery.cancel_scope.cancel()
            finally:
                self.session = None
            if self.timed_out:
                # the stalled turn goes with its session (closed below: the process group is
                # killed); the next message resumes the thread in a new one, as a
                # SessionBackend does after a timeout
                self.printer.finish("")
                self.printer.error(self.timed_out)
                if self.thread_id:
                    self.printer.message(f"the next message resumes thread {self.thread_id}")
                self.turn_reply = ""
                self.timed_out = ""
                outcome = "restart"
        return outcome

    async def _watch_turns(self, session: Any, cancel: trio.CancelScope) -> None:
        """The profile's ``idle_timeout_secs`` (no event of the session this long) and
        ``timeout_secs`` (one turn this long) while a turn runs: sets :attr:`timed_out` and
        ends the session (``cancel``)."""
        idle = self.config.effective_idle_timeout()
        limit = self.config.effective_timeout()
        name = getattr(self.provider, "name", "agent")
        while True:
            now = trio.current_time()
            due = self.turn_since + limit
            if idle is not None:
                due = min(due, self.last_seen + idle)
            if session.busy and now >= due:
                if idle is not None and now >= self.last_seen + idle:
                    self.timed_out = f"{name} idle timeout: no output for {idle:g} s"
                else:
                    self.timed_out = f"llm timeout: {name} turn exceeded {limit:g} s"
                cancel.cancel()
                return
            # the session has no busy event: look again at the deadline, or soon when idle
            await trio.sleep(max(due - now, 0.0) if session.busy else 0.1)

    async def _pump(self, session: Any, cancel: trio.CancelScope) -> None:
        async for event in session.events():
            self.on_event(event)
        # the stream ended under us: the agent process died or the driver failed
        failure = getattr(session, "failure", None)
        self.failure = (
            failure
            if isinstance(failure, AliceError)
            else SessionClosedError(
                "the agent session ended", provider=getattr(session, "provider", "")
            )
        )
        cancel.cancel()

    async def _submit_lines(self, session: Any, lines: trio.MemoryReceiveChannel[str]) -> str:
        async for raw in lines:
            line = parse_line(raw)
            if line is None:
                continue
            if line.command:
                outcome = await self._command(session, line)
                if outcome:
                    return outcome
                continue
            self.interrupts = 0
            request = RunRequest(
                user_text=line.text,
                thread_id=self.thread_id,
                model=self.model,
                workspace_dir=self.args.cwd or "",
            )
            busy = session.busy
            try:
                submitted = await session.submit(request)
            except AliceError as exc:
                self.printer.error(str(exc))
                continue
            if not busy:  # a turn starts now: the watchdog's clocks start with it
                self.turn_since = self.last_seen = trio.current_time()
            self.printer.start()
            mode = submitted.mode.value
            if mode != "started":
                depth = f" ({submitted.queue_depth} waiting)" if mode == "queued" else ""
                self.printer.message(f"{mode}{depth}")
        # end of input: let the running and queued turns finish
        await _settled(session)
        return "end"

    async def _command(self, session: Any, line: Line) -> str:
        """Run a /command; "end" / "restart" when the session must go, else ""."""
        say = self.printer.message
        cmd = line.command
        if cmd in ("/quit", "/exit"):
            return "end"
        if cmd == "/help":
            for name, what in COMMANDS.items():
                say(f"{name:<11} {what}")
            say("//text      send /text (a line starting with one / is never sent)")
        elif cmd == "/thread":
            say(f"thread: {self.thread_id or '(none yet)'}")
        elif cmd == "/interrupt":
            if not session.busy:
                say("no turn is running")
            else:
                await self._interrupt(session)
        elif cmd == "/new":
            self.thread_id = ""
            stopped = []
            if session.busy:
                stopped.append("the running turn is stopped")
            if session.queue_depth:  # they go with the session: say so, never drop them unsaid
                n = session.queue_depth
                stopped.append(f"{n} queued message{'s' if n > 1 else ''} not sent")
            say("new conversation" + (f" ({', '.join(stopped)})" if stopped else ""))
            return "restart"
        elif cmd == "/model":
            if not line.arg or " " in line.arg:
                say("usage: /model NAME")
                return ""
            if session.busy:
                # "from the next turn": the running and queued turns end on the model they
                # were sent with (closing the session now lost them and their replies);
                # Ctrl-C still interrupts, lines typed meanwhile go to the new session
                say(f"model {line.arg}: after the running turn")
                await _settled(session)
            if self.switched_from is None:
                self.switched_from = self.model
            self.model = line.arg
            where = f"resuming thread {self.thread_id}" if self.thread_id else "new conversation"
            say(f"model {self.model}: a new session ({where}) takes the next turn")
            return "restart"
        else:
            say(f"unknown command {cmd} (not sent; /help lists commands, //text sends /text)")
        return ""

    async def _interrupt(self, session: Any) -> None:
        self.printer.message("interrupting…", "33")
        try:
            await session.interrupt()
        except AliceError as exc:
            self.printer.error(str(exc))

    async def watch_signals(self, signals: Any, cancel: trio.CancelScope) -> None:
        """First Ctrl-C with a turn running interrupts it; any other signal ends the chat."""
        async for signum in signals:
            session = self.session
            if (
                signum == signal.SIGINT
                and session is not None
                and session.busy
                and self.interrupts == 0
            ):
                self.interrupts += 1
                self.printer.message("(Ctrl-C again to quit)", "33")
                await self._interrupt(session)
                continue
            self.signal = signum
            cancel.cancel()
            return


async def _settled(session: Any) -> None:
    """Wait until ``session`` has no running or queued turn (the turn watchdog and a dying
    session end the wait by cancelling the session's nursery)."""
    while session.busy:  # noqa: ASYNC110 - the session has no idle event
        await trio.sleep(0.05)


#: the longest line ``chat`` sends (the bound of a prompt on stdin for ``run -``)
MAX_LINE_BYTES = MAX_STDIN_PROMPT_BYTES


async def _chat(args: argparse.Namespace, provider: object, config: object, fd: int) -> int:
    printer = ProgressPrinter(
        plain=args.plain,
        verbose=args.verbose,
        hold_reply=_isatty(sys.stdout) and _isatty(sys.stderr),
        title=f"{getattr(provider, 'name', 'agent')} is working",
    )
    chat = _Chat(args, provider, config, printer)
    send, recv = trio.open_memory_channel[str](64)
    error: AliceError | None = None
    with signal_receiver() as signals:
        try:
            async with trio.open_nursery() as nursery:
                chat.chat_scope = nursery.cancel_scope
                nursery.start_soon(chat.watch_signals, signals, nursery.cancel_scope)
                nursery.start_soon(_read_lines, fd, send, printer.error)
                nursery.start_soon(printer.run)
                printer.message(_HELP)
                try:
                    await chat.converse(recv)
                except AliceError as exc:  # raised bare after the nursery, never in a group
                    error = exc
                nursery.cancel_scope.cancel()
        finally:
            printer.close()
    if chat.signal is not None:
        _err("interrupted" if chat.signal == signal.SIGINT else "terminated")
        return signal_exit(chat.signal)
    if error is not None:
        raise error
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    try:
        profile = resolve_profile(args)
        provider, config = profile.resolve()
        fd = open_stdin()
    except ConfigError as exc:
        return _config_error(exc)
    except UsageError as exc:
        _err(str(exc))
        return exit_code_for(exc)
    try:
        return int(run_trio(_chat, args, provider, config, fd))
    except ConfigError as exc:
        return _config_error(exc)
    except AliceError as exc:
        _err(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt as exc:
        signum = interrupt_signal(exc)
        _err("interrupted" if signum == signal.SIGINT else "terminated")
        return signal_exit(signum)
