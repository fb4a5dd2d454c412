"""Hostile input to the ``alice-trio`` command: endless or huge files, hostile ``-o`` values,
non-finite timeouts. Each is exit 2 and one ``alice-trio:`` line, never a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alice_trio.cli.main import MAX_STDIN_PROMPT_BYTES, main
from alice_trio.replay_cli import MAX_TRANSCRIPT_BYTES


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    _, err = capsys.readouterr()
    return code, err.splitlines()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--config", "/dev/zero", "hi"], "config file /dev/zero: larger than 4 MiB"),
        (["replay", "-P", "codex", "/dev/zero"], "cannot read /dev/zero: larger than 64 MiB"),
        (["doctor", "--config", "/dev/zero"], "larger than 4 MiB"),
    ],
)  # fmt: skip
def test_endless_files_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, lines = _run(capsys, *argv)
    assert code == 2
    assert len(lines) == 1 and needle in lines[0], lines


def test_a_transcript_over_the_bound_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    big = tmp_path / "stdout.raw"
    with big.open("wb") as f:
        f.truncate(MAX_TRANSCRIPT_BYTES + 1)
    code, lines = _run(capsys, "replay", "-P", "codex", str(big))
    assert code == 2 and lines == [f"alice-trio: cannot read {big}: larger than 64 MiB"]


def test_a_prompt_on_stdin_over_the_bound_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("x" * (MAX_STDIN_PROMPT_BYTES + 1)))
    code, lines = _run(capsys, "run", "-P", "replay", "-o", "speed=0", "-")
    assert code == 2 and lines == ["alice-trio: the prompt on stdin is larger than 16 MiB"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [("[" * 3000, "nested deeper than 64 levels"), ("1" * 5000, "integer too long"),
     ("{a: " * 2000, "nested deeper than 64 levels")],
    ids=["lists", "int", "maps"],
)  # fmt: skip
def test_hostile_set_values_are_config_errors(
    capsys: pytest.CaptureFixture[str], value: str, needle: str
) -> None:
    code, lines = _run(capsys, "run", "-P", "replay", "-o", f"speed={value}", "hi")
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("alice-trio: -o speed: invalid YAML")
    assert needle in lines[0]


def test_hostile_yaml_file_is_a_config_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm_profiles:\n  r: {provider: replay, env: " + "[" * 5000 + "]" * 5000 + "}\n")
    code, lines = _run(capsys, "run", "--config", str(cfg), "hi")
    assert code == 2 and len(lines) == 1 and "nested deeper than 64 levels" in lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e999", "abc"])
@pytest.mark.parametrize("option", ["--timeout", "--probe-timeout"])
def test_doctor_refuses_non_finite_or_non_positive_timeouts(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    code, lines = _run(capsys, "doctor", option, value)
    assert code == 2
    assert f"argument {option}: expected a" in lines[-1]


@pytest.mark.parametrize("value", ["nan", "inf", "1e999", "abc", ""])
@pytest.mark.parametrize("command", ["run", "chat"])
def test_a_run_timeout_that_is_no_finite_number_is_refused_as_that_option(
    capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    """``--timeout nan`` names ``--timeout`` (was: ``-o.timeout_secs: …``, an option the
    person never typed); 0 or less stays ``timeout_secs``'s own meaning (its default)."""
    code, lines = _run(capsys, command, "-P", "replay", "--timeout", value, "hi")
    assert code == 2
    assert "argument --timeout: expected a" in lines[-1]


def test_a_run_timeout_of_zero_or_less_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-1"):
        code, _lines = _run(capsys, "run", "-P", "replay", "-o", "speed=0", "--timeout", value,
                            "-q", "hi")  # fmt: skip
        assert code == 0


_CHAT = [sys.executable, "-m", "alice_trio.cli.entry", "chat", "-P", "replay", "-o", "speed=0"]


@pytest.mark.parametrize("how", ["closed", "write-only"])
def test_chat_without_a_readable_stdin_is_a_usage_error(tmp_path: Path, how: str) -> None:
    """``chat <&-`` and a write-only fd 0: exit 2 and one line before any session starts
    (was: a traceback of an ExceptionGroup from the stdin reader)."""
    if how == "closed":
        proc = subprocess.run(
            _CHAT, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
            preexec_fn=lambda: os.close(0),
        )  # fmt: skip
        needle = "alice-trio: cannot read stdin: it is closed"
    else:
        with (tmp_path / "in").open("wb") as wronly:
            proc = subprocess.run(_CHAT, stdin=wronly, capture_output=True, timeout=60)
        needle = "alice-trio: cannot read stdin: it is open for writing only"
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode().splitlines() == [needle]
    assert proc.stdout == b""


def test_chat_drops_a_line_over_the_bound_and_goes_on() -> None:
    """A chat line is bounded like a prompt on stdin (``chat </dev/zero`` no longer grows
    without end): the long line is reported and not sent, the next line is a turn."""
    huge = b"x" * (MAX_STDIN_PROMPT_BYTES + 1) + b"\nhello\n"
    proc = subprocess.run([*_CHAT, "--plain"], input=huge, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.decode().count("The command printed:") == 1  # one turn: "hello"
    assert b"a line over 16 MiB was not sent" in proc.stderr
