"""gemini provider: argv for every request/config field, the decoder on every recorded headless
transcript (gemini 0.61.0) and on Alice's fixtures, and robustness properties."""

from __future__ import annotations

from pathlib import Path

import pytest

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import AgentError, ConfigError, EmptyPromptError, ProcessFailedError
from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent, Usage
from alice_trio.providers import gemini
from alice_trio.providers.base import DecodeOutcome
from alice_trio.providers.gemini import (
    GeminiConfig,
    GeminiStreamDecoder,
    build_invocation,
    explain_exit,
    stats_usage,
)
from alice_trio.providers.registry import get_provider
from recording_cli import recorded, recording_cli

from decoding import assert_outcome, feed_chunks, json_lines, split_at

HERE = Path(__file__).resolve().parent.parent / "transcripts" / "gemini"
ALICE = HERE / "alice"


def decode_bytes(
    data: bytes, cuts: list[int] | None = None, thread_id: str = ""
) -> tuple[list[TurnEvent], DecodeOutcome]:
    """Feed ``data`` through a LineFramer (split at ``cuts``) into a new decoder."""
    return feed_chunks(GeminiStreamDecoder(thread_id=thread_id), split_at(data, cuts))


def load(name: str) -> bytes:
    return (HERE / f"{name}.stdout").read_bytes()


def feed_all(lines: list[dict | str], thread_id: str = "") -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes(json_lines(lines), thread_id=thread_id)


# -- argv ---------------------------------------------------------------------------------------


def test_default_argv_prompt_on_stdin_yolo_and_trust():
    inv = build_invocation(RunRequest(user_text="  say hello "), GeminiConfig())
    assert inv.argv == ("gemini", "-o", "stream-json", "--yolo")
    assert inv.stdin == b"say hello"
    assert dict(inv.env) == {"GEMINI_CLI_TRUST_WORKSPACE": "true"}
    assert inv.cwd is None
    assert inv.timeout == 172800.0
    assert inv.idle_timeout is None


def test_every_field_reaches_argv():
    config = GeminiConfig(
        command="/opt/gemini",
        model="gemini-2.5-pro",
        approval_mode="auto_edit",
        no_relaunch=True,
        exec_policy=ExecPolicy(add_dirs=("/a",)),
        extra_args=("--debug",),
        workspace_dir="/cfg",
        idle_timeout=45.0,
        timeout=300.0,
        env={"A": "cfg", "B": "cfg"},
        session_id="22222222-3333-4444-8555-666666666666",
    )
    request = RunRequest(
        user_text="go",
        thread_id="de5ad6f7-0e4c-473e-a675-38f9a7a5f810",
        model="gemini-2.5-flash",
        workspace_dir="/req",
        exec_policy=ExecPolicy(add_dirs=("/b",)),
        env={"B": "req"},
    )
    inv = build_invocation(request, config)
    assert inv.argv == (
        "/opt/gemini",
        "-o",
        "stream-json",
        "--model=gemini-2.5-flash",  # the request's model wins
        "--approval-mode=auto_edit",  # replaces --yolo
        "--include-directories=/a",
        "--include-directories=/b",
        "--resume=de5ad6f7-0e4c-473e-a675-38f9a7a5f810",  # resuming: no --session-id
        "--debug",
    )
    assert inv.stdin == b"go"
    assert inv.cwd == "/req"
    assert dict(inv.env) == {
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "A": "cfg",
        "B": "req",
    }
    assert inv.timeout == 300.0
    assert inv.idle_timeout == 45.0


def test_session_id_model_and_cwd_from_config():
    config = GeminiConfig(session_id="u-1", model="m", workspace_dir="/ws")
    inv = build_invocation(RunRequest(user_text="x"), config)
    assert "--session-id=u-1" in inv.argv
    assert "--model=m" in inv.argv
    assert inv.cwd == "/ws"


def test_no_yolo_no_trust():
    inv = build_invocation(
        RunRequest(user_text="x"), GeminiConfig(yolo=False, trust_workspace=False)
    )
    assert inv.argv == ("gemini", "-o", "stream-json")
    assert dict(inv.env) == {}


