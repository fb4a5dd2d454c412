"""Each provider's own write/edit tool events become ``file_change`` events once the tool ran.

The lines follow the CLIs' stream shapes (claude ``tool_use``/``tool_result`` blocks, gemini
``tool_use``/``tool_result`` events, kimi OpenAI-style ``tool_calls`` + ``role: tool``, opencode
completed tool parts and ``patch`` parts); tool names and argument keys are the CLIs' own
(claude ``Write``/``Edit``, gemini-cli ``write_file``/``replace``, Kimi Code ``Write``/``Edit``
with ``path``, kimi-cli 1.50 ``WriteFile``/``StrReplaceFile``, opencode ``write``/``edit``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.models import EventKind, TurnEvent
from alice_trio.providers.base import JsonLineDecoder
from alice_trio.providers.claude import ClaudeStreamDecoder
from alice_trio.providers.gemini import GeminiStreamDecoder
from alice_trio.providers.kimi import KimiDecoder
from alice_trio.providers.opencode import OpenCodeDecoder

W, M = FileChangeKind.WRITTEN, FileChangeKind.MODIFIED


def _feed(decoder: JsonLineDecoder, objs: list[dict[str, Any]]) -> list[TurnEvent]:
    return [e for obj in objs for e in decoder.feed(json.dumps(obj))]


def _changes(events: list[TurnEvent]) -> list[FileChange]:
    return [f for e in events if e.kind is EventKind.FILE_CHANGE for f in e.files]


def _claude(name: str, inp: dict[str, Any], error: bool) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": "t1", "name": name, "input": inp}
    result = {"type": "tool_result", "tool_use_id": "t1", "is_error": error, "content": "ok"}
    return [
        {"type": "assistant", "message": {"id": "m1", "content": [use]}},
        {"type": "user", "message": {"content": [result]}},
    ]


def _gemini(name: str, inp: dict[str, Any], error: bool) -> list[dict[str, Any]]:
    return [
        {"type": "tool_use", "tool_name": name, "tool_id": "g1", "parameters": inp},
        {"type": "tool_result", "tool_id": "g1", "status": "error" if error else "success"},
    ]


def _kimi(name: str, inp: dict[str, Any], error: bool) -> list[dict[str, Any]]:
    call = {
        "id": "k1",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(inp)},
    }
    result: dict[str, Any] = {"role": "tool", "tool_call_id": "k1", "content": "done"}
    if error:
        result["is_error"] = True
    return [{"role": "assistant", "content": "", "tool_calls": [call]}, result]


def _opencode(name: str, inp: dict[str, Any], error: bool) -> list[dict[str, Any]]:
    state = {"status": "error" if error else "completed", "input": inp}
    part = {"type": "tool", "tool": name, "callID": "o1", "state": state, "sessionID": "s"}
    return [{"type": "tool_use", "sessionID": "s", "part": part}]


CASES = [
    (ClaudeStreamDecoder, _claude, "Write", {"file_path": "/w/new.py", "content": "x"}, W),
    (ClaudeStreamDecoder, _claude, "Edit", {"file_path": "/w/a.py", "old_string": "a"}, M),
    (ClaudeStreamDecoder, _claude, "MultiEdit", {"file_path": "/w/a.py", "edits": []}, M),
    (GeminiStreamDecoder, _gemini, "write_file", {"file_path": "/w/new.py", "content": ""}, W),
    (GeminiStreamDecoder, _gemini, "replace", {"file_path": "/w/a.py"}, M),
    (KimiDecoder, _kimi, "Write", {"path": "/w/new.py", "content": "x"}, W),
    (KimiDecoder, _kimi, "Edit", {"path": "/w/a.py"}, M),
    (KimiDecoder, _kimi, "WriteFile", {"path": "/w/new.py", "content": "x"}, W),
    (KimiDecoder, _kimi, "StrReplaceFile", {"path": "/w/a.py", "edit": {}}, M),
    (OpenCodeDecoder, _opencode, "write", {"filePath": "/w/new.py", "content": "x"}, W),
    (OpenCodeDecoder, _opencode, "edit", {"filePath": "/w/a.py"}, M),
]


@pytest.mark.parametrize(("decoder", "lines", "tool", "inp", "kind"), CASES)
def test_write_tool_reports_its_file(
    decoder: Any, lines: Any, tool: str, inp: Any, kind: FileChangeKind
) -> None:
    events = _feed(decoder(), lines(tool, inp, False))
    path = next(v for k, v in inp.items() if k in ("file_path", "path", "filePath"))
    assert _changes(events) == [FileChange(path=path, kind=kind)]
    event = next(e for e in events if e.kind is EventKind.FILE_CHANGE)
    assert f"`{path}`" in event.text


@pytest.mark.parametrize(("decoder", "lines", "tool", "inp", "kind"), CASES)
def test_failed_or_declined_write_reports_nothing(
    decoder: Any, lines: Any, tool: str, inp: Any, kind: FileChangeKind
) -> None:
    assert _changes(_feed(decoder(), lines(tool, inp, True))) == []


@pytest.mark.parametrize(
    ("decoder", "lines"),
    [
        (ClaudeStreamDecoder, _claude),
        (GeminiStreamDecoder, _gemini),
        (KimiDecoder, _kimi),
        (OpenCodeDecoder, _opencode),
    ],
)
def test_other_tools_report_nothing(decoder: Any, lines: Any) -> None:
    inp = {"command": "echo hi > f.txt", "file_path": "/w/x", "path": "/w/x", "filePath": "/w/x"}
    assert _changes(_feed(decoder(), lines("Bash", inp, False))) == []


def test_opencode_patch_part_names_its_files() -> None:
    from alice_trio.providers.opencode import part_file_changes

    part = {"type": "patch", "hash": "h", "files": ["/w/b.py", "/w/a.py", "/w/a.py", 7]}
    assert part_file_changes(part) == [
        FileChange(path="/w/a.py", kind=W),
        FileChange(path="/w/b.py", kind=W),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/ws/a/./b.txt",
        "/ws/a/../c.txt",
        "./d.txt",
        "/elsewhere/../ws/e.txt",
        "sub\\win.txt",
        "/ws",
        " /ws/padded.txt ",
    ],
)
def test_codex_spells_a_path_like_every_other_provider(path: str) -> None:
    """codex ``file_change`` items use the one normaliser (``relative_path``) the tool-event
    providers and the workspace snapshot use, so one file has one spelling in a result."""
    from alice_trio.file_changes import relative_path
    from alice_trio.providers.codex import file_changes_of

    item = {"type": "file_change", "changes": [{"path": path, "kind": "update"}]}
    assert [c.path for c in file_changes_of(item, "/ws")] == [relative_path(path, "/ws")]


@pytest.mark.parametrize(("decoder", "lines", "tool", "inp", "kind"), CASES)
@pytest.mark.parametrize("error", [False, True])
def test_a_quiet_decoder_reports_the_same_files(
    decoder: Any, lines: Any, tool: str, inp: Any, kind: FileChangeKind, error: bool
) -> None:
    """``quiet`` (no callback would get a tool event) skips the tool events, never the write
    tool's ``file_change``: the same events less the tool ones, which are counted."""
    loud = _feed(decoder(), lines(tool, inp, error))
    hushed = decoder()
    hushed.quiet = True
    quiet = _feed(hushed, lines(tool, inp, error))
    tools = (EventKind.TOOL_USE, EventKind.TOOL_RESULT)
    assert quiet == [e for e in loud if e.kind not in tools]
    assert hushed.skipped == {k.value: n for k in tools if (n := sum(e.kind is k for e in loud))}
