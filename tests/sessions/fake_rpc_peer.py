"""A fake JSON-RPC agent CLI that replays recorded wire traffic (tests only).

Usage: ``python fake_rpc_peer.py SCRIPT.json LOG.jsonl``

SCRIPT is ``{"steps": [...]}``; each step waits for the next message the client writes and
checks it, then writes the step's ``reply`` lines:

* ``{"expect": "<method>", "id": <recorded id>, "reply": [msg, ...]}`` — a client request or
  notification with that method. Responses in any later ``reply`` whose id is the recorded id
  are rewritten to the id the client really used (its JSON type included).
* ``{"expect_response": <server request id>, "reply": [...]}`` — the client's answer to a
  server→client request; its id must equal the recorded one **with the same JSON type**
  (otherwise the peer exits 3, like a server that cannot match the answer).
* ``{"action": "crash", "stderr": "...", "code": 1}`` — write stderr and exit (no answer).
* ``{"action": "sleep", "seconds": s}`` — wait that long; ``{"action": "send", "reply": [...]}``
  — write the lines without waiting for a client message (e.g. a notification after a delay).
* ``{"action": "hang"}`` — stop answering, keep running until stdin closes.
* ``{"action": "ignore_sigterm"}`` — from now on SIGTERM is ignored (only SIGKILL ends it), so
  what the client writes while killing it still reaches the log.

Every line the client wrote is appended to LOG as ``{"msg": ...}`` (or ``{"bad": line}``).
After the last step the peer reads until stdin EOF and exits 0. A message the script did not
expect makes it exit 4.
"""

from __future__ import annotations

import json
import signal
import sys
import time


def main() -> int:
    script = json.load(open(sys.argv[1]))
    log = open(sys.argv[2], "a", buffering=1)
    ids: dict[str, object] = {}
    out = sys.stdout

    def write(msg: object) -> None:
        if isinstance(msg, dict) and "method" not in msg and "id" in msg:
            key = json.dumps(msg["id"])
            if key in ids:
                msg = {**msg, "id": ids[key]}
        out.write((msg if isinstance(msg, str) else json.dumps(msg, separators=(",", ":"))) + "\n")
        out.flush()

    def read() -> dict | None:
        while True:
            line = sys.stdin.readline()
            if not line:
                return None
            try:
                msg = json.loads(line)
            except ValueError:
                log.write(json.dumps({"bad": line}) + "\n")
                continue
            log.write(json.dumps({"msg": msg}) + "\n")
            return msg

    for step in script["steps"]:
        action = step.get("action")
        if action == "crash":
            sys.stderr.write(step.get("stderr", ""))
            sys.stderr.flush()
            return int(step.get("code", 1))
        if action == "hang":
            while read() is not None:
                pass
            return 0
        if action == "ignore_sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            continue
        if action == "sleep":
            time.sleep(float(step["seconds"]))
            continue
        if action == "send":
            for reply in step.get("reply", []):
                write(reply)
            continue
        msg = read()
        if msg is None:
            return 0
        if "expect" in step:
            if msg.get("method") != step["expect"]:
                log.write(json.dumps({"unexpected": msg, "wanted": step["expect"]}) + "\n")
                return 4
            if "id" in step and step["id"] is not None:
                ids[json.dumps(step["id"])] = msg.get("id")
        else:
            want = step["expect_response"]
            got = msg.get("id", None)
            if "method" in msg or got != want or type(got) is not type(want):
                log.write(json.dumps({"unmatched_answer": msg, "wanted": want}) + "\n")
                return 3
        for reply in step.get("reply", []):
            write(reply)
    while read() is not None:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
