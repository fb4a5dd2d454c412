"""Hostile-use finding (round 4): a snapshot walk whose caller was cancelled stops.

``take_snapshot`` walks a large tree in a worker thread and abandons it when cancelled. The
abandoned thread walked on to the end: 100 runs cancelled on a 140,000-entry tree kept 40
threads stat-ing (every default worker token, and the GIL), and the next run — on a small tree
— took a minute. Now the thread stops at its next entry, and at most ``MAX_WALKERS`` walks run in
threads at once per trio run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from alice_trio.engine import workspace


def big_tree(root: Path) -> int:
    """More entries than are walked inline; returns how many."""
    count = 0
    for i in range(40):
        d = root / f"d{i}"
        d.mkdir()
        count += 1
        for j in range(80):
            (d / f"f{j}").touch()
            count += 1
    assert count > workspace.INLINE_ENTRIES
    return count


async def test_a_cancelled_walk_stops_in_its_thread(tmp_path: Path, monkeypatch: Any) -> None:
    total = big_tree(tmp_path)
    in_thread, release = threading.Event(), threading.Event()
    real_scandir = os.scandir

    def gated_scandir(path: Any) -> Any:  # the thread's first directory waits for the test
        if threading.current_thread() is not threading.main_thread():
            in_thread.set()
            release.wait(30)
        return real_scandir(path)

    walks: list[Any] = []
    done = threading.Event()
    real_run = workspace._Walk.run

    def recorded_run(self: Any, budget: int | None = None) -> bool:
        walks.append(self)
        try:
            return real_run(self, budget)
        finally:
            if budget is None:
                done.set()

    monkeypatch.setattr(workspace.os, "scandir", gated_scandir)
    monkeypatch.setattr(workspace._Walk, "run", recorded_run)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(workspace.take_snapshot, str(tmp_path), 100_000)
            with trio.fail_after(30):
                while not in_thread.is_set():  # noqa: ASYNC110 - a thread's event
                    await trio.sleep(0.01)
            scope.cancel()  # the caller gives up while the thread walks
    assert scope.cancelled_caught
    release.set()
    with trio.fail_after(30):
        while not done.is_set():  # noqa: ASYNC110 - a thread's event
            await trio.sleep(0.01)
    (walk,) = {id(w): w for w in walks}.values()
    assert walk.seen < total  # it stopped instead of walking the rest of the tree
    assert walk.result() is None


@pytest.mark.parametrize("n", [5])
async def test_walks_in_threads_are_bounded(tmp_path: Path, monkeypatch: Any, n: int) -> None:
    big_tree(tmp_path)
    running, peak = 0, 0
    lock = threading.Lock()
    real_run = workspace._Walk.run

    def counted_run(self: Any, budget: int | None = None) -> bool:
        nonlocal running, peak
        if budget is not None:
            return real_run(self, budget)
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)  # long enough for every walk allowed at once to overlap
        try:
            return real_run(self, budget)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(workspace._Walk, "run", counted_run)
    results: list[Any] = []
    async with trio.open_nursery() as nursery:
        for _ in range(n):

            async def one() -> None:
                results.append(await workspace.take_snapshot(str(tmp_path), 100_000))

            nursery.start_soon(one)
    assert len(results) == n and all(r is not None and len(r) == 40 * 80 for r in results)
    assert peak <= 2  # workspace.MAX_WALKERS
