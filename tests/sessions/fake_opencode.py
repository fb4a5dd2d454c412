"""An in-process fake ``opencode serve`` (httpx.MockTransport) publishing scripted SSE events."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio

TRANSCRIPTS = Path(__file__).parent.parent / "transcripts" / "opencode_serve"
SID = "ses_de7a20887ffem85ZdR0vfz40cN"


def recorded_segments() -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """oc_serve_full's events cut into: turn 1, turn 2, turn 3 until the abort, after it."""
    events = []
    for line in (TRANSCRIPTS / "oc_serve_full.sse_event.jsonl").read_text().splitlines():
        e = json.loads(line).get("event")
        if e:
            events.append(e)
    start = next(i for i, e in enumerate(events) if e["type"] == "message.updated")
    events = events[start:]
    cuts = [i for i, e in enumerate(events) if e["type"] == "session.idle"]
    t1, t2 = events[: cuts[0] + 1], events[cuts[0] + 1 : cuts[1] + 1]
    rest = events[cuts[1] + 1 :]
    abort_at = next(i for i, e in enumerate(rest) if e["type"] == "session.error")
    return t1, t2, rest[:abort_at], rest[abort_at:]


class FakeOpenCode:
    """Routes: POST /session, GET /event (SSE), POST prompt_async / abort, question reply/reject,
    GET /session/{id}/message (``messages``), GET /session/{id}/message/{mid} (one of them),
    GET /session/status. ``on_prompt``/``on_abort``/``on_reply`` are
    lists of event lists (one per call) published to the live subscribers before answering.
    With ``password`` set, like ``opencode serve`` with ``OPENCODE_SERVER_PASSWORD``: a request
    without that basic auth (user ``opencode``) is answered 401. ``authorizations`` records
    every request's ``Authorization`` header."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.subscribers: list[trio.MemorySendChannel[bytes]] = []
        self.on_prompt: list[list[dict]] = []
        self.on_abort: list[list[dict]] = []
        self.on_reply: list[list[dict]] = []
        self.published: list[dict] = []
        self.status: dict[str, Any] = {}
        self.messages: list[dict] = []
        self.hook: Callable[[str, str], None] | None = None
        self.password: str | None = None
        self.authorizations: list[str] = []
        self.config: dict[str, Any] = {}  # GET /config
        self.transport = httpx.MockTransport(self.handle)

    def basic(self, password: str, user: str = "opencode") -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def publish(self, events: list[dict]) -> None:
        for e in events:
            self.published.append(e)
            data = f"data: {json.dumps(e)}\n\n".encode()
            for ch in list(self.subscribers):
                try:
                    ch.send_nowait(data)
                except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                    self.subscribers.remove(ch)

    def drop_streams(self) -> None:
        for ch in self.subscribers:
            ch.close()
        self.subscribers.clear()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        params = dict(request.url.params)
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, params, body))
        self.authorizations.append(request.headers.get("authorization", ""))
        if self.password is not None and (
            request.headers.get("authorization") != self.basic(self.password)
        ):
            return httpx.Response(401, text="Unauthorized")
        if self.hook:
            self.hook(request.method, path)
        if request.method == "GET" and path == "/event":
            send, recv = trio.open_memory_channel[bytes](10000)
            self.subscribers.append(send)

            async def stream():
                yield b'data: {"type":"server.connected","properties":{}}\n\n'
                async for chunk in recv:
                    yield chunk

            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=stream()
            )
        if request.method == "POST" and path == "/session":
            return httpx.Response(200, json={"id": SID})
        if path.endswith("/prompt_async"):
            if self.on_prompt:
                self.publish(self.on_prompt.pop(0))
            return httpx.Response(204)
        if path.endswith("/abort"):
            if self.on_abort:
                self.publish(self.on_abort.pop(0))
            return httpx.Response(200, json=True)
        if path.startswith("/question/"):
            if path.endswith("/reply") and self.on_reply:
                self.publish(self.on_reply.pop(0))
            return httpx.Response(200, json=True)
        if path.endswith("/message") and request.method == "GET":
            return httpx.Response(200, json=self.messages)
        if "/message/" in path and request.method == "GET":
            mid = path.rsplit("/", 1)[-1]
            for message in self.messages:
                if message.get("info", {}).get("id") == mid:
                    return httpx.Response(200, json=message)
            return httpx.Response(404, json={"name": "NotFoundError"})
        if path == "/session/status":
            return httpx.Response(200, json=self.status)
        if path == "/config" and request.method == "GET":
            return httpx.Response(200, json=self.config)
        return httpx.Response(404, text="no route")


# -- event builders (shapes as recorded from opencode 1.18.33) ----------------------------------


def user_msg(mid: str, text: str) -> list[dict]:
    return [
        {
            "type": "message.updated",
            "properties": {
                "sessionID": SID,
                "info": {"id": mid, "role": "user", "sessionID": SID, "time": {"created": 1}},
            },
        },
        {
            "type": "message.part.updated",
            "properties": {
                "sessionID": SID,
                "part": {
                    "type": "text",
                    "text": text,
                    "messageID": mid,
                    "sessionID": SID,
                    "id": f"prt_{mid}",
                },
            },
        },
    ]


def assistant(
    mid: str,
    parent: str,
    text: str = "",
    *,
    finish: str = "stop",
    tokens: dict | None = None,
    tool: bool = False,
) -> list[dict]:
    tokens = tokens or {"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 2, "write": 0}}
    info = {
        "id": mid,
        "role": "assistant",
        "sessionID": SID,
        "parentID": parent,
        "time": {"created": 2},
    }
    out = [{"type": "message.updated", "properties": {"sessionID": SID, "info": dict(info)}}]
    if tool:
        for status in ("pending", "running", "running", "completed"):
            out.append(
                {
                    "type": "message.part.updated",
                    "properties": {
                        "sessionID": SID,
                        "part": {
                            "type": "tool",
                            "tool": "bash",
                            "callID": f"call_{mid}",
                            "id": f"tool_{mid}",
                            "messageID": mid,
                            "sessionID": SID,
                            "state": {
                                "status": status,
                                "input": {"command": "echo hi"},
                                **({"output": "hi\n"} if status == "completed" else {}),
                            },
                        },
                    },
                }
            )
    if text:
        out.append(
            {
                "type": "message.part.updated",
                "properties": {
                    "sessionID": SID,
                    "part": {
                        "type": "text",
                        "text": text,
                        "messageID": mid,
                        "sessionID": SID,
                        "id": f"txt_{mid}",
                        "time": {"start": 1, "end": 2},
                    },
                },
            }
        )
    done = dict(info, finish=finish, tokens=tokens, time={"created": 2, "completed": 3})
    out.append({"type": "message.updated", "properties": {"sessionID": SID, "info": done}})
    return out


def idle() -> list[dict]:
    return [{"type": "session.idle", "properties": {"sessionID": SID}}]
