"""The e2e lane's summary (``lane_report.py``): failures, flakes, the canary table.

Not marked ``e2e``: pure, runs in the normal suite.
"""

from __future__ import annotations

import json
from pathlib import Path

import lane_report
import pytest


def write(path: Path, results: dict[str, tuple[str, str]]) -> str:
    path.write_text(json.dumps({k: {"cli": c, "outcome": o} for k, (c, o) in results.items()}))
    return str(path)


def test_a_test_that_passed_on_its_retry_is_counted_as_flaky(tmp_path, capsys):
    first = write(
        tmp_path / "first.json",
        {
            "t::a": ("opencode", "failed"),
            "t::b": ("claude", "passed"),
            "t::c": ("codex", "failed"),
            "t::d": ("gemini", "skipped"),
        },
    )
    retry = write(
        tmp_path / "retry.json", {"t::a": ("opencode", "passed"), "t::c": ("codex", "failed")}
    )
    assert lane_report.summary(first, retry) == 1  # t::c failed twice
    out = capsys.readouterr().out
    assert "e2e: FLAKY 1: t::a" in out
    assert "e2e: FAILED 1: t::c" in out
    assert "4 tests: 1 passed, 1 flaky, 1 failed, 1 skipped" in out


def test_flakes_alone_do_not_fail_the_lane_but_are_named(tmp_path, capsys):
    first = write(tmp_path / "first.json", {"t::a": ("kimi", "error")})
    retry = write(tmp_path / "retry.json", {"t::a": ("kimi", "passed")})
    assert lane_report.summary(first, retry) == 0
    assert "e2e: FLAKY 1: t::a" in capsys.readouterr().out


def test_without_retry_every_failure_fails(tmp_path, capsys):
    first = write(tmp_path / "first.json", {"t::a": ("kimi", "failed"), "t::b": ("kimi", "passed")})
    assert lane_report.summary(first) == 1
    out = capsys.readouterr().out
    assert "FAILED 1: t::a" in out and "FLAKY 0" in out


def test_no_results_is_a_failure(tmp_path, capsys):
    assert lane_report.summary(str(tmp_path / "missing.json")) == 1


@pytest.mark.parametrize("pinned_installed", [True, False])
def test_canary_table_names_versions_and_results_per_cli(tmp_path, capsys, pinned_installed):
    def manifest(path: Path, claude: str) -> str:
        clis = {c: {"ok": True, "version": "1.0"} for c in lane_report.CLIS}
        clis["claude"] = {"ok": True, "version": claude}
        clis["kimi_legacy"] = {"ok": False, "reason": "no python"}
        path.write_text(json.dumps({"clis": clis}))
        return str(path)

    pinned = manifest(tmp_path / "p.json", "2.1.197") if pinned_installed else "/nonexistent"
    latest = manifest(tmp_path / "l.json", "2.1.332")
    first = write(
        tmp_path / "first.json",
        {"a": ("claude", "passed"), "b": ("claude", "failed"), "c": ("codex", "passed")},
    )
    assert lane_report.table(pinned, latest, first) == 1
    lines = capsys.readouterr().out.splitlines()
    claude = next(line for line in lines if line.strip().startswith("claude"))
    assert "2.1.332  (newer)" in claude and "RED: 1 passed, 1 FAILED" in claude
    assert ("(pin)" in claude) != pinned_installed
    codex = next(line for line in lines if line.strip().startswith("codex"))
    assert "green: 1 passed" in codex
    legacy = next(line for line in lines if line.strip().startswith("kimi_legacy"))
    assert "not installed" in legacy and "no tests ran" in legacy


def test_pinned_versions_come_from_the_pin_files():
    pins = lane_report.pinned_versions()
    assert set(pins) == set(lane_report.CLIS)
    assert all(v.endswith("(pin)") for v in pins.values())
