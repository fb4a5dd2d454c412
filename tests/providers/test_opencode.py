"""opencode provider: argv/stdin/env per request and config field, the decoder on every recorded
``opencode run --format json`` transcript (opencode 1.18.33), Alice's fixtures (with the Go
token swap fixed), terminal semantics and robustness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent, Usage
from alice_trio.providers.base import DecodeOutcome, RunLimits
from alice_trio.providers.opencode import (
    AUTH_HINT,
    PROVIDER,
    OpenCodeConfig,
    OpenCodeDecoder,
    build_invocation,
    explain_exit,
    format_tool_part,
    new_decoder,
    resolve_agent,
    usage_from_tokens,
)
from alice_trio.providers.registry import get_provider

from decoding import feed_chunks

HERE = Path(__file__).resolve().parent.parent / "transcripts" / "opencode"
ALICE = HERE / "alice"


def decode_bytes(
    chunks: list[bytes], *, thread_id: str = "", max_unknown_steps: int = 20
) -> tuple[list[TurnEvent], DecodeOutcome]:
    """Feed raw stdout chunks through the LineFramer into a fresh decoder, like the engine."""
    return feed_chunks(
        OpenCodeDecoder(thread_id=thread_id, max_unknown_steps=max_unknown_steps), chunks
    )


def decode_case(case: str, **kw: object) -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes([(HERE / case / "stdout.raw").read_bytes()], **kw)  # type: ignore[arg-type]


def feed_all(lines: list[str], **kw: object) -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes([("\n".join(lines) + "\n").encode()], **kw)  # type: ignore[arg-type]


def kinds(events: list[TurnEvent]) -> list[str]:
    return [e.kind.value for e in events]


# -- registration ------------------------------------------------------------------------------


def test_registered_provider() -> None:
    assert get_provider(" OpenCode ") is PROVIDER
    assert PROVIDER.config_class is OpenCodeConfig
    assert PROVIDER.default_command == "opencode"
    assert isinstance(new_decoder(RunRequest(user_text="x"), OpenCodeConfig()), OpenCodeDecoder)


# -- argv / stdin / env -------------------------------------------------------------------------


def test_argv_minimal_prompt_on_stdin(tmp_path: Path) -> None:
    inv = build_invocation(
        RunRequest(user_text="  Say hello  ", workspace_dir=str(tmp_path)), OpenCodeConfig()
    )
    assert inv.argv == ("opencode", "run", "--format", "json")
    # no message argument: `run` reads stdin to EOF and uses it unchanged (no re-quoting)
    assert inv.stdin == b"Say hello"
    assert inv.cwd == str(tmp_path)
    assert inv.env == {"PWD": str(tmp_path)}  # opencode reads $PWD, not getcwd()


def test_argv_every_field() -> None:
    config = OpenCodeConfig(
        command="/usr/local/bin/opencode",
        model="cfg/model",
        variant="low",
        agent="build",
        thinking=True,
        auto_approve=True,
        extra_args=("--pure",),
        timeout=60,
        idle_timeout=9,
        limits=RunLimits(drain_timeout=0.5),
        exec_policy=ExecPolicy(sandbox="read-only"),  # opencode run has no sandbox flag
    )
    req = RunRequest(
        user_text="x",
        thread_id="ses_abc",
        model="fake/fake-model",
        variant="max",
        profile="plan",
        workspace_dir="/srv/a/../b/",
    )
    inv = build_invocation(req, config)
    assert inv.argv == (
        "/usr/local/bin/opencode",
        "run",
        "--format",
        "json",
        "--model=fake/fake-model",
        "--variant=max",
        "--agent=plan",
        "--session=ses_abc",
        "--thinking",
        "--auto",
        "--pure",
    )
    assert inv.cwd == "/srv/b"
    assert inv.env["PWD"] == "/srv/b"
    assert (inv.timeout, inv.idle_timeout, inv.limits.drain_timeout) == (60, 9, 0.5)


def test_model_and_variant_fall_back_to_config() -> None:
    inv = build_invocation(RunRequest(user_text="x"), OpenCodeConfig(model="p/m", variant="max"))
    assert "--model=p/m" in inv.argv and "--variant=max" in inv.argv
    bare = build_invocation(RunRequest(user_text="x"), OpenCodeConfig())
    assert not any(
        a.startswith(("--model", "--variant", "--agent", "--session")) for a in bare.argv
    )


@pytest.mark.parametrize(
    ("profile", "overrides", "default", "want"),
    [
        ("", {}, "", ""),
        ("", {}, "build", "build"),
        ("Plan", {}, "", "plan"),  # a built-in agent name selects itself (case-insensitive)
        ("work", {"work": "my-agent"}, "build", "my-agent"),  # an explicit mapping wins
        ("work", {}, "build", "build"),  # an unknown profile is never leaked as an agent
        ("explore", {"explore": "general"}, "", "general"),
    ],
)
def test_agent_resolution(profile: str, overrides: dict[str, str], default: str, want: str) -> None:
    config = OpenCodeConfig(profile_overrides=overrides, agent=default)
    req = RunRequest(user_text="x", profile=profile)
    assert resolve_agent(req, config) == want
    argv = build_invocation(req, config).argv
    assert (
        ([a for a in argv if a.startswith("--agent")] == [f"--agent={want}"])
        if want
        else (not any(a.startswith("--agent") for a in argv))
    )


@pytest.mark.parametrize(
    "prompt", ['"Say hello"', "-m evil/model", "-- --session x", "多行\n文本 with spaces"]
)
def test_prompt_never_reaches_argv(prompt: str) -> None:
    inv = build_invocation(RunRequest(user_text=prompt), OpenCodeConfig())
    assert inv.stdin == prompt.encode("utf-8")
    assert inv.argv == ("opencode", "run", "--format", "json")


def test_pwd_follows_cwd_whatever_the_env_says() -> None:
    config = OpenCodeConfig(env={"PWD": "/wrong", "A": "cfg", "B": "cfg"}, workspace_dir="/w")
    req = RunRequest(user_text="x", env={"B": "req", "PWD": "/also-wrong"})
    inv = build_invocation(req, config)
    assert inv.env == {"PWD": "/w", "A": "cfg", "B": "req"}
    assert inv.cwd == "/w"


def test_default_workdir_is_the_current_directory() -> None:
    inv = build_invocation(RunRequest(user_text="x"), OpenCodeConfig())
    assert inv.cwd == os.getcwd() == inv.env["PWD"]


# -- recorded transcripts --------------------------------------------------------------------

#: opencode 1.18.33 against the fake server: every step reports the same tokens
FAKE_TOKENS = Usage(input_tokens=234, cached_input_tokens=1000, output_tokens=49)


@attrs.frozen
class Expect:
    reply: str = ""
    thread: str = ""
    usage: Usage = Usage()
    error: str = ""
    status: int | None = None
    terminal: bool = False


CASES: dict[str, Expect] = {
    "oc_run_simple": Expect(
        "Hello from the fake model.", "ses_de7a7ee5fffeVLmBuVpz0T1yrm", FAKE_TOKENS, terminal=True
    ),
    "oc_run_tool": Expect(
        "The command printed: hi", "ses_de7a7c7caffebtcpP4KjB87KVz", FAKE_TOKENS, terminal=True
    ),
    "oc_run_continue_last": Expect(
        "Hello from the fake model.", "ses_de7a7c7caffebtcpP4KjB87KVz", FAKE_TOKENS, terminal=True
    ),
    "oc_run_slow_stream": Expect(
        " ".join(f"tick{i}" for i in range(20)),
        "ses_de7a357b0fferyskiIYeEXT169",
        FAKE_TOKENS,
        terminal=True,
    ),
    "oc_run_stdin_pipe_held_3s": Expect(
        "Hello from the fake model.", "ses_de7a218b8ffeXDpVbsvcmrKHVl", FAKE_TOKENS, terminal=True
    ),
    "oc_run_http500": Expect(
        thread="ses_de7a78218ffeF1CROrUwg3IJKW",
        error="fake server: injected internal error",
        status=500,
        terminal=True,
    ),
    # the model never answers; the harness signalled opencode
    "oc_run_stall_SIGINT": Expect(thread="ses_de7a31cafffeTN8SrVbvWzZ1jL"),
    "oc_run_stall_SIGTERM": Expect(thread="ses_de7a3351fffe8yxHB8984UwWBb"),
    "oc_run_tool_sleep_SIGTERM": Expect(thread="ses_de7a2327dffex9aVspD3Vi7D1r"),
    # reason "unknown" forever: the decoder gives up after 20 steps in a row
    "oc_run_truncated_stream": Expect(
        "Thinking...",
        "ses_de7a109fbffeUUdYJ5KDFS4L41",
        Usage(),
        error="20 steps in a row without a finish reason",
        terminal=True,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_transcript(case: str) -> None:
    want = CASES[case]
    events, out = decode_case(case)
    assert out.result.reply == want.reply
    assert out.result.next_thread_id == want.thread
    assert out.result.usage == want.usage
    if want.error:
        assert want.error in out.error
    else:
        assert out.error == ""
    assert out.status == want.status
    assert out.terminal is want.terminal
    assert out.interrupted is False
    assert out.unknown_lines == 0
    assert out.missing_reply == "opencode returned no response text"
    assert all(e.provider == "opencode" for e in events)


def test_every_copied_run_transcript_has_an_expectation() -> None:
    cases = {p.name for p in HERE.glob("oc_run_*")}
    assert cases - set(CASES) == {"oc_run_human_simple", "oc_run_human_tool"}


@pytest.mark.parametrize("case", sorted(p.name for p in (HERE / "repeats").glob("oc_run_*")))
def test_repeated_signal_runs(case: str) -> None:
    events, out = decode_case(f"repeats/{case}")
    assert kinds(events) == ["thread_started"]
    assert out.result.next_thread_id.startswith("ses_")
    assert (out.result.reply, out.error, out.terminal, out.unknown_lines) == ("", "", False, 0)


@pytest.mark.parametrize("case", ["oc_run_human_simple", "oc_run_human_tool"])
def test_default_format_is_not_decoded_but_never_fatal(case: str) -> None:
    events, out = decode_case(case)
    assert out.result.reply == ""
    assert [e.kind for e in events] == [EventKind.UNKNOWN] * len(events)
    assert out.unknown_lines == len(events) > 0


def test_usage_is_mapped_as_reported_not_swapped() -> None:
    first = json.loads((HERE / "oc_run_simple" / "stdout.raw").read_text().splitlines()[-1])
    tokens = first["part"]["tokens"]
    usage = usage_from_tokens(tokens)
    assert usage.input_tokens == tokens["input"]
    assert usage.cached_input_tokens == tokens["cache"]["read"]
    assert usage.output_tokens == tokens["output"]


def test_tool_run_events_and_terminal_only_at_the_final_step() -> None:
    lines = (HERE / "oc_run_tool" / "stdout.raw").read_text().splitlines()
    d = OpenCodeDecoder()
    seen: list[tuple[list[str], bool]] = []
    for line in lines:
        seen.append((kinds(d.feed(line)), d.terminal))
    assert seen == [
        (["thread_started"], False),
        (["tool_use"], False),
        (["usage"], False),  # reason "tool-calls": the turn goes on
        ([], False),
        (["assistant_text"], False),
        (["turn_completed"], True),  # reason "stop"
    ]
    tool = json.loads(lines[1])["part"]
    assert format_tool_part(tool) == (
        "tool_use tool=`bash` call_id=`call_b5376800ff6f417a` status=`completed` "
        "command=`echo hi` description=`Run echo hi` title=`echo hi`"
    )


def test_truncated_stream_is_never_terminal_before_the_limit() -> None:
    events, out = decode_case("oc_run_truncated_stream", max_unknown_steps=0)
    assert out.terminal is False and out.error == ""
    assert EventKind.TURN_COMPLETED not in {e.kind for e in events}
    events, out = decode_case("oc_run_truncated_stream", max_unknown_steps=3)
    errors = [e for e in events if e.kind is EventKind.ERROR]
    assert len(errors) == 1  # reported once, not at every later step
    assert out.error.startswith("opencode ended 3 steps in a row")


def test_http500_error_event() -> None:
    events, _ = decode_case("oc_run_http500")
    assert kinds(events) == ["thread_started", "error"]
    assert events[1].error == "fake server: injected internal error"
    assert events[1].status == 500


# -- Alice's fixtures (fe45e0c^), with the Go token swap fixed (§13.18) ---------------------------


def decode_fixture(name: str) -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes([(ALICE / name).read_bytes()])


def test_fixture_independent_text() -> None:
    events, out = decode_fixture("opencode_run_independent_text.stdout.jsonl")
    assert [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT] == ["FIRST", "SECOND"]
    assert out.result.reply == "SECOND"
    assert out.result.next_thread_id == "ses_test"
    # the last step wins: input 12, cached 4, output 6 — not swapped (spec §11.2: 12/6/4)
    assert out.result.usage == Usage(input_tokens=12, cached_input_tokens=4, output_tokens=6)
    assert out.terminal is False  # the fixture's step_finish lines have no reason


def test_fixture_parse_lines() -> None:
    events, out = decode_fixture("opencode_run_parse_lines.stdout.jsonl")
    texts = [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT]
    assert texts == ["FIRST", "SECOND"] and "FIRST" not in texts[1]
    assert out.result.next_thread_id == "ses_123"
    assert out.result.usage == Usage(input_tokens=10, cached_input_tokens=3, output_tokens=7)


def test_fixture_raw_events() -> None:
    events, out = decode_fixture("opencode_run_raw_events.stdout.jsonl")
    assert kinds(events) == ["thread_started", "reasoning", "tool_use", "assistant_text"]
    assert events[1].text == "thinking"
    assert (
        events[2].text == "tool_use tool=`bash` call_id=`call_1` status=`completed` command=`pwd`"
    )
    assert out.result.reply == "OK"


def test_fixture_file_change() -> None:
    _, out = decode_fixture("opencode_run_file_change.stdout.jsonl")
    assert out.result.reply == "DONE"


# -- decoder details --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "terminal"),
    [("stop", True), ("length", True), ("tool-calls", False), ("unknown", False), ("", False)],
)
def test_step_finish_terminal_reasons(reason: str, terminal: bool) -> None:
    d = OpenCodeDecoder()
    (ev,) = d.feed(json.dumps({"type": "step_finish", "part": {"reason": reason}}))
    assert d.terminal is terminal
    assert ev.kind is (EventKind.TURN_COMPLETED if terminal else EventKind.USAGE)


def test_usage_is_overwritten_by_the_latest_step_only_when_it_has_tokens() -> None:
    _, out = feed_all(
        [
            '{"type":"step_finish","part":{"reason":"tool-calls","tokens":{"input":5,"output":1}}}',
            '{"type":"step_finish","part":{"reason":"stop"}}',
        ]
    )
    assert out.result.usage == Usage(input_tokens=5, output_tokens=1)


def test_legacy_flat_cache_read_key() -> None:
    assert usage_from_tokens({"input": 1, "cache_read": 2, "output": 3}) == Usage(
        input_tokens=1, cached_input_tokens=2, output_tokens=3
    )
    assert usage_from_tokens("garbage") == Usage()


def test_first_session_id_wins() -> None:
    events, out = feed_all(
        [
            '{"type":"step_start","sessionID":"ses_1"}',
            '{"type":"step_start","sessionID":"ses_2"}',
            '{"type":"text","part":{"text":"x"}}',
        ],
        thread_id="ses_requested",
    )
    assert out.result.next_thread_id == "ses_1"
    assert kinds(events) == ["thread_started", "assistant_text"]


def test_request_thread_id_is_kept_without_a_session_in_the_stream() -> None:
    _, out = feed_all(['{"type":"text","part":{"text":"x"}}'], thread_id="ses_requested")
    assert out.result.next_thread_id == "ses_requested"


@pytest.mark.parametrize(
    ("error", "message", "status"),
    [
        ({"name": "APIError", "data": {"message": "boom", "statusCode": 429}}, "boom", 429),
        ({"name": "ProviderAuthError", "data": {"providerID": "x"}}, "ProviderAuthError", None),
        ({"message": "plain"}, "plain", None),
        ("just text", "just text", None),
        ({}, "unknown error", None),
        (None, "unknown error", None),
    ],
)
def test_error_event_shapes(error: object, message: str, status: int | None) -> None:
    d = OpenCodeDecoder()
    (ev,) = d.feed(json.dumps({"type": "error", "error": error}))
    assert (ev.kind, ev.error, ev.status) == (EventKind.ERROR, message, status)
    out = d.finish()
    assert (out.error, out.status, out.terminal) == (message, status, True)


def test_done_event_completes_once() -> None:
    events, out = feed_all(
        [
            '{"type":"text","part":{"text":"hi"}}',
            '{"type":"step_finish","part":{"reason":"stop"}}',
            '{"type":"done","reason":"idle","rejected":[]}',
        ]
    )
    assert kinds(events) == ["assistant_text", "turn_completed"]
    _, out = feed_all(['{"type":"done","reason":"idle"}'])
    assert out.terminal is True


def test_empty_tool_part_and_reasoning() -> None:
    events, _ = feed_all(
        [
            '{"type":"tool_use"}',
            '{"type":"reasoning","part":{"text":"   "}}',
            '{"type":"tool_use","part":{"tool":"x","state":{"status":"error","error":"denied"}}}',
        ]
    )
    assert [e.text for e in events] == [
        "tool_use",
        "tool_use tool=`x` status=`error` error=`denied`",
    ]


def test_explain_exit() -> None:
    assert explain_exit(1, "Error: Not authenticated with provider") == (
        f"opencode exited with code 1; {AUTH_HINT}"
    )
    assert explain_exit(1, "No API key found for openai") is not None
    assert explain_exit(1, "Error: Session not found") == (
        "opencode exited with code 1: the session to resume was not found"
    )
    assert explain_exit(1, "") is None
    assert explain_exit(2, "something else") is None


# -- robustness ------------------------------------------------------------------------------------