def test_user_env_overrides_provider_env():
    inv = build_invocation(
        RunRequest(user_text="x", env={"GEMINI_CLI_TRUST_WORKSPACE": "false"}), GeminiConfig()
    )
    assert inv.env["GEMINI_CLI_TRUST_WORKSPACE"] == "false"


def test_prompt_via_argv_uses_the_equals_form():
    inv = build_invocation(
        RunRequest(user_text="-y rm everything"), GeminiConfig(prompt_via="argv")
    )
    assert inv.argv[-1] == "--prompt=-y rm everything"
    assert inv.stdin is None
    assert "-y" not in inv.argv


def test_bad_config_values():
    with pytest.raises(ValueError):
        GeminiConfig(approval_mode="always")
    with pytest.raises(ValueError):
        GeminiConfig(prompt_via="file")


@pytest.mark.parametrize(
    ("request_kw", "config_kw"),
    [
        ({"thread_id": "--yolo"}, {}),
        ({"model": "-p"}, {}),
        ({}, {"exec_policy": ExecPolicy(add_dirs=("-x",))}),
        ({}, {"session_id": "--acp"}),
    ],
)
def test_values_that_read_as_flags_are_refused(request_kw, config_kw):
    with pytest.raises(ConfigError):
        build_invocation(RunRequest(user_text="x", **request_kw), GeminiConfig(**config_kw))


def test_empty_prompt():
    with pytest.raises(EmptyPromptError):
        build_invocation(RunRequest(user_text=" "), GeminiConfig())


def test_provider_registration():
    provider = get_provider("gemini")
    assert provider is gemini.PROVIDER
    assert provider.config_class is GeminiConfig
    assert provider.command(GeminiConfig()) == "gemini"
    decoder = provider.new_decoder(RunRequest(user_text="x", thread_id="t"), GeminiConfig())
    assert isinstance(decoder, GeminiStreamDecoder)
    assert decoder.thread_id == "t"


def test_explain_exit():
    untrusted = explain_exit(55, "")
    assert untrusted is not None and "GEMINI_CLI_TRUST_WORKSPACE" in untrusted
    auth = explain_exit(41, "Invalid auth method selected.")
    assert auth is not None and "selectedType" in auth
    node = explain_exit(1, "SyntaxError: Invalid regular expression flags\nNode.js v18.19.0")
    assert node is not None and "Node >= 20" in node
    assert explain_exit(1, "boom") is None
    assert explain_exit(0, "") is None


# -- recorded transcripts -----------------------------------------------------------------------

HELLO = "Hello from the fake model. You said: "
SLOW = " ".join(f"word{i}" for i in range(40))
SLOW5 = " ".join(f"word{i}" for i in range(5))
NO_RESULT = "gemini ended without a result"

