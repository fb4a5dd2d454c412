"""Wait until the first of several :class:`trio.Event` objects is set."""

from __future__ import annotations

import trio

__all__ = ["wait_any"]


async def wait_any(*events: trio.Event) -> None:
    """Return once any of ``events`` is set (at once if one already is). Cancellable; leaves
    no task behind."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)
