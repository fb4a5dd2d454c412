"""The recorded one-shot stdout transcripts of each provider (tests/transcripts/<provider>/),
for the property tests of this suite."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[1] / "transcripts"
PROVIDERS = ("codex", "claude", "gemini", "kimi", "opencode")


def stdout_files(provider: str) -> list[Path]:
    """Every recorded stdout of ``provider`` (real CLI runs and the Go system's fixtures)."""
    base = ROOT / provider
    files = sorted(base.glob("*.stdout")) + sorted(base.glob("*/stdout.raw"))
    files += sorted(base.glob("repeats/*/stdout.raw")) + sorted(base.glob("alice/*stdout*"))
    return [f for f in files if f.is_file() and f.stat().st_size > 0]


def lines_of(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [line.removesuffix("\r") for line in text.split("\n")]