#: name -> (reply, thread id, usage, error (substring, "" = none), status, terminal)
CASES = {
    "gemini_stream_plain": (HELLO + "say hello", "22222222-3333-4444-8555-666666666666",
                            (10653, 0, 46), "", None, True),
    "gemini_stream_plain_model": (HELLO + "say hello", "de5ad6f7-0e4c-473e-a675-38f9a7a5f810",
                                  (7882, 0, 27), "", None, True),
    "gemini_norelaunch_stream_plain": (HELLO + "say hello", "494ea6a5-d09f-4088-8ca0-3dd7557a670d",
                                       (7893, 0, 27), "", None, True),
    "gemini_resume_latest": (HELLO + "and again", "de5ad6f7-0e4c-473e-a675-38f9a7a5f810",
                             (10716, 0, 46), "", None, True),
    "gemini_stream_tool_default": ("No shell tool offered; plain reply.",
                                   "b740ff56-0c15-426c-af3e-1a5b26061376", (10659, 0, 43), "",
                                   None, True),
    "gemini_err503_then_ok": (HELLO + "[[FAILN:529:2]] hi", "889b8b7d-9a74-4212-842c-de47289c9057",
                              (7895, 0, 29), "", None, True),
    # relaunching gemini ignores SIGINT/SIGTERM to its pid: the turn runs to its end
    "gemini_sigint_streaming": (SLOW, "427d7140-a42d-464f-bdd1-cdd969734259", (7895, 0, 227), "",
                                None, True),
    "gemini_sigterm_streaming": (SLOW, "1ce40c45-7bd1-43cd-bdee-76bd7ce0b4b3", (7895, 0, 227), "",
                                 None, True),
    "gemini_sigint_during_tool": ('The tool returned: {"output": "<untrusted_context>\\nOutput: '
                                  'slept\\nProcess Group PGID: 21202\\n</untrusted_context>"}. '
                                  "Done.", "3874f2d1-ecf4-4828-85a9-0b265037f499",
                                  (23923, 0, 88), "", None, True),
    "gemini_sigterm_during_tool": ('The tool returned: {"output": "<untrusted_context>\\nOutput: '
                                   'slept\\nProcess Group PGID: 20522\\n</untrusted_context>"}. '
                                   "Done.", "4bdab44d-e9c2-4c0e-9bdc-dadb2ed1d662",
                                   (23923, 0, 88), "", None, True),
    # a signal to the process group (or without relaunch): exit 0 and no result line
    "gemini_pgroup_sigint_streaming": (SLOW5, "88df1bab-26dc-45ed-8e14-37c9745bec8b", (0, 0, 0),
                                       NO_RESULT, None, False),
    "gemini_pgroup_sigterm_streaming": (SLOW5, "9a741f43-588c-49e7-bfe2-41901d6d1130", (0, 0, 0),
                                        NO_RESULT, None, False),
    "gemini_norelaunch_sigint_streaming": (SLOW5, "e74c5b20-0cba-4576-ab25-a8781f16c414",
                                           (0, 0, 0), NO_RESULT, None, False),
    "gemini_norelaunch_sigterm_streaming": (SLOW5, "d9b385bc-2168-4639-84b1-e8768da404da",
                                            (0, 0, 0), NO_RESULT, None, False),
    "gemini_norelaunch_sigint_during_tool": ("I'll run a command.",
                                             "6543fe6d-cd46-43ff-aeb8-7819f0bb48a6", (0, 0, 0),
                                             NO_RESULT, None, False),
    "gemini_norelaunch_sigterm_during_tool": ("I'll run a command.",
                                              "84828c0a-f3ff-4ff3-982c-adb2f602f2e7", (0, 0, 0),
                                              NO_RESULT, None, False),
    # API errors: result {status: error}
    "gemini_err429": ("", "66ff7e72-fb30-48ad-a0f9-eb404f90f94c", (0, 0, 0),
                      "[API Error: fake RESOURCE_EXHAUSTED]", 429, True),
    "gemini_err500": ("", "56db1dce-99a2-43dc-9543-e80f8bc73900", (0, 0, 0), "fake INTERNAL", 500,
                      True),
    "gemini_err500_maxattempts2": ("", "39a106e2-24cf-4205-8574-f31a73e088e2", (0, 0, 0),
                                   "fake INTERNAL", 500, True),
    "gemini_err503": ("", "d8de5ff1-0ca3-4ca6-94e0-f3278e0617f5", (0, 0, 0),
                      "[API Error: fake UNAVAILABLE]", 503, True),
    "gemini_err503_maxattempts2": ("", "73b41f4a-f29f-4a24-9d5a-ed1bc222c7fb", (0, 0, 0),
                                   "[API Error: fake UNAVAILABLE]", 503, True),
    # not stream-json (-o json pretty-printed, text, --list-sessions): the stream never
    # started, so no verdict (the engine judges the exit status; an empty reply then fails
    # with missing_reply), never a crash
    "gemini_json": ("", "", (0, 0, 0), "", None, False),
    "gemini_text": ("", "", (0, 0, 0), "", None, False),
    "gemini_list_sessions": ("", "", (0, 0, 0), "", None, False),
}  # fmt: skip


def test_every_headless_transcript_is_covered():
    recorded = {p.name.removesuffix(".stdout") for p in HERE.glob("*.stdout")}
    assert recorded == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_transcript(name):
    reply, thread, usage, error, status, terminal = CASES[name]
    events, out = decode_bytes(load(name))
    assert_outcome(out, reply, thread, usage, error, status, False, terminal)
    assert out.missing_reply == "gemini returned no final response"
    texts = [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT]
    # §13.22: the reply is emitted exactly once, as one complete message
    if reply and terminal:
        assert texts[-1] == reply
        assert texts.count(reply) == 1
    assert all(t.strip() for t in texts)
    assert sum(e.kind.terminal for e in events) == (1 if terminal else 0)
    assert all(e.kind is not EventKind.FILE_CHANGE for e in events)


