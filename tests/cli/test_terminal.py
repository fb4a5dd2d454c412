"""``alice-trio`` run as a person runs it: in a terminal (a pseudo-terminal), with output to
files, with stdin piped, interrupted. Each test starts the command as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alice_trio.cli.exits import EXIT_NOT_FOUND, EXIT_TIMEOUT
from alice_trio.cli.progress import PROGRESS_RATE

from cli_support import CLI, PtyProcess, validate_event, validate_result, wait_for
from helpers import marked, new_mark, started

ROOT = Path(__file__).resolve().parents[2]
FAKE_CODEX = ROOT / "benchmarks" / "fake_codex.py"
REPLY = "The command printed:"


def visible(screen: str) -> str:
    """What stays on a terminal: per line, the text after the last erase of that line."""
    out = []
    for line in screen.replace("\r\n", "\n").split("\n"):
        line = line.rsplit("\x1b[2K", 1)[-1]
        out.append(re.sub(r"\x1b\[[0-9;]*m", "", line))
    return "\n".join(out)


def _fake_codex(tmp_path: Path) -> str:
    path = tmp_path / "codex"
    path.write_text(f"#!{sys.executable} -IS\n" + FAKE_CODEX.read_text())
    path.chmod(0o755)
    return str(path)


def _tracebackless(text: str) -> None:
    assert "Traceback" not in text and "ExceptionGroup" not in text, text[-3000:]


# -- in a terminal -----------------------------------------------------------------------------


def test_in_a_terminal_the_reply_is_shown_once() -> None:
    term = PtyProcess([*CLI, "run", "--provider", "replay", "-o", "speed=0", "hi"])
    try:
        assert term.wait() == 0
    finally:
        term.close()
    shown = visible(term.screen)
    assert shown.count(REPLY) == 1, term.screen
    assert "tool› command=`/bin/bash -lc 'echo hi'`" in shown
    assert "is working" not in shown  # the status line was erased


def test_no_working_line_before_an_error_that_happens_before_anything_ran(
    tmp_path: Path,
) -> None:
    argv = [*CLI, "run", "--provider", "codex", "--command", str(tmp_path / "no-such-cli"), "hi"]
    term = PtyProcess(argv)
    try:
        assert term.wait() == EXIT_NOT_FOUND
    finally:
        term.close()
    shown = [ln for ln in visible(term.screen).splitlines() if ln.strip()]
    assert shown and all(ln.startswith("alice-trio: ") for ln in shown), term.screen
    assert "is working" not in "\n".join(shown)
    # the same to a file: only the error
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_NOT_FOUND
    assert proc.stderr.startswith("alice-trio: ") and "is working" not in proc.stderr
    assert all(ln.startswith("alice-trio: ") for ln in proc.stderr.splitlines())


_HOSTILE = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b1;1H\rforged"
_HOSTILE_CLI = f"""#!{sys.executable} -IS
import json, sys
sys.stdin.read()
h = {_HOSTILE!r}
for obj in (
    {{"type": "thread.started", "thread_id": "t1"}},
    {{"type": "item.started", "item": {{"id": "c", "type": "command_execution",
      "command": "echo " + h, "status": "in_progress"}}}},
    {{"type": "item.completed", "item": {{"id": "m", "type": "agent_message", "text": "ok " + h}}}},
    {{"type": "turn.completed", "usage": {{"input_tokens": 1, "output_tokens": 1}}}},
):
    print(json.dumps(obj), flush=True)
