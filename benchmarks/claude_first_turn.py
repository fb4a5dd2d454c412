"""What claude's first message of a new conversation costs, taken apart (issue 15, claude).

Real claude (the e2e install) in bidirectional stream-json, driven by the library's
:class:`~alice_trio.sessions.claude_stream.ClaudeStreamDriver` against the e2e fake model
server on loopback (answers at once). Every run is a fresh process; before each measured turn
the process is let settle (idle CPU, :func:`benchmarks.scaling.settle`). For each run: the
first message of a new conversation and the next message of the same conversation ("warm"),
latency and the agent's CPU (every thread of the process tree, ``schedstat``).

Modes, side by side in the same run:

* ``cold`` — ``initialize`` only;
* ``spare`` — ``initialize`` + the warm pool's warm-up (:meth:`ClaudeStreamDriver.warm_up`,
  ``get_context_usage`` with ``detail: summary``): what a pooled spare is today;
* ``after_turn`` — the spare, then **one whole turn through the model** and ``/clear`` (claude
  starts a new session id; the measured conversation is that new one). Not something to ship —
  it calls the model and leaves a conversation behind — but the bound for *any* warm-up of the
  process: what remains is what claude does once per conversation, not once per process.

``--profile DIR`` adds one run of ``spare`` under Bun's sampling profiler (``BUN_OPTIONS
--cpu-prof``, the CLI being a Bun executable) with three messages, and splits the first
message's samples (user line → model request) into those whose every frame also ran in the
later messages and, per *outermost frame that never ran again*, the rest — where the extra
time goes, by function of claude's bundle (``chunk-….js:line:column``).

``python -m benchmarks.claude_first_turn [--runs N] [--modes cold,spare,after_turn]
[--profile DIR]`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from .common import emit, median
from .scaling import _import_e2e, run_installed_clis, run_pids, settle, tree_cpu_s

MODES = ("cold", "spare", "after_turn")


class _Turns:
    """Collects the driver's events; :meth:`run` submits one message and waits for its end."""

    def __init__(self) -> None:
        self.done: dict[str, trio.Event] = {}
        self.replies: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    async def emit(self, event: Any) -> None:
        tid = event.turn_id
        if event.kind.value == "error":
            self.errors[tid] = event.text
        if event.kind.terminal and tid in self.done:
            self.replies[tid] = event.text
            self.done[tid].set()

    async def run(self, driver: Any, text: str, limit: float = 120.0) -> str:
        from alice_trio.models import RunRequest

        ref = await driver.start_turn(RunRequest(user_text=text))
        waiter = self.done.setdefault(ref.turn_id, trio.Event())
        with trio.fail_after(limit):
            await waiter.wait()
        if ref.turn_id in self.errors:
            raise RuntimeError(f"turn {text!r} failed: {self.errors[ref.turn_id]}")
        return self.replies.get(ref.turn_id, "")


async def _measured(
    driver: Any, turns: _Turns, server_pid: int, text: str
) -> tuple[float, float, float]:
    """Settle, then one message: (latency s, agent CPU s, epoch s at its start)."""
    await settle(server_pid)
    agents = run_pids(server_pid)
    mark, c0, t0 = time.time(), tree_cpu_s(server_pid, agents), time.perf_counter()
    await turns.run(driver, text)
    return time.perf_counter() - t0, tree_cpu_s(server_pid, agents) - c0, mark


async def one_run(
    cli_env: Any, e2e_support: Any, entry: dict[str, Any], mode: str, *, env: dict[str, str],
    texts: tuple[str, ...] = ("hello", "again"),
) -> dict[str, Any]:  # fmt: skip
    """One fresh claude process in ``mode``: the measured messages' latency and CPU, the model
    requests seen before the first measured message, the marks (epoch s) of each message."""
    from alice_trio.models import RunRequest
    from alice_trio.providers.claude import ClaudeConfig
    from alice_trio.sessions.claude_stream import ClaudeStreamDriver

    with tempfile.TemporaryDirectory(prefix="alice-claude-first-") as tmp:
        server = e2e_support.FakeServer(Path(tmp) / "server")
        setup = cli_env.build("claude", Path(tmp) / "claude", server.port, entry)
        try:
            config = ClaudeConfig(
                command=setup.binary, env={**setup.env, **env},
                workspace_dir=setup.workspace, is_sandbox=True,
            )  # fmt: skip
            driver = ClaudeStreamDriver(config, RunRequest(user_text="-"))
            turns = _Turns()
            out: dict[str, Any] = {"latency_s": [], "cpu_s": [], "marks": []}
            async with trio.open_nursery() as nursery:
                await nursery.start(driver.run, turns.emit)
                if mode in ("spare", "after_turn"):
                    await driver.warm_up()
                    out["warmed_up"] = driver.warmed_up
                if mode == "after_turn":
                    await settle(server.proc.pid)
                    await turns.run(driver, "a turn before the measured conversation")
                    await turns.run(driver, "/clear")
                out["model_requests_before"] = len(server.model_requests())
                for text in texts:
                    lat, cpu, t0 = await _measured(driver, turns, server.proc.pid, text)
                    out["latency_s"].append(round(lat, 4))
                    out["cpu_s"].append(round(cpu, 4))
                    out["marks"].append(t0)
                out["request_times"] = [r.get("t") for r in server.model_requests()]
                await driver.aclose(graceful=True)
                nursery.cancel_scope.cancel()
            return out
        finally:
            from procscan import kill_all

            kill_all(e2e_support.run_processes(setup))
            server.close()


