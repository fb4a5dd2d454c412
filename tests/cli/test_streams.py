"""``alice-trio`` with a closed, missing or full stdout/stderr (spawned as a person runs it):
the documented exit code and at most one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alice_trio.cli.streams import display_text, shown_as_is

#: the console script's entry point (pyproject.toml [project.scripts])
ENTRY = [
    sys.executable,
    "-c",
    "import sys; from alice_trio.cli.entry import main; sys.exit(main())",
]
RUN = [*ENTRY, "run", "--provider", "replay", "-o", "speed=0", "--plain"]
TRANSCRIPT = (
    Path(__file__).resolve().parents[1]
    / "transcripts" / "codex" / "codex_exec_http500" / "timeline.jsonl"
)  # fmt: skip


def _close(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)


def _spawn(argv: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=120, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def _clean(err: bytes) -> None:
    text = err.decode(errors="replace")
    assert "Traceback" not in text and "Exception" not in text and "Error" not in text, text


def test_jsonl_into_a_reader_that_closes_early_exits_0() -> None:
    proc = subprocess.Popen(
        [*RUN[:-1], "-o", "speed=0.05", "--jsonl", "hi"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"{")
    _clean(err)
    assert err == b""


@pytest.mark.parametrize("argv", [
    [*RUN, "hi"], [*RUN, "--json", "hi"], [*ENTRY, "providers"], [*ENTRY, "providers", "--json"],
    [*ENTRY, "replay", "--json", "-P", "codex", str(TRANSCRIPT)],
])  # fmt: skip
def test_full_stdout_is_a_lost_reply_exit_1(argv: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        proc = _spawn(argv, stdout=full, stderr=subprocess.PIPE)
    assert proc.returncode == 1, proc.stderr
    _clean(proc.stderr.replace(b"No space left", b""))
    assert proc.stderr.decode().splitlines()[-1] == (
        "alice-trio: cannot write to stdout: No space left on device"
    )


@pytest.mark.parametrize("argv", [[*RUN, "hi"], [*RUN, "--jsonl", "hi"], [*ENTRY, "providers"]])
def test_missing_stdout_is_a_lost_reply_exit_1(argv: list[str]) -> None:
    proc = _spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_close(1))
    assert proc.returncode == 1, proc.stderr
    _clean(proc.stderr)
    assert proc.stderr.decode().splitlines()[-1] == (
        "alice-trio: cannot write the reply: stdout is closed"
    )


@pytest.mark.parametrize("how", ["closed", "full"])
def test_lost_stderr_still_delivers_the_reply_exit_0(how: str) -> None:
    if how == "closed":
        proc = _spawn([*RUN, "hi"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                      preexec_fn=_close(2))  # fmt: skip
    else:
        with open("/dev/full", "wb") as full:
            proc = _spawn([*RUN, "hi"], stdout=subprocess.PIPE, stderr=full)
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"The command printed:")


def test_lost_stderr_keeps_the_failure_code() -> None:
    with open("/dev/full", "wb") as full:
        proc = _spawn([*ENTRY, "run", "--provider", "nope", "hi"], stdout=subprocess.PIPE,
                      stderr=full)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == b""


#: the bidirectional controls: a terminal reorders what follows them
BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _obeyed(c: str) -> bool:
    code = ord(c)
    return (code < 0x20 and c not in "\t\n") or 0x7F <= code < 0xA0 or code in BIDI


@given(st.text() | st.text(st.sampled_from([chr(c) for c in BIDI] + ["a", "é", "\n"])))
def test_display_text_leaves_no_control_a_terminal_obeys(text: str) -> None:
    shown = display_text(text)
    assert not any(_obeyed(c) for c in shown)
    if not any(_obeyed(c) for c in text):
        assert shown is text  # nothing to show differently: no copy


def test_a_right_to_left_override_in_a_tool_command_is_shown_not_obeyed() -> None:
    """ "Trojan Source": U+202E makes a terminal show the rest of the line reversed."""
    text = "command=`rm -rf ~/\u202eexe.txt`"
    assert display_text(text) == "command=`rm -rf ~/<U+202E>exe.txt`"
    assert not shown_as_is(["tool ok", text])


def test_shown_as_is_agrees_with_display_text_on_every_character() -> None:
    """The batch check of the progress printer: ASCII (checked together, as bytes) and not."""
    for code in range(0x3000):
        ch = chr(code)
        for texts in ([ch], ["ascii text ", ch, " more"], [f"a{ch}b"]):
            assert shown_as_is(texts) == all(display_text(t) is t for t in texts), hex(code)


@given(st.lists(st.text(st.characters(max_codepoint=0x7F)) | st.text(), max_size=5))
def test_shown_as_is_agrees_with_display_text(texts: list[str]) -> None:
    assert shown_as_is(texts) == all(display_text(t) is t for t in texts)