"""


def test_an_agents_control_sequences_are_shown_not_obeyed_in_a_terminal(tmp_path: Path) -> None:
    """ESC/OSC/CSI and CR in the reply or a progress line (clipboard writes, screen clears, a
    line forged over ours) reach a terminal in caret form; to a pipe the reply is unchanged."""
    cli = tmp_path / "codex"
    cli.write_text(_HOSTILE_CLI)
    cli.chmod(0o755)
    argv = [*CLI, "run", "--provider", "codex", "--command", str(cli), "hi"]
    term = PtyProcess(argv)
    try:
        assert term.wait() == 0
    finally:
        term.close()
    screen = term.screen
    for obeyed in ("\x1b]52", "\x1b[2J", "\x9b", "\x07", "\rforged"):
        assert obeyed not in screen, (obeyed, screen)
    assert visible(screen).count("ok ^[]52;c;ZXZpbA==^G^[[2J\\x9b1;1H^Mforged") == 1, screen
    assert "echo ^[]52" in screen  # the progress line too
    proc = subprocess.run(argv, capture_output=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.decode() == f"ok {_HOSTILE}\n"  # a pipe gets the reply byte for byte
    assert b"\x1b]52" not in proc.stderr  # progress is for people: shown, not obeyed


# -- to files ---------------------------------------------------------------------------------


_SKIPPED_LINE = re.compile(
    r"… ([\d,]+) events skipped: over ([\d,]+) a second \(tool_use ([\d,]+)\)$"
)


def test_a_flood_to_a_file_is_plain_lines_at_a_bounded_rate(tmp_path: Path) -> None:
    """Every message is shown; of a flood of tool calls, the first PROGRESS_RATE of each second
    are, and a line counts the others (the reply, thread and usage as ever)."""
    env = {**os.environ, "FAKE_EVENTS": "3000"}
    proc = subprocess.run(
        [*CLI, "run", "--provider", "codex", "--command", _fake_codex(tmp_path), "go"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "All done.\n"
    lines = proc.stderr.splitlines()
    assert "\x1b" not in proc.stderr
    shown = sum(ln.startswith("tool› ") for ln in lines)
    notices = [m for m in map(_SKIPPED_LINE.match, lines) if m]
    counted = [int(m[3].replace(",", "")) for m in notices]
    assert all(m[1] == m[3] and m[2] == str(PROGRESS_RATE) for m in notices), notices
    # 2,700 tool calls in well under 27 s: some were counted, none lost from the count
    assert counted and shown + sum(counted) == 2700, (shown, counted)
    assert sum(ln.startswith("assistant› step ") for ln in lines) == 300
    assert lines[-2:] == [
        "thread: 01a21857-8d93-7d61-8bab-f9ca2ca653ae",
        "usage: 10 input (0 cached), 5 output tokens",
    ]


def test_a_flood_to_a_file_with_verbose_is_one_plain_line_per_event(tmp_path: Path) -> None:
    env = {**os.environ, "FAKE_EVENTS": "3000"}
    proc = subprocess.run(
        [*CLI, "run", "--verbose", "--provider", "codex", "--command", _fake_codex(tmp_path),
         "go"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert sum(ln.startswith("tool› ") for ln in lines) == 2700
    assert not any(map(_SKIPPED_LINE.match, lines))
    assert sum(ln.startswith("assistant› step ") for ln in lines) == 300


def test_a_huge_reply_is_printed_whole_and_clipped_in_progress(tmp_path: Path) -> None:
    size = 3_000_000
    env = {**os.environ, "FAKE_BIG": str(size)}
    proc = subprocess.run(
        [*CLI, "run", "--provider", "codex", "--command", _fake_codex(tmp_path), "go"],
        capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.endswith(b"abcdefghi.\n")  # the product, in full
    assert len(proc.stdout) == size + 1
    assert len(proc.stderr) < 5_000
    assert f"[{size:,} bytes]".encode() in proc.stderr


def test_non_utf8_stdin_is_read_with_replacement() -> None:
    proc = subprocess.run(
        [*CLI, "run", "--provider", "replay", "-o", "speed=0", "--json", "-q", "-"],
        input=b"caf\xe9 \xff\xfe", capture_output=True, timeout=120,
    )  # fmt: skip
    _tracebackless(proc.stderr.decode())
    assert proc.returncode == 0, proc.stderr
    validate_result(json.loads(proc.stdout))


# -- exit codes ---------------------------------------------------------------------------------


def test_timeout_exit_code(tmp_path: Path) -> None:
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 60\n")
    slow.chmod(0o755)
    proc = subprocess.run(
        [*CLI, "run", "-P", "codex", "--command", str(slow), "--timeout", "1", "--json", "hi"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == EXIT_TIMEOUT, proc.stderr
    obj = json.loads(proc.stdout)
    validate_result(obj)
    assert obj["error_type"] == "RunTimeoutError"
    assert proc.stderr.startswith("alice-trio: ")
    _tracebackless(proc.stderr)


# -- the result schema ----------------------------------------------------------------------------


def test_run_json_jsonl_and_replay_json_share_one_schema(tmp_path: Path) -> None:
    transcript = ROOT / "tests" / "transcripts" / "codex" / "codex_exec_tool" / "stdout.raw"
    run = [*CLI, "run", "-P", "replay", "-o", "speed=0", "-o", f"transcript={transcript}", "hi"]
    as_json = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    as_jsonl = subprocess.run([*run, "--jsonl"], capture_output=True, text=True, timeout=120)
    replay = subprocess.run(
        [*CLI, "replay", "-P", "codex", "--json", str(transcript)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert as_json.returncode == as_jsonl.returncode == replay.returncode == 0
    a = json.loads(as_json.stdout)
    *events, last = (json.loads(x) for x in as_jsonl.stdout.splitlines())
    b = json.loads(replay.stdout)
    for obj in (a, b):
        validate_result(obj)
    assert last.pop("type") == "result"
    validate_result(last)
    assert events
    for event in events:
        validate_event(event)
    assert a == last
    same = {k: v for k, v in a.items() if k not in ("command", "profile", "provider")}
    assert same == {k: v for k, v in b.items() if k not in ("command", "profile", "provider")}


def test_failed_runs_always_carry_stderr_tail(tmp_path: Path) -> None:
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'quota exceeded' >&2\nexit 7\n")
    failing.chmod(0o755)
    for flag in ("--json", "--jsonl"):
        proc = subprocess.run(
            [*CLI, "run", "-P", "codex", "--command", str(failing), flag, "hi"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        obj = json.loads(proc.stdout if flag == "--json" else proc.stdout.splitlines()[-1])
        obj.pop("type", None)
        validate_result(obj)
        assert "quota exceeded" in obj["stderr_tail"]


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_replay_blocked_on_a_fifo_exits_on_a_signal(tmp_path: Path, sig: int, code: int) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [*CLI, "replay", "-P", "codex", str(fifo)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    writer = -1
    try:
        # once the reader has the fifo open, a non-blocking writer can open it; holding the
        # writer open leaves replay blocked in read()
        def open_writer() -> bool:
            nonlocal writer
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return False
            return True

        assert wait_for(open_writer, 60), "replay never opened the fifo"
        os.write(writer, b'{"type":"thread.started","thread_id":"t"}\n')
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if writer >= 0:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert err.splitlines() == [f"alice-trio: {word}"]


def _chat(mark: str, speed: str = "0") -> PtyProcess:
    return PtyProcess(
        [*CLI, "chat", "--provider", "replay", "-o", f"speed={speed}"], env={"TEST_MARK": mark}
    )


def test_chat_commands_in_a_terminal() -> None:
    pytest.importorskip("alice_trio.sessions.session")
    mark = new_mark()
    term = _chat(mark)
    try:
        assert term.expect("/help lists commands")
        term.send("/help\n")
        assert term.expect("/model NAME")
        for cmd in ("/exit", "/quit", "/interrupt", "/new", "/thread"):
            assert term.expect(cmd)  # the help may still be arriving: wait for each line
        term.send("/bogus\n")
        assert term.expect("unknown command /bogus")
        term.send("/interrupt\n")
        assert term.expect("no turn is running")
        assert REPLY not in term.screen  # no command reached the agent
        term.send("//hello\n")  # a literal slash: sent
        assert term.expect(REPLY)
        term.send("/thread\n")
        assert term.expect("thread: 01a21857")
        term.send("/model other-model\n")
        assert term.expect("model other-model: a new session (resuming thread 01a21857")
        term.send("again\n")
        assert term.expect_count(REPLY, 2), term.screen[-3000:]
        term.send("/new\n")
        assert term.expect("new conversation")
        term.send("/thread\n")
        assert term.expect("thread: (none yet)")
        term.send("/quit\n")
        assert term.wait() == 0
    finally:
        term.close()
    _tracebackless(term.screen)
    assert visible(term.screen).count(REPLY) == 2  # each reply once
    assert wait_for(lambda: marked(mark) == [], 20)


def test_chat_quit_while_a_turn_runs_leaves_nothing_running() -> None:
    pytest.importorskip("alice_trio.sessions.session")
    mark = new_mark()
    term = _chat(mark, speed="0.002")
    try:
        assert term.expect("/help lists commands")
        term.send("hello\n")
        assert wait_for(lambda: started(mark, term.proc.pid)), "the turn never started"
        term.send("/quit\n")
        assert term.wait() == 0
    finally:
        term.close()
    assert marked(mark) == []


@pytest.mark.parametrize(("how", "code"), [("ctrl-c", 130), ("sigterm", 143)])
def test_chat_signals_exit_cleanly(how: str, code: int) -> None:
    """Ctrl-C while idle ends the chat (130); SIGTERM during a turn ends it (143); one line,
    no traceback, the agent's processes gone."""
    pytest.importorskip("alice_trio.sessions.session")
    mark = new_mark()
    term = _chat(mark, speed="0.002")
    try:
        assert term.expect("/help lists commands")
        if how == "ctrl-c":
            term.ctrl_c()
        else:
            term.send("hello\n")
            assert wait_for(lambda: started(mark, term.proc.pid)), "the turn never started"
            term.proc.send_signal(signal.SIGTERM)
        assert term.wait() == code
    finally:
        term.close()
    _tracebackless(term.screen)
    word = "interrupted" if how == "ctrl-c" else "terminated"
    assert f"alice-trio: {word}" in term.screen
    assert marked(mark) == []


