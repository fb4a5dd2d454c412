"""The alice-trio command line: run, replay, providers, doctor, chat (in process and spawned)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alice_trio.cli.main import main
from alice_trio.cli.progress import PROGRESS_RATE

from cli_support import validate_result
from helpers import cmdline, marked, new_mark, started

ROOT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = ROOT / "tests" / "transcripts"
THREAD = "01a21857-8d93-7d61-8bab-f9ca2ca653ae"
HTTP500 = TRANSCRIPTS / "codex" / "codex_exec_http500" / "timeline.jsonl"
CLI = [sys.executable, "-m", "alice_trio.cli.entry"]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- run ------------------------------------------------------------------------------------


def test_run_replay_zero_config_prints_reply(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "run", "--provider", "replay", "--plain", "-o", "speed=0")
    assert code == 0
    assert out.startswith("The command printed:")
    assert "tool› command=`/bin/bash -lc 'echo hi'`" in err
    assert f"thread: {THREAD}" in err
    assert "usage: 2468 input (2000 cached), 112 output tokens" in err


def test_run_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "run", "-P", "replay", "-o", "speed=0", "--json", "-q", "hi")
    assert code == 0
    obj = json.loads(out)
    validate_result(obj)
    assert obj["schema"] == 1 and obj["command"] == "run" and obj["ok"] is True
    assert obj["next_thread_id"] == THREAD and obj["error"] is None
    assert obj["usage"] == {"input_tokens": 2468, "cached_input_tokens": 2000, "output_tokens": 112}
    assert obj["provider"] == "replay"


def test_run_jsonl_one_event_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "run", "-P", "replay", "-o", "speed=0", "--jsonl")
    assert code == 0
    lines = [json.loads(x) for x in out.splitlines()]
    kinds = [x.get("kind") for x in lines if x["type"] == "event"]
    assert kinds[:3] == ["tool_use", "tool_use", "assistant_text"]
    assert lines[-1]["type"] == "result" and lines[-1]["next_thread_id"] == THREAD


def test_run_with_config_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        capsys, "run", "-c", str(ROOT / "config.example.yaml"), "-p", "REPLAY", "-o", "speed=0",
        "--json", "hello",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["profile"] == "replay"


def test_run_failure_exits_1_with_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(
        capsys, "run", "-P", "replay", "-o", f"transcript={HTTP500}", "-o", "speed=0", "--json",
        "-q", "hi",
    )  # fmt: skip
    assert code == 1
    obj = json.loads(out)
    assert obj["error"] and obj["error_type"] == "AgentError"
    assert obj["reply"] == ""
    assert "alice-trio:" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "the following arguments are required"),
        (["run", "hi"], "give --provider NAME"),
        (["run", "-P", "nope", "hi"], '--provider: unsupported provider "nope"; known providers:'),
        (["run", "-P", "replay", "-o", "sped=0"], '-o.sped: unknown key for provider "replay"'),
        (["run", "-P", "replay", "-o", "noequals"], "-o expects KEY=VALUE"),
        (["run", "-P", "replay", "-p", "x"], "--profile needs --config"),
        (["run", "-c", "/nonexistent.yaml", "hi"], "cannot read config file"),
        (["run", "-P", "replay", "--cwd", "/nonexistent/dir"], "workspace dir does not exist"),
        (["run", "-P", "replay", "--json", "--jsonl"], "not allowed with argument"),
        (["run", "-P", "replay", "-o", "transcript=/nonexistent", "hi"], "transcript does not"),
        (["run", "-P", "replay", "-o", "transcript=/", "hi"], "transcript is a directory: /"),
        (
            ["run", "-P", "replay", "-o", "transcript=/dev/zero", "hi"],
            "transcript is not a regular file: /dev/zero",
        ),
        (["replay", "--provider", "codex", "/nonexistent/file"], "cannot read /nonexistent/file"),
        (["replay", "--provider", "nope", str(HTTP500)], '--provider: unsupported provider "nope"'),
    ],
)
def test_usage_and_config_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert needle in err


def test_bad_config_file_lists_every_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("llm_profiles:\n  chat: {provider: codex, timeout_secs: abc, modle: x}\n")
    code, _, err = run_main(capsys, "run", "-c", str(f), "hi")
    assert code == 2
    assert (
        f'alice-trio: {f}: llm_profiles.chat.timeout_secs: expected a number of seconds, got "abc"'
        in err
    )
    assert 'llm_profiles.chat.modle: unknown key for provider "codex"; did you mean "model"?' in err


# -- replay ---------------------------------------------------------------------------------


def _stdout_files() -> list[tuple[str, Path]]:
    out = []
    for provider in ("codex", "claude", "gemini", "kimi", "opencode"):
        for f in sorted((TRANSCRIPTS / provider).rglob("*")):
            name = f.name
            if f.is_file() and (name == "stdout.raw" or name.endswith(".stdout")
                                or ".stdout." in name):  # fmt: skip
                out.append((provider, f))
    return out


STDOUT_FILES = _stdout_files()


def test_there_are_transcripts_of_every_provider() -> None:
    assert {p for p, _ in STDOUT_FILES} == {"codex", "claude", "gemini", "kimi", "opencode"}


@pytest.mark.parametrize(
    ("provider", "path"), STDOUT_FILES, ids=[f"{p}:{f.name}" for p, f in STDOUT_FILES]
)
def test_replay_json_on_every_transcript(
    capsys: pytest.CaptureFixture[str], provider: str, path: Path
) -> None:
    code, out, _ = run_main(capsys, "replay", "--provider", provider, "--json", str(path))
    assert code == 0
    obj = json.loads(out)
    validate_result(obj)
    assert obj["command"] == "replay" and obj["provider"] == provider
    assert obj["error"] is not None or obj["reply"]  # a clean decode has a reply


def test_replay_known_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        capsys, "replay", "-P", "codex", "--json", str(TRANSCRIPTS / "codex" / "codex_exec_tool")
    )
    assert code == 0
    obj = json.loads(out)
    assert obj["reply"].startswith("The command printed:") and obj["error"] is None
    assert obj["usage"]["output_tokens"] == 112
    code, out, _ = run_main(capsys, "replay", "-P", "codex", "--json", str(HTTP500))
    assert code == 0 and json.loads(out)["error"]
    code, out, err = run_main(capsys, "replay", "-P", "codex", "--plain", str(HTTP500))
    assert code == 0 and "error:" in err


def _flood(path: Path, tools: int) -> Path:
    lines = [{"type": "thread.started", "thread_id": "t-1"}, {"type": "turn.started"}]
    for i in range(tools):
        item = {"id": f"i{i}", "type": "command_execution", "command": f"ls {i}",
                "exit_code": 0, "status": "completed"}  # fmt: skip
        lines.append({"type": "item.completed", "item": item})
        if i % 50 == 0:
            message = {"id": f"m{i}", "type": "agent_message", "text": f"step {i}\nthread: x"}
            lines.append({"type": "item.completed", "item": message})
    final = {"id": "m", "type": "agent_message", "text": "All done."}
    lines += [
        {"type": "item.completed", "item": final},
        {"type": "turn.completed", "usage": {"input_tokens": 3, "output_tokens": 2}},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_replay_shows_the_events_as_a_run_does(tmp_path: Path) -> None:
    """As typed: the events on stderr (the first PROGRESS_RATE tool calls, the rest counted;
    every message), the reply on stdout; -v every event, -q and --json none."""
    flood = str(_flood(tmp_path / "flood.jsonl", 500))
    replay = [*CLI, "replay", "-P", "codex"]
    proc = subprocess.run([*replay, flood], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "All done.\n", proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert sum(ln.startswith("tool› command=`ls ") for ln in lines) == PROGRESS_RATE
    assert f"… {500 - PROGRESS_RATE} events skipped: the first {PROGRESS_RATE} shown" in (
        proc.stderr
    )
    assert sum(ln.startswith("assistant› step ") for ln in lines) == 10
    assert "  thread: x" in lines and lines[-2:] == [
        "thread: t-1",
        "usage: 3 input (0 cached), 2 output tokens",
    ]
    verbose = subprocess.run([*replay, "-v", flood], capture_output=True, text=True, timeout=120)
    assert sum(ln.startswith("tool› ") for ln in verbose.stderr.splitlines()) == 500
    assert "skipped" not in verbose.stderr and verbose.stdout == "All done.\n"
    quiet = subprocess.run([*replay, "-q", flood], capture_output=True, text=True, timeout=120)
    assert quiet.stdout == "All done.\n" and quiet.stderr.splitlines() == lines[-2:]
    as_json = subprocess.run(
        [*replay, "--json", flood], capture_output=True, text=True, timeout=120
    )
    assert json.loads(as_json.stdout)["reply"] == "All done." and as_json.stderr == ""


# -- providers / doctor ---------------------------------------------------------------------


def test_providers_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "providers", "--json")
    assert code == 0
    names = {row["name"] for row in json.loads(out)}
    assert {"codex", "claude", "gemini", "kimi", "opencode", "replay"} <= names


# -- processes: SIGINT / SIGTERM / chat -----------------------------------------------------


def _replay_running(mark: str) -> bool:
    """Whether the replayed agent of the command marked ``mark`` has started."""
    return any(b"alice_trio.replay_cli" in (cmdline(pid) or b"") for pid in marked(mark))


def _wait_for(pred: object, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signal_cancels_the_run_and_leaves_no_process(sig: int, code: int, word: str) -> None:
    mark = new_mark()
    env = {**os.environ, "TEST_MARK": mark}
    proc = subprocess.Popen(
        [*CLI, "run", "--provider", "replay", "-o", "speed=0.002", "--json", "--plain", "hi"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # the replayed agent (a grandchild, in its own session) is running
        # (not "two marked processes": trio's import runs ldconfig, a fork of this command)
        assert _wait_for(lambda: _replay_running(mark)), "the replay CLI never started"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    obj = json.loads(out)
    validate_result(obj)
    assert obj["error"] == word and obj["ok"] is False
    assert err.decode().splitlines() == [f"alice-trio: {word}"]
    assert marked(mark) == []


def test_chat_over_a_session() -> None:
    pytest.importorskip("alice_trio.sessions.session")
    proc = subprocess.run(
        [*CLI, "chat", "--provider", "replay", "-o", "speed=0", "--plain"],
        input=b"hello\nsecond\n", capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().count("The command printed:") == 2


def test_chat_a_refused_model_is_reported_and_the_chat_goes_on(tmp_path: Path) -> None:
    """Hostile-use finding (round 4): `/model NAME` with a name the provider refuses (a
    dash-leading one, as a flag would be) ended the whole chat with exit 2; the session for the
    new model could not open. Now the refusal is shown and the chat stays on the model before,
    on the same thread."""
    pytest.importorskip("alice_trio.sessions.session")
    echo = tmp_path / "claude"
    fake = Path(__file__).resolve().parents[1] / "sessions" / "fake_claude_echo.py"
    echo.write_text(f"#!/bin/sh\nexec {sys.executable} {fake}\n")
    echo.chmod(0o755)
    proc = subprocess.run(
        [*CLI, "chat", "--provider", "claude", "--command", str(echo), "--plain"],
        input=b"/model --help\nsecond\n", capture_output=True, timeout=60,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert proc.stdout.decode().splitlines() == ["echo: second"]
    assert "error: model --help:" in err and "not a valid value" in err
    assert "staying on the default model" in err


def test_chat_model_switch_lets_the_running_and_queued_turns_finish(tmp_path: Path) -> None:
    """Hostile-use finding (round 8): `/model NAME` typed while a turn ran closed the session at
    once — the running turn and every queued one were killed without a word and their replies
    lost, though the command promises the model "from the next turn". Now they finish on the
    model they were sent with; the lines after the command go to the new session."""
    pytest.importorskip("alice_trio.sessions.session")
    echo = tmp_path / "claude"
    fake = Path(__file__).resolve().parents[1] / "sessions" / "fake_claude_echo.py"
    echo.write_text(f"#!/bin/sh\nexec {sys.executable} {fake}\n")
    echo.chmod(0o755)
    proc = subprocess.run(
        [*CLI, "chat", "--provider", "claude", "--command", str(echo), "--plain"],
        input=b"first\nqueued\n/model other-model\nsecond\n", capture_output=True, timeout=60,
        env={**os.environ, "FAKE_CLAUDE_DELAY": "0.3"},  # "first" still runs at the command
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    replies = proc.stdout.decode().splitlines()
    assert replies[0] == "echo: first" and replies[-1] == "echo: second", (replies, err)
    assert "queued" in "".join(replies[:-1]), replies  # its own turn, or steered into first's
    assert "model other-model: after the running turn" in err
    assert "model other-model: a new session (resuming thread echo-session-1)" in err


def test_chat_new_says_which_queued_messages_it_drops() -> None:
    """Hostile-use finding (round 8): `/new` while messages were queued behind the running turn
    dropped them with the old session and said only "the running turn is stopped"."""
    pytest.importorskip("alice_trio.sessions.session")
    proc = subprocess.run(  # a slow replay: the two lines after the first wait in the queue
        [*CLI, "chat", "--provider", "replay", "-o", "speed=0.002", "--plain"],
        input=b"first\nsecond\nthird\n/new\n", capture_output=True, timeout=60,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "queued (2 waiting)" in err
    assert "new conversation (the running turn is stopped, 2 queued messages not sent)" in err


def collect(stream: Any, into: bytearray) -> None:
    """Append what a pipe gives to ``into`` until its end (a reader thread's body)."""
    while chunk := stream.read1(65536):
        into += chunk


@pytest.mark.parametrize(
    ("option", "message"),
    [("idle_timeout_secs=1", "claude idle timeout: no output for 1 s"),
     ("timeout_secs=1", "llm timeout: claude turn exceeded 1 s")],
    ids=["idle", "overall"],
)  # fmt: skip
def test_chat_a_stalled_turn_ends_at_the_profiles_timeout(
    tmp_path: Path, option: str, message: str
) -> None:
    """Hostile-use finding (round 5): ``chat`` ignored the profile's ``idle_timeout_secs`` and
    ``timeout_secs`` — a turn the agent never finished held the chat for good, and end of input
    (Ctrl-D) waited for it forever. Now the turn's session is closed (its process killed) at
    the timeout, the error is shown, and the next message resumes the thread in a new one."""
    pytest.importorskip("alice_trio.sessions.session")
    mark = new_mark()
    fake = Path(__file__).resolve().parents[1] / "sessions" / "fake_claude_echo.py"
    first = tmp_path / "first-start"
    echo = tmp_path / "claude"
    echo.write_text(  # the first process never answers; the next one does
        f"#!/bin/sh\nif [ -e {first} ]; then exec {sys.executable} {fake}; fi\n"
        f"touch {first}\nFAKE_CLAUDE_DELAY=600 exec {sys.executable} {fake}\n"
    )
    echo.chmod(0o755)
    proc = subprocess.Popen(
        [*CLI, "chat", "--provider", "claude", "--command", str(echo), "--plain", "-o", option],
        env={**os.environ, "TEST_MARK": mark}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None and proc.stdout is not None
    err = bytearray()
    reader = threading.Thread(target=collect, args=(proc.stderr, err), daemon=True)
    reader.start()
    try:
        proc.stdin.write(b"first\n")
        proc.stdin.flush()
        assert _wait_for(lambda: b"resumes thread echo-session-1" in err, 60), bytes(err)
        assert f"error: {message}".encode() in err
        proc.stdin.write(b"second\n")
        proc.stdin.close()  # Ctrl-D: the chat ends after the second turn
        proc.wait(timeout=60)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert proc.returncode == 0, err
    assert out == b"echo: second\n"
    assert marked(mark) == []


def test_chat_ctrl_c_interrupts_the_turn_and_ctrl_d_ends() -> None:
    pytest.importorskip("alice_trio.sessions.session")
    mark = new_mark()
    proc = subprocess.Popen(
        [*CLI, "chat", "--provider", "replay", "-o", "speed=0.002", "--plain"],
        env={**os.environ, "TEST_MARK": mark}, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        assert _wait_for(lambda: started(mark, proc.pid)), "the turn never started"
        proc.send_signal(signal.SIGINT)
        assert _wait_for(lambda: len(marked(mark)) == 1), "the turn was not interrupted"
        proc.stdin.close()  # Ctrl-D
        proc.wait(timeout=20)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert b"turn interrupted" in err
    assert out == b""
    assert marked(mark) == []


# -- run --command FAKE for every provider -----------------------------------------------------

#: provider → (recorded stdout its fake CLI replays, config overrides)
FAKE_RUNS = {
    "codex": (TRANSCRIPTS / "codex" / "codex_exec_tool" / "stdout.raw", ()),
    "claude": (TRANSCRIPTS / "claude" / "claude_stream_tool.stdout", ()),
    "gemini": (TRANSCRIPTS / "gemini" / "gemini_stream_plain.stdout", ()),
    "kimi": (TRANSCRIPTS / "kimi" / "kimi_code_stream_tool.stdout", ()),
    "opencode": (TRANSCRIPTS / "opencode" / "oc_run_tool" / "stdout.raw", ()),
    "replay": (TRANSCRIPTS / "codex" / "codex_exec_simple" / "stdout.raw", ("-o", "speed=0")),
}


def _fake_cli(path: Path, transcript: Path) -> Path:
    """An executable standing in for a real agent CLI: it ignores its arguments, reads stdin
    to EOF and prints the recorded stdout (the replay CLI, as a user's bot test would use it)."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "sys.stdin.read()\n"
        f"os.execv(sys.executable, [sys.executable, '-m', 'alice_trio.replay_cli', '--speed', "
        f"'0', '--', {str(transcript)!r}])\n"
    )
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("provider", sorted(FAKE_RUNS))
def test_run_with_a_fake_command_for_every_provider(
    provider: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alice_trio.transcript import decode_transcript, outcome_summary

    transcript, extra = FAKE_RUNS[provider]
    fake = _fake_cli(tmp_path / f"fake-{provider}", transcript)
    if provider == "replay":
        argv = ["run", "-P", "replay", "-o", f"transcript={transcript}", *extra]
    else:
        argv = ["run", "-P", provider, "--command", str(fake), *extra]
    code, out, _ = run_main(capsys, *argv, "--json", "-q", "what did the tool print?")
    expected = outcome_summary(
        decode_transcript("codex" if provider == "replay" else provider, transcript.read_text())
    )
    assert code == 0, out
    got = json.loads(out)
    assert got["error"] is None
    assert got["reply"] == expected["reply"] and got["reply"]
    assert got["next_thread_id"] == expected["next_thread_id"] and got["next_thread_id"]
    assert got["usage"] == expected["usage"]


def test_doctor_says_which_cleanup_mechanism_is_in_force(capsys: pytest.CaptureFixture[str]):
    code, out, _ = run_main(capsys, "doctor", "--plain", "--timeout", "5")
    assert code == 0
    line = [ln for ln in out.splitlines() if ln.startswith("process cleanup:")]
    assert line, out
    assert any(m in line[0] for m in ("subreaper sweep", "marker-scan sweep", "group-only"))
    assert "host guardian" in line[0] and "cgroup v2 kill" in line[0]
