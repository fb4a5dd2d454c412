#!/usr/bin/env python3
"""A tiny JSON-RPC 2.0 agent for the reliability suite (stdlib only).

Methods: ``echo`` (answers its params), ``hang`` (never answers), ``die`` (writes a stderr line
and exits 3 without answering), ``big`` (answers with a result line of ``params.n`` bytes),
``spawn`` (starts a grandchild that holds stdout, then exits 0 without answering). Answers
nothing else. Exits 0 on stdin EOF.
"""

from __future__ import annotations

import json
import os
import sys
import time


def send(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    for line in sys.stdin:
        msg = json.loads(line)
        method, rid, params = msg.get("method"), msg.get("id"), msg.get("params")
        if method == "echo":
            send({"jsonrpc": "2.0", "id": rid, "result": params})
        elif method == "die":
            sys.stderr.write("rpc agent: fatal error while serving die\n")
            sys.stderr.flush()
            return 3
        elif method == "big":
            send({"jsonrpc": "2.0", "id": rid, "result": "b" * int(params["n"])})
        elif method == "spawn":
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
