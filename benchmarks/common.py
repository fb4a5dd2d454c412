"""Shared pieces of the benchmarks: machine facts, statistics, the fake CLI, the observer."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from alice_trio.models import RunRequest
from alice_trio.providers.base import CLIConfig, Invocation, Provider, RunLimits
from alice_trio.providers.claude import ClaudeStreamDecoder

HERE = Path(__file__).resolve().parent
FAKE_SOURCE = HERE / "fake_claude.py"
REPO = HERE.parent


# -- machine facts ---------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:
            return ""

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "trio": version("trio"),
        "alice_trio": version("alice-trio"),
        "orjson": version("orjson"),
        "claude_agent_sdk": version("claude-agent-sdk"),
        "anyio": version("anyio"),
        "loadavg_at_start": load,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# -- statistics ------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary_ms(values_s: Iterable[float]) -> dict[str, float]:
    """p50/p99/max/mean of durations in seconds, reported in milliseconds."""
    xs = [v * 1000.0 for v in values_s if v is not None and math.isfinite(v)]
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "p50": round(percentile(xs, 50), 3),
        "p99": round(percentile(xs, 99), 3),
        "max": round(max(xs), 3),
        "min": round(min(xs), 3),
    }


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# -- the fake CLI ----------------------------------------------------------------------------
def fake_launcher(directory: str | Path) -> str:
    """An executable copy of ``fake_claude.py`` whose shebang is this interpreter (``-I -S``:
    no site-packages, faster start). Both alice_trio and claude-agent-sdk run this same file."""
    path = Path(directory) / "claude"
    if not path.exists():
        body = FAKE_SOURCE.read_text()
        path.write_text(f"#!{sys.executable} -IS\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


@attrs.frozen(kw_only=True)
class BenchConfig(CLIConfig):
    """The benchmark provider's config: the fake's path and its knobs."""

    args: tuple[str, ...] = ()


def _build(request: RunRequest, config: BenchConfig) -> Invocation:
    return Invocation(
        argv=(config.command, *config.args),
        env=dict(config.env),
        stdin=request.prompt.encode(),
        timeout=config.timeout,
        idle_timeout=config.idle_timeout,
        limits=config.limits,
    )


#: claude's real stream-json decoder on the fake CLI (the argv builder is the fake's own)
BENCH_PROVIDER = Provider(
    name="claude",
    default_command="claude",
    config_class=BenchConfig,
    build_invocation=_build,
    new_decoder=lambda request, config: ClaudeStreamDecoder(thread_id=request.thread_id),
)

DEFAULT_LIMITS = RunLimits()


def bench_config(launcher: str, *args: str, limits: RunLimits = DEFAULT_LIMITS) -> BenchConfig:
    return BenchConfig(command=launcher, args=tuple(args), limits=limits)


# -- the observer ----------------------------------------------------------------------------
class Observer:
    """Client of ``benchmarks.observer`` (a separate process watching pids from outside)."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self._buf = b""

    @classmethod
    async def start(cls) -> Observer:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "benchmarks.observer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(REPO),
        )
        return cls(proc)

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError("observer died")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    async def arm(self, pids: Sequence[int], watch_seconds: float) -> None:
        assert self.proc.stdin is not None
        msg = f"watch {watch_seconds} {' '.join(map(str, pids))}\n"
        await self.proc.stdin.send_all(msg.encode())
        if await self._line() != "armed":
            raise RuntimeError("observer did not arm")

    async def result(self) -> tuple[dict[int, float], dict[int, float]]:
        data = json.loads(await self._line())
        exits = {int(k): v for k, v in data["exit"].items()}
        gones = {int(k): v for k, v in data["gone"].items()}
        return exits, gones

    async def aclose(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.aclose()
        with trio.move_on_after(2):
            await self.proc.wait()
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def pid_present(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def kill_leftovers(pids: Iterable[int]) -> tuple[int, int]:
    """SIGKILL what the subject left behind; returns (orphans still running, zombies nobody
    reaped). Our own children among them are reaped here so the next trial starts clean."""
    alive = zombies = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state == b"Z":
            zombies += 1
        else:
            alive += 1
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        for _ in range(200):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                break
            time.sleep(0.001)
    return alive, zombies


def read_pids(path: str) -> list[int]:
    try:
        return [int(x) for x in Path(path).read_text().split()]
    except (OSError, ValueError):
        return []


def callgrind_instructions(name: str, argv: Sequence[str], env: dict[str, str]) -> int:
    """CPU instructions of one run of ``argv`` (its own process, not its children) under
    ``valgrind --tool=callgrind``; ``name`` names it in errors."""
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env, cwd=str(REPO), timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{name} under valgrind exited {proc.returncode}: "
                           f"{proc.stderr[-2000:]!r}")  # fmt: skip
    for line in proc.stderr.decode(errors="replace").splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise RuntimeError(f"no instruction count from valgrind for {name}")


def tmpdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=f"alice-bench-{prefix}-")


# -- running a section in a fresh interpreter --------------------------------------------------
def run_module(module: str, args: Sequence[str], timeout: float = 900.0) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> args…`` and parse the JSON it prints last."""
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *args]
    proc = subprocess.run(
        cmd, cwd=str(REPO), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def quick_main(main_async: Callable[[bool], Awaitable[dict[str, Any]]]) -> int:
    """A section's ``main()``: ``[--quick]`` on the command line, ``main_async(quick)`` in
    trio, its result printed for :func:`run_module`."""
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    emit(trio.run(main_async, p.parse_args().quick))
    return 0


def emit(result: dict[str, Any]) -> None:
    """What a section module prints for :func:`run_module`."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
