"""What the CLI's commands (``run``/``replay`` in :mod:`~alice_trio.cli.main`, ``chat``,
``doctor``) share for the terminal: ``alice-trio:`` error lines on stderr, the report of a
configuration error, the tty check, and running a command's body until SIGINT/SIGTERM.

Public within the package (no ``_`` names: other CLI modules import them); not part of the
library's API.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import trio

from ..errors import ConfigError
from .exits import EXIT_USAGE
from .signals import listened
from .streams import display_text, write_text

__all__ = ["config_error", "err", "isatty", "signal_receiver", "with_signals"]


def err(text: str) -> None:
    """``alice-trio: <line>`` on stderr for each line of ``text`` (dropped when stderr is lost).

    A message may carry what an agent wrote (its error text, its stderr tail) or a name from
    the command line or a config file: its control characters are shown, never obeyed
    (:func:`~alice_trio.cli.streams.display_text`; a ``\\r`` that is not part of ``\\r\\n``
    shows as ``^M``), so no message can clear the screen, write the clipboard or draw a line
    over ours."""
    if sys.stderr is not None:
        lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
        write_text(sys.stderr, "".join(f"alice-trio: {display_text(line)}\n" for line in lines))


def config_error(exc: ConfigError) -> int:
    """Report ``exc`` (each line prefixed with the file it came from, when known) and return
    the usage exit code."""
    source = getattr(exc, "source", "")
    text = str(exc)
    if source and not text.startswith(source):
        text = "\n".join(f"{source}: {line}" for line in text.split("\n"))
    err(text)
    return EXIT_USAGE


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (False for a closed, missing or odd stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class _NoSignals:
    """A receiver for when every signal is ignored: iterating waits for ever."""

    def __aiter__(self) -> _NoSignals:
        return self

    async def __anext__(self) -> int:
        await trio.sleep_forever()
        raise StopAsyncIteration  # pragma: no cover - sleep_forever only ends by cancellation


def signal_receiver() -> AbstractContextManager[AsyncIterator[int]]:
    """``trio.open_signal_receiver`` for SIGINT and SIGTERM, less the ones the command was
    started with ignored (see :func:`~alice_trio.cli.signals.listened`)."""
    wanted = listened()
    if not wanted:
        return nullcontext(_NoSignals())
    return trio.open_signal_receiver(*wanted)


async def with_signals(body: Callable[[], Any]) -> tuple[Any, int | None]:
    """Run ``body`` until it returns or SIGINT/SIGTERM arrives; on a signal ``body`` is
    cancelled (the engine then kills and reaps the CLI's process tree before this returns).
    Returns ``(body's value or None, signal number or None)``."""
    caught: list[int] = []
    value: Any = None
    with signal_receiver() as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    caught.append(signum)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            try:
                value = await body()
            finally:
                nursery.cancel_scope.cancel()
    return value, (caught[0] if caught else None)
