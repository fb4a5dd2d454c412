"""Input that is not valid UTF-8 (issue 12 item 7) is replaced, never a UnicodeError.

At every boundary where text enters alice_trio it is made encodable: bytes that are not UTF-8
(stdin of ``alice-trio run -``, a CLI's output) decode with U+FFFD; a lone surrogate in a
``str`` (``RunRequest.user_text``, argv decoded with ``surrogateescape``, a ``"\\ud800"`` escape
in a CLI's JSON) becomes U+FFFD."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.models import RunRequest
from alice_trio.providers.registry import get_provider

SRC = Path(__file__).parents[2] / "src"
REPLACEMENT = "\ufffd"


def _cli(*args: str, stdin: bytes = b"", **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "alice_trio.cli.main", *args],
        input=stdin,
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC), **env},
        timeout=120,
    )


@pytest.mark.parametrize("encoding", ["", "utf-8:strict", "ascii:strict"])
def test_cli_reads_non_utf8_stdin(encoding: str) -> None:
    env = {"PYTHONIOENCODING": encoding} if encoding else {}
    proc = _cli("run", "--provider", "replay", "--json", "-", stdin=b"caf\xe9", **env)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def test_cli_prompt_argument_with_undecodable_bytes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "alice_trio.cli.main", "run", "--provider", "replay",
         os.fsdecode(b"a\xed\xa0\x80b\xff")],
        capture_output=True, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SRC)},
        timeout=120,
    )  # fmt: skip
    assert b"Traceback" not in proc.stderr, proc.stderr.decode(errors="replace")
    assert proc.returncode == 0


@pytest.mark.parametrize("text", ["a\ud800b", "\udce9caf", "x\udfff\ud800"])
def test_a_lone_surrogate_in_user_text_becomes_the_replacement(text: str) -> None:
    request = RunRequest(user_text=text)
    assert REPLACEMENT in request.user_text
    request.user_text.encode("utf-8")
    # a well-formed pair written as two surrogates is the character it encodes
    assert RunRequest(user_text="\ud83d\ude00").user_text == "\U0001f600"


@pytest.mark.parametrize("name", ["codex", "claude", "gemini", "kimi", "opencode"])
def test_every_provider_builds_an_invocation_from_a_surrogate_prompt(name: str) -> None:
    provider = get_provider(name)
    inv = provider.build_invocation(RunRequest(user_text="caf\udce9 \ud800"),
                                    provider.config_class())  # fmt: skip
    carried = (inv.stdin or b"") + "\0".join(inv.argv).encode("utf-8")
    assert "caf\ufffd \ufffd".encode() in carried or b"caf\\ufffd" in carried


async def test_library_run_with_a_lone_surrogate() -> None:
    provider = get_provider("replay")
    config = provider.config_class(speed=0)
    result = await run_oneshot(provider, config, RunRequest(user_text="a\ud800 \udce9"))
    assert result.reply
