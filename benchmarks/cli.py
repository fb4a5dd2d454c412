"""The ``alice-trio`` command's own cost: rendering a flood of events and a huge reply.

    python -m benchmarks.cli [--quick] [--events N] [--big BYTES] [--repeats R]
                             [--compare SRC] [--flood-only] [--instructions]

Every subject is a fresh process on the same fake ``codex exec --json`` (``fake_codex.py``),
run interleaved (one of each per round) so they share the machine's noise:

* ``fake``: the fake alone, stdout to /dev/null (the producer's floor);
* ``bare``: 30 lines of trio + orjson (``cli_subjects.py bare``): read, parse, write one plain
  line per event to a file;
* ``library``: ``OneShotBackend.run`` with a no-op ``on_raw_event`` (no rendering at all);
  ``library_events`` the same with a no-op ``on_events`` (the typed events, a batch per call);
* ``cli_file``: ``alice-trio run --provider codex --command FAKE``, progress to a file (one
  plain line per event);
* ``cli_tty``: the same with stderr on a pseudo-terminal (live frames and a status line).

Flood: ``--events`` progress events (200,000; 20,000 with ``--quick``), wall time per subject
(median) and the ratios ``cli_file / bare`` and ``cli_file / library`` (what rendering adds).
Each ratio is given twice: of the medians (``cli_over_bare``), and as the median of the
per-round ratios (``paired``: ``cli_file`` over ``bare`` of the same round, so a burst of load
that slows one round slows both sides of its ratio) with their spread (``…_rounds``: every
round's ratio). On a shared machine the paired median is the figure to trust; the load
average at the start and the end of the flood is reported beside it.
``--compare SRC`` (a ``src`` folder of another tree, e.g. ``git archive HEAD~3 | tar -x -C
/tmp/old``): ``library``, ``cli_file`` and ``cli_tty`` also run with that tree first on
``PYTHONPATH`` (``library@old``, …), in the same rounds, for before/after ratios from one run.
Every subject runs with bytecode caches, as an installed program does (``pip install``
compiles them): in a private ``PYTHONPYCACHEPREFIX``, written by one unmeasured warm-up run of
each subject, also when the environment sets ``PYTHONDONTWRITEBYTECODE`` (a development setup
that would otherwise make every start of the CLI compile alice_trio's modules from source).

``--instructions``: the same subjects (``bare``, ``library``, ``cli_file``) counted in CPU
instructions instead of seconds, each under ``valgrind --tool=callgrind`` (the subject's own
process; its fake is not counted), with ``--events`` events and with none: instructions per
event and at start-up, and the whole flood's ratio ``cli_file / bare``. A count does not move
with the machine's load, so it is the figure to compare two trees by (it is not time: cache
misses and the fake's share are not in it). 20,000 events by default (valgrind runs Python
~50× slower); skipped with the reason when valgrind is not installed.

Big reply: one agent message of ``--big`` bytes (50 MB; 10 MB quick) through ``cli_file``
(``big_reply_trailing_space``: the same message ending in a space, which the library's
``strip()`` calls copy):
peak RSS of the CLI process (its own ``VmHWM``, see ``peak.py``) minus the peak of the same
command on a one-line reply, over the size; the same for ``library``.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import HERE, REPO, callgrind_instructions, emit, median, tmpdir


def _launcher(directory: str) -> str:
    path = Path(directory) / "codex"
    path.write_text(f"#!{sys.executable} -IS\n" + (HERE / "fake_codex.py").read_text())
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _argv(subject: str, fake: str, peak_file: str) -> list[str]:
    py = sys.executable
    if subject == "fake":
        return [fake]
    peak = [py, "-m", "benchmarks.peak", peak_file]
    if subject in ("bare", "library", "library_events"):
        return [*peak, "benchmarks.cli_subjects", subject, fake]
    return [*peak, "alice_trio.cli.main", "run", "--provider", "codex", "--command", fake,
            "bench"]  # fmt: skip


def _run(subject: str, fake: str, d: str, env: dict[str, str]) -> dict[str, Any]:
    """One run; wall seconds, CPU seconds, peak RSS, progress lines and reply size.
    ``subject@old``: ``subject`` with ``$BENCH_OLD_SRC`` first on ``PYTHONPATH``."""
    subject, old, _ = subject.partition("@")
    if old:
        path = os.pathsep.join(p for p in (env["BENCH_OLD_SRC"], env.get("PYTHONPATH")) if p)
        env = {**env, "PYTHONPATH": path}
    name = f"{subject}-{old}" if old else subject
    err_path, out_path = Path(d) / f"{name}.err", Path(d) / f"{name}.out"
    peak_path = Path(d) / f"{name}.peak"
    peak_path.unlink(missing_ok=True)
    master = -1
    with open(out_path, "wb") as out, open(err_path, "wb") as err_file:
        stdout: Any = subprocess.DEVNULL if subject == "fake" else out
        stderr: Any = err_file
        if subject == "cli_tty":
            master, slave = pty.openpty()
            stderr = slave
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            _argv(subject, fake, str(peak_path)),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=str(REPO),
        )
        tty_bytes = 0
        if master >= 0:
            os.close(slave)
            while True:  # drain the terminal like a terminal emulator would
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    try:
                        data = os.read(master, 1 << 16)
                    except OSError:
                        break
                    if not data:
                        break
                    tty_bytes += len(data)
                elif proc.poll() is not None:
                    break
        _, status, usage = os.wait4(proc.pid, 0)  # CPU: the subject and its fake
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if master >= 0:
            os.close(master)
    if proc.returncode != 0:
        raise RuntimeError(f"{subject} exited {proc.returncode}: {err_path.read_bytes()[-2000:]!r}")
    with open(err_path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss": int(peak_path.read_text()) if peak_path.exists() else 0,
        "progress_lines": lines,
        "progress_bytes": tty_bytes or err_path.stat().st_size,
        "reply_bytes": out_path.stat().st_size,
    }


SUBJECTS = ("fake", "bare", "library", "library_events", "cli_file", "cli_tty")
#: the subjects measured on the ``--compare`` tree too
COMPARED = ("library", "cli_file", "cli_tty")


def _env(d: str, **extra: str) -> dict[str, str]:
    """The subjects' environment: bytecode cached under ``d`` (see the module docstring)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(d) / "pycache"), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _warm_up(subjects: list[str], fake: str, d: str, env: dict[str, str]) -> None:
    """One short run of each subject: its bytecode caches are written, not measured."""
    for subject in subjects:
        _run(subject, fake, d, {**env, "FAKE_EVENTS": "10", "FAKE_BIG": "0"})


