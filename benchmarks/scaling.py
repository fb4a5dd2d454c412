"""Scaling on the real CLIs: a new conversation's first run vs a warm run, and memory per extra
idle conversation, through ``SessionBackend`` — process-per-conversation and the pooled default
(shared processes where the protocol allows + one warm spare) side by side in the same run.

Needs the e2e install (``python tests/e2e/install_clis.py``); a CLI that is not installed is
skipped with the install's reason. Every CLI talks to the e2e fake model server on loopback
(answers at once), so the latencies are the CLI's and ours, not a model's.

* **first run of a new conversation**: the time of ``backend.run`` for a key the backend has
  never seen; before each one the pooled backend is given the time to have its spare ready
  (a spare is made *ahead of need*: that is the point), the baseline starts cold as today.
* **warm run**: the second run of the same conversation (pooled: once the spare taken by the
  first run has been replaced, so that no agent is starting during either measured run).
  Before either measured run the run's processes are also let **settle** (idle CPU, see
  :func:`settle`): a CLI answers its handshake before it has finished starting, and a spare
  is made ahead of need, not a second before it.
* **pooled_before**: the pooled default without the warm-up work of 2026-12-01 — no
  preloading of a Python CLI's lazy imports (legacy kimi), and a spare taken from a shared
  process replaced at once instead of after the taking conversation's first turn — for a
  before/after in the same run.
* ``pooled_no_warm_up`` (CLIs whose provider record names a ``spare_warm_up`` — claude — or
  ``preload_scripts`` — legacy kimi): the pooled run with the spare's warm-up switched off
  (no ``warm_up()``; no warm-up scripts, the preloaded imports kept), side by side with the
  default.
* **agent CPU** (``*_agent_cpu_median_s``): the CPU time the run's processes that existed
  before the measured run (the agent serving it; not a replacement spare it starts) used
  during it — less sensitive to other load on the machine than the latencies (pooled runs).
* **memory per extra idle conversation**: PSS (``/proc/<pid>/smaps_rollup``) summed over every
  process of the run (our descendants but the fake model server), after 1 and after 1 + M idle
  ones; (after − before) / M. ``conversations_per_gib`` = 1024 / that.

``python -m benchmarks.scaling [--cli NAME ...] [--runs N] [--extra M]`` prints one JSON
object (``--quick`` without ``--cli`` skips the section: the smoke run stays short).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from .common import REPO, emit, median

E2E = REPO / "tests" / "e2e"
ALL = ("codex", "claude", "gemini", "kimi", "kimi_legacy", "opencode")
SHARED = ("codex", "gemini", "kimi", "opencode")  # whose conversations share a process


def _import_e2e() -> Any:
    sys.path.insert(0, str(E2E))
    import cli_env
    import e2e_support

    return cli_env, e2e_support


def smaps_kb(pid: int, *fields: str) -> int:
    """The sum of ``fields`` (e.g. ``"Pss:"``) of ``/proc/PID/smaps_rollup``, kB; 0 for a
    process that is gone."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(fields):
                total += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return total


def pss_kb(pid: int) -> int:
    return smaps_kb(pid, "Pss:")


def run_pids(exclude: int) -> list[int]:
    """Every descendant of this process but ``exclude`` (the fake model server) and its
    subtree. (Not the env marker: legacy kimi's setproctitle overwrites its environ.)"""
    from alice_trio.engine.reaper import _subtree  # the reaper's own /proc tree walk

    return [p for p in _subtree(os.getpid()) if p != os.getpid() and p not in _subtree(exclude)]


def tree_cpu_s(exclude: int, pids: list[int] | None = None) -> float:
    """CPU seconds used so far by ``pids`` (default: every process of the run but the fake
    model server; the threads' ``/proc/<pid>/task/*/schedstat``; 0 where not readable)."""
    total = 0
    for pid in run_pids(exclude) if pids is None else pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


