"""A fake agent CLI that hosts many conversations in one process (tests only).

Usage: ``python fake_shared_agent.py codex|acp LOG.jsonl``

It speaks the codex app-server protocol (threads) or ACP (sessions), concurrently: every turn
runs in its own thread, so turns of different conversations overlap like on the real CLIs.
What a turn does depends on its prompt text:

* ``TOOL:<shell command>`` — runs the command (in the conversation's cwd, its own process
  group), announces it, and answers ``tool said: <stdout>`` when it ends;
* ``SLOW`` — waits until interrupted (or 60 s);
* ``CRASH`` — the whole process exits at once with status 3 (stderr says so);
* ``HUGE`` — first writes a 2 MB notification line for the conversation, then answers;
* ``ASK`` — asks the client to approve a command (codex
  ``item/commandExecution/requestApproval``, ACP ``session/request_permission``) and answers
  ``answer: <decision or option id>``;
* ``FAKE_OPEN_DELAY=<s>`` (env): every conversation open takes that long, doubled for each
  open already in progress (like gemini's ``session/new``), logged as ``{"open": [t0, t1]}``;
  with ``FAKE_ACP_CLOSE=1`` too, a ``session/close`` that arrives while opens are in progress
  fails those opens with -32603 "session not found" (like Kimi Code 2.1.0);
* ``FAKE_ACP_NO_LOAD=1`` (env): ACP's ``initialize`` does not offer ``loadSession``;
* anything else — answers ``reply to <conversation>: <text>``.
* ``FAKE_TRAILING_USAGE=<s>`` (env, ACP): like Kimi Code 2.1, a turn that was not cancelled
  sends its only ``usage_update`` (``used`` = 1000 + the prompt's length) that many seconds
  after the prompt's answer; with ``FAKE_ACP_CATALOG=1`` too, ``session/new``/``session/load``
  answer Kimi Code's config options naming a catalog model (so the usage is promised).

An interrupt ends only that turn as interrupted. ACP's ``session/cancel`` kills the turn's
tool (like gemini and Kimi Code); codex's ``turn/interrupt`` leaves it running (like codex
0.171), and ``thread/start``'s ``config.shell_environment_policy.set`` is put into the
environment of the thread's tools (like codex). Like codex 0.171, a process keeps every
thread it loaded (``thread/unsubscribe`` does not unload it): another process refuses to resume
that thread while this one lives ("already has an active writer"). Every message the client
wrote is appended to LOG as JSON; tool pids are logged as ``{"tool": pid, "conv": id}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

MODE = sys.argv[1]
LOG = open(sys.argv[2], "a", buffering=1)
OUT = threading.Lock()
JSONRPC = MODE == "acp"
convs: dict[str, dict] = {}
turns: dict[str, dict] = {}
counter = iter(range(1, 1_000_000))
answers: dict[object, list] = {}  # our server-request id -> [event, result]
#: FAKE_ACP_CLOSE=1: the agent offers session/close (like Kimi Code 2.1)
ACP_CAPABILITIES: dict = {"loadSession": True}
if os.environ.get("FAKE_ACP_NO_LOAD"):  # an agent that cannot load a session (no loadSession)
    del ACP_CAPABILITIES["loadSession"]
if os.environ.get("FAKE_ACP_CLOSE"):
    ACP_CAPABILITIES["sessionCapabilities"] = {"close": {}}
OPEN_DELAY = float(os.environ.get("FAKE_OPEN_DELAY") or 0)
OPEN_LOCK = threading.Lock()
opening = 0  # conversation opens in progress (FAKE_OPEN_DELAY)
spoiled = 0  # opens in progress when a session/close arrived (they fail, like Kimi Code 2.1.0)


def write(msg: dict) -> None:
    if JSONRPC:
        msg = {"jsonrpc": "2.0", **msg}
    data = json.dumps(msg, separators=(",", ":")) + "\n"
    with OUT:
        sys.stdout.write(data)
        sys.stdout.flush()


def log(obj: dict) -> None:
    LOG.write(json.dumps(obj) + "\n")


def notify(method: str, params: dict) -> None:
    write({"method": method, "params": params})


def text_of(items: list) -> str:
    return "".join(i.get("text", "") for i in items if isinstance(i, dict))


def run_turn(conv: str, turn: dict, text: str) -> str:
    """The turn's work; returns the reply ("" when interrupted)."""
    if text.startswith("CRASH"):
        sys.stderr.write("fake agent: crashing on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    if text.startswith("HUGE"):
        say(conv, turn, "x" * (2 * 1024 * 1024))
    if text.startswith("TOOL:"):
        env = {**os.environ, **convs[conv].get("env", {})}
        proc = subprocess.Popen(
            ["bash", "-c", text[5:]], cwd=convs[conv]["cwd"] or None, env=env,
            stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        turn["proc"] = proc
        log({"tool": proc.pid, "conv": conv})
        tool_started(conv, turn, text[5:])
        if MODE == "codex":  # an interrupt ends the turn at once; the command runs on
            while proc.poll() is None and not turn["cancelled"].is_set():
                time.sleep(0.02)
            if turn["cancelled"].is_set():
                return ""
        out, _ = proc.communicate()
        if turn["cancelled"].is_set():
            return ""
        return f"tool said: {out.decode().strip()}"
    if text.startswith("ASK"):
        rid = 1000 + next(counter)
        waiter = answers[rid] = [threading.Event(), None]
        if MODE == "codex":
            params = {"threadId": conv, "turnId": turn["id"], "itemId": "i", "command": "rm x"}
            write({"id": rid, "method": "item/commandExecution/requestApproval", "params": params})
        else:
            options = [
                {"optionId": "yes", "kind": "allow_once", "name": "Allow"},
                {"optionId": "no", "kind": "reject_once", "name": "Reject"},
            ]
            params = {
                "sessionId": conv,
                "options": options,
                "toolCall": {"toolCallId": "c", "title": "rm x", "kind": "execute"},
            }
            write({"id": rid, "method": "session/request_permission", "params": params})
        waiter[0].wait(30)
        result = waiter[1] or {}
        got = result.get("decision") or (result.get("outcome") or {}).get("optionId")
        return f"answer: {got}"
    if text.startswith("SLOW"):
        turn["cancelled"].wait(60)
        return "" if turn["cancelled"].is_set() else "slow reply"
    return f"reply to {conv}: {text}"


def cancel(turn: dict) -> None:
    turn["cancelled"].set()
    proc = turn.get("proc")
    if MODE == "codex":
        return
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- codex app-server -----------------------------------------------------------------------------


def say(conv: str, turn: dict, text: str) -> None:
    if MODE == "codex":
        notify(
            "item/completed",
            {
                "threadId": conv,
                "turnId": turn["id"],
                "item": {"type": "agentMessage", "id": "m", "text": text},
            },
        )
    else:
        notify(
            "session/update",
            {
                "sessionId": conv,
                "update": {
                    "sessionUpdate": "agent_message_chunk",
                    "content": {"type": "text", "text": text},
                },
            },
        )


def tool_started(conv: str, turn: dict, command: str) -> None:
    if MODE == "codex":
        notify(
            "item/started",
            {
                "threadId": conv,
                "turnId": turn["id"],
                "item": {
                    "type": "commandExecution",
                    "id": "c",
                    "command": command,
                    "status": "inProgress",
                },
            },
        )
    else:
        notify(
            "session/update",
            {
                "sessionId": conv,
                "update": {
                    "sessionUpdate": "tool_call",
                    "toolCallId": "c",
                    "title": command,
                    "status": "in_progress",
                },
            },
        )


def codex_turn(conv: str, turn: dict, text: str) -> None:
    notify("turn/started", {"threadId": conv, "turn": {"id": turn["id"]}})
    reply = run_turn(conv, turn, text)
    if turn["cancelled"].is_set():
        status = "interrupted"
    else:
        say(conv, turn, reply)
        status = "completed"
    notify("turn/completed", {"threadId": conv, "turn": {"id": turn["id"], "status": status}})
    turns.pop(turn["id"], None)


def acp_turn(conv: str, turn: dict, text: str, rid: object) -> None:
    reply = run_turn(conv, turn, text)
    if turn["cancelled"].is_set():
        write({"id": rid, "result": {"stopReason": "cancelled"}})
    else:
        say(conv, turn, reply)
        write({"id": rid, "result": {"stopReason": "end_turn"}})
    convs[conv].pop("turn", None)
    trailing = os.environ.get("FAKE_TRAILING_USAGE")
    if trailing and not turn["cancelled"].is_set():  # like Kimi Code 2.1: usage after the answer
        time.sleep(float(trailing))
        used = 1000 + len(text)
        notify("session/update", {"sessionId": conv, "update": {
            "sessionUpdate": "usage_update", "used": used, "size": 262144}})  # fmt: skip


def take_writer(thread: str) -> bool:
    """Like codex 0.171: the process that loaded a thread is its writer until it exits
    (``thread/unsubscribe`` does not unload it); another process cannot resume it meanwhile.
    The lock is a file next to LOG holding the writer's pid."""
    lock = os.path.join(os.path.dirname(os.path.abspath(sys.argv[2])), f"writer-{thread}")
    try:
        with open(lock) as f:
            owner = int(f.read() or 0)
    except (OSError, ValueError):
        owner = 0
    if owner and owner != os.getpid():
        try:
            os.kill(owner, 0)
            with open(f"/proc/{owner}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    return False
        except OSError:
            pass
    with open(lock, "w") as f:
        f.write(str(os.getpid()))
    return True


def open_later(msg: dict) -> None:
    """FAKE_OPEN_DELAY: a conversation's open takes that long, and each open that overlaps
    another one on this process takes twice as long (gemini 0.61's ``session/new``:
    0.4, 0.5, 0.8, 1.2, 2, 3.6, 6.8, 13 s for eight at once). Logs ``{"open": start, end}``."""
    global opening, spoiled
    with OPEN_LOCK:
        overlapped = opening
        opening += 1
    start = time.monotonic()
    time.sleep(OPEN_DELAY * (2**overlapped))
    with OPEN_LOCK:
        spoil = spoiled > 0
        spoiled = max(0, spoiled - 1)
    end = time.monotonic()  # before the answer: the client may open the next one at once
    with OPEN_LOCK:  # likewise: a close sent right after the answer overlaps no open
        opening -= 1
    if spoil:
        details = f"session not found: ses-{os.getpid()}-{next(counter)}"
        err = {"code": -32603, "message": "Internal error", "data": {"details": details}}
        write({"id": msg.get("id"), "error": err})
    else:
        handle({**msg, "delayed": True})
    log({"open": [start, end], "pid": os.getpid()})


def handle(msg: dict) -> None:
    method = msg.get("method")
    params = msg.get("params") or {}
    rid = msg.get("id")
    if method is None and rid in answers:  # the client's answer to our request
        waiter = answers.pop(rid)
        waiter[1] = msg.get("result")
        waiter[0].set()
        return
    if method == "initialize":
        if MODE == "codex":
            write({"id": rid, "result": {"userAgent": "fake/1", "platformOs": "linux"}})
        else:
            write(
                {
                    "id": rid,
                    "result": {"protocolVersion": 1, "agentCapabilities": ACP_CAPABILITIES},
                }
            )
        return
    if method in ("initialized",):
        return
    if method == "session/load" and params.get("sessionId") in convs:
        # like gemini 0.61: a session this process still holds cannot be loaded again
        write({"id": rid, "error": {"code": -32603, "message": "Internal error"}})
        return
    if method in ("thread/start", "thread/resume", "session/new", "session/load"):
        if OPEN_DELAY and not msg.get("delayed"):
            threading.Thread(target=open_later, args=(msg,), daemon=True).start()
            return
        cid = (
            params.get("threadId")
            or params.get("sessionId")
            or (f"{'thr' if MODE == 'codex' else 'ses'}-{os.getpid()}-{next(counter)}")
        )
        if MODE == "codex" and not take_writer(cid):
            message = f"thread {cid} already has an active writer"
            write({"id": rid, "error": {"code": -32600, "message": message}})
            return
        prefix = "shell_environment_policy.set."  # codex's dotted config overrides
        env = {k[len(prefix) :]: v for k, v in (params.get("config") or {}).items()
               if k.startswith(prefix)}  # fmt: skip
        convs[cid] = {"cwd": params.get("cwd", ""), "env": env}
        if MODE == "codex":
            notify("thread/started", {"thread": {"id": cid}})
            write({"id": rid, "result": {"thread": {"id": cid}}})
        else:
            result: dict = {"sessionId": cid} if method == "session/new" else {}
            if os.environ.get("FAKE_ACP_CATALOG"):  # like Kimi Code 2.1
                model = {
                    "id": "model",
                    "type": "select",
                    "currentValue": "fake-kimi-model",
                    "options": [{"value": "fake-kimi-model", "name": "fake-kimi-model"}],
                }
                result["configOptions"] = [model]
            write({"id": rid, "result": result})
        return
    if method == "session/set_model":  # any model is fine (Kimi Code has no model flag)
        write({"id": rid, "result": {}})
        return
    if method == "session/close" and OPEN_DELAY:
        global spoiled
        with OPEN_LOCK:
            spoiled = opening
    if method in ("thread/unsubscribe", "session/close"):
        convs.pop(params.get("threadId") or params.get("sessionId"), None)
        write({"id": rid, "result": {"status": "unsubscribed"}})
        return
    if method == "turn/start":
        conv = params["threadId"]
        turn = {"id": f"turn-{next(counter)}", "cancelled": threading.Event()}
        turns[turn["id"]] = turn
        write({"id": rid, "result": {"turn": {"id": turn["id"]}}})
        threading.Thread(
            target=codex_turn, args=(conv, turn, text_of(params["input"])), daemon=True
        ).start()
        return
    if method == "turn/interrupt":
        turn = turns.get(params.get("turnId"))
        if turn is not None and turn.get("id") and params.get("threadId") in convs:
            cancel(turn)
        write({"id": rid, "result": {}})
        return
    if method == "session/prompt":
        conv = params["sessionId"]
        turn = {"id": f"p-{next(counter)}", "cancelled": threading.Event()}
        convs[conv]["turn"] = turn
        threading.Thread(
            target=acp_turn, args=(conv, turn, text_of(params["prompt"]), rid), daemon=True
        ).start()
        return
    if method == "session/cancel":
        turn = convs.get(params.get("sessionId"), {}).get("turn")
        if turn is not None:
            cancel(turn)
        return
    if rid is not None and method:
        write({"id": rid, "error": {"code": -32601, "message": f"unknown {method}"}})


def main() -> int:
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        log({"msg": msg, "t": time.time()})
        handle(msg)
    for turn in list(turns.values()):
        cancel(turn)
    time.sleep(float(os.environ.get("FAKE_EXIT_DELAY") or 0))  # a slow shutdown
    return 0


if __name__ == "__main__":
    sys.exit(main())
