"""The e2e fake model server itself: marker script (pure) and each API over loopback HTTP.

Not marked ``e2e``: it needs no agent CLI and runs in the normal suite (about a second).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import fake_model_server as fms

SERVER = Path(fms.__file__)


# -- the script, without HTTP ------------------------------------------------------------------


def test_plain_reply_echoes_the_latest_user_text_skipping_context_blocks() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\ndate\n</system-reminder>"},
                    {"type": "text", "text": "second question"},
                ],
            },
        ]
    }
    dec = fms.Script().decide("anthropic", body)
    assert dec.kind == "text"
    assert dec.data["text"] == "Hello from the fake model. You said: second question"


def test_claude_interrupt_marker_is_context_not_user_text() -> None:
    # claude 2.1.197 after an interrupt: the marker and the next typed text in one user message
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "[[SLOW]] a long answer"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "word0 word1 "}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "[Request interrupted by user]"},
                    {"type": "text", "text": "after the interrupt"},
                ],
            },
        ]
    }
    dec = fms.Script().decide("anthropic", body)
    assert dec.data["text"] == "Hello from the fake model. You said: after the interrupt"


def test_only_the_latest_part_of_a_merged_user_message_is_scripted() -> None:
    # kimi-cli 1.50 after a cancelled turn: the unanswered prompt and the next one, one message
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "[[SLOW]] a long answer"},
                    {"type": "text", "text": "after the interrupt"},
                ],
            }
        ]
    }
    dec = fms.Script().decide("chat", body)
    assert dec.data == {
        "text": "Hello from the fake model. You said: after the interrupt",
        "delay": 0.0,
    }


@pytest.mark.parametrize(
    ("api", "body", "tool", "args"),
    [
        (
            "anthropic",
            {"messages": [{"role": "user", "content": "[[TOOL]]"}], "tools": [{"name": "Bash"}]},
            "Bash",
            {"command": fms.DEFAULT_COMMAND, "description": "Run the scripted test command"},
        ),
        (
            "gemini",
            {
                "contents": [{"role": "user", "parts": [{"text": "[[TOOL]][[CMD:sleep 60]]"}]}],
                "tools": [{"functionDeclarations": [{"name": "run_shell_command"}]}],
            },
            "run_shell_command",
            {"command": "sleep 60", "description": "Run the scripted test command"},
        ),
        (
            "responses",
            {
                "input": [{"type": "message", "role": "user", "content": "[[TOOL]]"}],
                "tools": [{"type": "function", "name": "exec_command"}],
            },
            "exec_command",
            {"cmd": fms.DEFAULT_COMMAND},
        ),
        (
            "chat",
            {
                "messages": [{"role": "user", "content": "[[TOOL]]"}],
                "tools": [{"type": "function", "function": {"name": "Shell"}}],
            },
            "Shell",
            {"command": fms.DEFAULT_COMMAND, "description": "Run the scripted test command"},
        ),
    ],
)
def test_tool_marker_calls_the_offered_shell_tool(
    api: str, body: dict[str, Any], tool: str, args: dict[str, Any]
) -> None:
    dec = fms.Script().decide(api, body)
    assert (dec.kind, dec.data["name"], dec.data["args"]) == ("tool", tool, args)


@pytest.mark.parametrize(
    ("api", "body"),
    [
        (
            "anthropic",
            {
                "messages": [
                    {"role": "user", "content": "[[TOOL]]"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "OUT"}],
                    },
                ]
            },
        ),
        (
            "gemini",
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "[[TOOL]]"}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "x"}}]},
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "x", "response": {"o": "OUT"}}}],
                    },
                ]
            },
        ),
        (
            "responses",
            {
                "input": [
                    {"type": "message", "role": "user", "content": "[[TOOL]]"},
                    {"type": "function_call", "call_id": "c", "name": "exec_command"},
                    {"type": "function_call_output", "call_id": "c", "output": "OUT"},
                ]
            },
        ),
        (
            "chat",
            {
                "messages": [
                    {"role": "user", "content": "[[TOOL]]"},
                    {"role": "assistant", "tool_calls": [{"id": "c"}]},
                    {"role": "tool", "tool_call_id": "c", "content": "OUT"},
                    {"role": "user", "content": "<system-reminder>auto mode</system-reminder>"},
                ]
            },
        ),
    ],
)
def test_a_tool_result_after_the_user_text_gets_the_final_text(
    api: str, body: dict[str, Any]
) -> None:
    dec = fms.Script().decide(api, body)
    assert dec.kind == "text"
    assert "OUT" in dec.data["text"]
    assert dec.data["text"].endswith("Done.")


def test_a_new_user_turn_after_an_old_tool_result_reads_its_own_markers() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "[[TOOL]]"},
            {"role": "tool", "tool_call_id": "c", "content": "OUT"},
            {"role": "user", "content": "[[ERR529]] again"},
        ]
    }
    dec = fms.Script().decide("chat", body)
    assert (dec.kind, dec.data["status"]) == ("error", 529)


def test_failn_fails_the_first_n_requests_then_answers() -> None:
    script = fms.Script()
    body = {"messages": [{"role": "user", "content": "[[FAILN:503:2]] hi"}]}
    kinds = [script.decide("chat", body).kind for _ in range(4)]
    assert kinds == ["error", "error", "text", "text"]


def test_slow_marker_sets_words_and_delay() -> None:
    dec = fms.Script().decide("chat", {"messages": [{"role": "user", "content": "[[SLOW:3:0.2]]"}]})
    assert dec.data == {"text": "word0 word1 word2", "delay": 0.2}


def test_gemini_schema_requests_get_json_fitting_the_schema_with_integers_at_least_one() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "complexity_reasoning": {"type": "STRING"},
            "complexity_score": {"type": "INTEGER"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING", "enum": ["a", "b"]}},
        },
    }
    body = {
        "contents": [{"role": "user", "parts": [{"text": "route me"}]}],
        "generationConfig": {"responseJsonSchema": schema},
    }
    dec = fms.Script().decide("gemini", body)
    assert dec.kind == "json"
    assert dec.data["value"] == {
        "complexity_reasoning": "fake",
        "complexity_score": 1,
        "tags": ["a"],
    }


def test_chunks_join_back_to_the_text() -> None:
    text = "The tool  returned: a\nb. Done."
    assert "".join(fms.chunks_of(text)) == text
    assert len(fms.chunks_of(text)) > 3


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("fake_server")
    port_file, log = root / "port", root / "requests.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--port-file", str(port_file), "--log", str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("fake model server listening on http://127.0.0.1:")
        port = int(port_file.read_text())
        assert line.strip().endswith(f":{port}")
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sse_events(resp: httpx.Response) -> list[Any]:
    out: list[Any] = []
    for frame in resp.text.split("\n\n"):
        for line in frame.splitlines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_http_anthropic_stream_text_and_usage(server: tuple[str, Path]) -> None:
    url, _ = server
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{url}/v1/messages?beta=true", json=body, headers={"x-api-key": "SECRET1"})
    assert resp.status_code == 200
    events = sse_events(resp)
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "Hello from the fake model. You said: hi"
    assert events[0]["message"]["usage"]["cache_read_input_tokens"] == fms.CACHED_TOKENS
    assert events[-2]["usage"]["output_tokens"] == fms.OUTPUT_TOKENS
    assert events[-1]["type"] == "message_stop"


def test_http_anthropic_tool_use_block(server: tuple[str, Path]) -> None:
    url, _ = server
    body = {
        "stream": True,
        "messages": [{"role": "user", "content": "[[TOOL]][[CMD:ls -l]]"}],
        "tools": [{"name": "Bash"}],
    }
    events = sse_events(httpx.post(f"{url}/v1/messages", json=body))
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[1]["type"] == "tool_use" and starts[1]["name"] == "Bash"
    partial = [e["delta"] for e in events if e["type"] == "content_block_delta" and e["index"] == 1]
    assert json.loads(partial[0]["partial_json"])["command"] == "ls -l"
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_http_gemini_stream_and_generate(server: tuple[str, Path]) -> None:
    url, _ = server
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    resp = httpx.post(f"{url}/v1beta/models/gemini-x:streamGenerateContent?alt=sse", json=body)
    chunks = sse_events(resp)
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "Hello from the fake model. You said: hello"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == fms.INPUT_TOKENS
    whole = httpx.post(f"{url}/v1beta/models/gemini-x:generateContent", json=body).json()
    assert whole["candidates"][0]["content"]["parts"][0]["text"] == text


def test_http_responses_stream_function_call_and_usage(server: tuple[str, Path]) -> None:
    url, _ = server
    body = {
        "stream": True,
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "[[TOOL]]"}],
            }
        ],
        "tools": [{"type": "function", "name": "exec_command"}],
    }
    events = sse_events(httpx.post(f"{url}/v1/responses", json=body))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done[0]["type"] == "function_call"
    assert json.loads(done[0]["arguments"]) == {"cmd": fms.DEFAULT_COMMAND}
    usage = events[-1]["response"]["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == fms.CACHED_TOKENS


def test_http_chat_stream_ends_with_usage_and_done(server: tuple[str, Path]) -> None:
    url, _ = server
    body = {
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "[[TOOL]]"}],
        "tools": [{"type": "function", "function": {"name": "bash"}}],
    }
    events = sse_events(httpx.post(f"{url}/v1/chat/completions", json=body))
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"]["prompt_tokens"] == fms.INPUT_TOKENS
    calls = [c for e in events[:-2] for c in e["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "bash"
    assert json.loads(calls[1]["function"]["arguments"])["command"] == fms.DEFAULT_COMMAND
    assert events[-3]["choices"][0]["finish_reason"] == "tool_calls"
    plain = httpx.post(
        f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    ).json()
    assert plain["choices"][0]["message"]["content"].endswith("You said: x")


@pytest.mark.parametrize(
    ("path", "status", "check"),
    [
        ("/v1/messages", 529, lambda b: b["error"]["type"] == "overloaded_error"),
        (
            "/v1beta/models/g:streamGenerateContent",
            429,
            lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED",
        ),
        ("/v1/responses", 500, lambda b: b["error"]["type"] == "server_error"),
        ("/v1/chat/completions", 400, lambda b: b["error"]["type"] == "invalid_request_error"),
    ],
)
def test_http_error_markers_answer_in_the_apis_shape(
    server: tuple[str, Path], path: str, status: int, check: Any
) -> None:
    url, _ = server
    text = f"[[ERR{status}]] please"
    body = (
        {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        if "v1beta" in path
        else {"messages": [{"role": "user", "content": text}], "input": text, "stream": True}
    )
    resp = httpx.post(f"{url}{path}", json=body)
    assert resp.status_code == status
    assert check(resp.json())


def test_http_misc_routes_and_the_log_redacts_keys(server: tuple[str, Path]) -> None:
    url, log = server
    assert httpx.head(f"{url}/").status_code == 200
    models = httpx.get(f"{url}/v1/models").json()
    assert "fake-model" in [m["id"] for m in models["data"]]
    assert httpx.post(f"{url}/v1/nope", json={}).status_code == 404
    count = httpx.post(f"{url}/v1/messages/count_tokens", json={"messages": []}).json()
    assert count == {"input_tokens": fms.INPUT_TOKENS}
    httpx.post(
        f"{url}/v1/messages",
        json={"messages": [{"role": "user", "content": "logged"}]},
        headers={"x-api-key": "SECRET2"},
    )
    text = log.read_text()
    assert "SECRET2" not in text
    records = [json.loads(line) for line in text.splitlines()]
    logged = [r for r in records if r.get("body") and "logged" in json.dumps(r["body"])]
    assert logged[0]["decision"] == "text"
    assert logged[0]["headers"]["x-api-key"] == "<redacted>"
