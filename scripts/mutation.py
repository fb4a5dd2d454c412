#!/usr/bin/env python3
"""Run mutmut on one module set of pyproject.toml's ``[tool.alice-trio-mutation.*]`` tables.

Usage (from the repo root; by hand, not in CI — see docs/mutation-testing.md)::

    scripts/mutation.py MODULE [--max-children N]   # fresh run, then the summary
    scripts/mutation.py MODULE --only 'GLOB' ...    # fresh run of the mutants named (fnmatch)
    scripts/mutation.py MODULE --results            # summary of the last run
    scripts/mutation.py MODULE --show MUTANT        # diff of one mutant
    scripts/mutation.py --list                      # the module sets

Each set runs in its own scratch tree ``mutants/MODULE/`` (git-ignored): a copy of ``src/`` and
``tests/`` plus a pyproject.toml whose ``[tool.mutmut]`` names that set's paths and tests, so
sets can run side by side. mutmut's copy of the package goes first on ``PYTHONPATH`` (the
editable install would otherwise win), ``CI=1`` makes Hypothesis derandomized so a mutant is
judged by the same examples every time, and ``ALICE_TRIO_SUBREAPER=0`` keeps the engine from making
mutmut's process a subreaper (mutmut reaps its workers with ``os.wait()`` and crashes on the pid of
an adopted orphan).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sets() -> dict[str, dict[str, list[str]]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    sets: dict[str, dict[str, list[str]]] = data["tool"]["alice-trio-mutation"]
    return sets


def _mutmut_section(paths: list[str], tests: list[str], args: list[str]) -> str:
    def arr(items: list[str]) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    return (
        "[tool.mutmut]\n"
        f"paths_to_mutate = {arr(paths)}\n"
        f"tests_dir = {arr(tests)}\n"
        f"pytest_add_cli_args = {arr(args)}\n"
        'also_copy = ["src/alice_trio", "benchmarks"]\n'
    )


def _prepare(name: str, spec: dict[str, list[str]]) -> Path:
    work = ROOT / "mutants" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".hypothesis", ".pytest_cache", "mutants")
    shutil.copytree(ROOT / "src", work / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    # some session tests run the fake CLIs of benchmarks/ (fake_claude.py)
    shutil.copytree(ROOT / "benchmarks", work / "benchmarks", ignore=ignore)
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    # drop the framing [tool.mutmut] table and every set table; append this set's table
    text = re.split(r"^\[tool\.mutmut\]", text, maxsplit=1, flags=re.M)[0]
    tests = [t for t in spec["tests"] if (ROOT / t).exists()]
    section = _mutmut_section(spec["paths"], tests, spec.get("args", []))
    (work / "pyproject.toml").write_text(text + section, "utf-8")
    (work / "mutants" / "src").mkdir(parents=True)  # must exist before Python starts
    return work


def _env(work: Path) -> dict[str, str]:
    # ALICE_TRIO_SUBREAPER=0: mutmut collects its workers with os.wait(); a subreaper set in its
    # process by the tests (stats phase) would hand it orphans too, and it crashes on their pids
    return {
        **os.environ,
        "PYTHONPATH": str(work / "mutants" / "src"),
        "CI": "1",
        "ALICE_TRIO_SUBREAPER": "0",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", nargs="?")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--results", action="store_true")
    parser.add_argument("--show")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="GLOB",
        help="run only the mutants whose names match (e.g. '*ǁHostPoolǁ_acquire__mutmut_*')",
    )
    args = parser.parse_args()
    sets = _sets()
    if args.list or args.module is None:
        for name, spec in sets.items():
            print(f"{name}: {' '.join(spec['paths'])}")
        return 0
    if args.module not in sets:
        parser.error(f"unknown module set {args.module!r}; known: {', '.join(sets)}")
    work = ROOT / "mutants" / args.module
    if args.show:
        return subprocess.call(["mutmut", "show", args.show], cwd=work, env=_env(work))
    if not args.results:
        work = _prepare(args.module, sets[args.module])
        rc = subprocess.call(
            ["mutmut", "run", "--max-children", str(args.max_children), *args.only],
            cwd=work,
            env=_env(work),
        )
        if rc:
            return rc
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"],
        cwd=work,
        env=_env(work),
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts: dict[str, int] = {}
    for line in out.splitlines():
        if ": " in line:
            status = line.rsplit(": ", 1)[1].strip()
            counts[status] = counts.get(status, 0) + 1
    print(out, end="")
    print(f"{args.module}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
