"""Tests that kill the mutation survivors of engine/first_start.py (docs/mutation-testing.md).

A ticket names the key it was taken for (every way ``acquire`` returns one), and ``waiting``
of a key nobody ever started on is 0.
"""

from __future__ import annotations

import trio
import trio.testing

from alice_trio.engine import first_start
from alice_trio.engine.first_start import acquire


async def test_every_ticket_names_its_key() -> None:
    key = ("cli", "/state")
    first = await acquire(key)  # the first start: holds the gate
    assert first.held and first.key == key
    got: list[tuple[str, ...]] = []

    async def after_ready() -> None:  # waited while the first held it, then went free
        ticket = await acquire(key)
        assert not ticket.held
        got.append(ticket.key)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(after_ready)
        await trio.testing.wait_all_tasks_blocked()
        first.ready()
    later = await acquire(key)  # the key is initialised: at once
    assert not later.held and later.key == key
    assert got == [key]
    empty = await acquire(())
    assert empty.key == () and not empty.held


async def test_a_key_nobody_waits_for_has_no_waiters() -> None:
    assert first_start.waiting(("never", "/used")) == 0
    held = await acquire(("cli", "/a"))
    assert first_start.waiting(("cli", "/a")) == 0  # held, nobody queued behind it
    held.release()