def flood(events: int, repeats: int, compare: str = "") -> dict[str, Any]:
    subjects = list(SUBJECTS)
    if compare:
        subjects += [f"{s}@old" for s in COMPARED]
    with tmpdir("cli") as d:
        fake = _launcher(d)
        env = _env(d, FAKE_EVENTS=str(events), FAKE_BIG="0", NO_COLOR="")
        if compare:
            env["BENCH_OLD_SRC"] = str(Path(compare).resolve())
        _warm_up(subjects, fake, d, env)
        load_start = _load()
        samples: dict[str, list[dict[str, Any]]] = {s: [] for s in subjects}
        for _ in range(repeats):
            for subject in subjects:
                samples[subject].append(_run(subject, fake, d, env))
        load_end = _load()
    rows: dict[str, Any] = {}
    for subject, runs in samples.items():
        rows[subject] = {
            "wall_s": round(median([r["wall_s"] for r in runs]), 3),
            "cpu_s": round(median([r["cpu_s"] for r in runs]), 3),
            "progress_lines": runs[-1]["progress_lines"],
            "progress_bytes": runs[-1]["progress_bytes"],
        }
    bare, lib, cli = (rows[s]["wall_s"] for s in ("bare", "library", "cli_file"))
    cpu = {s: rows[s]["cpu_s"] for s in ("bare", "library", "cli_file", "cli_tty")}
    try:
        import orjson  # noqa: F401

        parser = "orjson"
    except ImportError:
        parser = "json (orjson not installed: pip install -e '.[bench]')"
    compared: dict[str, Any] = {}
    if compare:
        compared["compared_with"] = str(compare)
        for s in COMPARED:
            new, old = rows[s], rows[f"{s}@old"]
            compared[f"{s}_new_over_old"] = {
                k: round(new[k] / old[k], 2) for k in ("wall_s", "cpu_s") if old[k]
            }
            compared[f"{s}_new_over_old_paired"] = _paired(samples, s, f"{s}@old")
            compared[f"{s}_old_over_bare"] = {
                k: round(old[k] / rows["bare"][k], 2) for k in ("wall_s", "cpu_s")
            }
            compared[f"{s}_old_over_bare_paired"] = _paired(samples, f"{s}@old", "bare")
    paired = {
        f"{a}_over_{b}": _paired(samples, a, b)
        for a, b in (("cli_file", "bare"), ("library", "bare"), ("library_events", "bare"),
                     ("cli_file", "library"), ("cli_tty", "library"))
    }  # fmt: skip
    return {
        "events": events,
        "repeats": repeats,
        "bare_parser": parser,
        "loadavg_start_end": [load_start, load_end],
        "subjects": rows,
        **compared,
        # the median of the rounds' own ratios (see the module docstring): the figure to trust
        "cli_over_bare_paired": paired["cli_file_over_bare"]["wall_s"],
        "cpu_cli_over_bare_paired": paired["cli_file_over_bare"]["cpu_s"],
        "paired": paired,
        "cli_over_bare": round(cli / bare, 2),
        "cli_over_library": round(cli / lib, 2),
        "library_over_bare": round(lib / bare, 2),
        "library_events_over_bare": round(rows["library_events"]["wall_s"] / bare, 2),
        "cli_tty_over_library": round(rows["cli_tty"]["wall_s"] / lib, 2),
        # CPU seconds (the subject and its fake): steadier than wall time on a loaded machine
        "cpu_cli_over_bare": round(cpu["cli_file"] / cpu["bare"], 2),
        "cpu_cli_over_library": round(cpu["cli_file"] / cpu["library"], 2),
        "cpu_cli_tty_over_library": round(cpu["cli_tty"] / cpu["library"], 2),
    }


