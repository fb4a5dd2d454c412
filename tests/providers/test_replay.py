"""The replay provider and its fake CLI (``python -m alice_trio.replay_cli``)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from alice_trio.boundedio import read_bounded
from alice_trio.errors import ConfigError, EmptyPromptError, UnknownProviderError
from alice_trio.models import RunRequest, Usage
from alice_trio.providers import get_provider
from alice_trio.providers.codex import CodexExecDecoder
from alice_trio.providers.replay import (
    PROVIDER,
    ReplayConfig,
    build_invocation,
    default_transcript_path,
    new_decoder,
)
from alice_trio.replay_cli import MAX_TRANSCRIPT_BYTES, load_transcript
from alice_trio.transcript import decode_transcript, outcome_summary

TRANSCRIPTS = Path(__file__).resolve().parent.parent / "transcripts"
CODEX = TRANSCRIPTS / "codex"
CAPTURE = TRANSCRIPTS / "replay"
TOOL_THREAD = "01a21857-8d93-7d61-8bab-f9ca2ca653ae"


def replay(
    path: Path | str, *, speed: str = "0", stdin: bytes = b""
) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "alice_trio.replay_cli", "--speed", speed, "--", str(path)]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)


# -- provider ----------------------------------------------------------------------------------


def test_argv_prompt_on_stdin_and_default_transcript() -> None:
    inv = build_invocation(RunRequest(user_text=" hi "), ReplayConfig(speed=0))
    path = default_transcript_path()
    assert inv.argv == (sys.executable, "-m", "alice_trio.replay_cli", "--speed", "0.0", "--", path)
    assert Path(path).is_file()
    assert inv.stdin == b"hi"
    cfg = ReplayConfig(transcript="/x.jsonl", speed=2.5, command="python3", extra_args=("-v",))
    assert build_invocation(RunRequest(user_text="hi"), cfg).argv == (
        "python3", "-m", "alice_trio.replay_cli", "--speed", "2.5", "-v", "--", "/x.jsonl",
    )  # fmt: skip
    with pytest.raises(EmptyPromptError):
        build_invocation(RunRequest(user_text="  "), ReplayConfig())
    with pytest.raises(ValueError):
        ReplayConfig(speed=-1)


def test_registered_and_decoder_delegates() -> None:
    assert get_provider("Replay") is PROVIDER
    assert PROVIDER.default_command == sys.executable
    request = RunRequest(user_text="hi", thread_id="t0")
    decoder = new_decoder(request, ReplayConfig())
    assert isinstance(decoder, CodexExecDecoder)
    assert decoder.finish().result.next_thread_id == "t0"
    other = get_provider("opencode")
    delegated = new_decoder(request, ReplayConfig(decode_as=" OpenCode "))
    assert type(delegated) is type(other.new_decoder(request, other.config_class()))
    with pytest.raises(ConfigError):
        new_decoder(request, ReplayConfig(decode_as="replay"))
    with pytest.raises(UnknownProviderError):
        new_decoder(request, ReplayConfig(decode_as="nope"))


def test_packaged_transcript_decodes_as_codex() -> None:
    records = [json.loads(ln) for ln in Path(default_transcript_path()).read_text().splitlines()]
    stdout = "\n".join(r["line"] for r in records if r["stream"] == "stdout")
    summary = outcome_summary(decode_transcript("codex", stdout))
    assert summary["reply"].startswith("The command printed:")
    assert summary["next_thread_id"] == TOOL_THREAD
    assert summary["usage"] == {
        "input_tokens": 2468,
        "cached_input_tokens": 2000,
        "output_tokens": 112,
    }
    assert summary["error"] is None


def test_decode_transcript_reports_failures() -> None:
    stdout = (CODEX / "codex_exec_http500" / "stdout.raw").read_text()
    summary = outcome_summary(decode_transcript("codex", stdout))
    assert summary["error"].startswith("We’re currently experiencing high demand")
    assert summary["reply"] == "" and summary["usage"] == Usage().to_dict()
    assert outcome_summary(decode_transcript("codex", ""))["error"] == (
        "codex returned no final agent message"
    )


@pytest.mark.parametrize("provider", ["codex", "claude", "gemini", "kimi", "opencode"])
def test_decode_transcript_takes_the_captured_bytes(provider: str) -> None:
    """``decode_transcript(name, path.read_bytes())`` raised ``TypeError: a bytes-like object
    is required, not 'str'`` (for bytes!); the bytes are decoded as the engine decodes a live
    stdout, an invalid byte included. Neither text nor bytes: a ``TypeError`` saying so."""
    root = CODEX.parent / provider
    captures = sorted(p for p in root.rglob("*stdout*") if p.is_file())[:4]
    assert captures, root
    for stdout in captures:
        data = stdout.read_bytes()
        data = data.replace(b"\n", b"\xff\n", 1)  # an invalid byte, as a broken CLI prints
        as_bytes = decode_transcript(provider, data)
        assert as_bytes == decode_transcript(provider, data.decode("utf-8", "replace"))
        assert decode_transcript(provider, bytearray(data)) == as_bytes
    for wrong in (None, 5, ["line"]):
        with pytest.raises(TypeError, match="must be str or bytes"):
            decode_transcript(provider, wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize("decode_as", ["replay", " Replay ", "replaycopy"])
def test_decode_as_a_replay_under_any_name_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, decode_as: str
) -> None:
    """A copy of the replay provider registered under another name (``attrs.evolve(replay,
    name=...)``), named as ``decode_as``, delegated to itself: a ``RecursionError`` per run."""
    import attrs

    from alice_trio.providers import registry

    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    registry.register_provider(attrs.evolve(get_provider("replay"), name="replaycopy"))
    copy = get_provider("replaycopy")
    config = ReplayConfig(decode_as=decode_as)
    with pytest.raises(ConfigError, match="a replay"):
        copy.new_decoder(RunRequest(user_text="x"), config)


# -- transcript loading ------------------------------------------------------------------------


def test_load_timeline_ignores_harness_records_and_reads_meta_rc() -> None:
    t = load_transcript(CODEX / "codex_exec_stall_SIGTERM" / "timeline.jsonl")
    assert t.exit_code == -15 and t.timed
    assert [s for _, s, _ in t.lines] == ["stderr", "stderr", "stdout", "stdout"]
    assert t.lines[2][0] == pytest.approx(0.1913)


def test_load_capture_and_raw(tmp_path: Path) -> None:
    cap = load_transcript(CAPTURE / "kimi_legacy_err500.json")
    assert cap.exit_code == 75 and cap.timed
    assert [s for _, s, _ in cap.lines] == ["stderr", "stderr", "stdout", "stdout"]
    raw = tmp_path / "out.txt"
    raw.write_bytes(b"a\r\nb")
    plain = load_transcript(raw)
    assert not plain.timed and plain.exit_code == 0
    assert [d for _, _, d in plain.lines] == [b"a\r\nb"]  # as it is, in one piece


def _peak(fn: Callable[[], object]) -> int:
    """The most memory ``fn`` held at once (tracemalloc), in bytes."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "content",
    [b"\n" * (2 << 20), b'{"type":"x"}\n' * (1 << 17), b" \r\n" * (1 << 19)],
    ids=["blank-lines", "json-lines", "white-space-lines"],
)
def test_a_transcript_of_many_short_lines_costs_about_its_size(
    tmp_path: Path, content: bytes
) -> None:
    """Loading (``replay_cli``, ``alice-trio replay``) and decoding a file of millions of short
    lines holds about the file, not an object per line: 60 MB of newlines — within the 64 MiB
    bound — took 10 GB and 150 s, and SIGTERM waited for it."""
    path = tmp_path / "stdout.raw"
    path.write_bytes(content)
    reading = _peak(lambda: read_bounded(path, MAX_TRANSCRIPT_BYTES))  # the read's own buffer
    loaded = _peak(lambda: load_transcript(path))
    assert loaded < reading + 4 * len(content), (loaded, reading, len(content))
    transcript = load_transcript(path)
    assert b"".join(d for _, _, d in transcript.lines) == content  # raw: as it is
    text = content.decode()
    decoded = _peak(lambda: decode_transcript("codex", text))
    assert decoded < max(len(content), 4 << 20), (decoded, len(content))


