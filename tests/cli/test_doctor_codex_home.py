"""doctor checks codex's login in the ``CODEX_HOME`` the config's ``codex_home`` names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alice_trio.cli.main import main


def test_doctor_runs_codex_login_status_in_the_configured_codex_home(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    codex = bin_dir / "codex"
    codex.write_text(
        '#!/bin/sh\ncase "$1" in --version) echo "codex-cli 0.171.0";;\n'
        'login) echo "Logged in under $CODEX_HOME"; exit 0;; esac\n'
    )
    codex.chmod(0o755)
    config = tmp_path / "alice.yaml"
    config.write_text(
        "default_profile: c\nllm_profiles:\n  c:\n    provider: codex\n"
        f"    command: {codex}\n    codex_home: ~/my-codex-home\n"
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    assert main(["doctor", "--json", "--timeout", "10", "--config", str(config)]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["codex"]["logged_in"] == f"yes: Logged in under {tmp_path / 'my-codex-home'}"
