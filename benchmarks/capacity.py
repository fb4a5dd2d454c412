"""How many conversations one host holds per shared CLI, measured on the real CLIs: memory of
N conversations on one shared process as N grows, a long conversation's growth per turn, what
comes back when conversations close, and the admission bounds at those N.

Needs the e2e install (``python tests/e2e/install_clis.py``); a CLI that is not installed is
skipped with the install's reason. Every CLI talks to the e2e fake model server on loopback
(answers at once), through ``SessionBackend``. Memory is PSS (``/proc/<pid>/smaps_rollup``) of
every process of the run (our descendants but the fake model server), per process and summed,
after a settle of ``--settle`` seconds, and USS (private memory: PSS splits a shared binary's
pages among every process mapping it, so other users of the same CLI on the machine move it);
our own process (the Python heap of alice_trio) is reported apart (``self_pss_mb``).

For each shared CLI (codex app-server, gemini ``--acp``, Kimi Code ``kimi acp``, opencode
serve), three backends, one after the other:

* **growth**: ``ScalingConfig(warm=0, host_capacity=max N)`` — every conversation on one
  process. Conversation 0 first runs ``--long`` turns (PSS after turns 1, 5, 10, …: per-turn
  growth of one conversation whose history grows); then conversations are opened up to each N
  of ``--steps`` (each runs one turn, every 5th runs three), PSS after each step. Then half of
  them are closed as admission closes them (``_drop(graceful=True)``: codex
  ``thread/unsubscribe``, ACP ``session/close`` where offered, opencode: the subscription), as
  many new ones opened (does the process reuse what the closed ones held?), and all closed,
  PSS after each: whether memory comes back while the process lives (``host_capacity`` is
  2 × max N, so the process is not retired). The process then closes with the backend.
* **bounded**: ``ScalingConfig(warm=1, max_conversations=C, max_processes=P, host_capacity=H)``
  (``--bounds C,P,H``), max N conversations one after the other then a burst of ``C + 4``
  concurrent ones; a sampler task records the most live conversations, agent processes (the
  pool's and our direct children) and the PSS peak: the bounds of docs/scaling.md at that N.

* **python_heap** (no install needed): our own heap (``tracemalloc``) over ``--cycles``
  conversations opened, run once and closed to make room on the unit tests' fake CLIs (codex
  app-server, ACP, opencode serve): KiB that stay per conversation, and the backend's state.

``python -m benchmarks.capacity [--cli NAME ...] [--steps 1,5,20,50,100] [--long 20]`` prints
one JSON object (``--quick`` without ``--cli`` skips the section: the smoke run stays short).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from .common import REPO, emit, median
from .scaling import (
    SHARED,
    fresh_cli,
    pss_kb,
    run_installed_clis,
    run_pids,
    smaps_kb,
)

STEPS = (1, 5, 20, 50, 100)
LONG_MARKS = (1, 5, 10, 20, 40, 80)
#: how long the burst of the bounded phase may take before it counts as hung (state reported)
BURST_LIMIT = 120.0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _watchdog(pid: int) -> bool:
    """Our reaper's marker-scan watchdog (a child of ours, not an agent process)."""
    try:
        return b"ALICE_TRIO_HOST_ID" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _children(exclude: int) -> list[int]:
    """Our direct children but ``exclude`` (the agent processes we spawned)."""
    me = str(os.getpid())
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == exclude:
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z" and not _watchdog(int(name)):
            out.append(int(name))
    return out


def uss_kb(pid: int) -> int:
    """Private memory of ``pid`` (``Private_Clean + Private_Dirty``, kB): unlike PSS it does
    not move when other processes on the machine map the same binary."""
    return smaps_kb(pid, "Private_Clean:", "Private_Dirty:")


