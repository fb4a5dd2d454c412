"""A one-shot fake agent CLI for provider engine tests: an executable that records what it was
given (argv, stdin, selected environment variables) and replays a recorded stdout."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def recording_cli(
    tmp_path: Path,
    stdout: Path | None,
    exit_code: int = 0,
    stderr: str = "",
    *,
    env_prefix: str | None = None,
) -> str:
    """Write ``tmp_path/fake-agent``: it records its argv, stdin and the environment variables
    whose names start with ``env_prefix`` (none when ``None``) for :func:`recorded`, prints the
    bytes of ``stdout`` (if any) and ``stderr``, and exits with ``exit_code``. Returns its path."""
    script = tmp_path / "fake-agent"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"rec = {str(tmp_path / 'rec.json')!r}\n"
        f"prefix = {env_prefix!r}\n"
        "data = sys.stdin.buffer.read().decode()\n"
        "env = {} if prefix is None else "
        "{k: v for k, v in os.environ.items() if k.startswith(prefix)}\n"
        "json.dump({'argv': sys.argv[1:], 'stdin': data, 'env': env}, open(rec, 'w'))\n"
        f"out = {str(stdout) if stdout else ''!r}\n"
        "if out:\n"
        "    sys.stdout.buffer.write(open(out, 'rb').read())\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return str(script)


def recorded(tmp_path: Path) -> dict[str, Any]:
    """What the last :func:`recording_cli` run under ``tmp_path`` was given."""
    rec: dict[str, Any] = json.loads((tmp_path / "rec.json").read_text())
    return rec
