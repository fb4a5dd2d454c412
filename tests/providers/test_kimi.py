"""kimi provider: argv per flavor and request field, the decoder on every recorded one-shot
transcript (Kimi Code 2.1.0 and legacy kimi-cli 1.50.0), Alice's fixtures, and robustness."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import ProtocolError
from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent
from alice_trio.providers.base import STRAY_LINE_CHARS, DecodeOutcome, RunLimits
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
from recording_cli import recording_cli

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
    assert stdouts - set(CASES) == {"kimi_code_text", "kimi_legacy_text", "kimi_legacy_152_stub"}


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


# -- kimi-cli 1.52.0: the final PyPI release is a deprecation stub --------------------------------

STUB_NOTICE = "kimi-cli is no longer maintained. Please use the new Kimi Code CLI."


def test_the_152_stub_is_named_in_the_missing_reply_error() -> None:
    """kimi-cli 1.52.0 prints one notice line for any command and exits 0. Before: "kimi
    returned no final assistant message" — nothing said why."""
    events, out = decode_case("kimi_legacy_152_stub.stdout")
    assert out.result.reply == "" and not out.terminal and out.error == ""
    assert [e.kind for e in events] == [EventKind.UNKNOWN]
    assert out.stray_line.startswith(STUB_NOTICE)
    message = out.missing_reply_error()
    assert message.startswith("kimi returned no final assistant message; it printed instead: ")
    assert STUB_NOTICE in message


def test_a_stray_line_is_kept_once_and_bounded() -> None:
    events, out = decode_bytes([b"first " + b"x" * 1000 + b"\nsecond\n"])
    assert len(events) == 2 and out.stray_line == ("first " + "x" * 1000)[:STRAY_LINE_CHARS]
    _, fine = decode_case("kimi_legacy_stream_plain.stdout")
    assert fine.stray_line == "" and fine.missing_reply_error() == fine.missing_reply


async def test_engine_run_on_the_152_stub_says_what_it_printed(tmp_path: Path) -> None:
    command = recording_cli(tmp_path, HERE / "kimi_legacy_152_stub.stdout")
    config = KimiConfig(flavor="legacy", command=command)
    with pytest.raises(ProtocolError) as info:
        await run_oneshot(PROVIDER, config, RunRequest(user_text="say hello"))
    assert STUB_NOTICE in str(info.value)


def test_the_152_stub_version_output_is_a_doctor_problem() -> None:
    versions = PROVIDER.flavor("legacy").versions
    text = (HERE / "kimi_legacy_152_stub.version").read_text()
    assert versions.parse(text) == "1.52.0" and versions.compare("1.52.0") == "newer"
    assert [note for marker, note in versions.notes.items() if marker in text] == [
        "a deprecation stub (kimi-cli ≥ 1.52 only prints a notice): install kimi-cli 1.51.0"
    ]
    zh = "kimi, version 1.52.0\nkimi-cli 已停止维护，请使用新版 Kimi Code CLI。\n"
    assert any(marker in zh for marker in versions.notes)