def test_deltas_coalesce_into_one_message():
    events, _ = decode_bytes(load("gemini_stream_plain"))
    assert [(e.kind, e.text) for e in events] == [
        (EventKind.THREAD_STARTED, ""),
        (EventKind.USER_TEXT, "say hello"),
        (EventKind.ASSISTANT_TEXT, HELLO + "say hello"),
        (EventKind.TURN_COMPLETED, ""),
    ]
    assistant = events[2]
    assert assistant.raw.count("\n") == 3  # the four delta lines it was made of
    assert assistant.thread_id == "22222222-3333-4444-8555-666666666666"
    assert events[3].usage == Usage(input_tokens=10653, output_tokens=46)


def test_tool_transcript_events_in_order():
    events, _ = decode_bytes(load("gemini_sigterm_during_tool"))
    assert [e.kind for e in events] == [
        EventKind.THREAD_STARTED,
        EventKind.USER_TEXT,
        EventKind.ASSISTANT_TEXT,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.ASSISTANT_TEXT,
        EventKind.TURN_COMPLETED,
    ]
    assert events[2].text == "I'll run a command."
    assert events[3].text == (
        "tool_use name=`run_shell_command` "
        "id=`run_shell_command__run_shell_command_1795703838827_0`"
    )
    assert events[4].text == (
        "tool_result id=`run_shell_command__run_shell_command_1795703838827_0` "
        "status=`success`: slept"
    )


def test_error_result_event():
    events, out = decode_bytes(load("gemini_err503"))
    assert events[-1].kind is EventKind.ERROR
    assert events[-1].status == 503
    assert events[-1].error == out.error


# -- decoder details ----------------------------------------------------------------------------


def delta(text: str) -> dict:
    return {"type": "message", "role": "assistant", "content": text, "delta": True}


def test_a_message_ends_at_any_other_known_event():
    events, out = feed_all(
        [
            delta("a"),
            delta("b"),
            {"type": "tool_use", "tool_name": "x", "tool_id": "1"},
            delta("c"),
            {"type": "tool_result", "tool_id": "1", "status": "error",
             "error": {"type": "t", "message": "denied"}},
            delta("d"),
            delta("e"),
            {"type": "result", "status": "success", "stats": {}},
        ]
    )  # fmt: skip
    assert [(e.kind, e.text) for e in events] == [
        (EventKind.ASSISTANT_TEXT, "ab"),
        (EventKind.TOOL_USE, "tool_use name=`x` id=`1`"),
        (EventKind.ASSISTANT_TEXT, "c"),
        (EventKind.TOOL_RESULT, "tool_result id=`1` status=`error`: denied"),
        (EventKind.ASSISTANT_TEXT, "de"),
        (EventKind.TURN_COMPLETED, ""),
    ]
    assert out.result.reply == "de"


def test_non_delta_assistant_message_is_complete():
    events, out = feed_all(
        [delta("part"), {"type": "message", "role": "assistant", "content": "whole"}]
    )
    assert [e.text for e in events] == ["part", "whole"]
    assert out.result.reply == "whole"


def test_unknown_events_do_not_split_a_message():
    events, out = feed_all(
        [
            delta("a"),
            {"type": "brand_new"},
            "garbage",
            {"type": "message", "role": "system", "content": "x"},
            delta("b"),
        ]
    )
    assert [e.kind for e in events] == [EventKind.UNKNOWN] * 3
    assert out.result.reply == "ab"
    assert out.error == NO_RESULT


def test_error_events_are_notices_and_the_failure_without_result():
    events, out = feed_all(
        [
            {"type": "init", "session_id": "s"},
            {"type": "error", "severity": "warning",
             "message": "Loop detected, stopping execution"},
            {"type": "error", "severity": "error", "message": "quota",
             "status": "RESOURCE_EXHAUSTED"},
        ]
    )  # fmt: skip
    assert [(e.kind, e.text) for e in events[1:]] == [
        (EventKind.UNKNOWN, "gemini warning: Loop detected, stopping execution"),
        (EventKind.RETRY, "gemini: quota"),
    ]
    assert events[2].status == 429
    assert not any(e.kind.terminal for e in events)
    assert out.error == "quota"
    assert out.status == 429
    assert out.unknown_lines == 0