def snapshot(server_pid: int) -> dict[str, Any]:
    """PSS and USS of every process of the run (MB), per process and summed, and our own."""
    procs = []
    uss = 0
    for pid in run_pids(server_pid):
        kb = pss_kb(pid)
        if kb:
            procs.append({"pid": pid, "comm": _comm(pid), "pss_mb": round(kb / 1024, 1)})
            uss += uss_kb(pid)
    total = sum(p["pss_mb"] for p in procs)
    return {
        "pss_mb": round(total, 1),
        "uss_mb": round(uss / 1024, 1),
        "processes": len(procs),
        "per_process": sorted(procs, key=lambda p: -p["pss_mb"]),
        "self_pss_mb": round(pss_kb(os.getpid()) / 1024, 1),
    }


def _req(key: str, text: str, thread_id: str = "") -> Any:
    from alice_trio.models import RunRequest
    from alice_trio.sessions.backend import SESSION_KEY_ENV

    return RunRequest(user_text=text, env={SESSION_KEY_ENV: key}, thread_id=thread_id)


def _slope(a: dict[str, Any], b: dict[str, Any], n: float, what: str = "pss_mb") -> float | None:
    return round((b[what] - a[what]) / n, 2) if n > 0 else None


async def growth(
    provider: str, config: Any, server_pid: int, steps: tuple[int, ...], long_turns: int,
    settle: float,
) -> dict[str, Any]:  # fmt: skip
    from alice_trio.sessions.backend import SessionBackend
    from alice_trio.sessions.scaling import ScalingConfig

    top = max(steps)
    # room for the reopened ones too: everything of this phase stays on one process
    scaling = ScalingConfig(warm=0, host_capacity=2 * top)
    out: dict[str, Any] = {"scaling": {"warm": 0, "host_capacity": 2 * top}}
    t_start = time.perf_counter()

    async def measure() -> dict[str, Any]:
        await trio.sleep(settle)
        return snapshot(server_pid)

    async with SessionBackend(provider, config, scaling=scaling, idle_ttl=3600) as backend:
        # one conversation, its history growing
        first = await backend.run(_req("c0", "hello 0"))
        thread = first.next_thread_id
        long_rows = [{"turns": 1, **await measure()}]
        t0 = time.perf_counter()
        for turn in range(2, long_turns + 1):
            r = await backend.run(_req("c0", f"turn {turn}: tell me more", thread_id=thread))
            thread = r.next_thread_id or thread
            if turn in LONG_MARKS or turn == long_turns:
                long_rows.append({"turns": turn, **await measure()})
        turn_s = (time.perf_counter() - t0) / max(long_turns - 1, 1)
        out["long"] = {
            "rows": [_brief(r) for r in long_rows],
            "mb_per_turn": _slope(long_rows[0], long_rows[-1], long_rows[-1]["turns"] - 1),
            "uss_mb_per_turn": _slope(
                long_rows[0], long_rows[-1], long_rows[-1]["turns"] - 1, "uss_mb"
            ),
            "s_per_turn": round(turn_s, 3),
        }
        # many conversations on the one process
        rows = [{"conversations": 1, "turns": long_turns, **long_rows[-1]}]
        opened, turns = 1, long_turns
        new_s: list[float] = []
        for n in steps:
            if n <= opened:
                continue
            while opened < n:
                key = f"c{opened}"
                t0 = time.perf_counter()
                r = await backend.run(_req(key, f"hello {opened}"))
                new_s.append(time.perf_counter() - t0)
                turns += 1
                if opened % 5 == 0:  # some conversations go on: their history grows
                    for k in range(2):
                        r = await backend.run(
                            _req(key, f"more {k}", thread_id=r.next_thread_id)
                        )  # fmt: skip
                        turns += 1
                opened += 1
            snap = await measure()
            rows.append(
                {
                    "conversations": n, "turns": turns, "hosts": len(backend.pool.hosts),
                    "pool_processes": backend.pool.processes(), **snap,
                }
            )  # fmt: skip
        for prev, cur in itertools.pairwise(rows):
            n = cur["conversations"] - prev["conversations"]
            cur["mb_per_conversation_in_range"] = _slope(prev, cur, n)
            cur["uss_mb_per_conversation_in_range"] = _slope(prev, cur, n, "uss_mb")
        out["rows"] = [_brief(r) for r in rows]
        out["new_conversation_s_median"] = round(median(new_s), 3) if new_s else None
        # close them as admission does, the process living on; then as many new ones as were
        # closed: does the process reuse what the closed ones held, or grow on?
        closes = []

        async def close(label: str, part: list[str]) -> None:
            gone = {k: backend._sessions[k] for k in part if k in backend._sessions}
            for entry in gone.values():
                backend._drop(entry, graceful=True)
            with trio.move_on_after(60):
                for entry in gone.values():  # each one's process-side close is done
                    await entry.host_done.wait()
            snap = await measure()
            closes.append(
                {
                    "state": label, "open": len(backend.open_sessions()),
                    "hosts": len(backend.pool.hosts), **_brief(snap),
                }
            )  # fmt: skip

        keys = backend.open_sessions()
        half = keys[: len(keys) // 2]
        await close(f"{len(half)} closed", half)
        for j in range(len(half)):
            await backend.run(_req(f"r{j}", f"hello again {j}"))
        snap = await measure()
        closes.append(
            {
                "state": f"{len(half)} new ones opened", "open": len(backend.open_sessions()),
                "hosts": len(backend.pool.hosts), **_brief(snap),
            }
        )  # fmt: skip
        await close("all closed", backend.open_sessions())
        out["close"] = closes
        out["python_state_after_close"] = {
            "sessions": len(backend._sessions), "locks": len(backend._locks),
            "timers": len(backend._timers), "recent": len(backend.admission.recent),
            "resume_ids": len(backend.admission.resume_ids),
            "parked": sum(len(getattr(h, "parked", ())) for h in backend.pool.hosts),
        }  # fmt: skip
    out["after_backend_close"] = await measure()  # every process left, however small
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    return out


def _state(backend: Any) -> dict[str, Any]:
    """The backend's admission and pool state (for a burst that did not finish)."""
    slots = backend.pool.slots.statistics()
    return {
        "sessions": len(backend._sessions), "in_use": len(backend._in_use),
        "busy": sum(e.current is not None for e in backend._sessions.values()),
        "admission_queue": len(backend.admission._queue),
        "opening": backend.admission._opening,
        "turns_waiting": backend.admission.turns.statistics().tasks_waiting,
        "slots_borrowed": slots.borrowed_tokens, "slots_waiting": slots.tasks_waiting,
        "spares": len(backend.pool.spares),
        "hosts": [
            {"load": h.load, "opened": h.opened, "alive": h.alive, "full": h.full,
             "closing": h.closing, "parked": len(getattr(h, "parked", ()))}
            for h in backend.pool.hosts
        ],
    }  # fmt: skip


def _brief(snap: dict[str, Any]) -> dict[str, Any]:
    """A row without the per-process detail of small processes (< 5 MB)."""
    row = dict(snap)
    if "per_process" in row:
        row["per_process"] = [
            f"{p['comm']}:{p['pss_mb']}" for p in row["per_process"] if p["pss_mb"] >= 5
        ]
    return row


async def bounded(
    provider: str, config: Any, server_pid: int, n: int, bounds: tuple[int, int, int],
    settle: float,
) -> dict[str, Any]:  # fmt: skip
    from alice_trio.sessions.backend import SessionBackend
    from alice_trio.sessions.scaling import ScalingConfig

    max_conv, max_proc, capacity = bounds
    scaling = ScalingConfig(
        warm=1, max_conversations=max_conv, max_processes=max_proc, host_capacity=capacity
    )
    seen: dict[str, Any] = {"live": 0, "pool_processes": 0, "children": 0, "pss_mb": 0.0}
    t_start = time.perf_counter()
    errors: list[str] = []
    hung: dict[str, Any] | None = None
    async with SessionBackend(provider, config, scaling=scaling, idle_ttl=3600) as backend:

        async def sample() -> None:
            while True:
                seen["live"] = max(seen["live"], len(backend._sessions))
                seen["pool_processes"] = max(seen["pool_processes"], backend.pool.processes())
                kids = _children(server_pid)
                if len(kids) > seen["children"]:
                    seen["children"] = len(kids)
                    seen["children_at_max"] = [f"{_comm(k)}:{k}" for k in kids]
                seen["pss_mb"] = max(seen["pss_mb"], snapshot(server_pid)["pss_mb"])
                await trio.sleep(0.2)

        async def one(key: str, text: str) -> None:
            try:
                await backend.run(_req(key, text))
            except Exception as exc:  # counted: a bound must not fail a run
                errors.append(f"{key}: {type(exc).__name__}: {exc}"[:300])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            for i in range(n):
                await one(f"b{i}", f"hello {i}")
            with trio.move_on_after(BURST_LIMIT) as burst_scope:
                async with trio.open_nursery() as burst:
                    for i in range(max_conv + 4):
                        burst.start_soon(one, f"burst{i}", f"burst {i}")
            if burst_scope.cancelled_caught:  # a hang: what waited for what
                hung = _state(backend)
            # a closed conversation comes back (resumes its thread)
            await one("b0", "again")
            await trio.sleep(settle)
            final = snapshot(server_pid)
            nursery.cancel_scope.cancel()
        result = {
            "bounds": {"max_conversations": max_conv, "max_processes": max_proc,
                       "host_capacity": capacity, "warm": 1},
            "conversations": n + max_conv + 4,
            "max_live_conversations": seen["live"],
            "max_pool_processes": seen["pool_processes"],
            "max_agent_children": seen["children"],
            "children_at_max": seen.get("children_at_max", []),
            "peak_pss_mb": round(seen["pss_mb"], 1),
            "final": _brief(final),
            "evicted": backend.admission.evicted,
            "hosts_at_end": len(backend.pool.hosts),
            "errors": errors[:5],
            "error_count": len(errors),
            "burst_hung": hung,
            "within_bounds": seen["live"] <= max_conv and seen["pool_processes"] <= max_proc
            and seen["children"] <= max_proc,
        }  # fmt: skip
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    return result


async def run_cli(cli: str, entry: dict[str, Any], manifest: dict[str, Any], a: Any) -> Any:
    out: dict[str, Any] = {"version": entry.get("version", "")}
    for phase in ("growth", "bounded"):
        if phase not in a.phases:
            continue
        with fresh_cli(cli, entry, manifest, "capacity") as run:
            try:
                with trio.fail_after(a.phase_limit):
                    if phase == "growth":
                        out[phase] = await growth(
                            run.provider, run.config, run.server_pid, a.steps, a.long, a.settle
                        )
                    else:
                        out[phase] = await bounded(
                            run.provider, run.config, run.server_pid, max(a.steps), a.bounds,
                            a.settle,
                        )  # fmt: skip
            except Exception as exc:  # report it, go on
                out[phase] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        if run.left:
            out.setdefault("left_after", {})[phase] = run.left
    return out


#: the fake CLIs of the unit tests the Python heap is measured on (provider, fake's mode)
HEAP_FAKES = (("codex", "codex"), ("gemini", "acp"), ("opencode", "serve"))


def _fake_config(provider: str, mode: str, tmp: Path) -> Any:
    from alice_trio.providers.codex import CodexConfig
    from alice_trio.providers.gemini import GeminiConfig
    from alice_trio.providers.opencode import OpenCodeConfig

    fakes = REPO / "tests" / "sessions"
    log = tmp / f"{mode}.log"
    if mode == "serve":
        line = f"exec {sys.executable} {fakes / 'fake_opencode_serve.py'} {log}"
    else:
        line = f"exec {sys.executable} {fakes / 'fake_shared_agent.py'} {mode} {log}"
    cmd = tmp / f"fake-{mode}"
    cmd.write_text(f"#!/bin/sh\n{line}\n")
    cmd.chmod(0o755)
    cls = {"codex": CodexConfig, "gemini": GeminiConfig, "opencode": OpenCodeConfig}[provider]
    return cls(command=str(cmd), workspace_dir=str(tmp))


async def python_heap(provider: str, mode: str, cycles: int) -> dict[str, Any]:
    """Our own heap (tracemalloc) over ``cycles`` conversations opened, run once and closed
    to make room (``max_conversations=4``, a warm spare, ``idle_ttl`` an hour) on a fake CLI:
    what stays per conversation after the first quarter."""
    import gc
    import tracemalloc

    from alice_trio.sessions.backend import SessionBackend
    from alice_trio.sessions.scaling import ScalingConfig

    warm = max(cycles // 4, 1)
    scaling = ScalingConfig(warm=1, max_conversations=4)
    with tempfile.TemporaryDirectory(prefix="alice-heap-") as tmp:
        config = _fake_config(provider, mode, Path(tmp))
        tracemalloc.start(10)
        try:
            async with SessionBackend(provider, config, scaling=scaling, idle_ttl=3600) as b:
                snaps = []
                for i in range(cycles):
                    await b.run(_req(f"k{i}", f"hello {i}"))
                    if i + 1 in (warm, cycles):
                        await trio.sleep(0.3)
                        gc.collect()
                        snaps.append(tracemalloc.take_snapshot())
                state = {
                    "sessions": len(b._sessions), "locks": len(b._locks),
                    "timers": len(b._timers), "recent": len(b.admission.recent),
                    "resume_ids": len(b.admission.resume_ids), "evicted": b.admission.evicted,
                }  # fmt: skip
        finally:
            tracemalloc.stop()
    grown = snaps[1].compare_to(snaps[0], "lineno")
    total = sum(st.size_diff for st in grown)
    return {
        "conversations": cycles,
        "kib_per_conversation": round(total / 1024 / (cycles - warm), 2),
        "top": [
            f"{st.traceback[0].filename.rsplit('/', 2)[-1]}:{st.traceback[0].lineno} "
            f"{st.size_diff / 1024:+.1f} KiB ({st.count_diff:+d})"
            for st in grown[:5]
        ],
        "backend_state": state,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__)
    p.add_argument(
        "--quick", action="store_true",
        help="skip (the smoke run stays short); with --cli: steps 1,3,6, 5 turns",
    )  # fmt: skip
    p.add_argument("--cli", action="append", choices=SHARED)
    p.add_argument("--steps", default="", help="conversation counts, e.g. 1,5,20,50,100")
    p.add_argument("--long", type=int, default=0, help="turns of the long conversation (20)")
    p.add_argument("--bounds", default="", help="max_conversations,max_processes,host_capacity")
    p.add_argument("--settle", type=float, default=1.5, help="seconds before each PSS reading")
    p.add_argument(
        "--phase", action="append", dest="phases", choices=("growth", "bounded", "python_heap")
    )
    p.add_argument("--cycles", type=int, default=400, help="python_heap: conversations (400)")
    p.add_argument("--phase-limit", type=float, default=600.0, help="seconds per phase")
    a = p.parse_args(argv)
    a.phases = a.phases or ["growth", "bounded", "python_heap"]
    a.steps = tuple(int(x) for x in a.steps.split(",") if x) or ((1, 3, 6) if a.quick else STEPS)
    a.long = a.long or (5 if a.quick else 20)
    default_bounds = (3, 2, 2) if a.quick else (16, 2, 8)
    bounds = tuple(int(x) for x in a.bounds.split(",") if x) or default_bounds
    if len(bounds) != 3:
        p.error("--bounds takes three numbers")
    a.bounds = bounds
    result: dict[str, Any] = {
        "steps": list(a.steps), "long_turns": a.long, "bounds": list(a.bounds),
        "settle_s": a.settle, "providers": {},
    }  # fmt: skip
    if a.quick and not a.cli:
        result["skipped"] = (
            "quick run: the real CLIs take minutes; run `python -m benchmarks.capacity`"
        )
        emit(result)
        return 0
    if "python_heap" in a.phases:  # fake CLIs: no install needed
        result["python_heap"] = {}
        for provider, mode in HEAP_FAKES:
            print(f"… python heap, fake {provider}", file=sys.stderr, flush=True)
            try:
                result["python_heap"][provider] = trio.run(python_heap, provider, mode, a.cycles)
            except Exception as exc:  # report it, go on
                result["python_heap"][provider] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    if not set(a.phases) & {"growth", "bounded"}:
        emit(result)
        return 0
    run_installed_clis(result, a.cli or list(SHARED), run_cli, a, "capacity")
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
