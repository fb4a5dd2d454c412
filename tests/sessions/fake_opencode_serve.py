"""A fake ``opencode serve`` process for many sessions (tests only; standard library + the event
builders of fake_opencode.py).

Usage: ``python fake_opencode_serve.py LOG.jsonl [serve args...]`` — prints
``opencode server listening on http://127.0.0.1:PORT`` and serves ``POST /session``,
``GET /event`` (SSE, every event to every subscriber, like opencode), ``POST
/session/{id}/prompt_async`` and ``POST /session/{id}/abort``. A prompt ``SLOW`` is answered only
when aborted (then ``MessageAbortedError``); ``CRASH`` ends the process at once with status 3;
anything else is answered ``reply to <session>: <text>``. Requests are logged to LOG.
Like opencode, with ``OPENCODE_SERVER_PASSWORD`` in its env it answers 401 to a request without
that password as HTTP basic auth (logged as ``{"UNAUTHORIZED": path}``).
With ``FAKE_OPENCODE_MIGRATION=<seconds>``, a start that finds no database in
``$XDG_DATA_HOME/opencode`` first "migrates" it for that long, and — like opencode 1.18 — a
start that overlaps another one's migration dies before printing its URL (``Unexpected
error`` on stderr, exit status 1).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fake_opencode import SID, assistant, idle, user_msg

LOG = open(sys.argv[1], "a", buffering=1)
LOCK = threading.Lock()
SUBSCRIBERS: list[queue.Queue[bytes | None]] = []
COUNTER = itertools.count(1)
SLOW: dict[str, str] = {}  # session -> user message id of its pending slow prompt
PASSWORD = os.environ.get("OPENCODE_SERVER_PASSWORD", "")
USERNAME = os.environ.get("OPENCODE_SERVER_USERNAME", "") or "opencode"


def publish(events: list[dict], sid: str) -> None:
    with LOCK:
        subs = list(SUBSCRIBERS)
    for event in events:
        data = json.dumps(event).replace(SID, sid)
        for q in subs:
            q.put(f"data: {data}\n\n".encode())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> dict:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else {}

    def _json(self, obj: object, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refused(self) -> bool:
        """401 (and True) for a request without the server's password, as opencode does."""
        if not PASSWORD:
            return False
        want = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if self.headers.get("authorization") == want:
            return False
        self._body()
        LOG.write(json.dumps({"UNAUTHORIZED": self.path}) + "\n")
        self._json({"error": "unauthorized"}, 401)
        return True

    def do_GET(self) -> None:
        if self._refused():
            return
        path = self.path.split("?")[0]
        LOG.write(json.dumps({"GET": self.path}) + "\n")
        if path != "/event":
            self._json({}, 404 if path != "/session/status" else 200)
            return
        q: queue.Queue[bytes | None] = queue.Queue()
        with LOCK:
            SUBSCRIBERS.append(q)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        try:
            self.wfile.write(b'data: {"type":"server.connected","properties":{}}\n\n')
            self.wfile.flush()
            while True:
                item = q.get()
                if item is None:
                    return
                self.wfile.write(item)
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with LOCK:
                SUBSCRIBERS.remove(q)

    def do_POST(self) -> None:
        if self._refused():
            return
        path = self.path.split("?")[0]
        body = self._body()
        LOG.write(json.dumps({"POST": self.path, "body": body}) + "\n")
        parts = path.strip("/").split("/")
        if path == "/session":
            self._json({"id": f"ses_fake{next(COUNTER)}"})
            return
        if len(parts) == 3 and parts[2] == "prompt_async":
            sid = parts[1]
            text = "".join(p.get("text", "") for p in body.get("parts", []))
            if text.startswith("CRASH"):
                sys.stderr.write("fake opencode: crashing on purpose\n")
                sys.stderr.flush()
                os._exit(3)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
            n = next(COUNTER)
            publish(user_msg(f"msg_u{n}", text), sid)
            if text.startswith("SLOW"):
                SLOW[sid] = f"msg_u{n}"
                return
            publish(assistant(f"msg_a{n}", f"msg_u{n}", f"reply to {sid}: {text}"), sid)
            publish(idle(), sid)
            return
        if len(parts) == 3 and parts[2] == "abort":
            sid = parts[1]
            parent = SLOW.pop(sid, None)
            self._json(True)
            if parent is not None:
                n = next(COUNTER)
                aborted = assistant(f"msg_a{n}", parent, finish="unknown")
                aborted[-1]["properties"]["info"]["error"] = {
                    "name": "MessageAbortedError", "data": {"message": "aborted"},
                }  # fmt: skip
                publish(aborted, sid)
            publish(idle(), sid)
            return
        self._json({}, 404)


def migrate() -> bool:
    """The database migration of a first start (see the module docstring); False: it raced."""
    seconds = os.environ.get("FAKE_OPENCODE_MIGRATION")
    if seconds is None:
        return True
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    state = Path(data) / "opencode"
    state.mkdir(parents=True, exist_ok=True)
    db, migrating = state / "opencode.db", state / "migrating"
    if migrating.exists():
        sys.stderr.write("Error: Unexpected error\n\ndatabase is locked\n")
        return False
    if db.exists():
        return True
    try:
        fd = os.open(migrating, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        sys.stderr.write("Error: Unexpected error\n\nFailed query: CREATE TABLE `workspace`\n")
        return False
    os.close(fd)
    time.sleep(float(seconds))
    db.write_text("migrated\n")
    migrating.unlink()
    return True


def main() -> int:
    if not migrate():
        return 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"opencode server listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