def test_a_timeline_is_read_record_by_record(tmp_path: Path) -> None:
    """A timeline keeps its lines, not a parsed record per line; blank lines, ``\\r\\n`` and a
    U+2028 inside a JSON string do not change what it holds."""
    records = [{"t_ms": i, "stream": "stdout", "line": f"l{i}\u2028"} for i in range(3)]
    text = "\r\n\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    path = tmp_path / "timeline.jsonl"
    path.write_text(text + '\n{"exit": 3}\n\n', encoding="utf-8")
    t = load_transcript(path)
    assert t.timed and t.exit_code == 3
    assert [d.decode() for _, _, d in t.lines] == [f"l{i}\u2028\n" for i in range(3)]
    assert [s for _, s, _ in t.lines] == ["stdout"] * 3


# -- the fake CLI as a process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "rc"),
    [("codex_exec_tool", 0), ("codex_exec_http500", 1), ("codex_exec_stall_SIGTERM", -15)],
)
def test_replays_timeline_bytes_and_exit_code(case: str, rc: int) -> None:
    proc = replay(CODEX / case / "timeline.jsonl", stdin=b"the prompt, read and ignored")
    assert proc.stdout == (CODEX / case / "stdout.raw").read_bytes()
    assert proc.stderr == (CODEX / case / "stderr.raw").read_bytes()
    assert proc.returncode == rc


