"""kimi provider: argv per flavor and request field, the decoder on every recorded one-shot
transcript (Kimi Code 2.1.0 and legacy kimi-cli 1.50.0), Alice's fixtures, and robustness."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent
from alice_trio.providers.base import DecodeOutcome, RunLimits
from alice_trio.providers.kimi import (
    PROVIDER,
    KimiConfig,
    KimiDecoder,
    build_invocation,
    explain_exit,
    format_tool_calls,
    new_decoder,
    thread_id_from_stderr,
)
from alice_trio.providers.registry import get_provider

from decoding import feed_chunks

HERE = Path(__file__).resolve().parent.parent / "transcripts" / "kimi"
ALICE = HERE / "alice"


def decode_bytes(
    chunks: list[bytes], *, thread_id: str = ""
) -> tuple[list[TurnEvent], DecodeOutcome]:
    """Feed raw stdout chunks through the LineFramer into a fresh decoder, like the engine."""
    return feed_chunks(KimiDecoder(thread_id=thread_id), chunks)


def decode_case(name: str, *, thread_id: str = "") -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes([(HERE / name).read_bytes()], thread_id=thread_id)


def kinds(events: list[TurnEvent]) -> list[str]:
    return [e.kind.value for e in events]


# -- registration ------------------------------------------------------------------------------


def test_registered_provider() -> None:
    assert get_provider("Kimi") is PROVIDER
    assert PROVIDER.config_class is KimiConfig
    assert PROVIDER.default_command == "kimi"
    assert isinstance(new_decoder(RunRequest(user_text="x"), KimiConfig()), KimiDecoder)


# -- argv -------------------------------------------------------------------------------------


def test_code_argv_minimal() -> None:
    inv = build_invocation(RunRequest(user_text="  say hello  "), KimiConfig())
    assert inv.argv == ("kimi", "--output-format=stream-json", "--prompt=say hello")
    assert inv.stdin is None  # stdin closed at once
    assert inv.cwd is None
    assert inv.env == {"KIMI_DISABLE_TELEMETRY": "1", "KIMI_CODE_NO_AUTO_UPDATE": "1"}


def test_code_argv_every_field() -> None:
    config = KimiConfig(
        command="/opt/kimi/bin/kimi",
        model="cfg-model",
        yolo=True,
        extra_args=("--plan",),
        exec_policy=ExecPolicy(add_dirs=("/a",)),
        timeout=30,
        idle_timeout=5,
        limits=RunLimits(drain_timeout=1.5),
    )
    req = RunRequest(
        user_text="--help me",
        thread_id="session_1",
        model="req-model",
        exec_policy=ExecPolicy(add_dirs=("/b",)),
        workspace_dir="/tmp/ws/../ws2",
    )
    inv = build_invocation(req, config)
    assert inv.argv == (
        "/opt/kimi/bin/kimi",
        "--output-format=stream-json",
        "--model=req-model",
        "--session=session_1",
        "--yolo",
        "--add-dir=/a",
        "--add-dir=/b",
        "--plan",
        "--prompt=--help me",  # equals form: a leading dash cannot become a flag
    )
    assert inv.cwd == "/tmp/ws2"
    assert inv.timeout == 30
    assert inv.idle_timeout == 5
    assert inv.limits.drain_timeout == 1.5


def test_model_falls_back_to_config() -> None:
    inv = build_invocation(RunRequest(user_text="hi"), KimiConfig(model=" m1 "))
    assert "--model=m1" in inv.argv


def test_prompt_is_the_last_argument_and_kept_verbatim() -> None:
    text = 'multi\nline "quoted" -- --session=evil'
    inv = build_invocation(RunRequest(user_text=text), KimiConfig())
    assert inv.argv[-1] == "--prompt=" + text
    assert sum(a.startswith("--session") for a in inv.argv) == 0


def test_legacy_argv_prompt_on_stdin() -> None:
    req = RunRequest(user_text='-p "hi"\nthere', thread_id="145c", model="fake")
    inv = build_invocation(req, KimiConfig(flavor="legacy", yolo=True))
    assert inv.argv == (
        "kimi",
        "--print",
        "--input-format=stream-json",
        "--output-format=stream-json",
        "--model=fake",
        "--session=145c",
        "--yolo",
    )
    assert inv.stdin is not None and inv.stdin.endswith(b"\n")
    lines = inv.stdin.decode().splitlines()
    assert [json.loads(x) for x in lines] == [{"role": "user", "content": '-p "hi"\nthere'}]
    assert inv.env["KIMI_CLI_NO_AUTO_UPDATE"] == "1"
    assert "KIMI_CODE_NO_AUTO_UPDATE" not in inv.env


def test_legacy_stdin_matches_the_recorded_stream_input_format() -> None:
    recorded = (HERE / "kimi_legacy_stream_input.stdin").read_text().splitlines()[0]
    inv = build_invocation(RunRequest(user_text="first: say hello"), KimiConfig(flavor="legacy"))
    assert inv.stdin is not None
    assert json.loads(inv.stdin) == json.loads(recorded)


def test_env_flags_and_layering() -> None:
    off = KimiConfig(disable_telemetry=False, disable_auto_update=False)
    assert build_invocation(RunRequest(user_text="x"), off).env == {}
    config = KimiConfig(env={"KIMI_DISABLE_TELEMETRY": "0", "A": "cfg", "B": "cfg"})
    req = RunRequest(user_text="x", env={"B": "req"})
    env = build_invocation(req, config).env
    assert env["KIMI_DISABLE_TELEMETRY"] == "0"  # the user's env wins over the default
    assert env["A"] == "cfg" and env["B"] == "req"


def test_config_workspace_and_bad_flavor() -> None:
    inv = build_invocation(RunRequest(user_text="x"), KimiConfig(workspace_dir="/srv/w/"))
    assert inv.cwd == "/srv/w"
    with pytest.raises(ValueError):
        KimiConfig(flavor="wire")


# -- recorded transcripts --------------------------------------------------------------------

S1 = "session_23206eb0-66cf-4f38-a4f9-ec66e31e8b1d"


@attrs.frozen
class Expect:
    reply: str = ""
    thread: str = ""
    error: str = ""  # a substring of the outcome's error ("" = no error)
    status: int | None = None
    interrupted: bool = False
    terminal: bool = False


HELLO = "Hello from the fake model. You said: "
TOOL_DONE = (
    "The tool returned: <system>Command executed successfully.</system> TOOL_OUTPUT_42. Done."
)
WORDS6 = "word0 word1 word2 word3 word4 word5"

CASES: dict[str, Expect] = {
    "kimi_code_stream_plain": Expect(HELLO + "say hello", S1, terminal=True),
    "kimi_code_resume": Expect(HELLO + "and say hello again", S1, terminal=True),
    "kimi_code_continue": Expect(HELLO + "third turn via --continue", S1, terminal=True),
    "kimi_code_stream_tool": Expect(
        "The tool returned: Wall time: 0.021 seconds TOOL_OUTPUT_42. Done.",
        "session_77e75ce5-48c7-4baa-a3c2-99b687ac139e",
        terminal=True,
    ),
    # Kimi Code gives up after 10 attempts: only retry lines on stdout, the verdict on stderr
    "kimi_code_err500": Expect(error="500 fake server_error", status=500),
    "kimi_code_err429": Expect(error="429 fake rate_limit_reached_error", status=429),
    "kimi_code_err529": Expect(error="529 fake engine_overloaded_error", status=529),
    # killed by a signal: the partial message was flushed; the exit status tells the rest
    "kimi_code_sigint_streaming": Expect(WORDS6),
    "kimi_code_sigterm_streaming": Expect(WORDS6),
    "kimi_code_sigint_during_tool": Expect("I'll run a command."),
    "kimi_code_sigterm_during_tool": Expect("I'll run a command."),
    # legacy: no session id and no end marker on stdout
    "kimi_legacy_stream_plain": Expect(HELLO + "say hello"),
    "kimi_legacy_resume": Expect(HELLO + "and say hello again"),
    "kimi_legacy_continue": Expect(HELLO + "third turn via --continue"),
    "kimi_legacy_err529_then_ok": Expect(HELLO + "[[FAILN:529:2]] hi"),
    "kimi_legacy_stream_tool": Expect(TOOL_DONE),
    "kimi_legacy_stream_input": Expect(TOOL_DONE),
    "kimi_legacy_err500": Expect(
        error="Error code: 500 - {'error': {'message': 'fake server_error', "
        "'type': 'server_error'}}",
        status=500,
        terminal=True,
    ),
    "kimi_legacy_err429": Expect(
        error="Error code: 429 - {'error': {'message': 'fake rate_limit_reached_error', "
        "'type': 'rate_limit_reached_error'}}",
        status=429,
        terminal=True,
    ),
    "kimi_legacy_err529": Expect(
        error="Error code: 529 - {'error': {'message': 'fake engine_overloaded_error', "
        "'type': 'engine_overloaded_error'}}",
        status=529,
        terminal=True,
    ),
    "kimi_legacy_sigint_streaming": Expect(
        "word0 word1 word2 word3 word4", interrupted=True, terminal=True
    ),
    "kimi_legacy_sigint_during_tool": Expect(
        "I'll run a command.", interrupted=True, terminal=True
    ),
    "kimi_legacy_sigterm_streaming": Expect(),
    "kimi_legacy_sigterm_during_tool": Expect(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_transcript(case: str) -> None:
    want = CASES[case]
    events, out = decode_case(f"{case}.stdout")
    assert out.result.reply == want.reply
    assert out.result.next_thread_id == want.thread
    assert not out.result.usage.has_usage  # kimi's stream-json carries no usage
    if want.error:
        assert want.error in out.error
    else:
        assert out.error == ""
    assert out.status == want.status
    assert out.interrupted is want.interrupted
    assert out.terminal is want.terminal
    assert out.unknown_lines == 0
    assert out.missing_reply == "kimi returned no final assistant message"
    assert not any(e.kind is EventKind.UNKNOWN for e in events)
    assert all(e.provider == "kimi" for e in events)


def test_every_copied_oneshot_transcript_has_an_expectation() -> None:
    stdouts = {p.name.removesuffix(".stdout") for p in HERE.glob("*.stdout")}
    assert stdouts - set(CASES) == {"kimi_code_text", "kimi_legacy_text"}


@pytest.mark.parametrize("case", ["kimi_code_text", "kimi_legacy_text"])
def test_text_output_mode_is_not_decoded_but_never_fatal(case: str) -> None:
    events, out = decode_case(f"{case}.stdout")
    assert out.result.reply == ""
    assert out.unknown_lines == len(events) > 0
    assert all(e.kind is EventKind.UNKNOWN for e in events)


def test_code_stream_tool_events() -> None:
    events, _ = decode_case("kimi_code_stream_tool.stdout")
    assert kinds(events) == [
        "assistant_text",
        "tool_use",
        "tool_result",
        "assistant_text",
        "thread_started",
        "turn_completed",
    ]
    assert events[0].text == "I'll run a command."
    assert events[1].text == (
        'function id=`call_fake_0001` name=`Bash` arguments=`{"command":"echo TOOL_OUTPUT_42",'
        '"description":"Run the scripted test command"}`'
    )
    assert events[2].text == "tool_result id=`call_fake_0001` TOOL_OUTPUT_42"
    assert events[4].text == "session_77e75ce5-48c7-4baa-a3c2-99b687ac139e"
    assert events[5].kind.terminal


def test_legacy_tool_result_parts_are_joined() -> None:
    events, _ = decode_case("kimi_legacy_stream_tool.stdout")
    (result,) = [e for e in events if e.kind is EventKind.TOOL_RESULT]
    assert result.text == (
        "tool_result id=`call_fake_0001` <system>Command executed successfully.</system>\n"
        "TOOL_OUTPUT_42"
    )


def test_retries_are_visible_progress() -> None:
    events, out = decode_case("kimi_code_err500.stdout")
    retries = [e for e in events if e.kind is EventKind.RETRY]
    assert len(retries) == 9
    assert retries[0].text == (
        "kimi: model API call failed (500 fake server_error) on attempt 1/10; "
        "retrying (attempt 2/10) in 0.5s"
    )
    assert all(e.status == 500 for e in retries)
    assert out.error == "kimi model API failed after 10 attempts: 500 fake server_error"


def test_retry_then_success_is_not_an_error() -> None:
    lines = [
        '{"role":"meta","type":"turn.step.retrying","failed_attempt":9,"next_attempt":10,'
        '"max_attempts":10,"delay_ms":10,"error_message":"boom","status_code":503}',
        '{"role":"assistant","content":"fine"}',
    ]
    d = KimiDecoder()
    for line in lines:
        d.feed(line)
    out = d.finish()
    assert (out.result.reply, out.error, out.status) == ("fine", "", None)


def test_retry_that_is_not_the_last_attempt_is_left_to_the_exit_status() -> None:
    d = KimiDecoder()
    d.feed('{"role":"meta","type":"turn.step.retrying","next_attempt":3,"max_attempts":10}')
    out = d.finish()
    assert out.error == "" and d.retries == 1


def test_request_thread_id_is_kept_when_the_stream_has_none() -> None:
    _, out = decode_case("kimi_legacy_resume.stdout", thread_id="145c95e6")
    assert out.result.next_thread_id == "145c95e6"


def test_resume_hint_wins_over_the_request_thread_id() -> None:
    events, out = decode_case("kimi_code_stream_plain.stdout", thread_id="stale")
    assert out.result.next_thread_id == S1
    assert events[-1].thread_id == S1


def test_never_a_placeholder_thread_id() -> None:
    for case in CASES:
        _, out = decode_case(f"{case}.stdout")
        tid = out.result.next_thread_id
        assert tid == CASES[case].thread
        assert tid == "" or tid.startswith("session_")


def test_legacy_error_line_wrapped_at_a_word_boundary_keeps_its_space() -> None:
    _, out = decode_case("kimi_legacy_err429.stdout")
    assert "'type': 'rate_limit_reached_error'}}" in out.error


def test_interrupted_event() -> None:
    events, _ = decode_case("kimi_legacy_sigint_streaming.stdout")
    assert kinds(events) == ["assistant_text", "turn_interrupted"]
    assert events[-1].text == "Interrupted by user"


# -- Alice's fixtures (fe45e0c^ / e161caf^) -----------------------------------------------------


def decode_fixture(name: str) -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes([(ALICE / name).read_bytes()])


def test_fixture_event_lines() -> None:
    events, out = decode_fixture("kimi_oneshot_event_lines.stdout.jsonl")
    assert kinds(events) == ["assistant_text", "assistant_text", "tool_use", "tool_result"]
    assert events[0].text == "最终答复"
    assert events[1].text == "第一行\n第二行"  # the think part is dropped, never its type name
    assert events[2].text == 'function id=`call_1` name=`search` arguments=`{"query":"kimi"}`'
    assert out.result.reply == "第一行\n第二行"  # role tool never becomes the reply


def test_fixture_final_message_uses_last_assistant() -> None:
    _, out = decode_fixture("kimi_oneshot_final_message.stdout.jsonl")
    assert out.result.reply == "最终回答"


def test_fixture_no_assistant() -> None:
    _, out = decode_fixture("kimi_oneshot_no_assistant.stdout.jsonl")
    assert out.result.reply == ""
    assert out.missing_reply == "kimi returned no final assistant message"


def test_fixture_progress() -> None:
    events, out = decode_fixture("kimi_oneshot_progress.HIST.stdout.jsonl")
    progress = [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT]
    assert progress == ["阶段提示", "最终答复"]
    # the Go code found the thread id in $KIMI_SHARE_DIR/kimi.json; we never scan (§13.21)
    assert out.result.next_thread_id == ""


def test_fixture_tool_use_raw() -> None:
    events, out = decode_fixture("kimi_oneshot_tool_use_raw.stdout.jsonl")
    tools = [e.text for e in events if e.kind is EventKind.TOOL_USE]
    assert tools == ["function id=`call_1` name=`pwd` arguments=`{}`"]
    assert out.result.reply == "DONE"


def test_fixture_file_change() -> None:
    _, out = decode_fixture("kimi_oneshot_file_change.stdout.jsonl")
    assert out.result.reply == "DONE"


# -- content and tool formatting ----------------------------------------------------------------


def test_content_parts() -> None:
    d = KimiDecoder()
    line = json.dumps(
        {
            "role": "assistant",
            "content": [
                "  plain  ",
                {"type": "thinking", "thinking": "secret"},
                {"type": "think"},  # no text: must not contribute "think"
                {"type": "image_url", "image_url": {"url": "x"}},
                {"text": "untyped"},
                {"type": "text", "text": ""},
            ],
        }
    )
    (ev,) = d.feed(line)
    assert ev.text == "plain\nuntyped"


def test_tool_call_formats() -> None:
    calls = [
        {"id": "a", "function": {"name": "f", "arguments": {"x": 1}}},
        {"type": "custom", "name": "g", "args": "raw"},
        "junk",
        {},
    ]
    assert format_tool_calls(calls) == (
        'tool_call id=`a` name=`f` arguments=`{"x":1}`; custom name=`g` arguments=`raw`; tool_call'
    )
    assert format_tool_calls(None) == ""


def test_session_id_keys_on_message_wrapper() -> None:
    d = KimiDecoder()
    events = d.feed('{"message":{"role":"assistant","content":"hi"},"sessionId":"s-9"}')
    assert kinds(events) == ["thread_started", "assistant_text"]
    assert d.finish().result.next_thread_id == "s-9"


# -- stderr helpers -------------------------------------------------------------------------------


def test_thread_id_from_stderr() -> None:
    tail = (HERE / "kimi_legacy_stream_plain.stderr").read_text()
    assert thread_id_from_stderr(tail) == "145c95e6-e5bd-4e9e-9c43-16d5d20b2ee4"
    code = (HERE / "kimi_code_text.stderr").read_text()
    assert thread_id_from_stderr(code) == "session_3b36d2a4-a472-48a0-b061-79d4465b3d7e"
    assert thread_id_from_stderr("no hint here") == ""
    two = "To resume this session: kimi -r a\nTo resume this session: kimi -r b"
    assert thread_id_from_stderr(two) == "b"


def test_explain_exit() -> None:
    from alice_trio.errors import AgentError

    tail = (HERE / "kimi_code_err429.stderr").read_text()
    err = explain_exit(1, tail)
    assert isinstance(err, AgentError) and err.status == 429
    assert err.message == (
        "kimi exited with code 1: failed to run prompt: provider.rate_limit: "
        "429 fake rate_limit_reached_error"
    )
    assert explain_exit(1, "error: failed to run prompt: bad config") == (
        "kimi exited with code 1: failed to run prompt: bad config"
    )
    assert explain_exit(1, "Traceback ...\nboom") is None
    assert explain_exit(75, "") is None


# -- robustness ------------------------------------------------------------------------------------

ALL_STDOUT = sorted(p.name for p in HERE.glob("*.stdout")) + sorted(
    f"alice/{p.name}" for p in ALICE.glob("*.jsonl")
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(ALL_STDOUT),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=30),
)
def test_any_chunking_gives_the_same_events(name: str, cuts: list[int]) -> None:
    data = (HERE / name).read_bytes()
    whole_events, whole = decode_bytes([data])
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    events, out = decode_bytes(chunks)
    assert events == whole_events
    assert out == whole


_unknown_key = st.text(alphabet="abcdefghij_", min_size=1, max_size=8).map(lambda s: "x_" + s)
_garbage_line = st.one_of(
    st.text(max_size=60).filter(
        lambda s: (
            "\n" not in s
            and "\r" not in s
            and not s.strip().startswith(("Error code", "Interrupted by user"))
        )
    ),
    st.builds(lambda r: json.dumps({"role": r}), _unknown_key),
    st.builds(lambda t: json.dumps({"role": "meta", "type": t}), _unknown_key),
    st.just("[1, 2]"),
    st.just("null"),
    st.just('{"role": "assistant", "content": 42, "tool_calls": "nope"}'),
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(ALL_STDOUT),
    garbage=st.lists(st.tuples(st.integers(min_value=0), _garbage_line), max_size=6),
    extra=st.dictionaries(_unknown_key, st.integers() | st.text(max_size=5), max_size=3),
    cut=st.integers(min_value=1),
)
def test_garbage_unknown_fields_and_truncated_tail_do_not_change_the_reply(
    name: str, garbage: list[tuple[int, str]], extra: dict[str, object], cut: int
) -> None:
    lines = (HERE / name).read_text().split("\n")
    _, base = decode_bytes(["\n".join(lines).encode()])
    mutated: list[str] = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            mutated.append(line)
            continue
        if isinstance(obj, dict):
            obj.update(extra)
            if isinstance(obj.get("message"), dict):
                obj["message"].update(extra)
            line = json.dumps(obj, ensure_ascii=False)
        mutated.append(line)
    if not base.error:  # garbage right after a legacy error line would join its text
        for pos, junk in garbage:
            mutated.insert(pos % (len(mutated) + 1), junk)
    json_lines = [x for x in lines if x.startswith("{")]
    tail = b""
    if json_lines:
        last = json_lines[cut % len(json_lines)]
        tail = last[: cut % len(last)].encode()  # a strict prefix: never valid JSON
    _, out = decode_bytes(["\n".join(mutated).encode() + b"\n" + tail])
    assert out.result.reply == base.result.reply
    assert out.result.next_thread_id == base.result.next_thread_id
    assert out.status == base.status
    if not base.error:
        assert out.error == ""


def test_decoder_survives_hostile_values() -> None:
    d = KimiDecoder()
    for line in [
        '{"role": null}',
        '{"role": "assistant", "content": [null, 1, {"type": 5, "text": 7}]}',
        '{"role": "meta", "type": "turn.step.retrying", "delay_ms": "x", "status_code": "abc"}',
        '{"role": "tool", "content": {"a": 1}}',
        '{"message": "not a dict", "role": "assistant", "content": "ok"}',
        "\x00\x01 binary",
        "{broken",
    ]:
        d.feed(line)
    out = d.finish()
    assert out.result.reply == "ok"
    assert out.unknown_lines == 3  # role null, binary, broken


def test_outcome_is_frozen_data() -> None:
    _, out = decode_case("kimi_code_stream_plain.stdout")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        out.error = "x"  # type: ignore[misc]


def test_legacy_new_session_gets_a_real_uuid_thread_id() -> None:
    import uuid as _uuid

    from alice_trio.providers.kimi import KimiConfig, prepare_request

    legacy = KimiConfig(flavor="legacy")
    prepared = prepare_request(RunRequest(user_text="hi"), legacy)
    assert str(_uuid.UUID(prepared.thread_id)) == prepared.thread_id
    assert f"--session={prepared.thread_id}" in build_invocation(prepared, legacy).argv
    kept = prepare_request(RunRequest(user_text="hi", thread_id="abc"), legacy)
    assert kept.thread_id == "abc"
    code = prepare_request(RunRequest(user_text="hi"), KimiConfig())
    assert code.thread_id == ""  # Kimi Code reports its own id on stdout
