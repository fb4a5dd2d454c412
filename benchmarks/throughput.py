"""Throughput: how many typed events per second get through, layer by layer.

    python -m benchmarks.throughput [--quick]

The fake CLI bursts N assistant lines of ~300 B (claude stream-json) and a ``result``. Measured
in this one process, each as the median of several runs, every rate in events/s from spawn to
the end (``wall``) and, for the full path, from the first to the last callback (``stream``):

* ``pipe``: trio reads stdout in 256 KiB chunks and counts newlines — the physical limit of
  this fake on this machine;
* ``framer``: + :class:`~alice_trio.framing.LineFramer` + UTF-8 decode;
* ``decoder``: + the claude decoder (typed :class:`~alice_trio.models.TurnEvent`);
* ``backend``: ``OneShotBackend.run`` with an ``on_progress`` callback (the whole engine:
  dispatcher, watchdogs, group kill and sweep at the end).

Decoder-only rates per provider replay the recorded transcripts in ``tests/transcripts`` (a
fresh decoder per transcript, as in real runs) and the synthetic 300 B claude line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from alice_trio.backend import OneShotBackend
from alice_trio.framing import LineFramer, decode_line
from alice_trio.models import RunRequest
from alice_trio.providers.claude import ClaudeStreamDecoder
from alice_trio.providers.registry import get_provider

from .common import (
    BENCH_PROVIDER,
    REPO,
    bench_config,
    fake_launcher,
    median,
    quick_main,
    tmpdir,
)

READ = 256 * 1024

TRANSCRIPTS = {
    "codex": ["codex/**/stdout.raw"],
    "claude": ["claude/*.stdout"],
    "gemini": ["gemini/*.stdout"],
    "kimi": ["kimi/*.stdout"],
    "opencode": ["opencode/**/stdout.raw"],
}


async def _layer(launcher: str, n: int, layer: str) -> float:
    """Seconds from spawn to EOF for one layer below the backend."""
    t0 = time.perf_counter()
    proc = await trio.lowlevel.open_process(
        [launcher, "--lines", str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    await proc.stdin.send_all(b"bench")
    await proc.stdin.aclose()
    framer = LineFramer()
    decoder = ClaudeStreamDecoder()
    count = 0
    while chunk := await proc.stdout.receive_some(READ):
        if layer == "pipe":
            count += chunk.count(b"\n")
            continue
        for line in framer.feed(chunk):
            assert isinstance(line, bytes)
            text = decode_line(line)
            if layer == "decoder":
                count += len(decoder.feed(text))
            else:
                count += 1
    await proc.wait()
    elapsed = time.perf_counter() - t0
    if count < n:
        raise RuntimeError(f"{layer}: got {count} of {n}")
    return elapsed


async def _backend(launcher: str, n: int) -> tuple[float, float, int]:
    """(wall seconds, stream seconds first→last callback, events delivered) for Backend.run."""
    backend = OneShotBackend(BENCH_PROVIDER, bench_config(launcher, "--lines", str(n)))
    stamps: list[float] = []
    count = 0

    def on_progress(_text: str) -> None:
        nonlocal count
        count += 1
        if count == 1:
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    result = await backend.run(RunRequest(user_text="bench", on_progress=on_progress))
    t1 = time.perf_counter()
    if count < n or not result.reply:
        raise RuntimeError(f"backend: got {count} of {n} events")
    return t1 - t0, t1 - stamps[0], count


def decoder_only(n_lines: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, patterns in TRANSCRIPTS.items():
        files = sorted(p for pat in patterns for p in (REPO / "tests" / "transcripts").glob(pat))
        corpus = [
            [ln for ln in Path(f).read_bytes().decode("utf-8", "replace").splitlines() if ln]
            for f in files
        ]
        corpus = [c for c in corpus if c]
        if not corpus:
            out[name] = {"skipped": "no transcripts"}
            continue
        provider = get_provider(name)
        config = provider.config_class()
        request = RunRequest(user_text="bench")
        lines = events = 0
        t0 = time.perf_counter()
        while lines < n_lines:
            for transcript in corpus:
                decoder = provider.new_decoder(request, config)
                for line in transcript:
                    events += len(decoder.feed(line))
                decoder.finish()
                lines += len(transcript)
        dt = time.perf_counter() - t0
        out[name] = {
            "transcripts": len(corpus),
            "lines": lines,
            "events": events,
            "lines_per_s": round(lines / dt),
            "events_per_s": round(events / dt),
            "mean_line_bytes": round(
                sum(len(ln) for c in corpus for ln in c) / sum(len(c) for c in corpus)
            ),
        }
    # the synthetic line of the end-to-end test
    from .fake_claude import _template

    template = _template(300)
    synthetic = [(template % (i, i)).decode() for i in range(min(n_lines, 20000))]
    decoder = ClaudeStreamDecoder()
    t0 = time.perf_counter()
    events = 0
    done = 0
    while done < n_lines:
        for line in synthetic:
            events += len(decoder.feed(line))
        done += len(synthetic)
    dt = time.perf_counter() - t0
    out["claude_synthetic_300B"] = {
        "lines": done,
        "events": events,
        "lines_per_s": round(done / dt),
        "events_per_s": round(events / dt),
        "mean_line_bytes": len(template) - 4,
    }
    return out


async def main_async(quick: bool) -> dict[str, Any]:
    n = 20_000 if quick else 100_000
    repeats = 2 if quick else 5
    out: dict[str, Any] = {"events": n, "line_bytes": 300, "repeats": repeats, "layers": {}}
    with tmpdir("throughput") as d:
        launcher = fake_launcher(d)
        await _layer(launcher, 1000, "pipe")  # warm the page cache
        for layer in ("pipe", "framer", "decoder"):
            times = [await _layer(launcher, n, layer) for _ in range(repeats)]
            t = median(times)
            out["layers"][layer] = {"wall_s": round(t, 4), "events_per_s": round(n / t)}
        walls, streams = [], []
        for _ in range(repeats):
            wall, stream, _count = await _backend(launcher, n)
            walls.append(wall)
            streams.append(stream)
        out["layers"]["backend"] = {
            "wall_s": round(median(walls), 4),
            "events_per_s": round(n / median(walls)),
            "stream_events_per_s": round(n / median(streams)),
        }
    out["decoder_only"] = decoder_only(20_000 if quick else 200_000)
    return out


def main() -> int:
    return quick_main(main_async)


if __name__ == "__main__":
    sys.exit(main())
