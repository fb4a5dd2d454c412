"""File names that are not UTF-8 in ``alice-trio run --json`` / ``--jsonl``: the result's
``path`` shows each byte that is not UTF-8 as ``\\xNN`` and ``path_bytes`` holds the exact
name, base64 (docs/cli.md). They used to print as ``?``, the name lost. Run as a person runs
it: the console script's module in a subprocess, a fake agent that writes the files."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_support import CLI, validate_event, validate_result

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPT = ROOT / "tests" / "transcripts" / "codex" / "codex_exec_simple" / "stdout.raw"
#: names the fake agent creates in its cwd (bytes: the file system's own)
NAMES = [b"caf\xe9.txt", b"\xff\xfe-raw", b"ok-\xc3\xa9t\xc3\xa9.md", b"back\\xe9slash"]


def fake_agent(path: Path) -> Path:
    """A codex stand-in: writes the files named in NAMES into its cwd, then prints a recorded
    ``codex exec --json`` run."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "sys.stdin.read()\n"
        f"for name in {NAMES!r}:\n"
        "    with open(name, 'wb') as f:\n"
        "        f.write(b'x')\n"
        f"os.execv(sys.executable, [sys.executable, '-m', 'alice_trio.replay_cli', '--speed', "
        f"'0', '--', {str(TRANSCRIPT)!r}])\n"
    )
    path.chmod(0o755)
    return path


def run(tmp_path: Path, fmt: str) -> dict[str, object]:
    work = tmp_path / "work"
    work.mkdir()
    agent = fake_agent(tmp_path / "codex")
    proc = subprocess.run(
        [*CLI, "run", "-P", "codex", "--command", str(agent), "--cwd", str(work), fmt, "hi"],
        capture_output=True, timeout=120, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode("utf-8").splitlines()  # strict: the output is UTF-8
    if fmt == "--jsonl":
        for line in lines[:-1]:
            validate_event(json.loads(line))
        obj = json.loads(lines[-1])
        assert obj.pop("type") == "result"
    else:
        obj = json.loads("\n".join(lines))
    validate_result(obj)
    return obj


@pytest.mark.parametrize("fmt", ["--json", "--jsonl"])
def test_a_name_that_is_not_utf8_is_shown_escaped_and_kept_exact(tmp_path: Path, fmt: str) -> None:
    obj = run(tmp_path, fmt)
    changes = obj["file_changes"]
    assert isinstance(changes, list)
    got = {base64.b64decode(c["path_bytes"]) if c["path_bytes"] else c["path"].encode(): c
           for c in changes}  # fmt: skip
    assert sorted(got) == sorted(NAMES)
    assert got[b"caf\xe9.txt"]["path"] == "caf\\xe9.txt"
    assert got[b"\xff\xfe-raw"]["path"] == "\\xff\\xfe-raw"
    assert got[b"back\\xe9slash"]["path_bytes"] is None  # UTF-8: the name is its text
    assert got["ok-été.md".encode()]["path"] == "ok-été.md"
    for change in changes:
        assert "?" not in change["path"] and change["kind"] == "added"
