"""Session objects belong to the ``trio.run`` that opened them.

A :class:`~alice_trio.sessions.backend.SessionBackend` or an
:class:`~alice_trio.sessions.session.InteractiveSession` holds trio objects (its nursery,
channels, locks, cancel scopes) of the run it was opened in. Awaited from another ``trio.run``
(another thread's event loop) its commands would touch them from outside that run: trio
raised ``TrioInternalError`` in both runs (the opening one, a healthy program, died with
it). Each public command checks first and raises :class:`~alice_trio.errors.ConfigError`
naming the way that works (``trio.from_thread.run`` with the opening run's token).
"""

from __future__ import annotations

import trio

from ..errors import ConfigError

__all__ = ["check_same_run", "current_run"]


def current_run() -> trio.lowlevel.TrioToken | None:
    """The identity of the running ``trio.run`` (its token), None outside one."""
    try:
        return trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None


def check_same_run(opened_in: trio.lowlevel.TrioToken | None, what: str, provider: str) -> None:
    """Raise :class:`ConfigError` when the caller runs outside the ``trio.run`` whose token is
    ``opened_in`` (nothing is checked when it is None: not opened yet). Not a checkpoint."""
    if opened_in is None or current_run() is opened_in:
        return
    raise ConfigError(
        f"{what} was called from another trio.run than the one that opened it (another "
        "thread's event loop): call it from that run, e.g. from another thread with "
        "trio.from_thread.run(..., trio_token=<that run's trio.lowlevel.current_trio_token()>)",
        provider=provider,
    )
