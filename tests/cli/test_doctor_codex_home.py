"""doctor checks codex's login in the ``CODEX_HOME`` a profile's ``codex_home`` names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_doctor_runs_codex_login_status_in_the_profiles_codex_home(tmp_path: Path) -> None:
    home = tmp_path / "my-codex-home"
    codex = tmp_path / "codex"
    codex.write_text(  # logged in only in that CODEX_HOME
        '#!/bin/sh\ncase "$1" in --version) echo "codex-cli 0.171.0";;\n'
        f'login) [ "$CODEX_HOME" = "{home}" ] && exit 0; echo "Not logged in"; exit 1;; esac\n'
    )
    codex.chmod(0o755)
    config = tmp_path / "alice.yaml"
    profile = {"provider": "codex", "command": str(codex), "codex_home": "~/my-codex-home"}
    config.write_text(json.dumps({"llm_profiles": {"c": profile}, "default_profile": "c"}))
    env = {k: v for k, v in os.environ.items() if k != "CODEX_HOME"}
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "alice_trio.cli.entry", "doctor", "--config", str(config),
         "--json", "--timeout", "30"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["logged_in"].startswith("yes"), row
