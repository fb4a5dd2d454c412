"""Collapsing trio's strict exception groups at the public API boundary.

Every public entry point (``OneShotBackend.run``, ``SessionBackend`` and its ``run``,
``open_session`` and the session's commands, ``MultiBackend``) raises only an
:class:`~alice_trio.errors.AliceError`, a bare ``trio.Cancelled`` / ``KeyboardInterrupt``, or
the caller's own exception — never a group (the contract in :mod:`alice_trio.errors`). Nurseries
inside them produce groups; :func:`collapse` turns one into the single exception that matters:

1. a ``KeyboardInterrupt`` anywhere in the group (Ctrl-C must never be lost);
2. else the one exception that is not ``trio.Cancelled`` (a failure beats the cancellation that
   teardown caused; a still-cancelled scope raises ``Cancelled`` again at its next checkpoint);
   with several, the first one that is not an ``AliceError`` (the caller's own exception from a
   context body), else the first ``AliceError``; the others are named in its ``__notes__``;
3. else (only cancellations) the first ``trio.Cancelled``, bare, so the caller's cancel scope
   catches it as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from ..errors import AliceError

__all__ = ["collapse", "leaves", "single_exception"]


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions of a (nested) group, depth first; a non-group is its own leaf."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(leaves(inner))
        return out
    return [exc]


def collapse(exc: BaseException) -> BaseException:
    """The one exception ``exc`` stands for (see the module docstring)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    found = leaves(exc)
    for leaf in found:
        if isinstance(leaf, KeyboardInterrupt):
            return leaf
    failures = [leaf for leaf in found if not isinstance(leaf, trio.Cancelled)]
    if not failures:
        return found[0]
    own = [leaf for leaf in failures if not isinstance(leaf, AliceError)]
    chosen = own[0] if own else failures[0]
    for other in failures:
        if other is not chosen:
            chosen.add_note(f"also raised meanwhile: {other!r}")
    return chosen


@contextmanager
def single_exception() -> Iterator[None]:
    """Re-raise any exception group escaping the block as :func:`collapse` of it."""
    try:
        yield
    except BaseExceptionGroup as group:
        inner = collapse(group)
        raise inner from inner.__cause__  # an explicit cause survives; the group is hidden
