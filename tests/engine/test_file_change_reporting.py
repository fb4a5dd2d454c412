"""A turn's file changes through the one-shot engine: the CLI's write tool as it runs (path made
relative to the workspace, "added" because the file did not exist), then at turn end what no
tool named (a shell's edit and delete), each file once; the result lists them all."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from alice_trio import OneShotBackend, RunRequest
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.providers.base import RunLimits
from alice_trio.providers.claude import ClaudeConfig

FAKE = textwrap.dedent(
    """\
    import json, os, sys
    sys.stdin.read()
    def out(obj): print(json.dumps(obj), flush=True)
    out({"type": "system", "subtype": "init", "session_id": "s1"})
    path = os.path.join(os.getcwd(), "made_by_tool.py")
    open(path, "w").write("x = 1\\n")  # what the Write tool did
    use = {"type": "tool_use", "id": "t1", "name": "Write",
           "input": {"file_path": path, "content": "x = 1\\n"}}
    out({"type": "assistant", "session_id": "s1", "message": {"id": "m1", "content": [use]}})
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "written"}
    out({"type": "user", "session_id": "s1", "message": {"content": [result]}})
    with open("existing.txt", "a") as f:  # a shell tool's edit: no tool event names it
        f.write("more\\n")
    os.remove("gone.txt")
    os.makedirs("sub", exist_ok=True)
    open("sub/new.md", "w").write("n")
    out({"type": "assistant", "session_id": "s1",
         "message": {"id": "m2", "content": [{"type": "text", "text": "done"}]}})
    out({"type": "result", "subtype": "success", "is_error": False, "result": "done",
         "session_id": "s1", "usage": {"input_tokens": 1, "output_tokens": 1}})
    """
)

A, M, D = FileChangeKind.ADDED, FileChangeKind.MODIFIED, FileChangeKind.DELETED


def _setup(tmp_path: Path) -> tuple[Path, ClaudeConfig]:
    script = tmp_path / "fake_claude.py"
    script.write_text(FAKE)
    launcher = tmp_path / "claude"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    launcher.chmod(0o755)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "existing.txt").write_text("old\n")
    (ws / "gone.txt").write_text("bye\n")
    return ws, ClaudeConfig(command=str(launcher))


async def test_tool_and_turn_end_changes(tmp_path: Path) -> None:
    ws, config = _setup(tmp_path)
    progress: list[str] = []
    result = await OneShotBackend("claude", config).run(
        RunRequest(user_text="go", workspace_dir=str(ws), on_progress=progress.append)
    )
    changes = [p for p in progress if p.startswith("[file_change]")]
    assert changes == [
        "[file_change] - `made_by_tool.py` added",
        "[file_change] - `existing.txt` modified\n- `gone.txt` deleted\n- `sub/new.md` added",
    ]
    assert progress.index(changes[0]) < progress.index("done")  # as it happened
    assert result.reply == "done"
    assert result.file_changes == (
        FileChange(path="existing.txt", kind=M),
        FileChange(path="gone.txt", kind=D),
        FileChange(path="made_by_tool.py", kind=A),
        FileChange(path="sub/new.md", kind=A),
    )
    assert result.to_dict()["file_changes"][0] == {
        "path": "existing.txt", "kind": "modified", "added_lines": 0, "removed_lines": 0,
        "failed": False,
    }  # fmt: skip


async def test_snapshot_off_keeps_tool_events(tmp_path: Path) -> None:
    ws, config = _setup(tmp_path)
    config = ClaudeConfig(command=config.command, limits=RunLimits(file_changes=False))
    progress: list[str] = []
    result = await OneShotBackend("claude", config).run(
        RunRequest(user_text="go", workspace_dir=str(ws), on_progress=progress.append)
    )
    changes = [p for p in progress if p.startswith("[file_change]")]
    assert changes == ["[file_change] - `made_by_tool.py` modified"]  # not known to be new
    assert [c.path for c in result.file_changes] == ["made_by_tool.py"]


@pytest.mark.parametrize("workspace", [False, True])
async def test_no_workspace_no_snapshot_and_nothing_left_registered(
    tmp_path: Path, workspace: bool
) -> None:
    from alice_trio.engine import workspace as ws_mod

    ws, config = _setup(tmp_path)
    request = RunRequest(user_text="go", workspace_dir=str(ws) if workspace else "")
    if not workspace:
        config = ClaudeConfig(command=config.command, workspace_dir=str(ws))
        request = RunRequest(user_text="go")
    await OneShotBackend("claude", config).run(request)
    assert ws_mod.active_roots() == {}
