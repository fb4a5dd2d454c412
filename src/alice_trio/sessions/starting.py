"""``nursery.start`` for tasks that can be closed while they start: typed, never trio's
``RuntimeError``.

A driver's, host's or spare's ``run`` ends quietly when it is closed (its ``aclose`` cancels
its own scope). Closed *before* it reported itself started — a backend exiting while a warm
spare's process is still in its handshake, a pool freeing a slot — that quiet end makes
``nursery.start`` raise ``RuntimeError("child exited without calling task_status.started()")``,
which escaped ``SessionBackend.__aexit__``. :func:`start_task` raises
:class:`~alice_trio.errors.SessionClosedError` instead (an exception the task raises itself
still comes out as itself; cancellation is trio's).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..errors import SessionClosedError

__all__ = ["StartedFlag", "start_task"]


class StartedFlag:
    """A task status that remembers whether the task reported itself started."""

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self.inner = inner
        self.done = False

    def started(self, value: Any = None) -> None:
        self.done = True
        self.inner.started(value)


async def start_task(
    nursery: trio.Nursery, fn: Callable[..., Awaitable[Any]], *args: Any, name: str
) -> Any:
    """``await nursery.start(fn, *args)``; a ``fn`` that returns before reporting started is a
    :class:`SessionClosedError` naming ``name`` (the provider)."""

    async def task(*, task_status: trio.TaskStatus[Any]) -> None:
        flag = StartedFlag(task_status)
        await fn(*args, task_status=flag)
        if not flag.done:
            raise SessionClosedError(f"{name} was closed before it started", provider=name)

    return await nursery.start(task)