def test_run_ctrl_c_in_a_terminal() -> None:
    mark = new_mark()
    term = PtyProcess(
        [*CLI, "run", "--provider", "replay", "-o", "speed=0.002", "hi"], env={"TEST_MARK": mark}
    )
    try:
        assert wait_for(lambda: started(mark, term.proc.pid)), "the replay CLI never started"
        term.ctrl_c()
        assert term.wait() == 130
    finally:
        term.close()
    _tracebackless(term.screen)
    last = [ln for ln in visible(term.screen).splitlines() if ln.strip()][-1]
    assert last.removeprefix("^C") == "alice-trio: interrupted"  # ^C: the terminal's echo
    assert marked(mark) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_chat_signal_while_the_session_starts(tmp_path: Path, sig: int) -> None:
    """The agent never finishes starting (a claude that prints nothing): a signal still ends
    the chat at once, and the agent is gone."""
    pytest.importorskip("alice_trio.sessions.session")
    mute = tmp_path / "claude"
    mute.write_text("#!/bin/sh\nexec sleep 600\n")
    mute.chmod(0o755)
    mark = new_mark()
    proc = subprocess.Popen(
        [*CLI, "chat", "--provider", "claude", "--command", str(mute), "--plain"],
        env={**os.environ, "TEST_MARK": mark}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: started(mark, proc.pid)), "the agent never started"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _tracebackless(err)
    assert proc.returncode == 128 + sig, err
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert err.splitlines()[-1] == f"alice-trio: {word}"
    assert wait_for(lambda: marked(mark) == [], 20)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_inside_a_trio_run_without_a_receiver(tmp_path: Path, sig: int, code: int) -> None:
    """``doctor`` on hung CLIs runs trio without a signal receiver of its own: a signal still
    ends it with the documented code and one line (SIGTERM goes through trio's Ctrl-C path)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("codex", "claude", "gemini", "kimi", "opencode"):
        (bin_dir / name).write_text("#!/bin/sh\nexec sleep 600\n")
        (bin_dir / name).chmod(0o755)
    mark = new_mark()
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "TEST_MARK": mark}
    proc = subprocess.Popen(
        [*CLI, "doctor", "--plain", "--timeout", "120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: started(mark, proc.pid)), "doctor never ran a check"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _tracebackless(err)
    assert proc.returncode == code, err
    word = "interrupted" if sig == signal.SIGINT else "terminated"
    assert err.splitlines()[-1] == f"alice-trio: {word}"


def test_non_utf8_prompt_argument_is_read_with_replacement() -> None:
    proc = subprocess.run(
        [*CLI, "run", "--provider", "replay", "-o", "speed=0", "--json", "-q", b"caf\xe9"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    _tracebackless(proc.stderr.decode())
    assert proc.returncode == 0, proc.stderr
    validate_result(json.loads(proc.stdout))
