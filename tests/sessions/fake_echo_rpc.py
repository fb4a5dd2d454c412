#!/usr/bin/env python3
"""A fake interactive JSON-RPC agent that answers every prompt with ``echo: <text>`` after
``FAKE_ECHO_DELAY`` seconds (default 0.02), for random command sequences (the replay peers
reject unscripted messages). Standard library only.

    fake_echo_rpc.py codex   # codex app-server: turn/start, turn/steer, turn/interrupt
    fake_echo_rpc.py acp     # ACP: session/new, session/prompt, session/cancel
    fake_echo_rpc.py kimi    # legacy kimi wire: prompt, steer, cancel (string ids)
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any


def texts(value: Any) -> str:
    if isinstance(value, dict):
        keys = ("text", "input", "prompt", "user_input")
        return "".join(texts(v) for k, v in value.items() if k in keys)
    if isinstance(value, list):
        return "".join(texts(v) for v in value)
    return value if isinstance(value, str) else ""


def main() -> int:
    mode = sys.argv[1]
    delay = float(os.environ.get("FAKE_ECHO_DELAY", "0.02"))
    rpc = {"jsonrpc": "2.0"} if mode in ("acp", "kimi") else {}
    turns: dict[str, dict[str, Any]] = {}  # turn id → {"due", "text", "rid"}
    count = 0

    def out(obj: dict) -> None:
        sys.stdout.write(json.dumps({**rpc, **obj}) + "\n")
        sys.stdout.flush()

    def finish(tid: str, interrupted: bool) -> None:
        turn = turns.pop(tid)
        if mode == "codex":
            if not interrupted:
                out(
                    {
                        "method": "item/completed",
                        "params": {
                            "threadId": "thr-1",
                            "turnId": tid,
                            "item": {"type": "agentMessage", "id": f"i{tid}", "text": turn["text"]},
                        },
                    }
                )
            status = "interrupted" if interrupted else "completed"
            out(
                {
                    "method": "turn/completed",
                    "params": {"threadId": "thr-1", "turn": {"id": tid, "status": status}},
                }
            )
        elif mode == "kimi":
            if not interrupted:
                out(
                    {
                        "method": "event",
                        "params": {
                            "type": "ContentPart",
                            "payload": {"type": "text", "text": turn["text"]},
                        },
                    }
                )
            out({"method": "event", "params": {"type": "TurnEnd", "payload": {}}})
            status = "cancelled" if interrupted else "finished"
            out({"id": turn["rid"], "result": {"status": status}})
        else:
            if not interrupted:
                out(
                    {
                        "method": "session/update",
                        "params": {
                            "sessionId": "s-1",
                            "update": {
                                "sessionUpdate": "agent_message_chunk",
                                "content": {"type": "text", "text": turn["text"]},
                            },
                        },
                    }
                )
            stop = "cancelled" if interrupted else "end_turn"
            out({"id": turn["rid"], "result": {"stopReason": stop}})

    buf = b""
    while True:
        now = time.monotonic()
        due = min((t["due"] for t in turns.values()), default=None)
        timeout = None if due is None else max(0.0, due - now)
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
        for tid in [t for t, v in turns.items() if v["due"] <= time.monotonic()]:
            finish(tid, False)
        if not ready:
            continue
        chunk = os.read(sys.stdin.fileno(), 65536)
        if not chunk:
            return 0
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            method, rid, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
            if method is None:
                continue  # a response to a server request (none are sent)
            if method == "initialize":
                out({"id": rid, "result": {"protocolVersion": 1, "agentCapabilities": {}}})
            elif method in ("thread/start", "thread/resume"):
                out({"id": rid, "result": {"thread": {"id": "thr-1"}}})
            elif method == "session/new":
                out({"id": rid, "result": {"sessionId": "s-1"}})
            elif method == "prompt" and turns:
                out({"id": rid, "error": {"code": -32000, "message": "a turn is running"}})
            elif method in ("turn/start", "session/prompt", "prompt"):
                count += 1
                tid = f"turn-{count}"
                turns[tid] = {
                    "due": time.monotonic() + delay,
                    "rid": rid,
                    "text": "echo: " + texts(params),
                }
                if mode == "codex":
                    out({"id": rid, "result": {"turn": {"id": tid}}})
                elif mode == "kimi":
                    out(
                        {
                            "method": "event",
                            "params": {
                                "type": "TurnBegin",
                                "payload": {"user_input": texts(params)},
                            },
                        }
                    )
            elif method == "steer":
                for turn in turns.values():
                    turn["text"] += " + " + texts(params)
                out({"id": rid, "result": {"status": "steered"}})
            elif method == "cancel":
                out({"id": rid, "result": {}})
                for tid in list(turns):
                    finish(tid, True)
            elif method == "turn/steer":
                tid = params.get("expectedTurnId", "")
                if tid in turns:
                    turns[tid]["text"] += " + " + texts(params)
                    out({"id": rid, "result": {"turnId": tid}})
                else:
                    out({"id": rid, "error": {"code": -32600, "message": "no active turn"}})
            elif method == "turn/interrupt":
                tid = params.get("turnId", "")
                out({"id": rid, "result": {}})
                if tid in turns:
                    finish(tid, True)
            elif method == "session/cancel":
                for tid in list(turns):
                    finish(tid, True)
            elif rid is not None:
                out({"id": rid, "error": {"code": -32601, "message": f"no {method}"}})


if __name__ == "__main__":
    sys.exit(main())