def test_replays_capture_json() -> None:
    proc = replay(CAPTURE / "kimi_legacy_err500.json")
    assert proc.stdout == (CAPTURE / "kimi_legacy_err500.stdout").read_bytes()
    assert proc.stderr == (CAPTURE / "kimi_legacy_err500.stderr").read_bytes()
    assert proc.returncode == 75


def test_replays_raw_stdout_and_explicit_exit_record(tmp_path: Path) -> None:
    data = (CODEX / "codex_exec_simple" / "stdout.raw").read_bytes()
    proc = replay(CODEX / "codex_exec_simple" / "stdout.raw", speed="1")
    assert (proc.stdout, proc.stderr, proc.returncode) == (data, b"", 0)
    timeline = tmp_path / "t.jsonl"
    records = [
        {"t_ms": 0, "stream": "stdout", "line": '{"type":"turn.started"}'},
        {"t_ms": 1, "stream": "harness", "line": "ignored"},
        {"note": "other records are ignored"},
        {"exit": 3},
    ]
    timeline.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    proc = replay(timeline)
    assert (proc.stdout, proc.returncode) == (b'{"type":"turn.started"}\n', 3)


def test_missing_transcript_is_a_usage_error(tmp_path: Path) -> None:
    proc = replay(tmp_path / "missing.jsonl")
    assert proc.returncode == 2
    assert b"cannot read" in proc.stderr


def test_sigterm_ends_a_waiting_replay(tmp_path: Path) -> None:
    timeline = tmp_path / "slow.jsonl"
    lines = [
        {"t_ms": 0, "stream": "stdout", "line": "first"},
        {"t_ms": 600000, "stream": "stdout", "line": "never"},
    ]
    timeline.write_text("\n".join(json.dumps(r) for r in lines))
    argv = [sys.executable, "-m", "alice_trio.replay_cli", "--", str(timeline)]
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"  # flushed per line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
        assert proc.stdout.read() == b""


