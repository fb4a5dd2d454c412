#!/usr/bin/env python3
"""The e2e lane's summary, from the result files of the e2e conftest (``$ALICE_TRIO_E2E_RESULTS``).

    python lane_report.py summary FIRST.json [RETRY.json]
        Prints the counts, then ``e2e: FAILED n: names`` (failed on the last try) and
        ``e2e: FLAKY n: names`` (failed, then passed on the retry: a bug to find, not noise).
        Exit status 1 when a test failed on its last try, else 0.
    python lane_report.py table PINNED_MANIFEST LATEST_MANIFEST FIRST.json [RETRY.json]
        The canary table: per CLI the pinned and the latest version and the result on latest.

Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CLIS = ("codex", "opencode", "claude", "gemini", "kimi", "kimi_legacy")
PINS = Path(__file__).resolve().parent / "clis"
PACKAGES = {
    "@openai/codex": "codex",
    "opencode-ai": "opencode",
    "@anthropic-ai/claude-code": "claude",
    "@google/gemini-cli": "gemini",
    "@moonshot-ai/kimi-code": "kimi",
}


def pinned_versions() -> dict[str, str]:
    """The pins themselves (when the pinned set is not installed here)."""
    out: dict[str, str] = {}
    for name in ("package.json", "kimi-code/package.json"):
        try:
            deps = json.loads((PINS / name).read_text()).get("dependencies", {})
        except (OSError, ValueError):
            continue
        for package, version in deps.items():
            if package in PACKAGES:
                out[PACKAGES[package]] = f"{version} (pin)"
    try:
        for line in (PINS / "requirements-kimi-legacy.txt").read_text().splitlines():
            if line.startswith("kimi-cli=="):
                out["kimi_legacy"] = line.split("==", 1)[1].strip() + " (pin)"
    except OSError:
        pass
    return out


def load(path: str) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def merge(first: dict[str, dict[str, str]], retry: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Final outcome per test; a test that failed first and passed on the retry is ``flaky``."""
    final: dict[str, dict[str, str]] = {}
    for nodeid, entry in first.items():
        final[nodeid] = dict(entry)
        again = retry.get(nodeid)
        if entry["outcome"] in ("failed", "error") and again is not None:
            final[nodeid]["outcome"] = "flaky" if again["outcome"] == "passed" else again["outcome"]
    return final


def counts(final: dict[str, dict[str, str]], cli: str | None = None) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "error": 0, "flaky": 0, "skipped": 0}
    for entry in final.values():
        if cli is None or entry.get("cli") == cli:
            out[entry["outcome"]] = out.get(entry["outcome"], 0) + 1
    return out


def names(final: dict[str, dict[str, str]], *outcomes: str) -> list[str]:
    return sorted(n for n, e in final.items() if e["outcome"] in outcomes)


def summary(first: str, retry: str = "") -> int:
    final = merge(load(first), load(retry) if retry else {})
    if not final:
        print("e2e: no test results were recorded")
        return 1
    c = counts(final)
    print(
        f"e2e: {len(final)} tests: {c['passed']} passed, {c['flaky']} flaky, "
        f"{c['failed'] + c['error']} failed, {c['skipped']} skipped"
    )
    failed = names(final, "failed", "error")
    flaky = names(final, "flaky")
    print(f"e2e: FAILED {len(failed)}" + (": " + " ".join(failed) if failed else ""))
    print(f"e2e: FLAKY {len(flaky)}" + (": " + " ".join(flaky) if flaky else ""))
    return 1 if failed else 0


def _versions(manifest_path: str) -> dict[str, str]:
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except (OSError, ValueError):
        return pinned_versions()
    out = {}
    for cli, info in (manifest.get("clis") or {}).items():
        out[cli] = info.get("version", "?") if info.get("ok") else "not installed"
    return out


def _result(c: dict[str, int]) -> str:
    if not any(c.values()):
        return "no tests ran"
    bad = c["failed"] + c["error"]
    parts = [f"{c['passed']} passed"]
    if c["flaky"]:
        parts.append(f"{c['flaky']} FLAKY")
    if bad:
        parts.append(f"{bad} FAILED")
    if c["skipped"]:
        parts.append(f"{c['skipped']} skipped")
    verdict = "RED" if bad else ("green, with flakes" if c["flaky"] else "green")
    return f"{verdict}: " + ", ".join(parts)


def table(pinned: str, latest: str, first: str, retry: str = "") -> int:
    final = merge(load(first), load(retry) if retry else {})
    old, new = _versions(pinned), _versions(latest)
    rows = [("CLI", "pinned", "latest", "result on latest")]
    for cli in CLIS:
        a, b = old.get(cli, "?"), new.get(cli, "?")
        mark = "" if a == b else "  (newer)" if b not in ("?", "not installed") else ""
        rows.append((cli, a, b + mark, _result(counts(final, cli))))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    print("e2e canary: pinned vs latest")
    for r in rows:
        print("  " + "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    return 1 if names(final, "failed", "error") else 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "summary":
        return summary(*argv[1:3])
    if len(argv) >= 4 and argv[0] == "table":
        return table(*argv[1:5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
