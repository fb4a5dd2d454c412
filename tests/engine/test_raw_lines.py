"""``RunRequest.raw_lines``: every stdout line of a one-shot run as a ``stdout_line`` raw event."""

from __future__ import annotations

import json

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.models import RawEvent, RunRequest

from fake_provider import FAST, PROVIDER, FakeConfig


def cfg(*args: str) -> FakeConfig:
    return FakeConfig(args=tuple(args), limits=FAST)


async def test_every_stdout_line_arrives_before_the_events_decoded_from_it():
    raw: list[RawEvent] = []
    result = await run_oneshot(
        PROVIDER,
        cfg("--raw", "not json at all", "--text", "a", "--text", "b"),
        RunRequest(user_text="hi", on_raw_event=raw.append, raw_lines=True),
    )
    assert result.reply == "b"
    lines = [e.line for e in raw if e.kind == "stdout_line"]
    assert "not json at all" in lines
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    assert [p["type"] for p in parsed] == ["thread", "text", "text", "done"]
    # each decoded event follows the raw line it came from
    for i, event in enumerate(raw):
        if event.kind != "stdout_line" and event.line:
            earlier = [e.line for e in raw[:i] if e.kind == "stdout_line"]
            assert earlier and earlier[-1] == event.line


async def test_off_by_default():
    raw: list[RawEvent] = []
    await run_oneshot(
        PROVIDER, cfg("--text", "a"), RunRequest(user_text="hi", on_raw_event=raw.append)
    )
    assert raw and all(e.kind != "stdout_line" for e in raw)


async def test_raw_lines_without_a_raw_callback_changes_nothing():
    seen: list[str] = []
    result = await run_oneshot(
        PROVIDER,
        cfg("--text", "a", "--text", "b"),
        RunRequest(user_text="hi", on_progress=seen.append, raw_lines=True),
    )
    assert result.reply == "b" and seen == ["a", "b"]
