"""C6: a crash is a typed error carrying the exit code or signal, the stderr tail (in the
exception text too) and the partial result — for the fake CLI and for every provider's decoder
and exit explanation, with a replayed process that crashes.

Also the non-UTF-8 rule: bytes that are not UTF-8 on stdout or stderr (and multi-byte
characters split across reads) are decoded with replacement and never crash a run.

Peers: claude-agent-sdk's ProcessError says "Check stderr output for details" (#800, still in
0.2.189); Alice shows a crashed claude/codex as context.Canceled (§13.13)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import attrs
import pytest

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import AliceError, ProcessFailedError
from alice_trio.providers.registry import get_provider
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.providers.replay import ReplayConfig

from fake_provider import PROVIDER
from reliability_support import FAST, assert_nothing_left, cfg, new_mark, req
from transcripts_index import PROVIDERS, lines_of, stdout_files


async def test_exit_code_stderr_tail_and_partial():
    with pytest.raises(ProcessFailedError) as info:
        await run_oneshot(PROVIDER, cfg("--text", "half", "--crash", "7"), req())
    err = info.value
    assert err.returncode == 7 and err.signal is None
    assert "exit status 7" in str(err)
    assert "fatal: the fake CLI crashed" in err.stderr_tail
    assert "fatal: the fake CLI crashed" in str(err)
    assert err.partial.reply == "half" and err.partial.next_thread_id == "thread-1"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1])
async def test_death_by_signal_names_the_signal(sig: signal.Signals):
    mark = new_mark()
    with pytest.raises(ProcessFailedError) as info:
        await run_oneshot(PROVIDER, cfg("--text", "half", "--die-signal", str(int(sig))), req(mark))
    err = info.value
    assert err.signal == sig and err.returncode == -sig
    assert f"killed by {sig.name}" in str(err)
    assert "dies by signal" in err.stderr_tail
    assert_nothing_left(mark)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("rc", [3, -9])
async def test_every_provider_crash_is_typed_with_stderr(provider: str, rc: int, tmp_path: Path):
    first = next(line for line in lines_of(stdout_files(provider)[0]) if line.strip())
    timeline = tmp_path / "crash.timeline.jsonl"
    records = [
        {"t_ms": 0, "stream": "stdout", "line": first},
        {"t_ms": 1, "stream": "stderr", "line": "panic: the agent CLI blew up (diagnostic 42)"},
        {"exit": rc},
    ]
    timeline.write_text("".join(json.dumps(r) + "\n" for r in records))
    real = get_provider(provider)
    replay = attrs.evolve(REPLAY, explain_exit=real.explain_exit)
    config = ReplayConfig(transcript=str(timeline), decode_as=provider, speed=0, limits=FAST)
    with pytest.raises(AliceError) as info:
        await run_oneshot(replay, config, req())
    err = info.value
    assert "diagnostic 42" in err.stderr_tail
    assert "diagnostic 42" in str(err)
    if isinstance(err, ProcessFailedError):
        assert err.returncode == rc


async def test_non_utf8_stdout_and_stderr_never_crash():
    result = await run_oneshot(PROVIDER, cfg("--garbage", "--text", "fine"), req())
    assert result.reply == "fine"


async def test_non_utf8_stderr_is_replaced_in_the_error():
    with pytest.raises(ProcessFailedError) as info:
        await run_oneshot(PROVIDER, cfg("--garbage", "--crash", "2"), req())
    assert "\ufffd bad stderr \ufffd" in info.value.stderr_tail


async def test_multibyte_characters_split_across_reads():
    raw = []
    result = await run_oneshot(PROVIDER, cfg("--split-utf8"), req(on_raw_event=raw.append))
    assert result.reply == "h\u00e9llo \u6f22\u5b57 \U0001f600"


async def test_invalid_utf8_inside_a_json_event_is_replaced(tmp_path: Path):
    """Raw bytes (latin-1 é, 0xff) inside a real provider's event, replayed byte for byte."""
    raw = tmp_path / "latin1.stdout"
    raw.write_bytes(
        b'{"type":"thread.started","thread_id":"t-enc"}\n'
        b'{"type":"item.completed","item":{"id":"i","type":"agent_message",'
        b'"text":"caf\xe9 \xff"}}\n'
        b'{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}\n'
    )
    config = ReplayConfig(transcript=str(raw), decode_as="codex", speed=0, limits=FAST)
    result = await run_oneshot(REPLAY, config, req())
    assert result.reply == "caf\ufffd \ufffd"
    assert result.next_thread_id == "t-enc"
