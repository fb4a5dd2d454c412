#!/usr/bin/env python3
"""A scripted fake model server for the e2e tests (standard library only, loopback only).

    python fake_model_server.py [--port 0] [--port-file F] [--log requests.jsonl]

It binds ``127.0.0.1`` (port 0 = random), writes the port to ``--port-file`` (atomically) and prints
``fake model server listening on http://127.0.0.1:PORT``. It speaks the APIs the real CLIs use:

- Anthropic Messages ``POST /v1/messages`` (SSE or JSON) + ``/v1/messages/count_tokens``   (claude)
- Gemini ``POST /v1beta/models/{m}:streamGenerateContent?alt=sse`` / ``:generateContent``
  / ``:countTokens``                                                                        (gemini)
- OpenAI Responses ``POST /v1/responses`` (SSE or JSON)                                    (codex)
- OpenAI Chat Completions ``POST /v1/chat/completions`` (SSE or JSON), ``GET /v1/models``
  (opencode, kimi, legacy kimi)

Replies are scripted by markers in the latest user text: the last text part of the latest
user message (context blocks the CLIs add, like ``<system-reminder>``, are skipped; a CLI that
merges an unanswered prompt with the next one sends them as separate parts). If a tool result
comes after the latest user text, the server answers with the final text
``The tool returned: <output>. Done.``

===========================  ==============================================================
marker                       behaviour
===========================  ==============================================================
(none)                       ``Hello from the fake model. You said: <text>``
``[[TOOL]]``                 one shell tool call (``echo TOOL_OUTPUT_42``), then final text
``[[CMD:cmd]]``              the command of ``[[TOOL]]``
``[[SLOW]]``                 40 words, 0.5 s apart (``[[SLOW:words:seconds]]`` to change)
``[[ERR500]]`` ...           every request fails with that status (``[[ERRnnn]]``: any code)
``[[FAILN:code:n]]``         the first n requests carrying this marker fail, then normal
``[[CALL:name:{json}]]``     one call of the tool ``name`` with those arguments (when the
                             request offers it), then final text (a CLI's question or edit
                             tool; several markers: the first whose tool is offered)
===========================  ==============================================================

Every reply carries token usage in its API's format: 1234 input tokens of which 1000 cached,
56 output tokens of which 7 reasoning. Each request is logged as one JSON line (API keys
redacted) with the decision taken and the ``model`` asked for; a client that goes away
mid-stream adds a ``note`` line. The server exits on SIGTERM/SIGINT and when its parent
process dies.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

INPUT_TOKENS = 1234
CACHED_TOKENS = 1000
OUTPUT_TOKENS = 56
REASONING_TOKENS = 7
DEFAULT_COMMAND = "echo TOOL_OUTPUT_42"
TOOL_PREAMBLE = "I'll run a command."
# User texts that are context the CLI adds, not what the user typed. claude adds
# "[Request interrupted by user]" (or "... for tool use]") after an interrupt and sends it in
# one user message together with the next text the user types.
CONTEXT_PREFIXES = (
    "<system-reminder>",
    "<environment_context>",
    "<session_context>",
    "[Request interrupted by user",
)
SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}

_MARKER_CMD = re.compile(r"\[\[CMD:(.*?)\]\]", re.S)
_MARKER_SLOW = re.compile(r"\[\[SLOW(?::(\d+)(?::([0-9.]+))?)?\]\]")
_MARKER_ERR = re.compile(r"\[\[ERR(\d{3})\]\]")
_MARKER_FAILN = re.compile(r"\[\[FAILN:(\d{3}):(\d+)\]\]")
_MARKER_CALL = re.compile(r"\[\[CALL:([A-Za-z0-9_.-]+):(\{.*?\})\]\]", re.S)

# --------------------------------------------------------------------------------------------
# What the client asked: normalise each API's history into ("user", text) / ("tool", output)


def _texts(content: Any) -> list[str]:
    """Text pieces of a content value in any of the APIs' shapes."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                if part.get("type") in (None, "text", "input_text", "output_text"):
                    out.append(part["text"])
    return out


