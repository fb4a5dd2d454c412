"""Cancel a task at its k-th scheduling step (a trio Instrument): "cancellation at every
checkpoint" without timing assumptions."""

from __future__ import annotations

import trio


class CancelAtStep(trio.abc.Instrument):
    """Cancel ``scope`` just before ``task`` runs its ``k``-th step (1 = its first)."""

    def __init__(self, task: trio.lowlevel.Task, scope: trio.CancelScope, k: int) -> None:
        self.task, self.scope, self.k = task, scope, k
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1
            if self.steps == self.k:
                self.scope.cancel()


async def call_cancelled_at(k: int, fn, *args, raised: list | None = None):
    """Run ``await fn(*args)`` in a task of its own, cancelled at its ``k``-th step. Returns
    ``(cancelled, result_or_exception, steps_taken)``; the call's own AliceError is returned,
    anything else (a group, a stray exception) propagates. ``raised`` collects whatever
    exception left the call, exactly as it left (to check its type)."""
    from alice_trio.errors import AliceError

    box: dict = {}
    scope = trio.CancelScope()

    async def runner() -> None:
        instrument = CancelAtStep(trio.lowlevel.current_task(), scope, k)
        trio.lowlevel.add_instrument(instrument)
        try:
            with scope:
                try:
                    box["value"] = await fn(*args)
                except AliceError as exc:
                    box["value"] = exc
                    if raised is not None:
                        raised.append(exc)
                except BaseException as exc:
                    if raised is not None:
                        raised.append(exc)
                    raise
        finally:
            trio.lowlevel.remove_instrument(instrument)
            box["steps"] = instrument.steps

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
    return scope.cancelled_caught, box.get("value"), box["steps"]
