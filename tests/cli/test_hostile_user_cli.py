"""Hostile user, round 10: ``alice-trio`` as a person types it, with hostile arguments,
transcripts, config files and streams. Each test starts the command as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cli_support import CLI, validate_result

#: what a terminal would obey: an OSC 52 clipboard write, a screen clear, a C1 CSI, a bidi
#: override and a carriage return that draws over the line
_HOSTILE = "\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b1;1H\u202eevil\rforged"
_OBEYED = ("\x1b", "\x07", "\x9b", "\u202e", "\rforged")


def _transcript(tmp_path: Path, *records: dict[str, object]) -> str:
    path = tmp_path / "run.timeline.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _failing_transcript(tmp_path: Path) -> str:
    """A recorded codex run whose error message and stderr carry control sequences."""
    return _transcript(
        tmp_path,
        {"t_ms": 1, "stream": "stderr", "line": "stderr " + _HOSTILE},
        {"t_ms": 2, "stream": "stdout", "line": json.dumps({"type": "thread.started",
                                                            "thread_id": "t1"})},
        {"t_ms": 3, "stream": "stdout", "line": json.dumps({"type": "error",
                                                            "message": "failed " + _HOSTILE})},
        {"exit": 1},
    )  # fmt: skip


def _run(*argv: str, stdin: bytes | None = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *argv], input=stdin, capture_output=True, timeout=120)


def test_an_agents_error_message_and_stderr_are_shown_not_obeyed(tmp_path: Path) -> None:
    """The ``alice-trio: …`` lines carry the agent's own error text and stderr tail: their
    control characters reach stderr in caret form (to a file as to a terminal), while
    ``--json`` keeps them exactly."""
    transcript = _failing_transcript(tmp_path)
    run = ["--provider", "replay", "-o", "speed=0", "-o", f"transcript={transcript}"]
    proc = _run("run", *run, "hi")
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "failed ^[]52;c;ZXZpbA==^G^[[2J\\x9b1;1H<U+202E>evil^Mforged" in err, err
    assert "stderr ^[]52" in err, err
    for obeyed in _OBEYED:
        assert obeyed not in err, (obeyed, err)
    assert all(line.startswith(("alice-trio: ", "thread: ")) for line in err.splitlines()), err
    # chat reports the failed turn's error the same way
    chat = _run("chat", *run, stdin=b"hi\n")
    err = chat.stderr.decode()
    assert "failed ^[]52" in err, err
    for obeyed in _OBEYED:
        assert obeyed not in err, (obeyed, err)
    # the result object keeps what the agent wrote
    proc = _run("run", *run, "--json", "hi")
    obj = json.loads(proc.stdout)
    validate_result(obj)
    assert obj["error"] == "failed " + _HOSTILE
    assert "stderr " + _HOSTILE in obj["stderr_tail"]


def test_help_and_version_to_a_full_or_closed_stdout_are_not_a_silent_success() -> None:
    """``--help`` and ``--version`` are the command's output like a reply: lost to a full
    device they fail with one line (they exited 0 with nothing written); a reader that
    closed early (``| head``) is still 0."""
    for argv in (["--help"], ["run", "--help"], ["--version"]):
        with open("/dev/full", "wb") as full:
            proc = subprocess.run([*CLI, *argv], stdout=full, stderr=subprocess.PIPE,
                                  timeout=120)  # fmt: skip
        assert proc.returncode == 1, (argv, proc.stderr)
        assert (
            proc.stderr.decode() == "alice-trio: cannot write to stdout: No space left on device\n"
        )
    with subprocess.Popen([*CLI, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        assert p.stdout is not None and p.stderr is not None
        assert p.stdout.read(5) == b"usage"
        p.stdout.close()
        assert p.wait(120) == 0
        assert p.stderr.read() == b""


def test_run_jsonl_whose_reader_left_ends_the_run(tmp_path: Path) -> None:
    """``run --jsonl | head``: once the reader closed stdout nobody sees the events, so the
    run ends (its agent killed) and the command exits 0 — it worked on unseen to the end of
    the turn (here 600 s)."""
    command = json.dumps({"type": "item.completed", "item": {
        "id": "c", "type": "command_execution", "command": "echo hi", "aggregated_output": "",
        "exit_code": 0, "status": "completed"}})  # fmt: skip
    reply = json.dumps({"type": "item.completed",
                        "item": {"id": "m", "type": "agent_message", "text": "done"}})  # fmt: skip
    transcript = _transcript(
        tmp_path,
        *({"t_ms": 10 + 100 * i, "stream": "stdout", "line": command} for i in range(10)),
        {"t_ms": 600_000, "stream": "stdout", "line": reply},
    )
    argv = [*CLI, "run", "--provider", "replay", "-o", f"transcript={transcript}", "--jsonl", "hi"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(10) == b'{"type": "'
        proc.stdout.close()
        try:
            code = proc.wait(120)  # far below the turn's 600 s
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the run went on after its reader left") from None
        err = proc.stderr.read().decode()
    assert code == 0, err
    assert "Traceback" not in err and "alice-trio:" not in err, err


def test_chat_whose_reader_left_ends() -> None:
    """``chat | head -1``: once the reader closed stdout nobody sees the replies, so the chat
    ends at the first reply it cannot write (the running turn stopped with its session, the
    queued messages not sent) with exit 0, although stdin is still open (a person or a
    producer still typing). It went on running the queue unseen, then waited for input."""
    argv = [*CLI, "chat", "--provider", "replay", "-o", "speed=0", "--plain"]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(b"first\n")
        proc.stdin.flush()  # stdin stays open
        assert proc.stdout.readline().startswith(b"The command printed:")
        proc.stdout.close()
        proc.stdin.write(b"".join(b"message %d\n" % i for i in range(8)))
        proc.stdin.flush()
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the chat went on after its reader left") from None
        err = proc.stderr.read().decode()
        proc.stdin.close()
    assert code == 0, err
    assert "Traceback" not in err and "alice-trio:" not in err, err
    assert err.count("The command printed:") < 9, err  # not every message ran


def test_a_workspace_whose_name_is_not_utf8_is_refused_as_such(tmp_path: Path) -> None:
    """``--cwd`` (or ``-o workspace_dir=``) naming an existing directory whose name is not
    UTF-8: the error said "does not exist" (the name was made text with U+FFFD, another path).
    Now it says what is wrong: the name is not valid UTF-8, so it cannot go to the agent CLIs."""
    name = os.fsencode(tmp_path) + b"/\xffdir"
    os.mkdir(name)
    cwd = os.fsdecode(name)
    for argv in (
        ["run", "--provider", "replay", "-o", "speed=0", "--cwd", cwd, "x"],
        ["run", "--provider", "replay", "-o", "speed=0", "-o", f"workspace_dir={cwd}", "x"],
        ["chat", "--provider", "replay", "-o", "speed=0", "--cwd", cwd],
    ):
        proc = _run(*argv, stdin=b"hi\n")
        err = proc.stderr.decode()
        assert proc.returncode == 2, err
        assert "does not exist" not in err, err
        assert "is not valid UTF-8 (byte \\xff at character" in err, err
        assert proc.stdout == b""