def _is_context_only(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.startswith(CONTEXT_PREFIXES)


def _user_texts(content: Any) -> list[str]:
    """The typed texts of one user message, one per text part: a CLI that merges inputs into
    one message (claude after an interrupt, kimi-cli after a cancelled turn: the unanswered
    prompt and the next one) sends each as its own part, and the latest one is what counts."""
    return [t for t in _texts(content) if not _is_context_only(t)]


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_texts(value)) or json.dumps(value)
    return json.dumps(value)


def history(api: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The conversation as ``[("user", text) | ("tool", output)]``, oldest first."""
    items: list[tuple[str, str]] = []
    if api == "anthropic":
        for msg in body.get("messages") or []:
            if msg.get("role") != "user":
                continue
            content = msg.get("content")
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "tool_result":
                        items.append(("tool", _stringify(part.get("content"))))
            items += [("user", text) for text in _user_texts(content)]
    elif api == "gemini":
        for msg in body.get("contents") or []:
            if msg.get("role", "user") != "user":
                continue
            for part in msg.get("parts") or []:
                if "functionResponse" in part:
                    items.append(("tool", _stringify(part["functionResponse"].get("response"))))
            items += [("user", text) for text in _user_texts(msg.get("parts"))]
    elif api == "responses":
        raw = body.get("input")
        if isinstance(raw, str):
            raw = [{"type": "message", "role": "user", "content": raw}]
        for item in raw or []:
            kind = item.get("type", "message")
            if kind in ("function_call_output", "custom_tool_call_output"):
                items.append(("tool", _stringify(item.get("output"))))
            elif kind == "message" and item.get("role") == "user":
                items += [("user", text) for text in _user_texts(item.get("content"))]
    elif api == "chat":
        for msg in body.get("messages") or []:
            if msg.get("role") == "tool":
                items.append(("tool", _stringify(msg.get("content"))))
            elif msg.get("role") == "user":
                items += [("user", text) for text in _user_texts(msg.get("content"))]
    return items


def tool_names(api: str, body: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        if api == "gemini":
            names += [f.get("name", "") for f in tool.get("functionDeclarations") or []]
        elif isinstance(tool.get("function"), dict):
            names.append(tool["function"].get("name", ""))
        elif tool.get("name"):
            names.append(tool["name"])
    return names


# Shell tools by preference, with the argument shape each one takes.
SHELL_TOOLS = (
    "exec_command",
    "shell_command",
    "shell",
    "run_shell_command",
    "Bash",
    "bash",
    "Shell",
)


def shell_call(names: list[str], command: str) -> tuple[str, dict[str, Any]] | None:
    for name in SHELL_TOOLS:
        if name in names:
            if name == "exec_command":
                return name, {"cmd": command}
            if name == "shell":
                return name, {"command": ["bash", "-lc", command]}
            return name, {"command": command, "description": "Run the scripted test command"}
    return None


class Decision:
    """What to answer: ``kind`` is text | tool | error | json."""

    def __init__(self, kind: str, **data: Any) -> None:
        self.kind = kind
        self.data = data

    def as_log(self) -> dict[str, Any]:
        return {"decision": self.kind, **self.data}


class Script:
    """Marker interpretation, with the per-server FAILN counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failn_seen: dict[str, int] = {}

    def decide(self, api: str, body: dict[str, Any]) -> Decision:
        items = history(api, body)
        last_user = next((text for kind, text in reversed(items) if kind == "user"), "")
        failn = _MARKER_FAILN.search(last_user)
        if failn:
            code, limit = int(failn.group(1)), int(failn.group(2))
            with self._lock:
                seen = self._failn_seen.get(failn.group(0), 0)
                self._failn_seen[failn.group(0)] = seen + 1
            if seen < limit:
                return Decision("error", status=code, attempt=seen + 1)
        err = _MARKER_ERR.search(last_user)
        if err:
            return Decision("error", status=int(err.group(1)))
        schema = (body.get("generationConfig") or {}).get("responseJsonSchema")
        if api == "gemini" and schema:  # gemini's model router: JSON fitting the schema
            return Decision("json", value=sample_for_schema(schema))
        slow = _MARKER_SLOW.search(last_user)
        words, delay = 40, 0.5
        if slow:
            words = int(slow.group(1) or words)
            delay = float(slow.group(2) or delay)
        if items and items[-1][0] == "tool":
            output = " ".join(items[-1][1].split())[:300]
            return Decision("text", text=f"The tool returned: {output}. Done.", delay=0.0)
        calls = _MARKER_CALL.findall(last_user)
        if calls:
            offered = tool_names(api, body)
            for name, args in calls:
                if name in offered:
                    try:
                        return Decision("tool", name=name, args=json.loads(args))
                    except ValueError:
                        return Decision("text", text=f"Bad arguments for {name}.", delay=0.0)
            return Decision("text", text="None of the called tools was offered.", delay=0.0)
        if "[[TOOL]]" in last_user:
            cmd = _MARKER_CMD.search(last_user)
            call = shell_call(tool_names(api, body), cmd.group(1) if cmd else DEFAULT_COMMAND)
            if call is not None:
                return Decision("tool", name=call[0], args=call[1])
            return Decision("text", text="No shell tool was offered.", delay=0.0)
        if slow:
            return Decision("text", text=" ".join(f"word{i}" for i in range(words)), delay=delay)
        said = " ".join(last_user.split())[:200]
        return Decision("text", text=f"Hello from the fake model. You said: {said}", delay=0.0)


def sample_for_schema(schema: Any) -> Any:
    """A value that fits a (Gemini-style, upper- or lower-case) JSON schema; integers are >= 1."""
    if not isinstance(schema, dict):
        return "fake"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: sample_for_schema(sub) for name, sub in props.items()}
    if kind == "array":
        return [sample_for_schema(schema.get("items") or {"type": "string"})]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return max(1.0, float(schema.get("minimum", 1)))
    if kind == "boolean":
        return True
    return "fake"


