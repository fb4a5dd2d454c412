"""gemini decoder behaviour pinned after mutation testing (docs/mutation-testing.md): statuses,
failed results, usage shapes, thoughts, argv values and the stderr error. Each test killed
surviving mutants of ``providers/gemini.py``."""

from __future__ import annotations

import json

import pytest

from alice_trio.errors import ConfigError
from alice_trio.models import EventKind, RunRequest, Usage
from alice_trio.providers.gemini import (
    GeminiConfig,
    GeminiStreamDecoder,
    build_invocation,
    explain_exit,
    stats_usage,
)

from decoding import feed_chunks, split_at


def feed(*lines: dict | str):
    data = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    return feed_chunks(GeminiStreamDecoder(), split_at(data.encode(), None))


def failed_result(error) -> tuple:
    return feed(
        {"type": "init", "session_id": "s"}, {"type": "result", "status": "error", "error": error}
    )


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ({"message": "quota", "status": 429}, 429),
        ({"message": "quota", "code": 503}, 503),
        ({"message": "quota", "status": "429"}, 429),
        ({"message": "quota", "status": "RESOURCE_EXHAUSTED"}, 429),
        ({"message": "quota", "status": "unavailable"}, 503),
        ({"message": "server said status: 502"}, 502),
        ({"message": "boom", "status": 100}, 100),
        ({"message": "boom", "status": 599}, 599),
        ({"message": "boom", "status": "100"}, 100),
        ({"message": "boom", "status": "599"}, 599),
        ({"message": "boom", "status": 600}, None),
        ({"message": "boom", "status": "600"}, None),
        ({"message": "boom", "status": True}, None),  # a bool is not a status
        ({"message": "boom", "status": 1e999}, None),  # inf: no status, no crash
        ("503", 503),  # a bare string error
    ],
)
def test_a_failed_result_reports_the_http_status_it_names(error, status):
    events, out = failed_result(error)
    assert events[-1].kind is EventKind.ERROR and events[-1].status == status
    assert out.status == status
    assert out.error == (error["message"] if isinstance(error, dict) else error)


def test_a_failed_result_without_a_message_says_the_turn_failed():
    _, out = failed_result({})
    assert out.error == "gemini turn failed"


def test_a_failed_result_keeps_its_usage():
    stats = {"input_tokens": 7, "cached": 2, "output_tokens": 1}
    _, out = feed({"type": "result", "status": "error", "error": {"message": "x"}, "stats": stats})
    assert out.result.usage == Usage(input_tokens=7, cached_input_tokens=2, output_tokens=1)


def test_the_error_event_carries_the_raw_line():
    line = json.dumps({"type": "result", "status": "error", "error": {"message": "x"}})
    events, _ = feed(line)
    assert events[-1].raw == line


@pytest.mark.parametrize(
    ("thought", "text"),
    [
        ({"subject": "Plan", "description": "do it"}, "Plan: do it"),
        ({"subject": "Plan"}, "Plan"),
        ({"description": "do it"}, "do it"),
    ],
)
def test_a_thought_with_one_part_is_that_part(thought, text):
    line = json.dumps({"type": "thought", **thought})
    events, _ = feed(line)
    assert [(e.kind, e.text, e.raw) for e in events] == [(EventKind.REASONING, text, line)]


def test_an_empty_thought_is_no_event():
    events, _ = feed({"type": "thought"})
    assert events == []


@pytest.mark.parametrize(
    ("stats", "usage"),
    [
        ({"output_tokens": 3}, Usage(output_tokens=3)),
        ({"total_tokens": 9, "input": 4}, Usage(input_tokens=4)),
        ({"input_tokens": 5, "input": 4}, Usage(input_tokens=5)),
        # per-model entries that are not objects are skipped, the rest summed
        ({"models": {"a": 1, "b": {"input_tokens": 2}, "c": {"input": 3}}}, Usage(input_tokens=5)),
    ],
)
def test_stats_usage_reads_every_shape(stats, usage):
    assert stats_usage(stats) == usage


def test_argv_values_with_a_newline_are_refused_with_their_name():
    value = "a\nb"  # (a NUL byte is refused earlier, by the RunRequest/config validators)
    with pytest.raises(ConfigError, match="gemini model is not a valid value"):
        build_invocation(RunRequest(user_text="x", model=value), GeminiConfig())
    with pytest.raises(ConfigError, match="gemini thread id is not a valid value"):
        build_invocation(RunRequest(user_text="x", thread_id=value), GeminiConfig())
    with pytest.raises(ConfigError, match="gemini session_id is not a valid value"):
        build_invocation(RunRequest(user_text="x"), GeminiConfig(session_id=value))


def test_stderr_error_is_the_last_error_event_skipping_other_lines():
    tail = "\n".join(
        [
            '{"type":"error","message":"first"}',
            'not json but "error" {',
            '{"type":"error","message":"last"}',
            '{"type":"warning","error":"no"}',
            '{"error" broken json',
            '"error" without a brace',
        ]
    )
    assert explain_exit(1, tail) == "gemini exec failed (exit 1): last"