async def settle(
    exclude: int, *, window: float = 0.5, quiet: float = 0.02, limit: float = 20.0
) -> float:
    """Wait until the run's processes are idle: less than ``quiet`` of one CPU over ``window``
    seconds (at most ``limit`` s). A CLI answers its handshake long before it has finished
    starting (claude 2.1: 1–3 s more of background start-up work in the same process), and
    a measured run must not pay for a start that is still going on — neither a spare's nor
    its replacement's. Returns the seconds waited."""
    t0 = time.perf_counter()
    last = tree_cpu_s(exclude)
    while time.perf_counter() - t0 < limit:
        await trio.sleep(window)
        now = tree_cpu_s(exclude)
        if now - last < quiet * window:
            break
        last = now
    return time.perf_counter() - t0


async def _wait_spare(backend: Any, limit: float = 60.0) -> bool:
    deadline = trio.current_time() + limit
    while trio.current_time() < deadline:
        if len(backend.pool.spares) >= backend.scaling.warm:
            return True
        await trio.sleep(0.05)
    return False


async def measure(
    provider: Any,
    config: Any,
    server_pid: int,
    *,
    pooled: bool,
    runs: int,
    extra: int,
    before: bool = False,
    warm_up: bool = True,
) -> dict[str, Any]:
    from alice_trio.models import RunRequest
    from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
    from alice_trio.sessions.scaling import ScalingConfig

    scaling = ScalingConfig() if pooled else ScalingConfig(share=False, warm=0)
    new_s: list[float] = []
    warm_s: list[float] = []
    spare_ready: list[bool] = []
    settle_s: list[float] = []
    new_cpu: list[float] = []  # CPU of the agent processes that existed before the run
    warm_cpu: list[float] = []

    def req(key: str, text: str, thread_id: str = "") -> RunRequest:
        return RunRequest(user_text=text, env={SESSION_KEY_ENV: key}, thread_id=thread_id)

    async with SessionBackend(provider, config, scaling=scaling, idle_ttl=600) as backend:
        backend.pool.refill_after_first_turn = not before
        if not warm_up:  # before the first spare is made (its start is only scheduled yet)
            backend.pool.warm_up = False
        for i in range(runs):
            if pooled:
                spare_ready.append(await _wait_spare(backend))
            settle_s.append(await settle(server_pid))
            agents = run_pids(server_pid)  # not the replacement this run starts
            c0, t0 = tree_cpu_s(server_pid, agents), time.perf_counter()
            first = await backend.run(req(f"lat-{i}", f"hello {i}"))
            new_s.append(time.perf_counter() - t0)
            new_cpu.append(tree_cpu_s(server_pid, agents) - c0)
            if pooled:  # the taken spare's replacement is not starting during the warm run
                await _wait_spare(backend)
            settle_s.append(await settle(server_pid))
            agents = run_pids(server_pid)
            c0, t0 = tree_cpu_s(server_pid, agents), time.perf_counter()
            await backend.run(req(f"lat-{i}", f"again {i}", thread_id=first.next_thread_id))
            warm_s.append(time.perf_counter() - t0)
            warm_cpu.append(tree_cpu_s(server_pid, agents) - c0)
        # memory: everything of the latency runs is closed first
        for key in list(backend.open_sessions()):
            backend._drop(backend._sessions[key], graceful=True)
        await trio.sleep(1.0)
        if pooled:
            await _wait_spare(backend)
        await backend.run(req("mem-0", "hello"))
        if pooled:
            await _wait_spare(backend)
        await trio.sleep(1.0)
        pids = run_pids(server_pid)
        before = sum(pss_kb(p) for p in pids)
        for j in range(1, extra + 1):
            await backend.run(req(f"mem-{j}", "hello"))
            if pooled:
                await _wait_spare(backend)
        await trio.sleep(1.0)
        pids_after = run_pids(server_pid)
        after = sum(pss_kb(p) for p in pids_after)
        processes = len(pids_after)
        shared_hosts = len(backend.pool.hosts)
    per_conv_mb = max(after - before, 0) / extra / 1024
    new_med, warm_med = median(new_s), median(warm_s)
    return {
        "new_s": [round(x, 4) for x in new_s],
        "warm_s": [round(x, 4) for x in warm_s],
        "new_median_s": round(new_med, 4),
        "warm_median_s": round(warm_med, 4),
        "new_over_warm": round(new_med / warm_med, 2) if warm_med > 0 else None,
        **(_agent_cpu(new_cpu, warm_cpu) if pooled else {}),
        "mb_per_idle_conversation": round(per_conv_mb, 1),
        "conversations_per_gib": round(1024 / per_conv_mb, 1) if per_conv_mb > 0.05 else None,
        "pss_mb_before": round(before / 1024, 1),
        "pss_mb_after": round(after / 1024, 1),
        "extra_conversations": extra,
        "processes_after": processes,
        "shared_hosts": shared_hosts,
        "settle_median_s": round(median(settle_s), 2),
        **({"spare_ready": spare_ready} if pooled else {}),
    }