# --------------------------------------------------------------------------------------------
# Replies in each API's format

_ids = itertools.count(1)


def _next_id() -> int:
    return next(_ids)


def chunks_of(text: str) -> list[str]:
    """Split into word-sized deltas that join back to ``text``."""
    parts = re.findall(r"\S+\s*|\s+", text)
    return parts or [""]


ERROR_TEXT = {
    400: "Invalid request (fake)",
    401: "Invalid API key (fake)",
    403: "Permission denied (fake)",
    404: "Model not found (fake)",
    429: "Rate limit reached (fake)",
    500: "Internal server error (fake)",
    503: "Service unavailable (fake)",
    529: "Overloaded (fake)",
}
# (anthropic error.type, gemini error.status, openai error.type) by HTTP status
ERROR_KINDS = {
    400: ("invalid_request_error", "INVALID_ARGUMENT", "invalid_request_error"),
    401: ("authentication_error", "UNAUTHENTICATED", "invalid_api_key"),
    403: ("permission_error", "PERMISSION_DENIED", "permission_denied"),
    404: ("not_found_error", "NOT_FOUND", "model_not_found"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED", "rate_limit_exceeded"),
    503: ("overloaded_error", "UNAVAILABLE", "server_error"),
    529: ("overloaded_error", "UNAVAILABLE", "engine_overloaded_error"),
}


def error_body(api: str, status: int) -> dict[str, Any]:
    """An error body in the API's own shape (the CLIs parse these into their messages)."""
    message = ERROR_TEXT.get(status, f"Fake error {status}")
    anthropic, gemini, openai = ERROR_KINDS.get(status, ("api_error", "INTERNAL", "server_error"))
    if api == "anthropic":
        return {"type": "error", "error": {"type": anthropic, "message": message}}
    if api == "gemini":
        return {"error": {"code": status, "message": message, "status": gemini}}
    return {"error": {"message": message, "type": openai, "param": None, "code": openai}}


def anthropic_usage() -> dict[str, int]:
    return {
        "input_tokens": INPUT_TOKENS - CACHED_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": CACHED_TOKENS,
        "output_tokens": OUTPUT_TOKENS,
    }


def gemini_usage() -> dict[str, int]:
    return {
        "promptTokenCount": INPUT_TOKENS,
        "candidatesTokenCount": OUTPUT_TOKENS,
        "cachedContentTokenCount": CACHED_TOKENS,
        "thoughtsTokenCount": REASONING_TOKENS,
        "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS + REASONING_TOKENS,
    }


def responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "output_tokens": OUTPUT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
    }


