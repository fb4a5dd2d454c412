"""Build fake_rpc_peer scripts from the recorded transcripts (tests only)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TRANSCRIPTS = HERE.parent / "transcripts"
PEER = str(HERE / "fake_rpc_peer.py")


def _messages_codex(case: str) -> list[tuple[str, Any]]:
    out = []
    path = TRANSCRIPTS / "codex_app_server" / f"codex_app_server_{case}.wire.jsonl"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["dir"] == "->":
            out.append(("in", rec["msg"]))
        elif rec["dir"] == "<-":
            out.append(("out", rec["msg"]))
    return out


def _messages_cgk(group: str, case: str) -> list[tuple[str, Any]]:
    out = []
    data = json.loads((TRANSCRIPTS / group / f"{case}.json").read_text())
    for ev in data["events"]:
        if ev["kind"] not in ("stdin", "stdout"):
            continue
        try:
            msg = json.loads(ev["text"])
        except ValueError:
            continue
        out.append(("in" if ev["kind"] == "stdin" else "out", msg))
    return out


def steps_from(messages: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """One step per client message; the peer's lines that followed it are its reply."""
    steps: list[dict[str, Any]] = []
    for direction, msg in messages:
        if direction == "in":
            if "method" in msg:
                steps.append(
                    {"expect": msg["method"], "id": msg.get("id"), "reply": [], "sent": msg}
                )
            else:
                steps.append({"expect_response": msg["id"], "reply": [], "sent": msg})
        elif steps:
            steps[-1]["reply"].append(msg)
    return steps


def codex_steps(case: str) -> list[dict[str, Any]]:
    return steps_from(_messages_codex(case))


def cgk_steps(group: str, case: str) -> list[dict[str, Any]]:
    return steps_from(_messages_cgk(group, case))


def write_script(tmp: Path, steps: list[dict[str, Any]], name: str = "script") -> tuple[Path, Path]:
    script = tmp / f"{name}.json"
    script.write_text(json.dumps({"steps": steps}))
    log = tmp / f"{name}.log.jsonl"
    log.write_text("")
    return script, log


def peer_argv(script: Path, log: Path) -> tuple[str, ...]:
    return (sys.executable, PEER, str(script), str(log))


def client_messages(log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.strip()]


def sent(log: Path) -> list[dict[str, Any]]:
    """What the client wrote (parsed), in order."""
    return [r["msg"] for r in client_messages(log) if "msg" in r]


def peer_problems(log: Path) -> list[dict[str, Any]]:
    return [r for r in client_messages(log) if "unexpected" in r or "unmatched_answer" in r]
