"""Shared helpers of the reliability suite (tests/reliability): fake-CLI configs, requests with
an env marker, and the checks every failure class ends with (nothing left running, no task
leaked)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import trio
import trio.lowlevel

from alice_trio.models import RunRequest

from fake_provider import FAST, FakeConfig
from helpers import alive, marked, new_mark, read_pids

__all__ = [
    "FAST",
    "alive",
    "assert_nothing_left",
    "cfg",
    "count_tasks",
    "elapsed",
    "marked",
    "new_mark",
    "read_pids",
    "req",
]


def cfg(*args: str, **kw: Any) -> FakeConfig:
    """A fake-CLI config with the fast limits (kill grace 0.25 s, drain 0.5 s) by default."""
    limits = kw.pop("limits", FAST)
    if "limits_kw" in kw:
        limits = attrs.evolve(limits, **kw.pop("limits_kw"))
    return FakeConfig(args=tuple(args), limits=limits, **kw)


def req(mark: str = "", **kw: Any) -> RunRequest:
    """A request whose env carries ``TEST_MARK=mark`` (so leftovers can be found in /proc)."""
    env = {"TEST_MARK": mark} if mark else {}
    env.update(kw.pop("env", {}))
    return RunRequest(user_text=kw.pop("user_text", "hi"), env=env, **kw)


def assert_nothing_left(mark: str, pids: list[int] | tuple[int, ...] = ()) -> None:
    """No process carrying the marker and none of ``pids`` is alive (zombies count as dead)."""
    left = marked(mark)
    assert left == [], f"processes of the run survived: {left}"
    alive_pids = [p for p in pids if alive(p)]
    assert alive_pids == [], f"recorded pids survived: {alive_pids}"


def count_tasks() -> int:
    """Every task in this trio run (walks the whole task tree from the root task)."""
    total = 0
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        total += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return total


@contextmanager
def elapsed() -> Iterator[list[float]]:
    """``with elapsed() as t: ...`` then ``t[0]`` is the wall time in seconds."""
    box = [0.0]
    start = time.monotonic()
    try:
        yield box
    finally:
        box[0] = time.monotonic() - start