def chat_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": INPUT_TOKENS,
        "completion_tokens": OUTPUT_TOKENS,
        "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        "cached_tokens": CACHED_TOKENS,
        "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS},
        "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
    }


# An SSE stream is a list of (event-name-or-None, json-data-or-raw-string, delay-before).
SSE = Iterator[tuple[str | None, Any, float]]


def anthropic_stream(dec: Decision, model: str) -> SSE:
    n = _next_id()
    usage = anthropic_usage()
    start_usage = dict(usage, output_tokens=1)
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": f"msg_fake_{n:04d}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
        0.0,
    )
    text = TOOL_PREAMBLE if dec.kind == "tool" else dec.data["text"]
    delay = dec.data.get("delay", 0.0)
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        0.0,
    )
    for piece in chunks_of(text):
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            },
            delay,
        )
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}, 0.0
    stop = "end_turn"
    if dec.kind == "tool":
        stop = "tool_use"
        yield (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": f"toolu_fake_{n:04d}",
                    "name": dec.data["name"],
                    "input": {},
                },
            },
            0.0,
        )
        yield (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": json.dumps(dec.data["args"])},
            },
            0.0,
        )
        yield "content_block_stop", {"type": "content_block_stop", "index": 1}, 0.0
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": OUTPUT_TOKENS},
        },
        0.0,
    )
    yield "message_stop", {"type": "message_stop"}, 0.0


def anthropic_json(dec: Decision, model: str) -> dict[str, Any]:
    n = _next_id()
    content: list[dict[str, Any]] = []
    if dec.kind == "tool":
        content = [
            {"type": "text", "text": TOOL_PREAMBLE},
            {
                "type": "tool_use",
                "id": f"toolu_fake_{n:04d}",
                "name": dec.data["name"],
                "input": dec.data["args"],
            },
        ]
    else:
        content = [{"type": "text", "text": dec.data["text"]}]
    return {
        "id": f"msg_fake_{n:04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if dec.kind == "tool" else "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(),
    }


def gemini_parts(dec: Decision) -> list[dict[str, Any]]:
    if dec.kind == "tool":
        return [
            {"text": TOOL_PREAMBLE},
            {"functionCall": {"name": dec.data["name"], "args": dec.data["args"]}},
        ]
    if dec.kind == "json":
        return [{"text": json.dumps(dec.data["value"])}]
    return [{"text": dec.data["text"]}]


def gemini_stream(dec: Decision, model: str) -> SSE:
    n = _next_id()

    def chunk(parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        return {
            "candidates": [cand],
            "usageMetadata": gemini_usage(),
            "modelVersion": model,
            "responseId": f"fake-{n:04d}",
        }

    if dec.kind == "text":
        pieces = chunks_of(dec.data["text"])
        delay = dec.data.get("delay", 0.0)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield None, chunk([{"text": piece}], "STOP" if last else None), delay
    else:
        yield None, chunk(gemini_parts(dec), "STOP"), 0.0


def gemini_json(dec: Decision, model: str) -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {"parts": gemini_parts(dec), "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": gemini_usage(),
        "modelVersion": model,
        "responseId": f"fake-{_next_id()}",
    }


def responses_items(dec: Decision, n: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if dec.kind == "tool":
        items.append(
            {
                "id": f"fc_fake_{n:04d}",
                "type": "function_call",
                "status": "completed",
                "name": dec.data["name"],
                "arguments": json.dumps(dec.data["args"]),
                "call_id": f"call_fake_{n:04d}",
            }
        )
    else:
        items.append(
            {
                "id": f"msg_fake_{n:04d}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": dec.data["text"], "annotations": []}],
            }
        )
    return items


