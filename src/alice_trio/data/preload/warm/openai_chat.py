"""Warm-up run by the preloading ``sitecustomize`` (``run()``): one streamed chat-completions
call of the OpenAI Python SDK against httpx's in-process ``MockTransport`` — no socket, no
model, nothing written.

What it leaves behind is what the SDK computes once per process and keeps: the request
parameters' resolved type hints (``openai._utils._transform``'s cache), the pydantic schemas of
the streamed response models (``ChatCompletionChunk`` and the models in it are deferred until
first use), the cached type adapters, and the platform description of the request headers
(``platform.platform()`` runs ``uname -p`` once). A CLI built on the SDK (legacy kimi-cli)
otherwise does all of it during a conversation's first model request. The request and the
response here take the shapes such a CLI sends and gets: system, user, assistant-with-tool-call
and tool messages, function tools, streamed text, tool-call and usage chunks.

Public API only (``openai.OpenAI(http_client=...)``, ``httpx.MockTransport``); the synchronous
client shares every one of those caches with the asynchronous one and needs no event loop.
Standard library + the CLI's own packages; an SDK that is missing or different raises, and the
caller skips the warm-up.
"""

import importlib
import json
from typing import Any


def _chunks() -> list[dict[str, object]]:
    base = {"id": "warm-up", "object": "chat.completion.chunk", "created": 0, "model": "warm-up"}

    def chunk(delta: dict[str, object], finish: object = None) -> dict[str, object]:
        return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])

    call = {"index": 0, "id": "w", "type": "function", "function": {"name": "w", "arguments": ""}}
    usage = {
        "prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3, "cached_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }  # fmt: skip
    return [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "w", "reasoning_content": "w"}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        dict(base, choices=[], usage=usage),
    ]


def run() -> None:
    httpx: Any = importlib.import_module("httpx")  # the CLI's, not alice_trio's
    openai: Any = importlib.import_module("openai")

    body = "".join(f"data: {json.dumps(c)}\n\n" for c in _chunks()) + "data: [DONE]\n\n"

    def answer(request: Any) -> Any:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body.encode()
        )

    call = {"id": "w", "type": "function", "function": {"name": "w", "arguments": "{}"}}
    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        client = openai.OpenAI(
            api_key="warm-up", base_url="http://warm-up.invalid/v1", http_client=http,
            max_retries=0,
        )  # fmt: skip
        stream = client.chat.completions.create(
            model="warm-up",
            messages=[
                {"role": "system", "content": "w"},
                {"role": "user", "content": [{"type": "text", "text": "w"}]},
                {"role": "assistant", "content": "w", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "w", "content": "w"},
            ],
            tools=[{"type": "function", "function": {
                "name": "w", "description": "w", "parameters": {"type": "object"}}}],
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=1,
        )  # fmt: skip
        for _ in stream:
            pass
