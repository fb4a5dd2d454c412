"""gemini decoder behaviour pinned after mutation testing (docs/mutation-testing.md): statuses,
failed results, usage shapes, thoughts, argv values and the stderr error. Each test killed
surviving mutants of ``providers/gemini.py``."""

from __future__ import annotations

import json

import pytest

from alice_trio.errors import ConfigError
from alice_trio.models import EventKind, ExecPolicy, RunRequest, Usage
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
    with pytest.raises(ConfigError, match="gemini add_dir is not a valid value"):
        config = GeminiConfig(exec_policy=ExecPolicy(add_dirs=(value,)))
        build_invocation(RunRequest(user_text="x"), config)


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


# -- error events: retry notices or failures ---------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        ({"message": "x", "code": 500}, EventKind.RETRY, 500),
        ({"message": "x", "code": 429}, EventKind.RETRY, 429),
        ({"message": "x", "status": 503}, EventKind.RETRY, 503),
        ({"message": "server said status 502"}, EventKind.RETRY, 502),
        ({"message": "model is overloaded"}, EventKind.RETRY, None),
        ({"message": "x", "status": "UNAVAILABLE"}, EventKind.RETRY, 503),
        ({"message": "bad request", "code": 400}, EventKind.UNKNOWN, 400),
        ({"message": "bad request", "code": 499}, EventKind.UNKNOWN, 499),
    ],
)
def test_an_error_event_is_a_retry_only_for_retryable_statuses(error, kind, status):
    events, out = feed({"type": "init", "session_id": "s"}, {"type": "error", **error})
    notice_status = status if kind is EventKind.RETRY else None  # a notice carries no status
    assert (events[-1].kind, events[-1].status) == (kind, notice_status)
    text = (
        f"gemini: {error['message']}"
        if kind is EventKind.RETRY
        else f"gemini error: {error['message']}"
    )
    assert events[-1].text == text
    # without a result, the last error event is the run's failure, with its status
    assert (out.error, out.status) == (error["message"], status)


def test_an_error_event_without_message_or_severity_is_an_error():
    events, out = feed({"type": "init"}, {"type": "error"})
    assert events[-1].text == "gemini error: gemini reported an error"
    assert out.error == "gemini reported an error"


def test_a_warning_event_is_not_the_failure():
    _, out = feed({"type": "init"}, {"type": "error", "severity": "WARNING", "message": "w"})
    assert out.error == "gemini ended without a result"


# -- the one-line -o json document ---------------------------------------------------------------


def test_a_json_document_with_an_error_fails_with_its_message_status_and_usage():
    doc = {
        "session_id": "s1",
        "response": "",
        "error": {"message": "quota", "code": 429},
        "stats": {"input_tokens": 4, "output_tokens": 1},
    }
    events, out = feed(doc)
    assert [e.kind for e in events] == [EventKind.ERROR]
    assert (out.error, out.status, out.terminal) == ("quota", 429, True)
    assert out.result.next_thread_id == "s1"
    assert out.result.usage == Usage(input_tokens=4, output_tokens=1)
    _, out = feed({"response": "", "error": {"status": "503"}})
    assert (out.error, out.status) == ("gemini turn failed", 503)


def test_a_json_document_ends_a_started_stream_and_ignores_a_non_text_response():
    events, out = feed({"type": "init", "session_id": "s"}, {"response": ["not", "text"]})
    assert [e.kind for e in events] == [EventKind.THREAD_STARTED, EventKind.TURN_COMPLETED]
    assert out.error == "" and out.terminal and out.result.reply == ""


def test_a_json_document_usage_and_reply():
    _, out = feed({"response": " hi ", "stats": {"models": {"m": {"tokens": {"prompt": 2}}}}})
    assert out.result.reply == "hi"
    assert out.result.usage == Usage(input_tokens=2)


# -- start-up failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "stderr", "needle"),
    [
        (1, "Error: this folder is not trusted", "untrusted workspace (exit 1)"),
        (1, "The workspace is NOT TRUSTED", "untrusted workspace (exit 1)"),
        (55, "", "untrusted workspace (exit 55)"),
        (1, "Invalid auth method selected", "invalid auth method selected (exit 1)"),
        (41, "", "invalid auth method selected (exit 41)"),
    ],
)
def test_explain_exit_names_the_cause_and_the_exit_code(code, stderr, needle):
    explained = explain_exit(code, stderr)
    assert explained is not None and needle in explained


def test_explain_exit_needs_both_the_flags_error_and_node_18():
    assert explain_exit(1, "Invalid regular expression flags") is None
    assert explain_exit(1, "not trusted") is None  # neither workspace nor folder named
    assert explain_exit(0, '{"type":"error","message":"m"}') is None  # exit 0: nothing to explain


def test_build_invocation_passes_the_configured_limits():
    from alice_trio.providers.base import RunLimits

    limits = RunLimits(max_line_bytes=1234)
    assert build_invocation(RunRequest(user_text="x"), GeminiConfig(limits=limits)).limits == limits