def test_result_success_after_error_event_wins():
    _, out = feed_all(
        [
            {"type": "error", "severity": "error", "message": "Maximum session turns exceeded"},
            {"type": "message", "role": "assistant", "content": "ok", "delta": True},
            {"type": "result", "status": "success"},
        ]
    )
    assert out.error == ""
    assert out.result.reply == "ok"


def test_result_error_without_message_uses_the_error_event():
    _, out = feed_all(
        [
            {"type": "error", "severity": "error", "message": "Maximum session turns exceeded"},
            {"type": "result", "status": "error"},
        ]
    )
    assert out.error == "Maximum session turns exceeded"


def test_thought_is_reasoning():
    events, _ = feed_all([{"type": "thought", "subject": "Plan", "description": "do it"}])
    assert [(e.kind, e.text) for e in events] == [(EventKind.REASONING, "Plan: do it")]


def test_stats_usage_shapes():
    assert stats_usage({"input_tokens": 10, "cached": 4, "output_tokens": 3}) == Usage(
        input_tokens=10, cached_input_tokens=4, output_tokens=3
    )
    old = {"models": {"a": {"tokens": {"input": 5, "cached": 1, "candidates": 2}},
                      "b": {"tokens": {"prompt": 7, "candidates": 1}}}}  # fmt: skip
    assert stats_usage(old) == Usage(input_tokens=12, cached_input_tokens=1, output_tokens=3)
    per_model = {"models": {"a": {"input_tokens": 3, "output_tokens": 1, "cached": 1}}}
    assert stats_usage(per_model) == Usage(input_tokens=3, cached_input_tokens=1, output_tokens=1)
    assert stats_usage(None) is None
    assert stats_usage({"models": "x"}) is None


def test_finish_keeps_a_cut_message_as_the_reply():
    _, out = feed_all([{"type": "init", "session_id": "s"}, delta("half an ans"), delta("wer")])
    assert out.result.reply == "half an answer"
    assert out.result.next_thread_id == "s"
    assert out.error == NO_RESULT


def test_no_stream_at_all_leaves_the_verdict_to_the_exit_status():
    # exit 55 (untrusted) / 41 (auth) print nothing on stdout: explain_exit must get its turn
    _, out = decode_bytes(b"")
    assert out.error == ""
    assert not out.terminal
    _, out = feed_all(["Loaded cached credentials.", {"type": "brand_new"}])
    assert out.error == ""
    _, out = feed_all([{"type": "init", "session_id": "s"}])
    assert out.error == NO_RESULT


def test_explain_exit_reads_the_stream_json_error_on_stderr():
    tail = 'Warning: x\n{"type":"error","timestamp":"t","severity":"error","message":"bad flag"}\n'
    assert explain_exit(42, tail) == "gemini exec failed (exit 42): bad flag"
    assert explain_exit(1, '{"type":"error"') is None


def test_resumed_thread_kept_when_init_has_none():
    _, out = feed_all([{"type": "result", "status": "success"}], thread_id="old")
    assert out.result.next_thread_id == "old"


# -- Alice's fixtures (its old -o json mode) ----------------------------------------------------


def test_alice_valid_json_document_on_one_line():
    events, out = decode_bytes((ALICE / "gemini_oneshot_valid.stdout.jsonl").read_bytes())
    assert out.result.reply == "hello"
    assert out.result.next_thread_id == "sess-1"
    assert out.result.usage == Usage(input_tokens=12, cached_input_tokens=3, output_tokens=4)
    assert out.error == ""
    assert [e.kind for e in events] == [EventKind.ASSISTANT_TEXT, EventKind.TURN_COMPLETED]


def test_alice_empty_response():
    _, out = decode_bytes((ALICE / "gemini_oneshot_empty_response.stdout.jsonl").read_bytes())
    assert out.result.reply == ""
    assert out.terminal
    assert "no final response" in out.missing_reply


def test_alice_invalid_output():
    events, out = decode_bytes((ALICE / "gemini_oneshot_invalid.stdout.txt").read_bytes())
    assert [e.kind for e in events] == [EventKind.UNKNOWN]
    assert out.error == ""  # never started: the exit status decides
    assert out.result.reply == ""
    assert out.missing_reply == "gemini returned no final response"
    assert out.unknown_lines == 1


