"""The ``alice-trio`` console script: installs the signal handling, then imports the command.

Importing :mod:`alice_trio.cli.main` takes a while (trio, the providers, the engine); a SIGINT
or SIGTERM arriving meanwhile must end like one arriving later: one line, exit 130/143. This
module imports only the standard library (``alice_trio/__init__`` is lazy) before
:func:`~alice_trio.cli.signals.install`, and holds both signals (blocked, not lost) while the
command's modules import, so no import is torn in half: a signal that came meanwhile ends the
command as soon as the imports are done.
"""

from __future__ import annotations

import os
import signal
import sys

from .signals import install, interrupt_signal, signal_name

__all__ = ["main"]


def _reserve_std_fds() -> None:
    """A standard descriptor the command started without (``>&-``) gets ``/dev/null``, so no
    file, pipe or socket opened later lands on 0, 1 or 2 (``sys.stdout`` stays None: the
    command knows its output is lost)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                opened = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if opened != fd:
                os.close(opened)


_HELD = {signal.SIGINT, signal.SIGTERM}


def _hold_signals() -> set[int | signal.Signals] | None:
    """Block SIGINT/SIGTERM while the command's modules import: a KeyboardInterrupt raised in
    the middle of a C extension's initialisation can crash the interpreter (orjson 3.8's module
    init segfaults when an import inside it fails), and a half-imported package cannot report
    anything. Returns the mask to restore, or None where blocking is not possible."""
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        return None


def _release_signals(held: set[int | signal.Signals] | None) -> None:
    """Restore the mask :func:`_hold_signals` changed; a signal that arrived while it was held
    is delivered now (the handlers :func:`install` set turn it into KeyboardInterrupt)."""
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def main() -> int:
    """Run the command; returns its exit code (see :mod:`alice_trio.cli.exits`).

    The whole body is one ``try``: a SIGINT arriving once this function runs (and a
    SIGTERM from :func:`install`'s handler on, a few instructions later) ends in exit 130/143
    and one line, never a traceback. Before it — the interpreter's start, ``site`` and ``.pth``
    files, the console script's own imports — Python's default applies (docs/cli.md, "Exit
    codes"). Then both signals are ignored: another one that comes while the ending is
    handled (both were held during the imports and come at once, or a ``kill`` follows a
    Ctrl-C) changes nothing.
    """
    try:
        interrupted: KeyboardInterrupt | None = None
        code = 0
        install()
        held = _hold_signals()
        try:
            _reserve_std_fds()
            from .main import main as command
        finally:
            _release_signals(held)  # a signal that came meanwhile is raised here
        code = command()
    except KeyboardInterrupt as exc:
        interrupted = exc  # a store only: no signal handler runs before it is done
    # the signals are turned off; one that comes before they are (at the call) ends the
    # command if nothing did yet, else it is dropped, as later ones are
    while True:
        try:
            _ignore_signals()
            break
        except KeyboardInterrupt as exc:
            if interrupted is None:
                interrupted = exc
    if interrupted is not None:
        code = 128 + int(interrupt_signal(interrupted))
        _report(code - 128)
    return code


def _ignore_signals() -> None:
    """From here on a signal cannot turn the decided exit code into a traceback."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:
        pass


def _report(signum: int) -> None:
    """The one line for a command a signal ended (and ``run --json``'s result object when
    the command's module is imported)."""
    command_module = sys.modules.get(__package__ + ".main")
    if command_module is not None:  # imported: ``run --json`` still prints its result
        try:
            command_module.interrupted_result(None, signum)
        except (Exception, KeyboardInterrupt):  # nothing may turn this into a traceback
            pass
    try:
        if sys.stderr is not None:
            sys.stderr.write(f"alice-trio: {signal_name(signum)}\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