def _agent_cpu(new_cpu: list[float], warm_cpu: list[float]) -> dict[str, Any]:
    """The agent-CPU fields (pooled runs only: per process, the agent of a new conversation
    does not exist before its run)."""
    new, warm = median(new_cpu), median(warm_cpu)
    return {
        "new_agent_cpu_median_s": round(new, 4),
        "warm_agent_cpu_median_s": round(warm, 4),
        "agent_cpu_new_over_warm": round(new / warm, 2) if warm > 0 else None,
    }


def without_preload(provider: str, config: Any) -> Any:
    """The provider record with its flavor's ``SessionSpec.preload`` and ``preload_scripts``
    emptied (``None`` when it has nothing to preload)."""
    import attrs

    from alice_trio.providers import get_provider

    record = get_provider(provider)
    flavor = record.flavor_of(config)
    if not (flavor.session.preload or flavor.session.preload_scripts):
        return None
    session = attrs.evolve(flavor.session, preload=(), preload_scripts=())
    bare = attrs.evolve(flavor, session=session)
    flavors = tuple(bare if f is flavor else f for f in record.flavors)
    return attrs.evolve(record, flavors=flavors)


def without_preload_scripts(provider: str, config: Any) -> Any:
    """The provider record with its flavor's ``SessionSpec.preload_scripts`` emptied (the
    preloaded imports kept; ``None`` when it has no scripts)."""
    import attrs

    from alice_trio.providers import get_provider

    record = get_provider(provider)
    flavor = record.flavor_of(config)
    if not flavor.session.preload_scripts:
        return None
    bare = attrs.evolve(flavor, session=attrs.evolve(flavor.session, preload_scripts=()))
    flavors = tuple(bare if f is flavor else f for f in record.flavors)
    return attrs.evolve(record, flavors=flavors)


def _warms_up(provider: str, config: Any) -> bool:
    """Whether the provider record gives these spares a warm-up (then the pooled run is also
    measured without it, side by side)."""
    from alice_trio.providers.registry import get_provider
    from alice_trio.sessions.registry import session_spec

    spec = session_spec(get_provider(provider), config)
    return bool(spec.spare_warm_up or spec.preload_scripts)


@attrs.define
class FreshCli:
    """One measurement's CLI: its provider name and config, the fake model server's pid, and
    (after the ``with``) how many of its processes were still alive and killed."""

    provider: str
    config: Any
    server_pid: int
    left: int = 0


