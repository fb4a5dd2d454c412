"""Per-run overhead: ``OneShotBackend.run`` vs a bare ``trio.run_process`` of the same fake CLI.

    python -m benchmarks.overhead [--quick]

* ``sequential``: N runs of each, interleaved (engine, bare, engine, …) so both see the same
  machine noise; the fake prints init, one assistant line and the result, then exits 0.
* ``concurrent``: C runs started at once, engine vs bare, wall time of the whole batch, with the
  process pinned to 2 cores when the machine has more.

The bare baseline is ``trio.run_process(argv, stdin=prompt, capture_stdout=True,
capture_stderr=True)`` — no decoding, no process group, no sweep.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import trio

from alice_trio.backend import OneShotBackend
from alice_trio.engine import reaper
from alice_trio.models import RunRequest

from .common import BENCH_PROVIDER, bench_config, fake_launcher, median, quick_main, tmpdir


async def _engine(backend: OneShotBackend) -> float:
    t0 = time.perf_counter()
    result = await backend.run(RunRequest(user_text="bench", on_progress=lambda _t: None))
    dt = time.perf_counter() - t0
    if not result.reply:
        raise RuntimeError("no reply")
    return dt


async def _bare(launcher: str) -> float:
    t0 = time.perf_counter()
    proc = await trio.run_process(
        [launcher], stdin=b"bench", capture_stdout=True, capture_stderr=True
    )
    dt = time.perf_counter() - t0
    if b'"result"' not in proc.stdout:
        raise RuntimeError("bare run printed no result")
    return dt


async def _batch(n: int, fn: Any, *args: Any) -> float:
    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(fn, *args)
    return time.perf_counter() - t0


async def main_async(quick: bool) -> dict[str, Any]:
    n_seq = 10 if quick else 100
    n_conc = 40 if quick else 200
    pinned = False
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 2:
            os.sched_setaffinity(0, cpus[:2])
            pinned = True
        cores = min(2, len(cpus))
    except AttributeError:
        cores = os.cpu_count() or 0
    out: dict[str, Any] = {"mechanism": reaper.mechanism()}
    with tmpdir("overhead") as d:
        launcher = fake_launcher(d)
        backend = OneShotBackend(BENCH_PROVIDER, bench_config(launcher))
        await _engine(backend)
        await _bare(launcher)
        eng, bare = [], []
        for _ in range(n_seq):
            eng.append(await _engine(backend))
            bare.append(await _bare(launcher))
        out["sequential"] = {
            "runs": n_seq,
            "engine_ms_p50": round(median(eng) * 1000, 3),
            "bare_ms_p50": round(median(bare) * 1000, 3),
            "added_ms_p50": round((median(eng) - median(bare)) * 1000, 3),
            "ratio": round(median(eng) / median(bare), 3),
        }
        t_eng = await _batch(n_conc, _engine, backend)
        t_bare = await _batch(n_conc, _bare, launcher)
        t_eng2 = await _batch(n_conc, _engine, backend)
        t_bare2 = await _batch(n_conc, _bare, launcher)
        e, b = min(t_eng, t_eng2), min(t_bare, t_bare2)
        out["concurrent"] = {
            "runs": n_conc,
            "cores": cores,
            "pinned_to_2_cores": pinned,
            "engine_wall_s": round(e, 4),
            "bare_wall_s": round(b, 4),
            "engine_runs_per_s": round(n_conc / e, 1),
            "ratio": round(e / b, 3),
        }
    return out


def main() -> int:
    return quick_main(main_async)


if __name__ == "__main__":
    sys.exit(main())
