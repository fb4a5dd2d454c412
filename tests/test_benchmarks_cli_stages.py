"""``benchmarks.cli_stages`` runs every stage on a small flood (the counts need valgrind and are
not checked here: a benchmark, not a timed test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cli_stages import STAGES, _stage

pytest.importorskip("orjson")  # the bench extra's parser: the stages compare against it


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_runs_on_a_flood(tmp_path: Path, stage: str) -> None:
    flood = tmp_path / "flood.jsonl"
    fake = Path(__file__).resolve().parent.parent / "benchmarks" / "fake_codex.py"
    with open(flood, "wb") as f:
        subprocess.run(
            [sys.executable, str(fake)], stdin=subprocess.DEVNULL, stdout=f, check=True,
            env={**os.environ, "FAKE_EVENTS": "250", "FAKE_BIG": "0"},
        )  # fmt: skip
    _stage(stage, str(flood))
