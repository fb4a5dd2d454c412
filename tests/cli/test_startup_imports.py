"""``alice-trio run --provider NAME`` starts with only what a run needs: no YAML parser, no
cattrs, no installed-package metadata, no HTTP client, none of the other commands' modules.

Each of them costs start-up time on every run (the CLI benchmark measures a flood against a bare
trio + orjson reader, start-up included); they are imported where they are used (a config file,
``-o``, an entry-point provider, ``--help``, opencode's HTTP session, ``chat``/``doctor``)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: modules (and packages: their submodules too) the ``run --provider`` path must not import
NOT_ON_THE_RUN_PATH = (
    "yaml",
    "cattrs",
    "importlib.metadata",
    "httpx",
    "rich",
    "jsonschema",
    "alice_trio.config_yaml",
    "alice_trio.config_structure",
    "alice_trio.cli.chat",
    "alice_trio.cli.doctor",
    "alice_trio.replay_cli",
    "alice_trio.provider_docs",
    "alice_trio.transports",
    "alice_trio.sessions.session",
    "alice_trio.sessions.backend",
)

#: runs the command in this interpreter as the console script does, then lists what it imported
_PROBE = """
import json, sys
out = sys.argv.pop(1)
from alice_trio.cli.entry import main
code = main()
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _fake_codex(tmp_path: Path) -> str:
    """The benchmark's fake ``codex exec --json`` (a few tool calls, then the reply)."""
    path = tmp_path / "codex"
    path.write_text(
        f"#!{sys.executable} -IS\n" + (ROOT / "benchmarks" / "fake_codex.py").read_text()
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _imported(tmp_path: Path, *args: str) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "FAKE_EVENTS": "25", "FAKE_BIG": "0"}
    env.pop("ALICE_TRIO_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *args],
        env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["code"] == 0
    return result["modules"], proc


def _unwanted(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in NOT_ON_THE_RUN_PATH)]


@pytest.mark.parametrize("output", [[], ["--json"], ["--quiet"], ["--jsonl"]])
def test_run_with_a_provider_imports_only_what_it_needs(tmp_path: Path, output: list[str]) -> None:
    fake = _fake_codex(tmp_path)
    modules, proc = _imported(
        tmp_path, "run", "--provider", "codex", "--command", fake, "--timeout", "60", *output,
        "hello",
    )  # fmt: skip
    assert "All done." in proc.stdout
    assert _unwanted(modules) == []
    # what the run needs is there (the probe sees a real run, not a usage error)
    assert {"trio", "alice_trio.engine.oneshot", "alice_trio.providers.codex"} <= set(modules)


def test_the_lazy_modules_still_load_where_they_are_used(tmp_path: Path) -> None:
    """``-o`` reads its value as YAML (PyYAML), a value the class's constructor does not check
    alone goes through cattrs: both are imported then, and the run still works."""
    fake = _fake_codex(tmp_path)
    modules, proc = _imported(
        tmp_path, "run", "--provider", "codex", "--command", fake, "-o", "permissions={}", "hi"
    )
    assert "All done." in proc.stdout
    assert {"yaml", "alice_trio.config_yaml", "cattrs", "alice_trio.config_structure"} <= set(
        modules
    )
