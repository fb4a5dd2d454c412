"""claude provider: argv for every request/config field, the decoder on every recorded one-shot
transcript (claude 2.1.197) and on Alice's fixtures, and robustness properties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import (
    AgentError,
    ConfigError,
    EmptyPromptError,
    ProcessFailedError,
    RunInterruptedError,
)
from alice_trio.models import EventKind, ExecPolicy, RunRequest, TurnEvent, Usage
from alice_trio.providers import claude
from alice_trio.providers.base import DecodeOutcome
from alice_trio.providers.claude import (
    ClaudeConfig,
    ClaudeStreamDecoder,
    build_invocation,
    explain_exit,
)
from alice_trio.providers.registry import get_provider
from recording_cli import recorded, recording_cli

from decoding import assert_outcome, feed_chunks, json_lines, split_at

HERE = Path(__file__).resolve().parent.parent / "transcripts" / "claude"
ALICE = HERE / "alice"


def decode_bytes(
    data: bytes, cuts: list[int] | None = None, thread_id: str = ""
) -> tuple[list[TurnEvent], DecodeOutcome]:
    """Feed ``data`` through a LineFramer (split at ``cuts``) into a new decoder."""
    return feed_chunks(ClaudeStreamDecoder(thread_id=thread_id), split_at(data, cuts))


def load(name: str) -> bytes:
    return (HERE / f"{name}.stdout").read_bytes()


def kinds(events: list[TurnEvent]) -> list[EventKind]:
    return [e.kind for e in events]


# -- argv ---------------------------------------------------------------------------------------


def test_default_argv_prompt_on_stdin_and_bypass():
    inv = build_invocation(RunRequest(user_text="  say hello  "), ClaudeConfig())
    assert inv.argv == (
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode=bypassPermissions",
    )
    assert inv.stdin == b"say hello"
    assert "say hello" not in " ".join(inv.argv)
    assert inv.cwd is None
    assert "IS_SANDBOX" not in inv.env
    assert inv.timeout == 172800.0
    assert inv.idle_timeout is None


def test_every_field_reaches_argv():
    config = ClaudeConfig(
        command="/opt/claude",
        model="sonnet",
        permission_mode="acceptEdits",
        include_partial_messages=True,
        allowed_tools=("Bash(git *)", "Edit"),
        exec_policy=ExecPolicy(add_dirs=("/a",)),
        extra_args=("--bare",),
        workspace_dir="/cfg",
        idle_timeout=30.0,
        timeout=600.0,
        env={"A": "cfg", "B": "cfg"},
    )
    request = RunRequest(
        user_text="go",
        thread_id="11111111-2222-4333-8444-555555555555",
        model="opus",
        workspace_dir="/req",
        exec_policy=ExecPolicy(add_dirs=("/b", "/a")),
        env={"B": "req"},
    )
    inv = build_invocation(request, config)
    assert inv.argv == (
        "/opt/claude",
        "-p",
        "--add-dir=/a",
        "--add-dir=/b",
        "--allowedTools=Bash(git *),Edit",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-mode=acceptEdits",
        "--model=opus",  # the request's model wins
        "--resume=11111111-2222-4333-8444-555555555555",
        "--bare",
    )
    assert inv.cwd == "/req"
    assert dict(inv.env) == {"A": "cfg", "B": "req"}
    assert inv.timeout == 600.0
    assert inv.idle_timeout == 30.0


def test_config_model_cwd_and_session_id_when_not_resuming():
    config = ClaudeConfig(model="haiku", workspace_dir="/ws", session_id="abc-uuid")
    inv = build_invocation(RunRequest(user_text="x"), config)
    assert "--model=haiku" in inv.argv
    assert "--session-id=abc-uuid" in inv.argv
    assert inv.cwd == "/ws"
    resumed = build_invocation(RunRequest(user_text="x", thread_id="t1"), config)
    assert "--resume=t1" in resumed.argv
    assert not any(a.startswith("--session-id") for a in resumed.argv)


def test_empty_permission_mode_omits_the_flag():
    inv = build_invocation(RunRequest(user_text="x"), ClaudeConfig(permission_mode=""))
    assert not any(a.startswith("--permission-mode") for a in inv.argv)


def test_is_sandbox_sets_env_and_user_env_can_override():
    inv = build_invocation(RunRequest(user_text="x"), ClaudeConfig(is_sandbox=True))
    assert inv.env["IS_SANDBOX"] == "1"
    inv = build_invocation(
        RunRequest(user_text="x", env={"IS_SANDBOX": "0"}), ClaudeConfig(is_sandbox=True)
    )
    assert inv.env["IS_SANDBOX"] == "0"


def test_allowed_tools_accepts_a_string():
    assert ClaudeConfig(allowed_tools="Bash, Edit").allowed_tools == ("Bash", "Edit")


@pytest.mark.parametrize(
    ("request_kw", "config_kw"),
    [
        ({"thread_id": "--dangerously-skip-permissions"}, {}),
        ({"model": "-x"}, {}),
        ({}, {"exec_policy": ExecPolicy(add_dirs=("--evil",))}),
        ({}, {"permission_mode": "-p"}),
    ],
)
def test_values_that_read_as_flags_are_refused(request_kw, config_kw):
    with pytest.raises(ConfigError):
        build_invocation(RunRequest(user_text="x", **request_kw), ClaudeConfig(**config_kw))


def test_prompt_that_looks_like_a_flag_stays_on_stdin():
    inv = build_invocation(RunRequest(user_text="--help me"), ClaudeConfig())
    assert inv.stdin == b"--help me"
    assert "--help me" not in inv.argv


def test_empty_prompt():
    with pytest.raises(EmptyPromptError):
        build_invocation(RunRequest(user_text="  \n "), ClaudeConfig())


def test_provider_registration():
    provider = get_provider("claude")
    assert provider is claude.PROVIDER
    assert provider.config_class is ClaudeConfig
    assert provider.command(ClaudeConfig()) == "claude"
    assert isinstance(provider.new_decoder(RunRequest(user_text="x"), ClaudeConfig()),
                      ClaudeStreamDecoder)  # fmt: skip


def test_explain_exit_root_refusal():
    stderr = (HERE / "claude_bypass_as_root_refused.stderr").read_text()
    message = explain_exit(1, stderr)
    assert message is not None and "IS_SANDBOX=1" in message
    assert explain_exit(1, "something else") is None


# -- recorded transcripts -----------------------------------------------------------------------

SID_FIXED = "11111111-2222-4333-8444-555555555555"
HELLO = "Hello from the fake model. You said: "
TOOL_REPLY = "The tool returned: TOOL_OUTPUT_42. Done."

#: name -> (reply, thread id, usage, error (substring, "" = none), status, interrupted, terminal)
CASES = {
    "claude_stream_plain": (HELLO + "say hello", SID_FIXED, (19457, 0, 19), "", None, False, True),
    "claude_resume": (HELLO + "and say hello again", SID_FIXED, (19498, 0, 21), "", None, False,
                      True),
    "claude_continue": (HELLO + "third turn via --continue", SID_FIXED, (19543, 0, 23), "", None,
                        False, True),
    "claude_stdin_prompt": (HELLO + "say hello from stdin", "0d19ebb8-6dda-4d2c-8d94-dbd468be1ab4",
                            (19460, 0, 21), "", None, False, True),
    "claude_stream_tool": (TOOL_REPLY, "94f07424-432f-4641-bff9-3824045ad0d8", (39022, 0, 68), "",
                           None, False, True),
    "claude_stream_tool_partial": (TOOL_REPLY, "8c51369f-684e-471e-ae2e-242ffd696837",
                                   (39022, 0, 68), "", None, False, True),
    "claude_tool_denied": ("The tool returned: touch in '/sandbox/work/claude/created_by_tool.txt'"
                           " was blocked. For security, Claude Code may only create or modify "
                           "files in the allowed working directories for this session: "
                           "'/tmp/rese. Done.", "30493f95-7bec-4183-b709-d62c1141b9d0",
                           (39093, 0, 116), "", None, False, True),
    # --output-format json: a single result line; the reply comes from result.result
    "claude_json": (HELLO + "say hello", "d22f9b26-c111-484a-b2d2-a4246a5ff015", (19457, 0, 19),
                    "", None, False, True),
    # API errors: the synthetic assistant message carries the same text as the error
    "claude_err500": ("API Error: 500 Internal server error (fake).", "95cd9b3d-57da-4036-a52b"
                      "-1699c45aee6e", (0, 0, 0), "API Error: 500 Internal server error (fake)",
                      500, False, True),
    "claude_err529_default_retries": ("API Error: Repeated 529 Overloaded errors.",
                                      "7111ee6b-d670-4d74-aae8-b5223250459d", (0, 0, 0),
                                      "Repeated 529 Overloaded errors", 529, False, True),
    # SIGINT: partial text, "[Request interrupted by user…]", result error_during_execution
    "claude_sigint_streaming": ("word0 word1 word2 word3", "eb51288f-5bd1-4564-89f3-42e65938a9f6",
                                (0, 0, 0), "", None, True, True),
    "claude_sigint_during_tool": ("I'll run a command.", "9caf0f2b-4779-4f42-9958-d8d61dc97b60",
                                  (19466, 0, 51), "", None, True, True),
    # SIGTERM: exit 143 with no result; the decoder has no verdict (the engine reports the exit)
    "claude_sigterm_streaming": ("", "cc0cc23b-357f-4d6d-86f4-92444e22f5a2", (0, 0, 0), "", None,
                                 False, False),
    "claude_sigterm_during_tool": ("I'll run a command.", "4a567681-39ad-4597-a6e2-a2f1a65f77f4",
                                   (0, 0, 0), "", None, False, False),
    # refused before any output (stderr only, see test_explain_exit_root_refusal)
    "claude_bypass_as_root_refused": ("", "", (0, 0, 0), "", None, False, False),
    # default text output: one non-JSON line, shown as unknown, no reply
    "claude_text": ("", "", (0, 0, 0), "", None, False, False),
}  # fmt: skip


def test_every_one_shot_transcript_is_covered():
    recorded = {p.name.removesuffix(".stdout") for p in HERE.glob("*.stdout")}
    assert recorded == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_transcript(name):
    reply, thread, usage, error, status, interrupted, terminal = CASES[name]
    events, out = decode_bytes(load(name))
    # a reply ending with "." is the start of a long one
    flags = (status, interrupted, terminal)
    assert_outcome(out, reply, thread, usage, error, *flags, reply_prefix=reply.endswith("."))
    assert out.missing_reply == "claude returned no final assistant message"
    assert out.unknown_lines == (1 if name == "claude_text" else 0)
    # an assistant text event is always a complete, non-empty message
    assert all(e.text.strip() for e in events if e.kind is EventKind.ASSISTANT_TEXT)
    assert sum(e.kind.terminal for e in events) == (1 if terminal else 0)


def test_tool_transcript_events_in_order():
    events, _ = decode_bytes(load("claude_stream_tool"))
    assert kinds(events) == [
        EventKind.THREAD_STARTED,
        EventKind.ASSISTANT_TEXT,
        EventKind.TOOL_USE,
        EventKind.TOOL_RESULT,
        EventKind.ASSISTANT_TEXT,
        EventKind.TURN_COMPLETED,
    ]
    assert events[1].text == "I'll run a command."
    assert events[2].text == "tool_use name=`Bash` id=`toolu_fake_0001`"
    assert events[3].text == "tool_result id=`toolu_fake_0001`: TOOL_OUTPUT_42"
    assert events[4].text == TOOL_REPLY
    assert events[5].usage == Usage(input_tokens=39022, output_tokens=68)
    assert all(e.provider == "claude" for e in events)
    assert events[5].thread_id == "94f07424-432f-4641-bff9-3824045ad0d8"


def test_partial_messages_give_the_same_progress_as_without():
    plain, _ = decode_bytes(load("claude_stream_tool"))
    partial, _ = decode_bytes(load("claude_stream_tool_partial"))

    def progress(evs: list[TurnEvent]) -> list[tuple[EventKind, str]]:
        return [(e.kind, e.text) for e in evs if e.kind is not EventKind.THREAD_STARTED]

    assert progress(partial) == progress(plain)


def test_api_retry_notices():
    events, _ = decode_bytes(load("claude_err500"))
    retries = [e.text for e in events if e.kind is EventKind.RETRY]
    assert retries == [
        "claude API call failed, retrying 1/2 after 500 (server_error), next attempt in 0.5s",
        "claude API call failed, retrying 2/2 after 500 (server_error), next attempt in 1.2s",
    ]
    assert events[-1].kind is EventKind.ERROR and events[-1].status == 500
    events, _ = decode_bytes(load("claude_err529_default_retries"))
    assert [e.text for e in events if e.kind is EventKind.RETRY][1].startswith(
        "claude API call failed, retrying 2/10 after 529 (overloaded)"
    )


def test_sigint_gives_turn_interrupted_event():
    events, _ = decode_bytes(load("claude_sigint_during_tool"))
    assert events[-1].kind is EventKind.TURN_INTERRUPTED
    assert EventKind.ERROR not in kinds(events)
    assert any(
        e.kind is EventKind.USER_TEXT and "[Request interrupted by user for tool use]" in e.text
        for e in events
    )
    assert any(e.kind is EventKind.TOOL_RESULT and " error: " in e.text for e in events)


def test_thread_id_seeded_from_request_survives_lines_without_session():
    _, out = decode_bytes(b'{"type":"assistant","message":{"content":"hi"}}\n', thread_id="t0")
    assert out.result.next_thread_id == "t0"
    assert out.result.reply == "hi"


# -- decoder details ----------------------------------------------------------------------------


def feed_all(lines: list[dict | str], thread_id: str = "") -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes(json_lines(lines), thread_id=thread_id)


def test_text_and_tool_use_in_one_message_emit_both():
    events, out = feed_all(
        [
            {
                "type": "assistant",
                "message": {
                    "id": "m1",
                    "content": [
                        {"type": "text", "text": "looking"},
                        {"type": "tool_use", "name": "Bash", "id": "t1"},
                        {"type": "tool_use", "name": "Read"},
                    ],
                },
            }
        ]
    )
    assert [(e.kind, e.text) for e in events] == [
        (EventKind.ASSISTANT_TEXT, "looking"),
        (EventKind.TOOL_USE, "tool_use name=`Bash` id=`t1`; tool_use name=`Read`"),
    ]
    assert out.result.reply == "looking"


def test_text_blocks_of_one_message_join_into_the_reply():
    msg = {"type": "assistant", "message": {"id": "m2", "content": [{"type": "text", "text": "a"}]}}
    msg2 = {
        "type": "assistant",
        "message": {"id": "m2", "content": [{"type": "Text", "text": "b"}]},
    }
    events, out = feed_all([msg, msg2])
    assert [e.text for e in events] == ["a", "b"]
    assert out.result.reply == "a\nb"
    other = {
        "type": "assistant",
        "message": {"id": "m3", "content": [{"type": "text", "text": "c"}]},
    }
    _, out = feed_all([msg, msg2, other])
    assert out.result.reply == "c"


def test_subagent_text_is_not_the_reply():
    events, out = feed_all(
        [
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "main"}]}},
            {
                "type": "assistant",
                "parent_tool_use_id": "toolu_1",
                "message": {"content": [{"type": "text", "text": "sub"}]},
            },
        ]
    )
    assert out.result.reply == "main"
    assert events[-1].kind is EventKind.REASONING and events[-1].text == "sub"


def test_thinking_is_reasoning():
    events, _ = feed_all(
        [{"type": "assistant", "message": {"content": [{"type": "thinking", "thinking": "hmm"}]}}]
    )
    assert [(e.kind, e.text) for e in events] == [(EventKind.REASONING, "hmm")]


@pytest.mark.parametrize("flag", [True, "true", "1", "yes", "TRUE"])
def test_is_error_truthy_forms(flag):
    events, out = feed_all(
        [{"type": "result", "is_error": flag, "result": "boom", "api_error_status": "503"}]
    )
    assert out.error == "boom"
    assert out.status == 503
    assert events[-1].kind is EventKind.ERROR and events[-1].error == "boom"


@pytest.mark.parametrize("flag", [False, "false", "0", "no", None, 1])
def test_is_error_falsy_forms(flag):
    _, out = feed_all([{"type": "result", "is_error": flag, "result": "fine"}])
    assert out.error == ""
    assert out.result.reply == "fine"


def test_error_without_text_has_a_default_message():
    _, out = feed_all([{"type": "result", "is_error": True}])
    assert out.error == "claude result error"


def test_error_during_execution_without_interrupt_is_an_error():
    _, out = feed_all(
        [{"type": "result", "subtype": "error_during_execution", "is_error": True,
          "errors": ["tool crashed"]}]
    )  # fmt: skip
    assert out.error == "tool crashed"
    assert out.interrupted is False


def test_result_reply_fallback_emits_progress_once():
    events, out = feed_all([{"type": "result", "result": "only here", "session_id": "s"}])
    assert out.result.reply == "only here"
    assert out.result.next_thread_id == "s"
    assert [(e.kind, e.text) for e in events] == [
        (EventKind.ASSISTANT_TEXT, "only here"),
        (EventKind.TURN_COMPLETED, ""),
    ]
    events, _ = feed_all(
        [
            {"type": "assistant", "message": {"content": [{"type": "text", "text": "final"}]}},
            {"type": "result", "result": "final"},
        ]
    )
    assert [e.kind for e in events].count(EventKind.ASSISTANT_TEXT) == 1


def test_stream_events_and_system_lines_are_silent():
    events, out = feed_all(
        [
            {"type": "stream_event", "event": {"type": "content_block_delta"}},
            {"type": "system", "subtype": "status", "status": "requesting"},
            {"type": "system", "subtype": "compact_boundary"},
        ]
    )
    assert events == []
    assert out.unknown_lines == 0


# -- Alice's fixtures ---------------------------------------------------------------------------


def alice(name: str) -> tuple[list[TurnEvent], DecodeOutcome]:
    return decode_bytes((ALICE / name).read_bytes())


def test_alice_final_message_skips_non_json():
    events, out = alice("claude_oneshot_final_message.HIST.stdout.jsonl")
    assert out.result.reply == "final answer"
    assert events[0].kind is EventKind.UNKNOWN


def test_alice_no_assistant():
    _, out = alice("claude_oneshot_no_assistant.HIST.stdout.jsonl")
    assert out.result.reply == ""
    assert out.result.next_thread_id == "abc"
    assert out.missing_reply == "claude returned no final assistant message"


def test_alice_result_error_joins_errors():
    _, out = alice("claude_oneshot_assistant_and_result_error.HIST.stdout.jsonl")
    assert out.error == "first\nsecond"
    assert out.result.next_thread_id == "sid_1"


def test_alice_progress_type_is_not_fatal():
    events, out = alice("claude_oneshot_progress.HIST.stdout.jsonl")
    assert [e.text for e in events if e.kind is EventKind.ASSISTANT_TEXT] == [
        "阶段提示",
        "最终答复",
    ]
    assert out.result.reply == "最终答复"
    assert out.result.next_thread_id == "session_progress"
    assert out.error == ""


def test_alice_login_error():
    _, out = alice("claude_oneshot_result_error_login.HIST.stdout.jsonl")
    assert "Not logged in" in out.error
    assert out.result.next_thread_id == "session_error"


def test_alice_usage():
    _, out = alice("claude_oneshot_result_usage.stdout.jsonl")
    assert out.result.usage == Usage(input_tokens=100, cached_input_tokens=20, output_tokens=50)
    assert out.result.reply == "hello"
    events, out = alice("claude_oneshot_result_no_usage.stdout.jsonl")
    assert out.result.usage == Usage()
    assert out.terminal and events[-1].kind is EventKind.TURN_COMPLETED


def test_alice_file_change_fixture_reply():
    _, out = alice("claude_oneshot_file_change.stdout.jsonl")
    assert out.result.reply == "DONE"


def test_alice_normalization_emits_text_then_tool_use():
    events, _ = alice("claude_stream_normalization.stdout.jsonl")
    assert [(e.kind, e.text) for e in events] == [
        (EventKind.ASSISTANT_TEXT, "middle"),
        (EventKind.TOOL_USE, "tool_use name=`Bash` id=`toolu_1`"),
    ]
    assert events[0].thread_id == "claude-session"


# -- properties ---------------------------------------------------------------------------------


# -- through the engine, with a fake claude replaying a transcript ------------------------------


def fake_cli(tmp_path: Path, stdout: Path | None, exit_code: int = 0, stderr: str = "") -> str:
    return recording_cli(tmp_path, stdout, exit_code, stderr, env_prefix=None)


async def test_engine_runs_a_recorded_tool_turn(tmp_path):
    command = fake_cli(tmp_path, HERE / "claude_stream_tool.stdout")
    progress: list[str] = []
    request = RunRequest(user_text="[[TOOL]] please", on_progress=progress.append)
    result = await run_oneshot(claude.PROVIDER, ClaudeConfig(command=command), request)
    assert result.reply == TOOL_REPLY
    assert result.next_thread_id == "94f07424-432f-4641-bff9-3824045ad0d8"
    assert result.usage == Usage(input_tokens=39022, output_tokens=68)
    assert progress == ["I'll run a command.", TOOL_REPLY]
    rec = recorded(tmp_path)
    assert rec["stdin"] == "[[TOOL]] please"
    assert rec["argv"][0] == "-p"


async def test_engine_api_error_is_agent_error(tmp_path):
    command = fake_cli(tmp_path, HERE / "claude_err500.stdout", exit_code=1)
    progress: list[str] = []
    request = RunRequest(user_text="hi", on_progress=progress.append)
    with pytest.raises(AgentError) as info:
        await run_oneshot(claude.PROVIDER, ClaudeConfig(command=command), request)
    assert info.value.status == 500
    assert "API Error: 500" in str(info.value)
    assert info.value.partial.next_thread_id == "95cd9b3d-57da-4036-a52b-1699c45aee6e"
    assert progress[0].startswith("claude API call failed, retrying 1/2 after 500")


async def test_engine_root_refusal_is_explained(tmp_path):
    stderr = (HERE / "claude_bypass_as_root_refused.stderr").read_text()
    command = fake_cli(tmp_path, None, exit_code=1, stderr=stderr)
    with pytest.raises(ProcessFailedError) as info:
        await run_oneshot(claude.PROVIDER, ClaudeConfig(command=command), RunRequest(user_text="x"))
    assert "IS_SANDBOX=1" in str(info.value)


async def test_engine_sigint_transcript_is_interrupted(tmp_path):
    command = fake_cli(tmp_path, HERE / "claude_sigint_streaming.stdout")
    with pytest.raises(RunInterruptedError) as info:
        await run_oneshot(claude.PROVIDER, ClaudeConfig(command=command), RunRequest(user_text="x"))
    assert info.value.partial.reply == "word0 word1 word2 word3"


def test_many_text_blocks_of_one_message_make_one_reply() -> None:
    """Blocks of one message are joined once, at the end (they used to be re-joined on every
    block: quadratic; ``python -m benchmarks`` shows the rate)."""
    decoder = ClaudeStreamDecoder()
    block = json.dumps(
        {
            "type": "assistant",
            "message": {"id": "msg_1", "content": [{"type": "text", "text": "b"}]},
        }
    )
    for _ in range(20000):
        decoder.feed(block)
    assert decoder.current_reply == "\n".join(["b"] * 20000)
    assert decoder.finish().result.reply == decoder.current_reply
