"""Big lines and floods: wall time and peak RSS, each scenario in a fresh interpreter.

    python -m benchmarks.memory --scenario giant|giant_skip|stderr --bytes N

* ``giant``: one assistant line of N bytes (default limit 64 MiB: delivered as the reply);
* ``giant_skip``: the same line with ``max_line_bytes`` 1 MiB and ``line_policy="skip"``
  (skipped and reported; memory must stay flat);
* ``stderr``: N bytes of stderr, then a normal turn (stderr is kept as a 64 KiB tail).

Peak RSS is this process's ``VmHWM``, reset right before the run (``ru_maxrss`` where it cannot
be reset); the fake CLI is a child and not counted. ``rss_base`` is the resident size just before
the run (interpreter, trio, alice_trio loaded and warmed up by one small run) and ``peak_delta``
what the run added on top of it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import trio

from alice_trio.backend import OneShotBackend
from alice_trio.errors import AliceError
from alice_trio.models import RunRequest
from alice_trio.providers.base import RunLimits

from .common import BENCH_PROVIDER, bench_config, emit, fake_launcher, tmpdir


def _rss_now() -> int:
    return _status("VmRSS")


def _status(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM (Linux: ``echo 5 > /proc/self/clear_refs``) so the warm-up run's peak does
    not count; False where that is not possible (then ``ru_maxrss`` since start is used)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    hwm = _status("VmHWM")
    if hwm:
        return hwm
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


async def main_async(scenario: str, size: int) -> dict[str, Any]:
    with tmpdir("memory") as d:
        launcher = fake_launcher(d)
        await OneShotBackend(BENCH_PROVIDER, bench_config(launcher)).run(
            RunRequest(user_text="warm up")
        )
        limits = RunLimits()
        if scenario == "giant":
            args = ("--giant", str(size), "--lines", "0")
        elif scenario == "giant_skip":
            args = ("--giant", str(size), "--lines", "0")
            limits = RunLimits(max_line_bytes=1 << 20, line_policy="skip")
        elif scenario == "stderr":
            args = ("--stderr-bytes", str(size), "--lines", "1")
        else:
            raise SystemExit(f"unknown scenario {scenario}")
        backend = OneShotBackend(BENCH_PROVIDER, bench_config(launcher, *args, limits=limits))
        skipped: list[str] = []

        def on_raw(event: Any) -> None:
            if "skipped a line" in str(getattr(event, "detail", "")) + str(
                getattr(event, "text", "")
            ):
                skipped.append("x")

        reset = _reset_peak()
        base = _rss_now()
        peak_before = _peak()
        t0 = time.perf_counter()
        error = ""
        reply_len = 0
        try:
            result = await backend.run(RunRequest(user_text="bench", on_raw_event=on_raw))
            reply_len = len(result.reply)
        except AliceError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        wall = time.perf_counter() - t0
        peak = _peak()
    delta = max(0, peak - base)
    return {
        "scenario": scenario,
        "bytes": size,
        "wall_s": round(wall, 4),
        "mb_per_s": round(size / wall / 1e6, 1) if wall > 0 else 0.0,
        "rss_base_mb": round(base / 1e6, 1),
        "peak_rss_mb": round(peak / 1e6, 1),
        "peak_before_mb": round(peak_before / 1e6, 1),
        "peak_delta_mb": round(delta / 1e6, 1),
        "peak_delta_over_bytes": round(delta / size, 3) if size else 0.0,
        "reply_chars": reply_len,
        "error": error,
        "peak_reset": reset,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", required=True)
    p.add_argument("--bytes", type=int, required=True)
    a = p.parse_args()
    emit(trio.run(main_async, a.scenario, a.bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
