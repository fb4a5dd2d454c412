"""Gemini ACP resume keeps the conversation (issue 14 item 5): against a fake ``gemini --acp``
that names, finds and cleans its session files like gemini-cli 0.61 (fake_gemini_chats.py)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from rpc_recorder import Recorder

from alice_trio.models import EventKind, RunRequest
from alice_trio.protocols import acp as proto
from alice_trio.protocols.jsonrpc import JsonRpcError
from alice_trio.providers.base import RunLimits
from alice_trio.providers.gemini import GeminiConfig
from alice_trio.providers.kimi import KimiConfig
from alice_trio.sessions._groups import single_exception
from alice_trio.sessions.acp import keep_gemini_history, open_gemini_driver, open_kimi_driver

FAKE = Path(__file__).with_name("fake_gemini_chats.py")
FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)
SID = "70b1459c-ffa8-49c9-931a-6980b7bcb031"


def gemini_config(tmp_path: Path, minute: str) -> GeminiConfig:
    wrapper = tmp_path / "gemini"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {"HOME": str(tmp_path / "home"), "FAKE_GEMINI_MINUTE": minute}
    return GeminiConfig(command=str(wrapper), env=env, workspace_dir=str(work), limits=FAST)


async def one_turn(config: GeminiConfig, text: str, thread: str, keep: bool = True) -> Any:
    """One process: new or load ``thread``, one prompt; returns (reply, session id)."""
    initial = RunRequest(user_text=text, thread_id=thread)
    kw: dict[str, Any] = {} if keep else {"before_load": None}
    driver = open_gemini_driver(config, initial, close_grace=1.0, load_settle=0.05, **kw)
    rec = Recorder()
    with single_exception(), trio.fail_after(30):  # the driver's own error, not a group
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run, rec)
            ref = await driver.start_turn(initial)
            done = await rec.terminal(ref.turn_id)
            await driver.aclose(graceful=True)
            nursery.cancel_scope.cancel()
    assert done.kind is EventKind.TURN_COMPLETED, done
    return rec.texts(EventKind.ASSISTANT_TEXT)[-1], ref.thread_id


MINUTES = {
    "same minute": ["2026-12-01T14-00"] * 3,
    "next minutes": ["2026-12-01T14-00", "2026-12-01T14-01", "2026-12-01T14-02"],
}


@pytest.mark.parametrize("minutes", MINUTES.values(), ids=MINUTES.keys())
async def test_every_resume_sees_the_whole_history(tmp_path: Path, minutes: list[str]):
    reply, sid = await one_turn(gemini_config(tmp_path, minutes[0]), "one", "")
    assert reply == "history="
    reply, again = await one_turn(gemini_config(tmp_path, minutes[1]), "two", sid)
    assert (reply, again) == ("history=one", sid)
    reply, again = await one_turn(gemini_config(tmp_path, minutes[2]), "three", sid)
    assert (reply, again) == ("history=one|two", sid)
    chats = tmp_path / "home/.gemini/tmp/work/chats"
    kept = [p.name for p in chats.iterdir() if p.name.endswith("-kept.jsonl")]
    assert kept == [f"session-{minutes[0]}-{sid[:8]}-kept.jsonl"]


async def test_the_fake_loses_the_history_like_gemini_without_the_workaround(tmp_path: Path):
    """The defect the driver works around, reproduced on the fake: a load in the minute the
    session was created wipes it; a load in a later minute works once, then gemini's start-up
    cleanup deletes the history with the load's empty recording."""
    (tmp_path / "a").mkdir()
    same = gemini_config(tmp_path / "a", "2026-12-01T14-00")
    _, sid = await one_turn(same, "one", "")
    with pytest.raises(JsonRpcError, match="No previous sessions found"):
        await one_turn(same, "two", sid, keep=False)
    (tmp_path / "b").mkdir()
    _, sid = await one_turn(gemini_config(tmp_path / "b", "2026-12-01T14-00"), "one", "")
    later = gemini_config(tmp_path / "b", "2026-12-01T14-01")
    reply, _ = await one_turn(later, "two", sid, keep=False)
    assert reply == "history=one"
    with pytest.raises(JsonRpcError, match="No previous sessions found"):
        third = attrs.evolve(later, env={**later.env, "FAKE_GEMINI_MINUTE": "2026-12-01T14-02"})
        await one_turn(third, "three", sid, keep=False)


