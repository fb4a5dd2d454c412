"""SIGINT/SIGTERM for the ``alice-trio`` command, importable before anything heavy.

:func:`install` makes SIGTERM unwind like Ctrl-C (:class:`Terminated`, a KeyboardInterrupt)
wherever no trio signal receiver handles it, so a signal at any moment of the command's life —
even while the package is still being imported — ends in exit 130/143 and one line, never a
traceback. This module imports only the standard library.
"""

import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # ``typing`` is not imported at run time (see :mod:`alice_trio.cli.entry`)
    from typing import Any

__all__ = [
    "Terminated",
    "install",
    "interrupt_signal",
    "listened",
    "on_sigterm",
    "signal_name",
]


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a trio signal receiver: unwinds like Ctrl-C, exits 143."""


_terminated = False


def on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM where no trio signal receiver handles it: unwind like Ctrl-C. Inside a trio run
    the SIGINT machinery delivers it (trio raises KeyboardInterrupt only where it is safe);
    elsewhere :class:`Terminated` is raised here."""
    global _terminated
    _terminated = True
    handler = signal.getsignal(signal.SIGINT)
    if _in_trio_run() and callable(handler):
        signal.raise_signal(signal.SIGINT)
        return
    raise Terminated()


def _in_trio_run() -> bool:
    """Whether a trio run is active (False while trio is not, or only partly, imported)."""
    lowlevel: Any = getattr(sys.modules.get("trio"), "lowlevel", None)
    in_run = getattr(lowlevel, "in_trio_run", None)
    return bool(in_run()) if callable(in_run) else False


def install() -> "Any":
    """Route SIGTERM through :func:`on_sigterm` when it has the default action (and SIGINT to
    KeyboardInterrupt when it has been reset to the default); returns the previous SIGTERM
    handler to restore, or None when nothing was changed (not the main thread, or a handler
    the caller installed)."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            return signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        pass
    return None


def interrupt_signal(exc: BaseException) -> int:
    """The signal behind a KeyboardInterrupt: SIGTERM for :class:`Terminated` (or one that
    :func:`on_sigterm` routed through trio's Ctrl-C machinery), else SIGINT."""
    return signal.SIGTERM if isinstance(exc, Terminated) or _terminated else signal.SIGINT


def signal_name(signum: int) -> str:
    return "interrupted" if signum == signal.SIGINT else "terminated"


def listened() -> tuple[int, ...]:
    """SIGINT and SIGTERM, less those the command was started with ignored (``SIG_IGN``: a
    background job of a script, ``nohup``-like wrappers): those stay ignored for the whole run,
    also while a trio signal receiver is listening for the others."""
    wanted = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                wanted.append(int(signum))
        except ValueError:  # pragma: no cover - not the main thread
            wanted.append(int(signum))
    return tuple(wanted)
