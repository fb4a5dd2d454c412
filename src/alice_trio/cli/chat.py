"""``alice-trio chat``: an interactive loop over one session.

Each line read from stdin is submitted to one :func:`~alice_trio.sessions.session.open_session`
session: it starts a turn, or — while a turn runs — is steered into it (providers with native
steer) or queued until the turn ends. Events are printed as they arrive (stderr), each turn's
final reply on stdout. Ctrl-C interrupts the running turn (a second Ctrl-C, or one while idle,
ends the chat with exit 130); Ctrl-D (end of input) waits for the running and queued turns and
ends the chat (exit 0). Closing the session kills the agent's process group.

stdin is read through a non-blocking :class:`trio.lowlevel.FdStream` on a duplicate of fd 0
(no threads); its blocking mode is restored on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import trio

from ..errors import AliceError, ConfigError
from ..models import EventKind, RunRequest, TurnEvent
from .main import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _config_error,
    _err,
    resolve_profile,
)
from .progress import ProgressPrinter

__all__ = ["cmd_chat"]

_HELP = "type a message; Ctrl-C interrupts the turn, Ctrl-D ends the chat; /thread shows the id"


async def _read_lines(send: trio.MemorySendChannel[str]) -> None:
    """Read stdin line by line into ``send``; closes it at end of input."""
    fd = os.dup(sys.stdin.fileno())
    was_blocking = os.get_blocking(fd)
    stream = trio.lowlevel.FdStream(fd)
    buf = b""
    try:
        async with send:
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    if buf.strip():
                        await send.send(buf.decode("utf-8", "replace"))
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    await send.send(line.decode("utf-8", "replace"))
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
        try:
            os.set_blocking(sys.stdin.fileno(), was_blocking)
        except OSError:
            pass


class _Chat:
    def __init__(self, printer: ProgressPrinter, thread_id: str) -> None:
        self.printer = printer
        self.thread_id = thread_id
        self.turn_reply = ""
        self.interrupts = 0
        self.signal: int | None = None

    def on_event(self, event: TurnEvent) -> None:
        if event.thread_id:
            self.thread_id = event.thread_id
        if event.kind is EventKind.ASSISTANT_TEXT and event.text.strip():
            self.turn_reply = event.text.strip()
        if event.kind in (EventKind.THREAD_STARTED, EventKind.TURN_STARTED):
            return
        if event.kind is EventKind.TURN_COMPLETED:
            if self.turn_reply:
                sys.stdout.write(self.turn_reply + "\n")
                sys.stdout.flush()
            if event.usage is not None and event.usage.has_usage:
                u = event.usage
                self.printer.message(
                    f"{u.input_tokens} input ({u.cached_input_tokens} cached), "
                    f"{u.output_tokens} output tokens"
                )
            self.turn_reply = ""
            return
        if event.kind is EventKind.TURN_INTERRUPTED:
            self.printer.message("turn interrupted", "yellow")
            self.turn_reply = ""
            return
        self.printer.on_raw_event(event.to_raw_event())


async def _chat(args: argparse.Namespace, provider: object, config: object) -> int:
    from ..sessions.session import open_session

    printer = ProgressPrinter(plain=args.plain, verbose=args.verbose)
    chat = _Chat(printer, args.thread or "")
    initial = RunRequest(
        user_text="(chat)",
        thread_id=args.thread or "",
        model=args.model or "",
        workspace_dir=args.cwd or "",
    )
    send, recv = trio.open_memory_channel[str](64)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_session(provider, config, initial=initial) as session:  # type: ignore[arg-type]
            printer.message(_HELP)
            async with trio.open_nursery() as nursery:

                async def pump_events() -> None:
                    async for event in session.events():
                        chat.on_event(event)

                async def watch_signals() -> None:
                    async for signum in signals:
                        if signum == signal.SIGINT and session.busy and chat.interrupts == 0:
                            chat.interrupts += 1
                            printer.message("interrupting… (Ctrl-C again to quit)", "yellow")
                            try:
                                await session.interrupt()
                            except AliceError as exc:
                                printer.error(str(exc))
                            continue
                        chat.signal = signum
                        nursery.cancel_scope.cancel()
                        return

                async def submit_lines() -> None:
                    async for line in recv:
                        text = line.strip()
                        if not text:
                            continue
                        if text == "/thread":
                            printer.message(f"thread: {chat.thread_id or '(none yet)'}")
                            continue
                        chat.interrupts = 0
                        request = RunRequest(
                            user_text=text,
                            thread_id=chat.thread_id,
                            model=args.model or "",
                            workspace_dir=args.cwd or "",
                        )
                        try:
                            submitted = await session.submit(request)
                        except AliceError as exc:
                            printer.error(str(exc))
                            continue
                        mode = submitted.mode.value
                        if mode != "started":
                            depth = (
                                f" ({submitted.queue_depth} waiting)" if mode == "queued" else ""
                            )
                            printer.message(f"{mode}{depth}")
                    # end of input: let the running and queued turns finish
                    while session.busy:  # noqa: ASYNC110 - the session has no idle event
                        await trio.sleep(0.05)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(pump_events)
                nursery.start_soon(watch_signals)
                nursery.start_soon(_read_lines, send)
                nursery.start_soon(submit_lines)
    if chat.signal is not None:
        return EXIT_INTERRUPTED if chat.signal == signal.SIGINT else 128 + chat.signal
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    try:
        profile = resolve_profile(args)
        provider, config = profile.resolve()
    except ConfigError as exc:
        return _config_error(exc)
    except UsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    try:
        return trio.run(_chat, args, provider, config)
    except ConfigError as exc:
        return _config_error(exc)
    except AliceError as exc:
        _err(str(exc))
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
