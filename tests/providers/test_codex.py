"""codex exec provider: argv construction and the decoder on every recorded codex exec run."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alice_trio.errors import ConfigError, EmptyPromptError
from alice_trio.models import EventKind, ExecPolicy, RunRequest, Usage
from alice_trio.providers import get_provider
from alice_trio.providers.codex import (
    PROVIDER,
    CodexConfig,
    CodexExecDecoder,
    ProfileOverride,
    build_invocation,
    explain_exit,
    format_file_change,
    new_decoder,
)
from alice_trio.transcript import decode_transcript, outcome_summary

DATA = Path(__file__).resolve().parent.parent / "transcripts" / "codex"
NO_REPLY = "codex returned no final agent message"
HIGH_DEMAND = "We’re currently experiencing high demand, which may cause temporary errors."
TRUNCATED = "stream disconnected before completion: stream closed before response.completed"


def req(text: str = "hello", **kw: object) -> RunRequest:
    return RunRequest(user_text=text, **kw)  # type: ignore[arg-type]


def argv(request: RunRequest | None = None, **cfg: object) -> list[str]:
    return list(build_invocation(request or req(), CodexConfig(**cfg)).argv)  # type: ignore[arg-type]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


# -- argv --------------------------------------------------------------------------------------


def test_new_thread_exact_argv_and_prompt_on_stdin() -> None:
    inv = build_invocation(req("  Say hello  "), CodexConfig())
    assert inv.argv == (
        "codex", "-a", "never", "--sandbox", "workspace-write",
        "exec", "--json", "--skip-git-repo-check", "--", "-",
    )  # fmt: skip
    assert inv.stdin == b"Say hello"
    assert inv.cwd is None
    assert inv.timeout == 172800.0
    assert inv.idle_timeout == 900.0


def test_resume_exact_argv() -> None:
    inv = build_invocation(req(thread_id=" t-1 "), CodexConfig())
    assert inv.argv[5:] == (
        "exec", "resume", "--json", "--skip-git-repo-check", "--", "t-1", "-",
    )  # fmt: skip


def test_thread_id_starting_with_dash_is_positional() -> None:
    args = argv(req(thread_id="--last"))
    assert args[-3:] == ["--", "--last", "-"]
    assert args.index("--") < args.index("--last")


@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_prompt_never_in_argv(prompt: str) -> None:
    inv = build_invocation(req(prompt, thread_id="abc"), CodexConfig())
    assert inv.argv == build_invocation(req("other", thread_id="abc"), CodexConfig()).argv
    assert inv.stdin == prompt.strip().encode("utf-8")


@pytest.mark.parametrize(
    ("sandbox", "approval", "bypass"),
    [
        ("danger-full-access", "never", True),
        ("danger-full-access", "on-request", False),
        ("workspace-write", "never", False),
        ("read-only", "", False),
        ("danger-full-access", "", True),  # approval defaults to never
        ("", "never", False),  # sandbox defaults to workspace-write
    ],
)
def test_bypass_only_for_danger_full_access_and_never(
    sandbox: str, approval: str, bypass: bool
) -> None:
    args = argv(exec_policy=ExecPolicy(sandbox=sandbox, ask_for_approval=approval))
    assert ("--dangerously-bypass-approvals-and-sandbox" in args) is bypass
    if bypass:
        assert "-a" not in args and "--sandbox" not in args
        assert args.index("--dangerously-bypass-approvals-and-sandbox") > args.index("exec")
    else:
        assert flag_values(args, "-a") == [approval or "never"]
        assert flag_values(args, "--sandbox") == [sandbox or "workspace-write"]


def test_request_exec_policy_overrides_config() -> None:
    cfg = {"exec_policy": ExecPolicy(sandbox="read-only", ask_for_approval="on-request")}
    args = argv(req(exec_policy=ExecPolicy(sandbox="danger-full-access")), **cfg)
    assert flag_values(args, "--sandbox") == ["danger-full-access"]
    assert flag_values(args, "-a") == ["on-request"]


def test_model_from_request_else_config() -> None:
    assert flag_values(argv(req(model="gpt-5.4")), "-m") == ["gpt-5.4"]
    assert flag_values(argv(req(model="gpt-5.4"), model="cfg-model"), "-m") == ["gpt-5.4"]
    assert flag_values(argv(model="cfg-model"), "-m") == ["cfg-model"]
    assert "-m" not in argv()


def test_root_flags_come_before_exec() -> None:
    args = argv(
        req(model="m", profile="p", reasoning_effort="high", personality="pragmatic"),
        exec_policy=ExecPolicy(add_dirs=["/a"]),
    )
    root = args[: args.index("exec")]
    for flag in ("-a", "--sandbox", "--add-dir", "-m", "-p", "-c"):
        assert flag in root
    assert args[0] == "codex"


# profiles (spec §5.5)
WORK = ProfileOverride(command="codex-work", timeout=45)


def test_unmatched_profile_passes_through() -> None:
    inv = build_invocation(req(profile="direct-cli"), CodexConfig(profile_overrides={"work": WORK}))
    assert flag_values(list(inv.argv), "-p") == ["direct-cli"]
    assert inv.argv[0] == "codex"
    assert inv.timeout == 172800.0


def test_matched_profile_without_provider_profile_does_not_leak_outer_name() -> None:
    inv = build_invocation(req(profile="work"), CodexConfig(profile_overrides={"work": WORK}))
    assert "-p" not in inv.argv
    assert "work" not in inv.argv
    assert inv.argv[0] == "codex-work"
    assert inv.timeout == 45
    assert inv.idle_timeout == 45  # capped at the profile's overall timeout


def test_matched_profile_uses_its_provider_profile_and_policy() -> None:
    override = ProfileOverride(
        provider_profile="work-cli",
        exec_policy=ExecPolicy(sandbox="danger-full-access", add_dirs=["/tmp/work"]),
    )
    cfg = CodexConfig(
        command="my-codex",
        timeout=100,
        provider_profile="default-cli",
        profile_overrides={" work ": override},
    )
    args = list(build_invocation(req(profile="work"), cfg).argv)
    assert flag_values(args, "-p") == ["work-cli"]
    assert args[0] == "my-codex"  # an empty override command keeps the config's
    assert "--dangerously-bypass-approvals-and-sandbox" in args
    assert flag_values(args, "--add-dir") == ["/tmp/work"]
    assert build_invocation(req(), cfg).timeout == 100
    assert flag_values(list(build_invocation(req(), cfg).argv), "-p") == ["default-cli"]


def test_add_dirs_deduplicated_with_resource_root() -> None:
    cfg = CodexConfig(
        exec_policy=ExecPolicy(add_dirs=["/a", "/b", "/a", "  /b  "]),
        env={"ALICE_MCP_RESOURCE_ROOT": "/res"},
    )
    inv = build_invocation(req(exec_policy=ExecPolicy(add_dirs=["/c", "/a"])), cfg)
    assert flag_values(list(inv.argv), "--add-dir") == ["/a", "/b", "/c", "/res"]
    request = req(env={"ALICE_MCP_RESOURCE_ROOT": "/a"})
    args = argv(request, exec_policy=ExecPolicy(add_dirs=["/a"]))
    assert flag_values(args, "--add-dir") == ["/a"]
    assert "--add-dir" not in argv(req(env={"ALICE_MCP_RESOURCE_ROOT": "  "}))


@given(effort=st.text(min_size=1), personality=st.text(min_size=1))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_effort_and_personality_are_toml_quoted(effort: str, personality: str) -> None:
    assume(effort.strip() and personality.strip())
    assume("\x00" not in effort + personality)
    args = argv(req(reasoning_effort=effort, personality=personality))
    values = flag_values(args, "-c")
    assert len(values) == 2
    assert tomllib.loads(values[0]) == {"model_reasoning_effort": effort.strip()}
    assert tomllib.loads(values[1]) == {"personality": personality.strip()}


def test_effort_and_personality_exact_form() -> None:
    args = argv(req(personality="friendly"), reasoning_effort="high")
    assert flag_values(args, "-c") == ['model_reasoning_effort="high"', 'personality="friendly"']


@pytest.mark.parametrize(
    ("effort", "expected"),
    [(" XHIGH ", 3600.0), ("xhigh", 3600.0), ("High", 1800.0), ("low", 900.0), ("", 900.0)],
)
def test_idle_timeout_tiers(effort: str, expected: float) -> None:
    assert build_invocation(req(reasoning_effort=effort), CodexConfig()).idle_timeout == expected


def test_idle_timeout_config_effort_tiers_caps_and_explicit() -> None:
    assert build_invocation(req(), CodexConfig(reasoning_effort="xhigh")).idle_timeout == 3600.0
    custom = CodexConfig(default_idle_timeout=10, high_idle_timeout=20, xhigh_idle_timeout=30)
    assert build_invocation(req(reasoning_effort="high"), custom).idle_timeout == 20
    capped = build_invocation(req(reasoning_effort="xhigh"), CodexConfig(timeout=120))
    assert capped.idle_timeout == 120
    explicit = CodexConfig(idle_timeout=0.2, reasoning_effort="xhigh")
    assert build_invocation(req(), explicit).idle_timeout == 0.2


def test_extra_args_env_cwd() -> None:
    cfg = CodexConfig(extra_args=("--ephemeral",), env={"A": "1", "B": "1"}, workspace_dir="/cfg")
    inv = build_invocation(req(env={"B": "2"}, workspace_dir="/req"), cfg)
    assert inv.argv[-3:] == ("--ephemeral", "--", "-")
    assert inv.env == {"A": "1", "B": "2"}
    assert inv.cwd == "/req"
    assert build_invocation(req(), cfg).cwd == "/cfg"


def test_rejects_empty_prompt_and_flag_like_values() -> None:
    with pytest.raises(EmptyPromptError):
        build_invocation(req("   "), CodexConfig())
    with pytest.raises(ConfigError, match="model"):
        build_invocation(req(model="--help"), CodexConfig())
    with pytest.raises(ConfigError, match="profile"):
        build_invocation(req(profile="-x"), CodexConfig())


def test_registered_provider() -> None:
    assert get_provider(" CODEX ") is PROVIDER
    assert PROVIDER.config_class is CodexConfig
    assert isinstance(PROVIDER.new_decoder(req(), CodexConfig()), CodexExecDecoder)


def test_explain_exit() -> None:
    tail = "warning\nerror: unexpected argument '--foo' found\n"
    assert "unexpected argument '--foo'" in (explain_exit(2, tail) or "")
    assert explain_exit(1, tail) is None
    assert explain_exit(2, "nothing useful") is None


# -- decoder on the real transcripts -----------------------------------------------------------

HELLO = "Hello from the fake model."


def tool_reply(chunk: str) -> str:
    return (
        f"The command printed: Chunk ID: {chunk}\nWall time: 0.0000 seconds\n"
        "Process exited with code 0\nOriginal token count: 1\nOutput:\nhi"
    )


# case -> (reply, thread id, (input, cached, output), error, terminal)
CASES: dict[str, tuple[str, str, tuple[int, int, int], str, bool]] = {
    "codex_exec_simple": (
        HELLO, "01a21857-8859-74d2-97ce-9b5a153feed4", (1234, 1000, 56), "", True),
    "codex_exec_tool": (
        tool_reply("7edde1"), "01a21857-8d93-7d61-8bab-f9ca2ca653ae", (2468, 2000, 112), "", True),
    "codex_exec_tool_sandbox_workspace_write": (
        tool_reply("db5948"), "01a21857-e95e-7721-b959-c3c9c37f2ea6", (2468, 2000, 112), "", True),
    "codex_exec_resume_last": (  # cumulative thread usage, as codex reports it
        HELLO, "01a21857-8d93-7d61-8bab-f9ca2ca653ae", (4936, 4000, 224), "", True),
    "codex_exec_slow_stream": (
        " ".join(f"tick{i}" for i in range(20)), "01a21857-af19-72f3-baf3-2156a6b5eed9",
        (1234, 1000, 56), "", True),
    "codex_exec_stdin_pipe_held_2s": (
        HELLO, "01a21857-e43f-7b40-b8cd-5294aac42dc8", (1234, 1000, 56), "", True),
    "codex_exec_unknown_model_warning": (
        HELLO, "01a21857-e6d7-7a93-a550-fc283052f74c", (1234, 1000, 56), "", True),
    "codex_exec_http500": (
        "", "01a21857-9855-79f3-bf4c-cf39202430a5", (0, 0, 0), HIGH_DEMAND, True),
    "codex_exec_http500_retries": (
        "", "01a21857-9afb-7ba1-9b77-e8de9a323132", (0, 0, 0), HIGH_DEMAND, True),
    "codex_exec_truncated_stream": (
        "", "01a21857-a704-7ac1-9ed6-3074d3a811db", (0, 0, 0), TRUNCATED, True),
    "codex_exec_truncated_stream_retries": (
        "", "01a21857-a9c5-7450-9553-4154b1a4d7df", (0, 0, 0), TRUNCATED, True),
    "codex_exec_stall_SIGINT": (
        "", "01a21857-cda0-7410-9c59-350b25139b86", (0, 0, 0), "", False),
    "codex_exec_stall_SIGTERM": (
        "", "01a21857-c552-74c2-be42-46cb24c78429", (0, 0, 0), "", False),
    "codex_exec_tool_sleep_SIGTERM": (
        "", "01a21857-d5e2-7c93-b4e2-9c8978016355", (0, 0, 0), "", False),
    "codex_exec_human_simple": ("", "", (0, 0, 0), "", False),  # not --json: all unknown
    "codex_exec_human_tool": ("", "", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGINT_1": (
        "", "01a21861-67b7-7183-909e-4ff64c9972c5", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGINT_2": (
        "", "01a21861-738f-7e61-8118-dae9def43a93", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGINT_3": (
        "", "01a21861-7f86-7353-a415-1d7fed0cbfd3", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGINT_4": (
        "", "01a21861-8c05-7853-a512-6112045b109e", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGTERM_1": (
        "", "01a21861-6da8-7c20-8ab8-01bf99261b35", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGTERM_2": (
        "", "01a21861-79a7-7af3-920d-00a484a2bf6f", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGTERM_3": (
        "", "01a21861-85ba-7613-9dc5-e954d394bc59", (0, 0, 0), "", False),
    "repeats/codex_exec_stall_SIGTERM_4": (
        "", "01a21861-922d-76f0-8bc0-cbabff36f0e9", (0, 0, 0), "", False),
    "repeats/codex_native_exec_stall_SIGINT": (
        "", "01a21861-c7c8-7a40-98f8-acd1b3df68c0", (0, 0, 0), "", False),
    "repeats/codex_native_exec_stall_SIGTERM": (
        "", "01a21861-cd7b-7d62-973a-e58c3b27329c", (0, 0, 0), "", False),
}  # fmt: skip


def raw(case: str) -> bytes:
    return (DATA / case / "stdout.raw").read_bytes()


def test_every_recorded_case_has_an_expectation() -> None:
    recorded = {str(p.parent.relative_to(DATA)) for p in DATA.glob("**/stdout.raw")}
    assert recorded == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_decoder_on_recorded_case(case: str) -> None:
    reply, thread, (inp, cached, out), error, terminal = CASES[case]
    outcome = decode_transcript("codex", raw(case).decode())
    assert outcome.result.reply == reply
    assert outcome.result.next_thread_id == thread
    assert outcome.result.usage == Usage(
        input_tokens=inp, cached_input_tokens=cached, output_tokens=out
    )
    assert outcome.error == error
    assert outcome.terminal is terminal
    assert outcome.missing_reply == NO_REPLY
    human = case.startswith("codex_exec_human")
    assert (outcome.unknown_lines > 0) is human
    summary = outcome_summary(outcome)
    if human:  # codex's human output mode: what it printed instead of JSON is quoted
        assert summary["error"] == f"{NO_REPLY}; it printed instead: {outcome.stray_line!r}"
        assert outcome.stray_line == raw(case).decode().splitlines()[0].strip()[:300]
    else:
        assert summary["error"] == (error or (None if reply else NO_REPLY))


def events_of(data: bytes, decoder: CodexExecDecoder | None = None) -> list:
    decoder = decoder or CodexExecDecoder()
    return [e for line in data.decode().split("\n") for e in decoder.feed(line)]


def test_tool_events_and_retries() -> None:
    tool = [e for e in events_of(raw("codex_exec_tool")) if e.kind is EventKind.TOOL_USE]
    assert [e.text for e in tool] == [
        "command=`/bin/bash -lc 'echo hi'` status=`in_progress`",
        "command=`/bin/bash -lc 'echo hi'` status=`completed` exit_code=`0`",
    ]
    kinds = [e.kind for e in events_of(raw("codex_exec_tool"))]
    assert kinds[:2] == [EventKind.THREAD_STARTED, EventKind.TURN_STARTED]
    assert kinds[-2:] == [EventKind.ASSISTANT_TEXT, EventKind.TURN_COMPLETED]
    evs = events_of(raw("codex_exec_http500_retries"))
    retries = [e.text for e in evs if e.kind is EventKind.RETRY]
    assert retries == [f"Reconnecting... {n}/2 ({HIGH_DEMAND})" for n in (1, 2)]
    errors = [e for e in evs if e.kind is EventKind.ERROR]
    assert len(errors) == 1 and errors[0].error == HIGH_DEMAND
    assert errors[0].thread_id == "01a21857-9afb-7ba1-9b77-e8de9a323132"


def test_item_error_is_visible_and_not_fatal() -> None:
    decoder = CodexExecDecoder()
    evs = events_of(raw("codex_exec_unknown_model_warning"), decoder)
    notices = [e for e in evs if e.kind is EventKind.UNKNOWN]
    assert len(notices) == 1 and notices[0].text.startswith("Model metadata for `unknown-model`")
    assert decoder.unknown_lines == 0
    assert decoder.finish().error == ""


def test_interleaved_stderr_lines_and_fallback() -> None:
    text = (DATA / "codex_exec_openai_base_url_netns" / "output.txt").read_text()
    decoder = CodexExecDecoder()
    evs = events_of(text.encode(), decoder)
    outcome = decoder.finish()
    assert outcome.result.reply == HELLO
    assert outcome.result.next_thread_id == "01a21864-0bde-7a10-b713-32de7412cea0"
    assert outcome.result.usage == Usage(
        input_tokens=1234, cached_input_tokens=1000, output_tokens=56
    )
    assert outcome.error == "" and outcome.terminal
    assert [e.text[:16] for e in evs if e.kind is EventKind.RETRY] == ["Reconnecting... "] * 4
    assert outcome.unknown_lines == 10  # 9 log lines + "rc=0"


def test_error_event_without_turn_failed_is_kept() -> None:
    decoder = CodexExecDecoder(thread_id="t")
    decoder.feed('{"type":"error","message":"boom"}')
    assert decoder.finish().error == "boom"
    assert not decoder.terminal
    decoder.feed('{"type":"turn.failed","error":{}}')
    assert decoder.finish().error == "boom" and decoder.terminal


def test_error_event_then_success_is_not_a_failure() -> None:
    decoder = CodexExecDecoder()
    decoder.feed('{"type":"error","message":"transient"}')
    decoder.feed('{"type":"item.completed","item":{"type":"agent_message","text":"ok"}}')
    decoder.feed('{"type":"turn.completed","usage":{"prompt_tokens":"7","completion_tokens":3}}')
    outcome = decoder.finish()
    assert outcome.error == ""
    assert outcome.result.usage == Usage(input_tokens=7, output_tokens=3)


def test_reasoning_mcp_and_web_search_items() -> None:
    decoder = CodexExecDecoder()
    lines = [
        {"type": "item.completed", "item": {"type": "reasoning", "text": " thinking "}},
        {"type": "item.started", "item": {"type": "mcp_tool_call", "server": "s", "tool": "t"}},
        {"type": "item.completed", "item": {"type": "mcp_tool_call", "server": "s", "tool": "t",
                                            "status": "completed"}},
        {"type": "item.completed", "item": {"type": "web_search", "query": "trio"}},
        {"type": "item.updated", "item": {"type": "todo_list", "items": []}},
        {"type": "item.completed", "item": {"type": "todo_list", "items": []}},
    ]  # fmt: skip
    evs = [e for obj in lines for e in decoder.feed(json.dumps(obj))]
    assert [(e.kind, e.text) for e in evs[:3]] == [
        (EventKind.REASONING, "thinking"),
        (EventKind.TOOL_USE, "mcp server=`s` tool=`t` status=`completed`"),
        (EventKind.TOOL_USE, "web_search query=`trio`"),
    ]
    assert evs[3].kind is EventKind.UNKNOWN and "todo_list" in evs[3].text
    assert len(evs) == 4


# -- Alice fixtures ----------------------------------------------------------------------------


def alice(name: str) -> str:
    return (DATA / "alice" / f"codex_exec_{name}.HIST.stdout.jsonl").read_text()


def test_alice_final_message_is_the_last_agent_message() -> None:
    outcome = decode_transcript("codex", alice("final_message"))
    assert outcome.result.reply == "final answer"
    assert outcome.unknown_lines == 2  # "not-json" and an item.started without an item


def test_alice_no_agent_message() -> None:
    outcome = decode_transcript("codex", alice("no_agent_message"))
    assert outcome.result.reply == ""
    assert outcome_summary(outcome)["error"] == NO_REPLY


def test_alice_event_lines() -> None:
    decoder = new_decoder(req(workspace_dir="/home/codexbot/alice"), CodexConfig())
    evs = events_of(alice("event_lines").encode(), decoder)  # type: ignore[arg-type]
    changes = [e.text for e in evs if e.kind is EventKind.FILE_CHANGE]
    assert changes == [
        "- `internal/connector/processor.go` modified (+23/-34)",
        "- `internal/llm/codex/codex.go` modified",
        "- `new.txt` added",
        "- `old.txt` deleted",
    ]
    tools = [e.text for e in evs if e.kind is EventKind.TOOL_USE]
    assert tools == [
        "command=`echo ok` status=`completed` exit_code=`0`",
        "command=`false` status=`failed` exit_code=`1`",
    ]
    outcome = decoder.finish()
    assert outcome.result.next_thread_id == "thread_123"
    assert outcome.result.usage.total_tokens == 128
    assert outcome.result.usage == Usage(input_tokens=120, cached_input_tokens=40, output_tokens=8)
    assert outcome.result.reply == "ok"  # an agent message after turn.completed still counts


def test_alice_event_lines_without_workspace_keeps_absolute_paths() -> None:
    evs = events_of(alice("event_lines").encode())
    changes = [e.text for e in evs if e.kind is EventKind.FILE_CHANGE]
    assert changes[1] == "- `/home/codexbot/alice/internal/llm/codex/codex.go` modified"


def test_alice_progress_order() -> None:
    evs = events_of(alice("progress").encode())
    assert [(e.kind, e.text) for e in evs] == [
        (EventKind.ASSISTANT_TEXT, "阶段提示"),
        (EventKind.REASONING, "分析步骤"),
        (EventKind.FILE_CHANGE, "- `internal/connector/processor.go` modified (+2/-1)"),
        (EventKind.ASSISTANT_TEXT, "最终答复"),
    ]


@pytest.mark.parametrize(
    ("name", "thread_in", "reply", "thread_out"),
    [
        ("synthetic_diff", "", "完成", ""),
        ("idle_timeout", "", "阶段提示", ""),
        ("idle_retry_attempt2", "thread_123", "最终答复", "thread_123"),
        ("cancel", "", "", "thread_cancel"),
    ],
)
def test_alice_other_fixtures(name: str, thread_in: str, reply: str, thread_out: str) -> None:
    outcome = decode_transcript("codex", alice(name), thread_id=thread_in)
    assert outcome.result.reply == reply
    assert outcome.result.next_thread_id == thread_out
    assert not outcome.terminal and outcome.error == ""


# -- file_change formatting --------------------------------------------------------------------


def test_format_file_change_variants() -> None:
    item = {
        "type": "file_change",
        "changes": [
            {"path": "./src/a.py", "kind": "update", "diff_stats": {"additions": 3}},
            {"file_path": "src/a.py", "change_type": "created"},
            {"filename": "b.txt", "kind": {"type": "delete"}, "stats": {"deletions": "4"}},
            {"kind": "add"},
        ],
        "changed_file": {"file": "/ws/c.md", "op": "new"},
    }
    assert format_file_change(item, "/ws/") == (
        "- `b.txt` deleted (+0/-4)\n- `c.md` added\n- `src/a.py` added (+3/-0)"
    )
    assert format_file_change({"type": "file_change", "changes": []}) == ""
    failed = {"changes": [{"path": "x", "kind": "add"}], "status": "failed"}
    assert format_file_change(failed) == "- `x` added (failed)"


# -- properties --------------------------------------------------------------------------------


@given(st.lists(st.text(min_size=1).filter(lambda s: s.strip()), min_size=1, max_size=5))
def test_reply_is_the_last_agent_message(messages: list[str]) -> None:
    decoder = CodexExecDecoder()
    for m in messages:
        decoder.feed(
            json.dumps({"type": "item.completed", "item": {"type": "agent_message", "text": m}})
        )
        decoder.feed('{"type":"item.completed","item":{"type":"agent_message","text":"  "}}')
    assert decoder.finish().result.reply == messages[-1].strip()


NUM = st.integers(0, 10**12)


@given(
    inp=NUM, cached=NUM, out=NUM,
    as_text=st.booleans(), legacy_names=st.booleans(),
)  # fmt: skip
def test_usage_numbers_or_numeric_strings(
    inp: int, cached: int, out: int, as_text: bool, legacy_names: bool
) -> None:
    conv = str if as_text else int
    names = (
        ("prompt_tokens", "completion_tokens")
        if legacy_names
        else ("input_tokens", "output_tokens")
    )
    usage = {names[0]: conv(inp), "cached_input_tokens": conv(cached), names[1]: conv(out)}
    decoder = CodexExecDecoder()
    (event,) = decoder.feed(json.dumps({"type": "turn.completed", "usage": usage}))
    expected = Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out)
    assert event.kind is EventKind.TURN_COMPLETED and event.usage == expected
    assert decoder.finish().result.usage == expected


def test_idle_retry_resumes_the_known_thread_with_the_spec_prompt():
    from alice_trio.models import RunResult
    from alice_trio.providers.codex import IDLE_RESUME_PROMPT, idle_retry

    request = RunRequest(user_text="do it")
    assert idle_retry(request, RunResult()) is None  # no thread known: give up
    retry = idle_retry(request, RunResult(next_thread_id="t-1"))
    assert retry is not None
    assert retry.thread_id == "t-1"
    assert retry.user_text == IDLE_RESUME_PROMPT
    resumed = idle_retry(RunRequest(user_text="x", thread_id="t-0"), RunResult())
    assert resumed is not None and resumed.thread_id == "t-0"