def test_a_hand_edited_line_holding_the_event_itself_is_written_as_json(tmp_path: Path) -> None:
    """``"line": {"type": …}`` (the event rather than its text), in a timeline or a capture's
    ``text``, was written as Python's repr (``{'type': …}``): the turn failed with "codex
    returned no final agent message". Now as JSON; a string stays as it is, ``null`` is empty."""
    events = [
        {"type": "thread.started", "thread_id": "T1"},
        {"type": "item.completed", "item": {"id": "i", "type": "agent_message", "text": "hé"}},
        {"type": "turn.completed", "usage": {"input_tokens": 3}},
    ]
    timeline = tmp_path / "objects.timeline.jsonl"
    records = [{"t_ms": 0, "stream": "stdout", "line": e} for e in events]
    records += [{"t_ms": 0, "stream": "stdout", "line": None}, {"t_ms": 0, "stream": "stdout",
                "line": "as text"}, {"exit": 0}]  # fmt: skip
    timeline.write_text("\n".join(json.dumps(r) for r in records))
    capture = tmp_path / "objects.json"
    capture.write_text(
        json.dumps({"events": [{"t": 0, "kind": "stdout", "text": e} for e in events]})
    )
    for path in (timeline, capture):
        lines = [data for _, _, data in load_transcript(path).lines]
        for data, event in zip(lines, events, strict=False):
            assert json.loads(data) == event
        outcome = decode_transcript("codex", b"".join(lines))
        assert (outcome.result.reply, outcome.result.next_thread_id) == ("hé", "T1")
    assert [data for _, _, data in load_transcript(timeline).lines][3:] == [b"\n", b"as text\n"]


_WOKEN_REPLAY = """
import signal, sys
from alice_trio.replay_cli import load_transcript, replay
class Woken(Exception):
    pass
def wake(*_):
    raise Woken
signal.signal(signal.SIGALRM, wake)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    replay(load_transcript(sys.argv[1]), float(sys.argv[2]))
except Woken:
    sys.stderr.write("asleep when woken")
"""


@pytest.mark.parametrize(
    ("t_ms", "speed"), [(1e300, 1.0), (10**30, 1.0), (1000, 1e-320), (9e12, 1e-3)]
)
def test_a_recorded_time_beyond_what_sleep_takes_is_slept(
    tmp_path: Path, t_ms: float, speed: float
) -> None:
    """A hand-edited ``t_ms`` (or a tiny ``--speed``) whose wait is longer than ``time.sleep``
    takes (``time_t``) made the replay die with an ``OverflowError`` traceback right after the
    line before it; it waits (as the recording says) until a signal ends it. The child wakes
    itself with SIGALRM after 0.3 s: asleep then, not crashed."""
    timeline = tmp_path / "far.jsonl"
    lines = [
        {"t_ms": 0, "stream": "stdout", "line": "first"},
        {"t_ms": t_ms, "stream": "stdout", "line": "never"},
    ]
    timeline.write_text("\n".join(json.dumps(r) for r in lines))
    argv = [sys.executable, "-c", _WOKEN_REPLAY, str(timeline), repr(speed)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert (proc.stdout, proc.stderr, proc.returncode) == (b"first\n", b"asleep when woken", 0)


@pytest.mark.parametrize(
    ("code", "status"),
    [(-9999, 1), (-int(signal.SIGSTOP), 1), (-int(signal.SIGTSTP), 1), (-int(signal.SIGCHLD), 1),
     (300, 1), (-int(signal.SIGUSR1), -int(signal.SIGUSR1)), (3, 3)],
)  # fmt: skip
def test_a_hostile_exit_record_exits_1(tmp_path: Path, code: int, status: int) -> None:
    """``{"exit": -N}`` replays "killed by signal N" only for a signal that ends a process: a
    number that is no signal used to end the replay with a traceback, a stop signal left it
    stopped (until a kill), an ignored one cost a second."""
    timeline = tmp_path / "t.jsonl"
    lines = [{"t_ms": 0, "stream": "stdout", "line": "out"}, {"exit": code}]
    timeline.write_text("\n".join(json.dumps(r) for r in lines))
    proc = replay(timeline)
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, b"out\n", b"")


async def test_engine_runs_the_replay_provider_end_to_end() -> None:
    oneshot = pytest.importorskip("alice_trio.engine.oneshot")
    progress: list[str] = []
    request = RunRequest(user_text="run echo hi", on_progress=progress.append)
    result = await oneshot.run_oneshot(PROVIDER, ReplayConfig(speed=0), request)
    assert result.reply.startswith("The command printed:")
    assert result.next_thread_id == TOOL_THREAD
    assert result.usage == Usage(input_tokens=2468, cached_input_tokens=2000, output_tokens=112)
    assert progress[-1] == result.reply