def responses_stream(dec: Decision, model: str) -> SSE:
    n = _next_id()
    seq = itertools.count()
    resp = {
        "id": f"resp_fake_{n:04d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "model": model,
        "output": [],
    }

    def ev(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(seq), **fields}

    yield "response.created", ev("response.created", response=resp), 0.0
    yield "response.in_progress", ev("response.in_progress", response=resp), 0.0
    items = responses_items(dec, n)
    for index, item in enumerate(items):
        if item["type"] == "function_call":
            added = dict(item, arguments="", status="in_progress")
            yield (
                "response.output_item.added",
                ev("response.output_item.added", output_index=index, item=added),
                0.0,
            )
            yield (
                "response.function_call_arguments.delta",
                ev(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=item["arguments"],
                ),
                0.0,
            )
            yield (
                "response.function_call_arguments.done",
                ev(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                ),
                0.0,
            )
        else:
            text = item["content"][0]["text"]
            added = dict(item, status="in_progress", content=[])
            part = {"type": "output_text", "text": "", "annotations": []}
            yield (
                "response.output_item.added",
                ev("response.output_item.added", output_index=index, item=added),
                0.0,
            )
            yield (
                "response.content_part.added",
                ev(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=part,
                ),
                0.0,
            )
            for piece in chunks_of(text):
                yield (
                    "response.output_text.delta",
                    ev(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        delta=piece,
                    ),
                    dec.data.get("delay", 0.0),
                )
            yield (
                "response.output_text.done",
                ev(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                ),
                0.0,
            )
            yield (
                "response.content_part.done",
                ev(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part, text=text),
                ),
                0.0,
            )
        yield (
            "response.output_item.done",
            ev("response.output_item.done", output_index=index, item=item),
            0.0,
        )
    done = dict(resp, status="completed", output=items, usage=responses_usage())
    yield "response.completed", ev("response.completed", response=done), 0.0


def responses_json(dec: Decision, model: str) -> dict[str, Any]:
    n = _next_id()
    return {
        "id": f"resp_fake_{n:04d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": responses_items(dec, n),
        "usage": responses_usage(),
    }


def chat_stream(dec: Decision, model: str, include_usage: bool) -> SSE:
    n = _next_id()
    base = {
        "id": f"chatcmpl-fake-{n:04d}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])

    yield None, chunk({"role": "assistant", "content": ""}), 0.0
    text = TOOL_PREAMBLE if dec.kind == "tool" else dec.data["text"]
    for piece in chunks_of(text):
        yield None, chunk({"content": piece}), dec.data.get("delay", 0.0)
    finish = "stop"
    if dec.kind == "tool":
        finish = "tool_calls"
        yield (
            None,
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": f"call_fake_{n:04d}",
                            "type": "function",
                            "function": {"name": dec.data["name"], "arguments": ""},
                        }
                    ]
                }
            ),
            0.0,
        )
        yield (
            None,
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "function": {"arguments": json.dumps(dec.data["args"])}}
                    ]
                }
            ),
            0.0,
        )
    yield None, chunk({}, finish), 0.0
    if include_usage:
        yield None, dict(base, choices=[], usage=chat_usage()), 0.0
    yield None, "[DONE]", 0.0


def chat_json(dec: Decision, model: str) -> dict[str, Any]:
    n = _next_id()
    message: dict[str, Any] = {"role": "assistant", "content": dec.data.get("text", TOOL_PREAMBLE)}
    if dec.kind == "tool":
        message = {
            "role": "assistant",
            "content": TOOL_PREAMBLE,
            "tool_calls": [
                {
                    "id": f"call_fake_{n:04d}",
                    "type": "function",
                    "function": {
                        "name": dec.data["name"],
                        "arguments": json.dumps(dec.data["args"]),
                    },
                }
            ],
        }
    return {
        "id": f"chatcmpl-fake-{n:04d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if dec.kind == "tool" else "stop",
            }
        ],
        "usage": chat_usage(),
    }


# --------------------------------------------------------------------------------------------
# HTTP


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, log_path: str | None) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.script = Script()
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.requests = itertools.count(1)

    def log_record(self, record: dict[str, Any]) -> None:
        if self.log_file is None:
            return
        line = json.dumps({"t": round(time.time(), 3), **record}, ensure_ascii=False)
        with self.log_lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()


