"""Smoke test of the benchmark harness: ``python -m benchmarks --quick`` runs and its JSON is
complete. Never asserts a timing (benchmarks are not unit tests)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _numbers(obj: object, path: str = "") -> list[tuple[str, float]]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [(path, obj)]
    if isinstance(obj, dict):
        return [n for k, v in obj.items() for n in _numbers(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [n for i, v in enumerate(obj) for n in _numbers(v, f"{path}[{i}]")]
    return []


def _quick_run(out: Path) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(out.read_text()) if proc.returncode == 0 and out.exists() else None
    return proc, report


def _section_errors(report: dict | None) -> list[tuple[str, str]]:
    if report is None:
        return [("run", "no report")]
    return [(k, v["error"]) for k, v in report["sections"].items() if "error" in v]


def test_quick_benchmark_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc, report = _quick_run(out)
    if _section_errors(report):
        # a section that crashed once on a loaded machine gets one more run; twice is a bug
        first = (proc.returncode, _section_errors(report), proc.stderr[-1500:])
        proc, report = _quick_run(out)
        assert not _section_errors(report), ("failed twice", first, proc.stderr[-1500:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report is not None
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"]
    sections = report["sections"]
    assert set(sections) >= {
        "cancel",
        "mechanisms",
        "throughput",
        "memory",
        "overhead",
        "peer",
        "sessions",
        "cli",
        "file_changes",
    }
    for name, sec in sections.items():
        assert "error" not in sec, (name, sec)
    names = {s["name"] for s in sections["cancel"]["scenarios"]}
    assert {
        "oneshot/term",
        "oneshot/busy",
        "oneshot/noterm",
        "oneshot/noterm/double",
        "agent_process/term",
        "bare/term",
    } <= names
    for row in sections["cancel"]["scenarios"]:
        assert row["control_ms"]["n"] == row["runs"] > 0
    assert set(sections["mechanisms"]) == {"subreaper", "marker_scan"}
    assert set(sections["throughput"]["layers"]) == {"pipe", "framer", "decoder", "backend"}
    assert {"codex", "claude", "gemini", "kimi", "opencode"} <= set(
        sections["throughput"]["decoder_only"]
    )
    assert set(sections["memory"]) == {"giant", "giant_skip", "stderr"}
    assert sections["memory"]["giant"]["reply_chars"] >= sections["memory"]["giant"]["bytes"]
    assert "sequential" in sections["overhead"] and "concurrent" in sections["overhead"]
    assert "throughput" in sections["peer"] or "skipped" in sections["peer"]
    cli = sections["cli"]
    subjects = {"fake", "bare", "library", "library_events", "cli_file", "cli_tty"}
    assert set(cli["flood"]["subjects"]) == subjects
    # every message of the flood (one event in ten) is printed; of its tool calls, a rate's
    lines, events = cli["flood"]["subjects"]["cli_file"]["progress_lines"], cli["flood"]["events"]
    assert events // 10 <= lines < events, (lines, events)
    for big in (cli["big_reply"], cli["big_reply_trailing_space"]):
        assert big["reply_bytes_on_stdout"] >= big["bytes"]
        assert big["progress_bytes"] < 10_000
    assert sections["file_changes"]["files"] == 2_000
    assert report["goals"] and all("goal" in g for g in report["goals"])
    numbers = _numbers(report)
    assert len(numbers) > 100
    # a difference of two measurements ("added_ms": run minus bare baseline) is noise around a
    # small number and may be negative on a loaded machine; every other number is a count, a
    # duration or a ratio
    bad = [(p, v) for p, v in numbers if not math.isfinite(v) or (v < 0 and ".added_" not in p)]
    assert not bad, bad[:10]
