"""Unwrapping trio's strict exception groups at the session API boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["single_exception"]


def _single(exc: BaseException) -> BaseException | None:
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


@contextmanager
def single_exception() -> Iterator[None]:
    """Re-raise a group holding exactly one exception (at any depth) as that exception."""
    try:
        yield
    except BaseExceptionGroup as group:
        inner = _single(group)
        if inner is None:
            raise
        raise inner from None
