"""Serialised first starts per state directory (engine/first_start.py, through engine/spawn.py).

The defect: two first starts of opencode on one fresh data directory at once race on its SQLite
migration and one dies (``Unexpected error`` on ``CREATE TABLE``; the clean-clone CI's
e2e flake, a SessionBackend's warm spare and a conversation with its own env starting
together). ``fake_state_cli.py`` breaks the same way whenever two of its first starts overlap.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from alice_trio.engine import first_start
from alice_trio.engine.first_start import acquire, state_key
from alice_trio.engine.oneshot import run_invocation
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.record import StateDir
from alice_trio.transports.process import open_agent_process

from fake_provider import FakeDecoder

FAKE = str(Path(__file__).with_name("fake_state_cli.py"))
STATE = (StateDir(dir_env="FAKE_STATE", what="a database migrated at start"),)
FAST = RunLimits(kill_grace=0.2, drain_timeout=0.5)
LIMIT = 60.0  # generous: the machine may be loaded; a deadlock is what it catches


def invocation(state_dir: Path, *, hold: Path | None = None, migration: float = 1.0) -> Invocation:
    env = {"FAKE_STATE": str(state_dir), "FAKE_MIGRATION": str(migration)}
    if hold is not None:
        env["FAKE_HOLD"] = str(hold)
    return Invocation(argv=(sys.executable, FAKE), env=env, limits=FAST, state=STATE)


async def bring_up(inv: Invocation, up: list[int], stay: trio.Event | None = None) -> None:
    """Start ``inv`` as a session process, wait for its ``ready`` line, report it ready."""
    async with open_agent_process(inv, name="fake", graceful=False) as proc:
        async for line in proc.lines:
            assert line.startswith("ready "), (line, proc.stderr_tail())
            proc.ready()
            up.append(int(line.split()[1]))
            break
        else:
            await proc.exited.wait()
            raise AssertionError(f"did not come up: {proc.stderr_tail()}")
        if stay is not None:
            await stay.wait()


# -- the gate itself (no processes) ------------------------------------------------------------


async def test_starts_on_one_key_wait_for_the_first_until_it_is_ready() -> None:
    key = ("cli", "/state")
    first = await acquire(key)
    assert first.held
    got: list[str] = []

    async def second() -> None:
        ticket = await acquire(key)
        got.append("held" if ticket.held else "free")
        ticket.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert got == [] and first_start.waiting(key) == 2
        first.ready()
    assert got == ["free", "free"]  # initialised: they went without holding anything
    later = await acquire(key)
    assert not later.held


async def test_a_start_that_fails_hands_the_first_start_to_the_next() -> None:
    key = ("cli", "/state")
    first = await acquire(key)
    order: list[str] = []

    async def next_one(name: str) -> None:
        ticket = await acquire(key)
        order.append(f"{name}:{'held' if ticket.held else 'free'}")
        await trio.testing.wait_all_tasks_blocked()
        ticket.ready()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(next_one, "b")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(next_one, "c")
        await trio.testing.wait_all_tasks_blocked()
        first.release()  # failed: not ready
        first.release()  # idempotent
    assert order == ["b:held", "c:free"]


async def test_a_cancelled_wait_holds_nothing() -> None:
    key = ("cli", "/state")
    first = await acquire(key)
    with trio.move_on_after(1) as scope:
        await acquire(key)
    assert scope.cancelled_caught and first_start.waiting(key) == 0
    first.release()
    again = await acquire(key)
    assert again.held  # the cancelled waiter did not take (and keep) the turn
    again.release()


async def test_other_keys_and_no_key_never_wait() -> None:
    held = await acquire(("cli", "/a"))
    with trio.fail_after(1):
        other = await acquire(("cli", "/b"))
        none = await acquire(())
    assert other.held and not none.held
    other.release()
    held.release()


def test_the_key_is_the_real_directory_in_the_process_environment(tmp_path: Path) -> None:
    real = tmp_path / "data"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    xdg = (StateDir(dir_env="XDG_DATA_HOME", default_dir="~/.local/share", path="oc"),)
    via_env = state_key("oc", xdg, {"XDG_DATA_HOME": str(tmp_path / "link")})
    assert via_env == ("oc", str(real / "oc"))
    via_home = state_key("oc", xdg, {"HOME": str(tmp_path / "h"), "XDG_DATA_HOME": ""})
    assert via_home == ("oc", str(tmp_path / "h" / ".local/share/oc"))
    assert state_key("oc", xdg, {"HOME": "/other"}) != via_home
    assert state_key("oc", (), {"HOME": "/x"}) == ()


def test_a_cli_replaced_in_place_is_a_new_key(tmp_path: Path) -> None:
    """An upgrade (npm, an auto-updater) may bring new migrations: its first start is first."""
    cli = tmp_path / "bin" / "oc"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    env = {"PATH": str(cli.parent), "HOME": str(tmp_path)}
    before = state_key("oc", STATE, env)
    assert before[0].startswith("oc@") and before[1:] == state_key(str(cli), STATE, env)[1:]
    cli.unlink()
    cli.write_text("#!/bin/sh\n# 1.19\n")
    cli.chmod(0o755)
    assert state_key("oc", STATE, env)[0] != before[0]
    assert state_key("missing-cli", STATE, env)[0] == "missing-cli"


def test_a_state_dir_is_validated() -> None:
    with pytest.raises(ValueError):
        StateDir(default_dir="relative/dir")
    with pytest.raises(ValueError):
        StateDir(dir_env="NOT A NAME")
    assert StateDir(dir_env="X", default_dir="~/.x", path="y").describe() == "$X/y (default ~/.x/y)"


# -- through the spawn path, with a CLI that breaks when its first starts overlap ---------------


async def test_concurrent_first_starts_on_one_state_dir_all_come_up(tmp_path: Path) -> None:
    state = tmp_path / "state"
    up: list[int] = []
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(bring_up, invocation(state), up)
    assert len(up) == 3
    assert (state / "db").read_text() == "migrated\n"


async def test_starts_that_share_no_state_dir_are_not_serialised(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    up: list[int] = []
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            # held before it is ready (its first start is under way) until `gate` exists
            nursery.start_soon(bring_up, invocation(tmp_path / "a", hold=gate, migration=0), up)
            await trio.sleep(0.2)
            await bring_up(invocation(tmp_path / "b", migration=0), up)  # another HOME: goes
            assert len(up) == 1
            gate.write_text("")
    assert len(up) == 2


async def test_once_a_start_was_ready_later_starts_go_together(tmp_path: Path) -> None:
    state, gate = tmp_path / "state", tmp_path / "go"
    up: list[int] = []
    stay = trio.Event()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            await bring_up(invocation(state, migration=0), up)
            nursery.start_soon(bring_up, invocation(state, hold=gate), up, stay)
            await trio.sleep(0.2)
            await bring_up(invocation(state), up)  # does not wait for the held one
            assert len(up) == 2
            gate.write_text("")
            stay.set()
    assert len(up) == 3


async def test_a_first_start_that_dies_lets_the_next_one_be_first(tmp_path: Path) -> None:
    state = tmp_path / "state"
    broken = Invocation(
        argv=(sys.executable, "-c", "import sys; sys.exit(7)"),
        env={"FAKE_STATE": str(state)}, limits=FAST, state=STATE,
    )  # fmt: skip
    up: list[int] = []
    with trio.fail_after(LIMIT):
        async with open_agent_process(broken, name="fake", graceful=False) as proc:
            await proc.exited.wait()  # never ready: its exit gives the turn back
            await bring_up(invocation(state, migration=0), up)
    assert len(up) == 1


async def test_a_cancelled_first_start_gives_its_turn_back(tmp_path: Path) -> None:
    state, gate = tmp_path / "state", tmp_path / "never"
    up: list[int] = []
    with trio.fail_after(LIMIT):
        with trio.move_on_after(0.5):  # cancelled while it is held before ready
            await bring_up(invocation(state, hold=gate, migration=0), up)
        await bring_up(invocation(state, migration=0), up)
    assert len(up) == 1


async def test_concurrent_one_shot_first_starts_all_succeed(tmp_path: Path) -> None:
    """A one-shot run's first output line ends its first start."""
    state = tmp_path / "state"
    replies: list[str] = []

    async def once() -> None:
        inv = Invocation(
            argv=(sys.executable, FAKE), env={"FAKE_STATE": str(state), "FAKE_ONESHOT": "1"},
            stdin=b"", limits=FAST, state=STATE,
        )  # fmt: skip
        result = await run_invocation(inv, FakeDecoder(), provider="fake")
        replies.append(result.reply)

    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(once)
    assert len(replies) == 3 and all(r.startswith("ready ") for r in replies), replies


async def test_ready_after_the_release_still_marks_the_key() -> None:
    """Hostile-use finding (round 5): a one-shot CLI that printed everything and exited at once
    was often seen exiting (the spawn path releases the ticket) before the reader got its first
    output (ready): that ready was lost, so the next start waited as a first one too, and so on —
    five concurrent runs of a fake opencode whose first line comes after 2 s ended at 2, 4, 6, 8
    and 10 s instead of 2, 4, 4, 4, 4."""
    key = ("cli", "/state")
    first = await acquire(key)
    got: list[str] = []

    async def later() -> None:
        ticket = await acquire(key)
        got.append("held" if ticket.held else "free")
        ticket.release()

    first.release()  # the process exited: its start is over
    first.ready()  # then its first output is read: it did come up
    first.ready()  # idempotent
    assert not first.held
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(later)
    assert got == ["free", "free", "free"]
