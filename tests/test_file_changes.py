"""The pure file-change model: merge rules, text form, tool-call paths, snapshot diffs."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alice_trio.file_changes import (
    ALICE_LABELS,
    FileChange,
    FileChangeKind,
    Stamp,
    changes_from_tool_call,
    diff_snapshots,
    display_path,
    format_file_changes,
    json_path,
    merge_changes,
    refine_written,
    relative_path,
)

A, M, D, W = (
    FileChangeKind.ADDED,
    FileChangeKind.MODIFIED,
    FileChangeKind.DELETED,
    FileChangeKind.WRITTEN,
)


def test_format_english_and_alice_labels() -> None:
    changes = [FileChange(path="a.py", kind=A, added_lines=3), FileChange(path="b", kind=D)]
    assert format_file_changes(changes) == "- `a.py` added (+3/-0)\n- `b` deleted"
    assert format_file_changes(changes, ALICE_LABELS) == "- `a.py` 已新增 (+3/-0)\n- `b` 已删除"
    assert format_file_changes([FileChange(path="c", kind=W, failed=True)]) == (
        "- `c` modified (failed)"
    )


def test_a_hostile_file_name_stays_on_its_own_line() -> None:
    """A newline, a line separator or a backtick in a file name cannot forge another change's
    line or break out of the code span; undecodable bytes show as \\xNN."""
    name = "a\n- `forged` deleted\u2028\x1b[2J\\x0a\udcff``b"
    text = format_file_changes([FileChange(path=name, kind=A)])
    assert "\n" not in text and "\u2028" not in text and "\x1b" not in text
    assert text == "- ``` a\\x0a- `forged` deleted\\u2028\\x1b[2J\\\\x0a\\xff``b ``` added"
    text.encode("utf-8")  # printable anywhere: no lone surrogate left
    assert display_path("plain/name.py") == "`plain/name.py`"


@given(st.text() | st.binary().map(os.fsdecode))
def test_any_file_name_is_one_line_of_encodable_text(name: str) -> None:
    text = format_file_changes([FileChange(path=name, kind=M), FileChange(path="x", kind=D)])
    assert text.splitlines()[1] == "- `x` deleted"
    assert len(text.splitlines()) == 2
    text.encode("utf-8")


def test_merge_strong_kinds_and_counts_win() -> None:
    merged = merge_changes(
        [
            FileChange(path="z", kind=M),
            FileChange(path="a", kind=W),
            FileChange(path="a", kind=A, added_lines=2),
            FileChange(path="z", kind=D),
            FileChange(path="z", kind=M, removed_lines=4),
        ]
    )
    assert merged == [
        FileChange(path="a", kind=A, added_lines=2),
        FileChange(path="z", kind=D, removed_lines=4),
    ]


@pytest.mark.parametrize(
    ("path", "workspace", "expected"),
    [
        ("/w/src/a.py", "/w", "src/a.py"),
        ("/w/src/../b.py", "/w/", "b.py"),
        ("/other/a.py", "/w", "/other/a.py"),
        ("/wx/a.py", "/w", "/wx/a.py"),
        ("./././c.txt", "/w", "c.txt"),
        ("d\\e.txt", "", "d/e.txt"),
        ("  ", "/w", ""),
    ],
)
def test_relative_path(path: str, workspace: str, expected: str) -> None:
    assert relative_path(path, workspace) == expected


TOOLS = {"Write": (("file_path",), W), "Delete": (("paths",), D)}


def test_changes_from_tool_call() -> None:
    assert changes_from_tool_call(TOOLS, "Write", {"file_path": "/w/x.py"}, "/w") == [
        FileChange(path="x.py", kind=W)
    ]
    assert changes_from_tool_call(TOOLS, "Delete", {"paths": ["b", {"path": "a"}, 3]}) == [
        FileChange(path="a", kind=D),
        FileChange(path="b", kind=D),
    ]
    assert changes_from_tool_call(TOOLS, "Read", {"file_path": "x"}) == []
    assert changes_from_tool_call(TOOLS, "Write", ["not", "a", "mapping"]) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(name=st.sampled_from(["Write", "Delete", "x"]), arguments=json_values)
def test_tool_call_arguments_of_any_shape_never_raise(name: str, arguments: object) -> None:
    for change in changes_from_tool_call(TOOLS, name, arguments, "/w"):
        assert change.path


def test_diff_snapshots_and_already_reported() -> None:
    before = {
        "same": Stamp(1, 1, 1),
        "mod": Stamp(1, 1, 1),
        "gone": Stamp(1, 1, 1),
        "told": Stamp(1, 1, 1),
    }
    after = {
        "same": Stamp(1, 1, 1),
        "mod": Stamp(2, 1, 1),
        "new": Stamp(1, 1, 2),
        "told": Stamp(5, 5, 5),
    }
    assert diff_snapshots(before, after, already_reported=["told"]) == [
        FileChange(path="gone", kind=D),
        FileChange(path="mod", kind=M),
        FileChange(path="new", kind=A),
    ]


def test_refine_written() -> None:
    before = {"old": Stamp(1, 1, 1)}
    written = [FileChange(path="old", kind=W), FileChange(path="new", kind=W)]
    deleted = FileChange(path="x", kind=D)
    assert refine_written([*written, deleted], before) == [
        FileChange(path="old", kind=M),
        FileChange(path="new", kind=A),
        deleted,
    ]


def test_file_change_validates() -> None:
    with pytest.raises(TypeError):
        FileChange(path="a", kind="added")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FileChange(path="a", kind=A, added_lines=-1)


def test_json_path_keeps_a_name_that_is_not_utf8_exact() -> None:
    assert json_path("été/a b.txt") == ("été/a b.txt", None)
    raw = b"d\xe9j\xe0/\\x41\xff"
    text, data = json_path(os.fsdecode(raw))
    assert text == "d\\xe9j\\xe0/\\x41\\xff" and data is not None
    assert base64.b64decode(data) == raw
    # a lone surrogate no file system name holds (a JSON "\ud800" escape): U+FFFD in the text
    text, data = json_path("a\ud800b")
    assert text == "a\ufffdb" and data is not None
    assert base64.b64decode(data) == b"a\xed\xa0\x80b"
    text.encode("utf-8")