@contextlib.contextmanager
def fresh_cli(
    cli: str, entry: dict[str, Any], manifest: dict[str, Any], label: str
) -> Iterator[FreshCli]:
    """A fresh home, workspace and fake model server for one measurement of ``cli`` (its e2e
    install ``entry``); on the way out every process of the run is killed (counted in
    ``left``) and the server closed."""
    cli_env, e2e_support = _import_e2e()
    with tempfile.TemporaryDirectory(prefix=f"alice-{label}-{cli}-") as tmp:
        server = e2e_support.FakeServer(Path(tmp) / "server")
        try:
            setup = cli_env.build(
                cli, Path(tmp) / cli, server.port, entry,
                catalog_cache=Path(manifest["dir"]) / "codex_model_catalog.json",
            )  # fmt: skip
            provider, config = cli_env.provider_config(setup)
            run = FreshCli(provider=provider, config=config, server_pid=server.proc.pid)
            try:
                yield run
            finally:
                from procscan import kill_all

                left = e2e_support.run_processes(setup)
                run.left = len(left)
                kill_all(left)
        finally:
            server.close()


async def run_cli(cli: str, entry: dict[str, Any], manifest: dict[str, Any], a: Any) -> Any:
    out: dict[str, Any] = {"version": entry.get("version", ""), "shared": cli in SHARED}
    # "pooled_before": the pooled default without the warm-up of 2026-12-01 (no preloading, a
    # spare taken from a shared process replaced at once), in the same run
    for mode in ("per_process", "pooled_before", "pooled", "pooled_no_warm_up"):
        with fresh_cli(cli, entry, manifest, "scaling") as run:
            provider, config = run.provider, run.config
            if mode == "pooled_no_warm_up" and not _warms_up(provider, config):
                continue
            if mode == "pooled_before":
                provider = without_preload(provider, config) or provider
            if mode == "pooled_no_warm_up":
                provider = without_preload_scripts(provider, config) or provider
            try:
                out[mode] = await measure(
                    provider, config, run.server_pid, pooled=mode != "per_process",
                    before=mode == "pooled_before", runs=a.runs, extra=a.extra,
                    warm_up=mode != "pooled_no_warm_up",
                )  # fmt: skip
            except Exception as exc:  # report it, go on with the next CLI
                out[mode] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    p.add_argument(
        "--quick", action="store_true",
        help="skip (the smoke run stays short); with --cli: 2 runs, 1 extra",
    )  # fmt: skip
    p.add_argument("--cli", action="append", choices=ALL)
    p.add_argument("--runs", type=int, default=0)
    p.add_argument("--extra", type=int, default=0)
    a = p.parse_args(argv)
    clis = a.cli or list(ALL)
    a.runs = a.runs or (2 if a.quick else 5)
    a.extra = a.extra or (1 if a.quick else 4)
    result: dict[str, Any] = {"runs": a.runs, "extra": a.extra, "providers": {}}
    if a.quick and not a.cli:
        result["skipped"] = (
            "quick run: the real CLIs take minutes; run `python -m benchmarks.scaling`"
        )
        emit(result)
        return 0
    run_installed_clis(result, clis, run_cli, a, "scaling")
    emit(result)
    return 0


def run_installed_clis(
    result: dict[str, Any], clis: list[str], run_cli: Any, a: Any, label: str
) -> None:
    """``result["providers"][cli] = trio.run(run_cli, cli, entry, manifest, a)`` for each CLI
    the e2e install manifest has; a CLI it lacks (or no manifest) is recorded as skipped."""
    try:
        _, e2e_support = _import_e2e()
        manifest = e2e_support.load_manifest()
    except Exception as exc:  # pragma: no cover - a broken checkout
        manifest = None
        result["skipped"] = f"cannot load the e2e helpers: {exc}"
    if manifest is None:
        result.setdefault("skipped", "no e2e CLI manifest: run `python tests/e2e/install_clis.py`")
        return
    for cli in clis:
        entry = (manifest.get("clis") or {}).get(cli)
        if not entry or not entry.get("ok"):
            reason = (entry or {}).get("reason", "not in the e2e install manifest")
            result["providers"][cli] = {"skipped": f"{cli}: {reason}"}
            continue
        print(f"… {label} {cli}", file=sys.stderr, flush=True)
        result["providers"][cli] = trio.run(run_cli, cli, entry, manifest, a)


if __name__ == "__main__":
    sys.exit(main())