def partition(profile: dict[str, Any], first: tuple[float, float],
              later: list[tuple[float, float]], top: int = 30) -> dict[str, Any]:  # fmt: skip
    """Split a Bun/Chrome ``.cpuprofile``'s samples in the window ``first`` (epoch seconds) into
    those whose every frame also ran in a ``later`` window and, by the outermost frame that
    never ran in them, the rest (ms, the ``top`` biggest)."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", ())}

    def frame(nid: int) -> str:
        cf = nodes[nid]["callFrame"]
        url = cf["url"].rsplit("/", 1)[-1]
        name = cf["functionName"] or "(anonymous)"
        return f"{name} {url}:{cf['lineNumber']}:{cf['columnNumber']}"

    samples: list[tuple[float, float, list[str]]] = []
    t = profile["startTime"]
    deltas = profile["timeDeltas"]
    for i, (sample, dt) in enumerate(zip(profile["samples"], deltas, strict=False)):
        t += dt
        weight = deltas[i + 1] / 1000 if i + 1 < len(deltas) else 0.0
        chain, nid = [], sample
        while nid is not None:
            chain.append(frame(nid))
            nid = parent.get(nid)
        samples.append((t / 1e6, weight, chain[::-1]))

    def within(w: tuple[float, float]) -> list[tuple[float, list[str]]]:
        return [(wt, ch) for ts, wt, ch in samples if w[0] <= ts <= w[1]]

    seen_later = {f for w in later for _, ch in within(w) for f in ch}
    first_only: dict[str, float] = collections.defaultdict(float)
    common = total = 0.0
    for weight, chain in within(first):
        total += weight
        new = next((f for f in chain if f not in seen_later), None)
        if new is None:
            common += weight
        else:
            first_only[new] += weight
    later_ms = [sum(wt for wt, _ in within(w)) for w in later]
    biggest = sorted(((v, k) for k, v in first_only.items()), reverse=True)[:top]
    return {
        "first_ms": round(total, 1),
        "later_ms": [round(x, 1) for x in later_ms],
        "first_in_frames_that_ran_again_ms": round(common, 1),
        "first_only_ms": round(total - common, 1),
        "first_only_entries": len(first_only),
        "first_only_top": [[round(v, 1), k] for v, k in biggest],
        "top_share": round(sum(v for v, _ in biggest) / (total - common), 2)
        if total > common else None,
    }  # fmt: skip


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of a mode's runs (index 0: the new conversation's first message, 1: warm)."""
    good = [r for r in rows if "error" not in r]
    res: dict[str, Any] = {"runs": len(good), "errors": [r["error"] for r in rows if "error" in r]}
    if not good:
        return res
    for what in ("latency_s", "cpu_s"):
        first = median([r[what][0] for r in good])
        warm = median([r[what][1] for r in good])
        res[what] = {
            "first_median": round(first, 4),
            "warm_median": round(warm, 4),
            "new_over_warm": round(first / warm, 2) if warm else None,
            "first": [r[what][0] for r in good],
            "warm": [r[what][1] for r in good],
        }
    res["model_requests_before_first"] = [r["model_requests_before"] for r in good]
    return res


async def run_cli(cli: str, entry: dict[str, Any], manifest: dict[str, Any], a: Any) -> Any:
    cli_env, e2e_support = _import_e2e()
    out: dict[str, Any] = {"version": entry.get("version", "")}
    modes = [m for m in a.modes.split(",") if m]
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(a.runs):  # the modes interleaved: the machine's load hits them alike
        for mode in modes:
            try:
                rows[mode].append(await one_run(cli_env, e2e_support, entry, mode, env={}))
            except Exception as exc:  # report it, go on
                rows[mode].append({"error": f"{type(exc).__name__}: {exc}"[:2000]})
    for mode in modes:
        out[mode] = summarize(rows[mode])
    if a.profile:
        out["profile"] = await _profile(cli_env, e2e_support, entry, Path(a.profile))
    return out


async def _profile(cli_env: Any, e2e_support: Any, entry: dict[str, Any], where: Path) -> Any:
    where.mkdir(parents=True, exist_ok=True)
    before = set(where.glob("*.cpuprofile"))
    opts = f"--cpu-prof --cpu-prof-dir={where} --cpu-prof-interval=200"
    texts = ("hello", "again", "third")
    env = {"BUN_OPTIONS": opts}
    run = await one_run(cli_env, e2e_support, entry, "spare", env=env, texts=texts)
    written = sorted(set(where.glob("*.cpuprofile")) - before)
    if not written:
        return {"error": "no .cpuprofile written (not a Bun executable, or BUN_OPTIONS ignored)"}
    profile = json.loads(written[-1].read_text())
    # window of a message: its user line → its model request (the part that differs)
    ends = [min(t for t in run["request_times"] if t is not None and t >= m) for m in run["marks"]]
    windows = list(zip(run["marks"], ends, strict=True))
    result = partition(profile, windows[0], windows[1:])
    result.update(file=str(written[-1]), cpu_s=run["cpu_s"], latency_s=run["latency_s"],
                  to_model_request_ms=[round((e - m) * 1000, 1) for m, e in windows])  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.claude_first_turn", description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--profile", default="", help="directory for one profiled run (Bun --cpu-prof)")
    a = p.parse_args(argv)
    result: dict[str, Any] = {"runs": a.runs, "load": list(os.getloadavg()), "providers": {}}
    run_installed_clis(result, ["claude"], run_cli, a, "claude first turn")
    result["load_after"] = list(os.getloadavg())
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