@pytest.mark.parametrize(
    "name",
    [
        "gemini_oneshot_session.HIST.stdout.json",
        "gemini_oneshot_resume_empty_session.HIST.stdout.json",
    ],
)
def test_alice_pretty_printed_json_is_not_stream_json(name):
    # a multi-line document is what -o json prints; we never ask for it: no crash, no result
    _, out = decode_bytes((ALICE / name).read_bytes(), thread_id="session_existing")
    assert out.error == ""
    assert out.result.reply == ""
    assert not out.terminal
    assert out.result.next_thread_id == "session_existing"


# -- properties ---------------------------------------------------------------------------------


# -- through the engine, with a fake gemini replaying a transcript ------------------------------


def fake_cli(tmp_path: Path, stdout: Path | None, exit_code: int = 0, stderr: str = "") -> str:
    return recording_cli(tmp_path, stdout, exit_code, stderr, env_prefix="GEMINI_CLI_")


async def test_engine_runs_a_recorded_turn_with_one_progress_message(tmp_path):
    command = fake_cli(tmp_path, HERE / "gemini_stream_plain.stdout")
    progress: list[str] = []
    raw: list[str] = []
    request = RunRequest(
        user_text="say hello",
        on_progress=progress.append,
        on_raw_event=lambda e: raw.append(e.kind),
    )
    result = await run_oneshot(gemini.PROVIDER, GeminiConfig(command=command), request)
    assert result.reply == HELLO + "say hello"
    assert result.next_thread_id == "22222222-3333-4444-8555-666666666666"
    assert result.usage == Usage(input_tokens=10653, output_tokens=46)
    assert progress == [HELLO + "say hello"]  # once (§13.22), complete, never a delta
    assert "user_text" in raw and "turn_completed" in raw
    rec = recorded(tmp_path)
    assert rec["stdin"] == "say hello"
    assert rec["argv"] == ["-o", "stream-json", "--yolo"]
    assert rec["env"] == {"GEMINI_CLI_TRUST_WORKSPACE": "true"}


async def test_engine_api_error_is_agent_error(tmp_path):
    command = fake_cli(tmp_path, HERE / "gemini_err503.stdout", exit_code=247)
    with pytest.raises(AgentError) as info:
        await run_oneshot(gemini.PROVIDER, GeminiConfig(command=command), RunRequest(user_text="x"))
    assert info.value.status == 503
    assert "fake UNAVAILABLE" in str(info.value)
    assert info.value.partial.next_thread_id == "d8de5ff1-0ca3-4ca6-94e0-f3278e0617f5"


async def test_engine_signalled_without_result_is_an_error_with_partial_reply(tmp_path):
    command = fake_cli(tmp_path, HERE / "gemini_norelaunch_sigterm_streaming.stdout", exit_code=0)
    with pytest.raises(AgentError) as info:
        await run_oneshot(gemini.PROVIDER, GeminiConfig(command=command), RunRequest(user_text="x"))
    assert str(info.value) == NO_RESULT
    assert info.value.partial.reply == SLOW5


@pytest.mark.parametrize(("code", "needle"), [(55, "untrusted workspace"), (41, "auth method")])
async def test_engine_start_up_failures_are_explained(tmp_path, code, needle):
    command = fake_cli(tmp_path, None, exit_code=code, stderr="Error\n")
    with pytest.raises(ProcessFailedError) as info:
        await run_oneshot(gemini.PROVIDER, GeminiConfig(command=command), RunRequest(user_text="x"))
    assert needle in str(info.value)
    assert info.value.returncode == code


def test_a_message_with_an_unknown_role_is_drift_not_the_start_of_a_stream() -> None:
    """Found by the garbage property: a stray ``message`` line with an unknown role must not
    turn a non-stream output into "gemini ended without a result"."""
    raw = (HERE / "gemini_list_sessions.stdout").read_bytes()
    stray = b'{"type":"message","role":"system","content":"x"}\n'
    events, out = decode_bytes(stray + raw)
    assert out.error == decode_bytes(raw)[1].error == ""
    assert events[0].kind is EventKind.UNKNOWN
