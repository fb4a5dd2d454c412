#!/usr/bin/env python3
"""A fake interactive ``claude -p --input-format stream-json --replay-user-messages`` that
answers every user message with ``echo: <text>`` (one CLI turn per message, in order).

Control requests (``initialize``, ``interrupt``, ...) are acknowledged at once; those whose
subtype is listed in ``FAKE_CLAUDE_REFUSE`` (comma-separated) get an ``error`` answer, as
claude answers a subtype it does not know. ``FAKE_CLAUDE_DELAY`` (seconds, default 0) waits
before each answer. ``FAKE_CLAUDE_STDIN_LOG``: append every stdin line there. Standard library
only.
"""

from __future__ import annotations

import json
import os
import sys
import time

SESSION = "echo-session-1"


def out(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main() -> int:
    delay = float(os.environ.get("FAKE_CLAUDE_DELAY", "0"))
    refuse = set(filter(None, os.environ.get("FAKE_CLAUDE_REFUSE", "").split(",")))
    stdin_log = os.environ.get("FAKE_CLAUDE_STDIN_LOG")
    for line in sys.stdin:
        if stdin_log:
            with open(stdin_log, "a") as f:
                f.write(line)
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("type") == "control_request":
            rid = msg.get("request_id", "")
            subtype = (msg.get("request") or {}).get("subtype")
            if subtype in refuse:
                out({"type": "control_response", "response": {"subtype": "error",
                     "request_id": rid, "error": f"Unsupported control request subtype: "
                     f"{subtype}"}})  # fmt: skip
                continue
            out({"type": "control_response", "response": {"subtype": "success", "request_id": rid}})
            continue
        if msg.get("type") != "user":
            continue
        text = "".join(
            block.get("text", "")
            for block in msg.get("message", {}).get("content", [])
            if isinstance(block, dict)
        )
        out({"type": "system", "subtype": "init", "session_id": SESSION, "tools": []})
        out({"type": "user", "message": {"role": "user", "content": [{"type": "text",
             "text": text}]}, "session_id": SESSION, "isReplay": True})  # fmt: skip
        if delay:
            time.sleep(delay)
        reply = f"echo: {text}"
        usage = {"input_tokens": 3, "output_tokens": 2}
        out({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text",
             "text": reply}], "usage": usage}, "session_id": SESSION})  # fmt: skip
        out({"type": "result", "subtype": "success", "is_error": False, "result": reply,
             "session_id": SESSION, "usage": usage})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
