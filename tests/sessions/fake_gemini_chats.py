"""A fake ``gemini --acp`` that keeps its conversations on disk the way gemini-cli 0.61 does
(tests only), to check the driver's resume against gemini's file naming, lookup and cleanup.

Usage: ``python fake_gemini_chats.py --acp [...]``; ``HOME`` (or ``GEMINI_CLI_HOME``) is the
home, ``FAKE_GEMINI_MINUTE`` (``YYYY-MM-DDTHH-MM``) the wall-clock minute every file name gets
(default: the real UTC minute). Modelled on 0.61 (bundle ``chunk-JDPZ4CE3.js``/
``chunk-2YTYPKEZ.js``/``gemini-3HFX2LNT.js``):

* start-up (``cleanupExpiredSessions``): every ``session-*.json[l]`` without resumable content
  is deleted together with every file whose name ends in its ``-<short id>.json[l]``;
* ``session/new``: a fresh recording ``chats/session-<minute>-<id[:8]>.jsonl`` (metadata line,
  then ``{"$set": {"messages": [<session context>]}}``), the project in ``projects.json``;
* ``session/load``: first a fresh recording for the loaded id (appended to the file of this
  minute's name), then the lookup by ``sessionId`` over every ``session-*.json[l]`` with
  resumable content (a ``$set`` of ``messages`` replaces all messages before it); none:
  -32603 "No previous sessions found for this project."; found: recording goes on in that file;
* ``session/prompt``: records the user and model messages; the reply is
  ``history=<earlier user texts joined by |>`` (what a model request would have carried).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

SHORT_ID = re.compile(r"-([a-zA-Z0-9]{8})\.jsonl?$")
CONTEXT = {"id": "ctx", "type": "user", "content": [{"text": "<session_context>x"}]}


def home() -> Path:
    return Path(os.environ.get("GEMINI_CLI_HOME") or os.environ["HOME"]) / ".gemini"


def chats_dir(cwd: str) -> Path:
    registry = home() / "projects.json"
    data = json.loads(registry.read_text()) if registry.exists() else {"projects": {}}
    slug = data["projects"].setdefault(cwd, Path(cwd).name or "root")
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text(json.dumps(data))
    path = home() / "tmp" / slug / "chats"
    path.mkdir(parents=True, exist_ok=True)
    return path


def minute() -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M")
    return os.environ.get("FAKE_GEMINI_MINUTE") or now


def load(path: Path) -> tuple[str, list[dict[str, Any]]]:
    sid, messages = "", []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "$set" in record:
            if "messages" in record["$set"]:
                messages = list(record["$set"]["messages"])
        elif "type" in record:
            messages.append(record)
        elif "sessionId" in record:
            sid = sid or record["sessionId"]
    return sid, messages


def resumable(messages: list[dict[str, Any]]) -> bool:
    return any(m["id"] != "ctx" for m in messages)


def append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def fresh_recording(cwd: str, sid: str) -> Path:
    path = chats_dir(cwd) / f"session-{minute()}-{sid[:8]}.jsonl"
    append(path, {"sessionId": sid, "projectHash": "h", "kind": "main"})
    append(path, {"$set": {"messages": [CONTEXT]}})
    return path


def cleanup() -> None:
    for chats in (home() / "tmp").glob("*/chats"):
        for path in sorted(chats.glob("session-*.json*")):
            if not path.exists() or resumable(load(path)[1]):
                continue
            m = SHORT_ID.search(path.name)
            victims = [p for p in chats.iterdir() if m and p.name.endswith(f"-{m.group(1)}.jsonl")]
            for victim in [path, *victims]:
                victim.unlink(missing_ok=True)


def main() -> int:
    if (home() / "tmp").exists():
        cleanup()
    files: dict[str, Path] = {}
    for line in sys.stdin:
        msg = json.loads(line)
        method, params, mid = msg.get("method"), msg.get("params") or {}, msg.get("id")
        result: Any = {}
        error: Any = None
        if method == "initialize":
            result = {"protocolVersion": 1, "agentCapabilities": {"loadSession": True}}
        elif method == "session/new":
            sid = str(uuid.uuid4())
            files[sid] = fresh_recording(params["cwd"], sid)
            result = {"sessionId": sid}
        elif method == "session/load":
            sid = params["sessionId"]
            fresh_recording(params["cwd"], sid)
            found = [
                p for p in chats_dir(params["cwd"]).glob("session-*.json*")
                if load(p)[0] == sid and resumable(load(p)[1])
            ]  # fmt: skip
            if not found:
                details = {"details": "No previous sessions found for this project."}
                error = {"code": -32603, "message": "Internal error", "data": details}
            else:
                files[sid] = found[0]
        elif method == "session/prompt":
            sid = params["sessionId"]
            text = params["prompt"][0]["text"]
            earlier = [m["content"][0]["text"] for m in load(files[sid])[1] if m["id"] != "ctx"]
            reply = "history=" + "|".join(earlier)
            append(
                files[sid], {"id": str(uuid.uuid4()), "type": "user", "content": [{"text": text}]}
            )
            update = {"sessionUpdate": "agent_message_chunk",
                      "content": {"type": "text", "text": reply}}  # fmt: skip
            params = {"sessionId": sid, "update": update}
            note = {"jsonrpc": "2.0", "method": "session/update", "params": params}
            print(json.dumps(note), flush=True)
            result = {"stopReason": "end_turn"}
        if mid is None:
            continue
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": mid}
        answer["error" if error else "result"] = error or result
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