class ClientGone(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as exc:
            raise ClientGone(repr(exc)) from None

    def _send_sse(self, events: SSE, req: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for name, data, delay in events:
                if delay:
                    time.sleep(delay)
                payload = data if isinstance(data, str) else json.dumps(data)
                frame = (f"event: {name}\n" if name else "") + f"data: {payload}\n\n"
                self._write_chunk(frame.encode())
            self._write_chunk(b"")
        except ClientGone as exc:
            self.server.log_record({"req": req, "note": f"client went away: {exc}"})
            self.close_connection = True

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        elif encoding == "deflate":
            raw = zlib.decompress(raw)
        elif encoding:
            return {"_undecodable_encoding": encoding}
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw[:2000].decode(errors="replace")}

    def _headers_for_log(self) -> dict[str, str]:
        return {
            k: ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in self.headers.items()
        }

    # -- routes --------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self.server.log_record({"method": "HEAD", "path": self.path})
        self._send_json(200, {})

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.log_record({"method": "GET", "path": self.path})
        if path.endswith("/models"):
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                        for m in ("fake-model", "fake-kimi-model")
                    ],
                },
            )
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    def do_POST(self) -> None:
        req = next(self.server.requests)
        split = urlsplit(self.path)
        path = split.path
        body = self._read_body()
        record: dict[str, Any] = {
            "req": req,
            "method": "POST",
            "path": self.path,
            "headers": self._headers_for_log(),
            "body": body,
        }
        if not isinstance(body, dict):
            self.server.log_record(record)
            self._send_json(400, {"error": {"message": "expected a JSON object body"}})
            return
        if path.endswith("/messages/count_tokens"):
            self.server.log_record(record)
            self._send_json(200, {"input_tokens": INPUT_TOKENS})
            return
        if path.endswith(":countTokens"):
            self.server.log_record(record)
            self._send_json(200, {"totalTokens": INPUT_TOKENS})
            return
        if path.endswith("/messages"):
            api, model = "anthropic", str(body.get("model", "fake-model"))
            stream = bool(body.get("stream"))
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            api = "gemini"
            model = path.rsplit("/", 1)[-1].split(":", 1)[0]
            stream = ":streamGenerateContent" in path
        elif path.endswith("/responses"):
            api, model = "responses", str(body.get("model", "fake-model"))
            stream = bool(body.get("stream"))
        elif path.endswith("/chat/completions"):
            api, model = "chat", str(body.get("model", "fake-model"))
            stream = bool(body.get("stream"))
        else:
            self.server.log_record(record)
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        dec = self.server.script.decide(api, body)
        record.update(
            dec.as_log(), api=api, stream=stream, n_tools=len(tool_names(api, body)), model=model
        )
        self.server.log_record(record)
        if dec.kind == "error":
            status = dec.data["status"]
            self._send_json(
                status,
                error_body(api, status),
                {"retry-after-ms": "10", "retry-after": "0", "x-should-retry": "true"},
            )
            return
        if api == "anthropic":
            if stream:
                self._send_sse(anthropic_stream(dec, model), req)
            else:
                self._send_json(200, anthropic_json(dec, model))
        elif api == "gemini":
            if stream:
                self._send_sse(gemini_stream(dec, model), req)
            else:
                self._send_json(200, gemini_json(dec, model))
        elif api == "responses":
            if dec.kind == "json":  # pragma: no cover - only gemini asks for a schema
                dec = Decision("text", text=json.dumps(dec.data["value"]))
            if stream:
                self._send_sse(responses_stream(dec, model), req)
            else:
                self._send_json(200, responses_json(dec, model))
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage", True))
            if stream:
                self._send_sse(chat_stream(dec, model, include_usage), req)
            else:
                self._send_json(200, chat_json(dec, model))


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted fake model server (127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here (atomically)")
    parser.add_argument("--log", help="append one JSON line per request here")
    parser.add_argument(
        "--no-exit-with-parent",
        action="store_true",
        help="keep running when the parent process dies",
    )
    args = parser.parse_args(argv)
    server = Server(args.port, args.log)
    port = server.server_address[1]
    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if not args.no_exit_with_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    print(f"fake model server listening on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
