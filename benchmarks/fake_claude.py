"""A fake ``claude`` CLI speaking stream-json, for the benchmarks. Stdlib only, its own process.

Two input modes:

* one-shot (default, like ``claude -p``): read the prompt from stdin to EOF, then run the turn;
* ``--input-format stream-json`` (what claude-agent-sdk and interactive sessions use): answer
  every ``control_request`` with success, run a turn for each ``user`` line; stdin EOF ends it.

A turn prints ``system/init``, ``--lines`` assistant lines of about ``--line-bytes`` bytes each
(one message id per line), an optional ``--giant`` line, ``--stderr-bytes`` of stderr, and then
either the ``result`` line (``--hold none``) or one assistant line and a hold:

* ``term``: wait (sleeping, or reading stdin in stream mode: EOF ends it); SIGTERM kills it;
* ``busy``: spin on the CPU and ignore stdin EOF; SIGTERM kills it;
* ``noterm``: ignore SIGTERM (so does the grandchild) and stdin EOF; only SIGKILL ends it.

``--grandchild own|setsid`` forks a sleeping grandchild first (own stdio; ``setsid`` leaves the
process group). ``--pidfile`` receives the CLI's pid and the grandchild's, one per line, before
anything is printed on stdout.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

SESSION = "bench0000-1111-4222-8333-444444444444"
VERSION = "2.1.332"


def _arg(name: str, default: str) -> str:
    argv = sys.argv
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def _write(data: bytes, fd: int = 1) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _init_line() -> bytes:
    obj = {
        "type": "system",
        "subtype": "init",
        "cwd": os.getcwd(),
        "session_id": SESSION,
        "tools": ["Bash", "Read"],
        "mcp_servers": [],
        "model": "claude-fake",
        "permissionMode": "bypassPermissions",
        "apiKeySource": "none",
        "claude_code_version": VERSION,
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


_HEAD = '{"type":"assistant","message":{"id":"msg_%08d","type":"message","role":"assistant","model":"claude-fake","content":[{"type":"text","text":"'  # noqa: E501
_TAIL = (
    '"}],"stop_reason":null,"usage":{"input_tokens":1,"output_tokens":1}},"parent_tool_use_id":null,"session_id":"'
    + SESSION
    + '"}\n'
)


def _template(size: int) -> bytes:
    """An assistant line of about ``size`` bytes with two ``%d`` slots (message id, event)."""
    fixed = len(_HEAD % 0) + len(_TAIL) + len("event 00000000 ")
    return (_HEAD + "event %d " + "x" * max(1, size - fixed) + _TAIL).encode()


def _assistant(i: int, size: int) -> bytes:
    return _template(size) % (i, i)


def _result_line(n: int) -> bytes:
    obj = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1,
        "duration_api_ms": 1,
        "num_turns": 1,
        "result": f"done after {n} events",
        "stop_reason": "end_turn",
        "session_id": SESSION,
        "total_cost_usd": 0.0,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "output_tokens": 5},
        "terminal_reason": "completed",
        "uuid": "00000000-0000-4000-8000-000000000001",
    }
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _grandchild(mode: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    if mode == "setsid":
        os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    time.sleep(600)
    os._exit(0)


def _turn(lines: int, line_bytes: int, giant: int, stderr_bytes: int, hold: str) -> bool:
    """Print one turn; True when the turn is finished (``--hold none``)."""
    _write(_init_line())
    template = _template(line_bytes)
    per_batch = max(1, (1 << 16) // len(template))
    for start in range(0, lines, per_batch):
        _write(b"".join([template % (i, i) for i in range(start, min(lines, start + per_batch))]))
    if giant:
        _write((_HEAD % lines).encode() + b"g" * giant + _TAIL.encode())
    if stderr_bytes:
        chunk = b"e" * 1023 + b"\n"
        block = chunk * 64
        left = stderr_bytes
        while left > 0:
            piece = block if left >= len(block) else chunk * max(1, left // 1024)
            _write(piece, 2)
            left -= len(piece)
    if hold == "none":
        _write(_result_line(lines))
        return True
    _write(_assistant(lines, line_bytes))
    return False


def _hold(hold: str, stream: bool) -> None:
    if hold == "busy":
        while True:
            pass
    if hold == "term" and stream:
        while sys.stdin.buffer.readline():
            pass
        sys.exit(0)
    while True:
        time.sleep(3600)


def main() -> int:
    argv = sys.argv[1:]
    if "-v" in argv or "--version" in argv:
        print(f"{VERSION} (Claude Code)")
        return 0
    hold = _arg("--hold", "none")
    stream = _arg("--input-format", "") == "stream-json"
    lines = int(_arg("--lines", "1"))
    line_bytes = int(_arg("--line-bytes", "300"))
    giant = int(_arg("--giant", "0"))
    stderr_bytes = int(_arg("--stderr-bytes", "0"))
    grandchild = _arg("--grandchild", "")
    pidfile = _arg("--pidfile", "")
    if hold == "noterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids = [os.getpid()]
    if grandchild:
        pids.append(_grandchild(grandchild))
    if pidfile:
        with open(pidfile, "w") as f:
            f.write("".join(f"{p}\n" for p in pids))
    if not stream:
        sys.stdin.buffer.read()
        if not _turn(lines, line_bytes, giant, stderr_bytes, hold):
            _hold(hold, stream)
        return 0
    for raw in sys.stdin.buffer:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        kind = msg.get("type")
        if kind == "control_request":
            rid = msg.get("request_id", "")
            sub = (msg.get("request") or {}).get("subtype")
            body: dict = {"commands": [], "models": []} if sub == "initialize" else {}
            resp = {"subtype": "success", "request_id": rid, "response": body}
            _write(json.dumps({"type": "control_response", "response": resp}).encode() + b"\n")
        elif kind == "user":
            if not _turn(lines, line_bytes, giant, stderr_bytes, hold):
                _hold(hold, stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