def test_kept_names():
    name = f"session-2026-12-01T14-00-{SID[:8]}.jsonl"
    kept = f"session-2026-12-01T14-00-{SID[:8]}-kept.jsonl"
    assert proto.gemini_kept_name(name, SID) == kept
    assert proto.gemini_kept_name(name, SID, {kept}) == kept.replace("-kept", "-kept-2")
    assert proto.gemini_kept_name(name[:-1], SID).endswith("-kept.json")  # legacy .json
    assert proto.gemini_kept_name(kept, SID) == ""  # never renamed twice
    assert proto.gemini_kept_name(name, "0" + SID) == ""  # another session's short id
    assert proto.gemini_kept_name("session-2026-12-01T14-00-xyz.jsonl", SID) == ""
    assert proto.gemini_short_id("a.b/c:defgh") == "a_b_c_def"[:8]
    # gemini's cleanup matches files by ``-<8 alphanumerics>.json[l]``: a kept name never does
    short_id = re.compile(r"-([a-zA-Z0-9]{8})\.jsonl?$")
    for taken in ((), {kept}):
        assert not short_id.search(proto.gemini_kept_name(name, SID, taken))


def test_keep_touches_only_this_sessions_per_minute_files(tmp_path: Path):
    home = tmp_path / "home"
    chats = home / ".gemini/tmp/proj/chats"
    chats.mkdir(parents=True)
    (home / ".gemini/projects.json").write_text(json.dumps({"projects": {"/w/proj": "proj"}}))
    mine = chats / f"session-2026-12-01T14-00-{SID[:8]}.jsonl"
    mine.write_text(json.dumps({"sessionId": SID}) + "\n")
    other = "70b1459c-0000-0000-0000-000000000000"  # same short id, another session
    theirs = chats / f"session-2026-12-01T14-01-{SID[:8]}.jsonl"
    theirs.write_text(json.dumps({"sessionId": other}) + "\n")
    broken = chats / f"session-2026-12-01T14-02-{SID[:8]}.jsonl"
    broken.write_text("not json\n")
    kept = keep_gemini_history({"HOME": str(home)}, "/w/proj", SID)
    assert kept == [str(chats / f"session-2026-12-01T14-00-{SID[:8]}-kept.jsonl")]
    assert not mine.exists() and theirs.exists() and broken.exists()
    assert json.loads(Path(kept[0]).read_text())["sessionId"] == SID
    # GEMINI_CLI_HOME wins over HOME; an unknown project or a missing dir is no error
    assert keep_gemini_history({"GEMINI_CLI_HOME": str(tmp_path / "x")}, "/w/proj", SID) == []
    assert keep_gemini_history({"HOME": str(home)}, "/w/elsewhere", SID) == []


class _Host:
    def __init__(self, parked: set[str]) -> None:
        self.parked = parked

    def has_parked(self, key: str) -> bool:
        return key in self.parked


class _Client:
    """A shared process's view as the driver sees it (``client.host``), answering requests."""

    def __init__(self, parked: set[str]) -> None:
        self.host = _Host(parked)
        self.sent: list[str] = []

    async def request(self, method: str, params: Any = None, **kw: Any) -> Any:
        self.sent.append(method)
        if method == "initialize":
            return {"agentCapabilities": {"loadSession": True}}
        return {}


@pytest.mark.parametrize("parked", [True, False])
async def test_a_conversation_parked_in_a_shared_process_is_not_touched(parked: bool):
    calls: list[tuple[str, str]] = []
    driver = open_gemini_driver(
        GeminiConfig(workspace_dir="/w"), RunRequest(user_text="x", thread_id=SID),
        load_settle=0.0, before_load=lambda sid, cwd: calls.append((sid, cwd)),
    )  # fmt: skip
    client = _Client({SID} if parked else set())
    await driver.handshake(client)
    assert client.sent == ["initialize", "session/load"]
    assert calls == ([] if parked else [(SID, "/w")])


def test_only_gemini_renames_session_files(tmp_path: Path):
    gemini = open_gemini_driver(GeminiConfig(), RunRequest(user_text="x"))
    kimi = open_kimi_driver(KimiConfig(), RunRequest(user_text="x"))
    assert gemini.before_load is not None and kimi.before_load is None


def test_keep_without_hard_links_renames_and_never_replaces(tmp_path: Path, monkeypatch):
    from alice_trio.sessions import acp

    def no_links(src: str, dst: str) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(acp.os, "link", no_links)
    src, dest = tmp_path / "a", tmp_path / "b"
    src.write_text("history")
    acp._move(str(src), str(dest))
    assert dest.read_text() == "history" and not src.exists()
    src.write_text("other")
    with pytest.raises(FileExistsError):
        acp._move(str(src), str(dest))
    assert dest.read_text() == "history" and src.read_text() == "other"