def _paired(samples: dict[str, list[dict[str, Any]]], a: str, b: str) -> dict[str, Any]:
    """``a`` over ``b`` round by round (both ran in the same round): the median per measure,
    and every round's ratio (``…_rounds``)."""
    out: dict[str, Any] = {}
    for k in ("wall_s", "cpu_s"):
        ratios = [x[k] / y[k] for x, y in zip(samples[a], samples[b], strict=True) if y[k]]
        out[k] = round(median(ratios), 2) if ratios else None
        out[f"{k}_rounds"] = [round(r, 2) for r in ratios]
    return out


def _load() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0


def _instructions_of(subject: str, fake: str, d: str, env: dict[str, str]) -> int:
    """CPU instructions of one run of ``subject`` (its own process) under callgrind."""
    argv = _argv(subject, fake, str(Path(d) / "unused.peak"))
    argv = [sys.executable, *argv[argv.index("benchmarks.peak") + 2 :]]  # no peak wrapper
    argv[1:1] = ["-m"]
    return callgrind_instructions(subject, argv, env)


def instructions(events: int) -> dict[str, Any]:
    """Instruction counts of ``bare``, ``library`` and ``cli_file`` (see the module docstring)."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (apt install valgrind)"}
    subjects = ("bare", "library", "cli_file")
    rows: dict[str, Any] = {}
    with tmpdir("cli-instr") as d:
        fake = _launcher(d)
        env = _env(d, FAKE_BIG="0", NO_COLOR="")
        _warm_up(list(subjects), fake, d, env)
        for subject in subjects:
            empty = _instructions_of(subject, fake, d, {**env, "FAKE_EVENTS": "0"})
            full = _instructions_of(subject, fake, d, {**env, "FAKE_EVENTS": str(events)})
            rows[subject] = {
                "start_up": empty,
                "per_event": round((full - empty) / events),
                "flood": full,
            }
    bare, cli = rows["bare"], rows["cli_file"]
    return {
        "events": events,
        "subjects": rows,
        "cli_over_bare": round(cli["flood"] / bare["flood"], 2),
        "cli_over_bare_per_event": round(cli["per_event"] / bare["per_event"], 2),
        # the same ratio for a 200k-event flood, from the counts per event and at start-up
        "cli_over_bare_at_200k": round(
            (cli["start_up"] + 200_000 * cli["per_event"])
            / (bare["start_up"] + 200_000 * bare["per_event"]),
            2,
        ),
    }


def big_reply(size: int, *, trailing_space: bool = False) -> dict[str, Any]:
    with tmpdir("cli-big") as d:
        fake = _launcher(d)
        env = _env(d, FAKE_EVENTS="0", FAKE_BIG="0")
        _warm_up(["cli_file", "library"], fake, d, env)
        small = _run("cli_file", fake, d, env)
        lib_small = _run("library", fake, d, env)
        env["FAKE_BIG"] = str(size)
        if trailing_space:
            env["FAKE_TRAILING_SPACE"] = "1"
        big = _run("cli_file", fake, d, env)
        lib_big = _run("library", fake, d, env)
    delta = max(0, big["peak_rss"] - small["peak_rss"])
    lib_delta = max(0, lib_big["peak_rss"] - lib_small["peak_rss"])
    return {
        "bytes": size,
        "trailing_space": trailing_space,
        "wall_s": round(big["wall_s"], 3),
        "library_wall_s": round(lib_big["wall_s"], 3),
        "peak_rss_mb": round(big["peak_rss"] / 1e6, 1),
        "base_peak_rss_mb": round(small["peak_rss"] / 1e6, 1),
        "peak_delta_mb": round(delta / 1e6, 1),
        "peak_delta_over_bytes": round(delta / size, 3),
        "library_peak_rss_mb": round(lib_big["peak_rss"] / 1e6, 1),
        "library_peak_delta_over_bytes": round(lib_delta / size, 3),
        "reply_bytes_on_stdout": big["reply_bytes"],
        "progress_bytes": big["progress_bytes"],
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--events", type=int)
    p.add_argument("--big", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--compare", default="", help="another tree's src folder, measured alongside")
    p.add_argument("--flood-only", action="store_true", help="skip the big-reply runs")
    p.add_argument("--instructions", action="store_true",
                   help="only the instruction counts under valgrind (see above)")  # fmt: skip
    a = p.parse_args()
    if a.instructions:
        emit({"instructions": instructions(a.events or 20_000)})
        return 0
    events = a.events or (20_000 if a.quick else 200_000)
    size = a.big or (10_000_000 if a.quick else 50_000_000)
    repeats = a.repeats or (1 if a.quick else 3)
    report: dict[str, Any] = {"flood": flood(events, repeats, a.compare)}
    if not a.flood_only:
        report["big_reply"] = big_reply(size)
        report["big_reply_trailing_space"] = big_reply(size, trailing_space=True)
    emit(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
