"""``transcript.decode_transcript(on_events=...)`` on hostile transcripts: the callback gets
every event a decoder builds, in order, a line's events at a time; the outcome is the same as
without it; the callback's own exception propagates unchanged."""

from __future__ import annotations

import json

import pytest

from alice_trio.models import EventKind, RunRequest, TurnEvent
from alice_trio.providers.registry import get_provider
from alice_trio.transcript import decode_transcript


def _hostile() -> str:
    tool = {"type": "command_execution", "command": "ls", "exit_code": 0}
    lines = [json.dumps({"type": "thread.started", "thread_id": "t-1"})]
    for i in range(30_000):
        lines.append(json.dumps({"type": "item.completed", "item": tool}))
        if i % 7_000 == 0:
            lines += ["\x00\x00", "\udcff\ufffd not json", "", "\r", "[1]", "x" * 100_000]
    msg = {"type": "agent_message", "text": "done\x00\n\x1b[2J"}
    lines += [
        json.dumps({"type": "item.completed", "item": msg}),
        json.dumps({"type": "turn.completed", "usage": {"input_tokens": 2, "output_tokens": 3}}),
    ]
    return "\r\n".join(lines)


def test_on_events_gets_every_event_in_order_and_changes_no_outcome() -> None:
    text = _hostile()
    batches: list[list[TurnEvent]] = []
    outcome = decode_transcript("codex", text, on_events=lambda evs: batches.append([*evs]))
    assert outcome == decode_transcript("codex", text)
    assert outcome.result.reply == "done\x00\n\x1b[2J" and outcome.unknown_lines > 0
    provider = get_provider("codex")
    decoder = provider.new_decoder(RunRequest(user_text="x"), provider.config_class())
    every = [e for line in text.split("\n") for e in decoder.feed(line.removesuffix("\r"))]
    assert [e for batch in batches for e in batch] == every
    assert all(batches)  # lines without events are not passed
    assert sum(e.kind is EventKind.TOOL_USE for e in every) == 30_000


def test_an_exception_of_on_events_propagates_as_itself() -> None:
    class Stop(Exception):
        pass

    seen: list[TurnEvent] = []

    def stop_at_the_third(events: list[TurnEvent]) -> None:
        seen.extend(events)
        if len(seen) >= 3:
            raise Stop

    with pytest.raises(Stop):
        decode_transcript("codex", _hostile(), on_events=stop_at_the_third)
    assert len(seen) == 3
