"""File changes of a turn: the typed record, its text form, and snapshot diffing. Pure, no I/O.

A turn's file changes reach the caller two ways (spec §7, without git and without Alice's
per-line polling, §13.21):

* **as they happen**, from the CLI's own edit/write tool events: each provider's decoder knows
  which of its tools write which path argument (:func:`changes_from_tool_call` over the
  provider's :data:`WriteTools` table);
* **at turn end**, for changes made any other way (a shell tool's ``echo > f``): the engine
  stats the workspace before and after the turn (:mod:`alice_trio.engine.workspace`) and
  :func:`diff_snapshots` names what was added, modified or deleted, minus what the tool events
  already reported.

Both arrive as a :class:`~alice_trio.models.TurnEvent` of kind ``FILE_CHANGE`` whose ``files``
holds :class:`FileChange` records and whose ``text`` is :func:`format_file_changes` of them —
the ``on_progress`` callback gets ``"[file_change] " + text`` (Alice's format, §7.3, with English
labels by default and Alice's own labels in :data:`ALICE_LABELS`).
"""

from __future__ import annotations

import base64
import enum
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import attrs

__all__ = [
    "ALICE_LABELS",
    "ENGLISH_LABELS",
    "FileChange",
    "FileChangeKind",
    "Stamp",
    "WriteTools",
    "changes_from_tool_call",
    "diff_snapshots",
    "display_path",
    "format_file_changes",
    "json_path",
    "merge_changes",
    "refine_written",
    "relative_path",
]


class FileChangeKind(enum.Enum):
    """What happened to a file. ``WRITTEN`` is a write/edit tool's report before the engine
    knows whether the file existed (it is refined to ADDED or MODIFIED where a snapshot says)."""

    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    WRITTEN = "written"


ENGLISH_LABELS: Mapping[FileChangeKind, str] = {
    FileChangeKind.ADDED: "added",
    FileChangeKind.MODIFIED: "modified",
    FileChangeKind.DELETED: "deleted",
    FileChangeKind.WRITTEN: "modified",
}
#: Alice's labels (spec §7.3).
ALICE_LABELS: Mapping[FileChangeKind, str] = {
    FileChangeKind.ADDED: "已新增",
    FileChangeKind.MODIFIED: "已更改",
    FileChangeKind.DELETED: "已删除",
    FileChangeKind.WRITTEN: "已更改",
}


def _nonneg(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class FileChange:
    """One file a turn changed. ``path`` is relative to the workspace when under it (forward
    slashes), absolute otherwise; line counts are 0 when unknown."""

    path: str = attrs.field(validator=attrs.validators.instance_of(str))
    kind: FileChangeKind = attrs.field(validator=attrs.validators.instance_of(FileChangeKind))
    added_lines: int = attrs.field(default=0, validator=_nonneg)
    removed_lines: int = attrs.field(default=0, validator=_nonneg)
    failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind.value,
            "added_lines": self.added_lines,
            "removed_lines": self.removed_lines,
            "failed": self.failed,
        }


#: Characters a path may hold that would break the one-line-per-change text: C0/C1 controls,
#: DEL and Unicode line/paragraph separators (a newline in a file name would forge a line).
_UNPRINTABLE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_UNPRINTABLE.update({0x2028: "\\u2028", 0x2029: "\\u2029", ord("\\"): "\\\\"})
#: A name that is not UTF-8 arrives with surrogate escapes (``os.fsdecode``): its bytes as
#: ``\\xNN``, so the text can be encoded and printed anywhere.
_UNPRINTABLE.update({0xDC00 + b: f"\\x{b:02x}" for b in range(0x80, 0x100)})


def json_path(path: str) -> tuple[str, str | None]:
    """``path`` for a JSON document (the CLI's result object, docs/cli.md): ``(text,
    path_bytes)``. A name that is UTF-8 is itself, and ``path_bytes`` is None. A name that is
    not arrives with surrogate escapes (``os.fsdecode``); its text has each byte that is not
    UTF-8 as the four characters ``\\xNN`` (as :func:`display_path` shows it), and
    ``path_bytes`` is the name's exact bytes, base64 (standard alphabet, padded). Another lone
    surrogate (no file system name holds one) is U+FFFD in the text and its UTF-8 form
    (``surrogatepass``) in the bytes."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in path):
        return path, None
    text: list[str] = []
    data = bytearray()
    for c in path:
        code = ord(c)
        if 0xDC80 <= code <= 0xDCFF:
            text.append(f"\\x{code - 0xDC00:02x}")
            data.append(code - 0xDC00)
        elif 0xD800 <= code <= 0xDFFF:
            text.append("\ufffd")
            data += c.encode("utf-8", "surrogatepass")
        else:
            text.append(c)
            data += c.encode("utf-8")
    return "".join(text), base64.b64encode(bytes(data)).decode("ascii")


def display_path(path: str) -> str:
    """``path`` as one Markdown code span: control characters and line separators escaped
    (``\\n`` → ``\\x0a``, a backslash doubled, an undecodable byte as ``\\xNN``), the span's
    backtick fence longer than any backtick run in the name. The :class:`FileChange` keeps the
    path itself."""
    text = path.translate(_UNPRINTABLE)
    if "`" not in text:
        return f"`{text}`"
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def format_file_changes(
    changes: Iterable[FileChange], labels: Mapping[FileChangeKind, str] = ENGLISH_LABELS
) -> str:
    """One ``- `path` label`` line per change (``(+a/-d)`` when a count is known, ``(failed)``
    for a change the CLI reported as failed), in the order given; the path as
    :func:`display_path` shows it, so each change is exactly one line."""
    lines = []
    for change in changes:
        line = f"- {display_path(change.path)} {labels[change.kind]}"
        if change.added_lines or change.removed_lines:
            line += f" (+{change.added_lines}/-{change.removed_lines})"
        if change.failed:
            line += " (failed)"
        lines.append(line)
    return "\n".join(lines)


_STRONG = (FileChangeKind.ADDED, FileChangeKind.DELETED)


def merge_changes(changes: Iterable[FileChange]) -> list[FileChange]:
    """One entry per path, sorted by path: added/deleted beat modified/written, real line counts
    beat zeros (spec §7.4's merge rule)."""
    merged: dict[str, FileChange] = {}
    for change in changes:
        old = merged.get(change.path)
        if old is None:
            merged[change.path] = change
            continue
        kind = old.kind if old.kind in _STRONG or change.kind not in _STRONG else change.kind
        if kind is FileChangeKind.WRITTEN:
            kind = change.kind
        merged[change.path] = attrs.evolve(
            old,
            kind=kind,
            added_lines=old.added_lines or change.added_lines,
            removed_lines=old.removed_lines or change.removed_lines,
            failed=old.failed and change.failed,
        )
    return [merged[path] for path in sorted(merged)]


def relative_path(path: str, workspace: str) -> str:
    """``path`` with forward slashes, relative to ``workspace`` when it lies under it, without
    leading ``./``; ``""`` for an empty path."""
    path = path.replace("\\", "/").strip()
    if not path:
        return ""
    root = workspace.replace("\\", "/").rstrip("/")
    if root and posixpath.isabs(path):
        norm = posixpath.normpath(path)
        if norm == root:
            return "."
        if norm.startswith(root + "/"):
            return norm[len(root) + 1 :]
        return norm
    while path.startswith("./"):
        path = path[2:]
    return posixpath.normpath(path) if path else ""


# -- tool events --------------------------------------------------------------------------------

#: A provider's write/edit tools: tool name → (argument keys that hold the path, kind). A key
#: may name a list of paths or of ``{"path": …}`` objects.
WriteTools = Mapping[str, tuple[Sequence[str], FileChangeKind]]


def _paths(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        for key in ("path", "file_path", "filePath", "file"):
            if isinstance(value.get(key), str):
                return [value[key]]
        return []
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return []


def changes_from_tool_call(
    tools: WriteTools, name: str, arguments: Any, workspace: str = ""
) -> list[FileChange]:
    """The file changes a write/edit tool call names: ``[]`` when ``name`` is not one of
    ``tools`` or its arguments hold no path (arguments of any JSON shape are accepted)."""
    spec = tools.get(name)
    if spec is None or not isinstance(arguments, Mapping):
        return []
    keys, kind = spec
    out = []
    for key in keys:
        for raw in _paths(arguments.get(key)):
            path = relative_path(raw, workspace)
            if path:
                out.append(FileChange(path=path, kind=kind))
    return merge_changes(out)


# -- snapshots ----------------------------------------------------------------------------------


class Stamp(NamedTuple):
    """What a snapshot keeps of a file: enough to tell that its content may have changed (a
    tuple, not an attrs class: a snapshot holds one per file)."""

    mtime_ns: int
    size: int
    inode: int = 0


def diff_snapshots(
    before: Mapping[str, Stamp],
    after: Mapping[str, Stamp],
    *,
    already_reported: Iterable[str] = (),
) -> list[FileChange]:
    """Files added, modified (any stamp field differs) or deleted between two snapshots, sorted
    by path, leaving out paths in ``already_reported``."""
    skip = set(already_reported)
    out = []
    for path, stamp in after.items():
        if path in skip:
            continue
        old = before.get(path)
        if old is None:
            out.append(FileChange(path=path, kind=FileChangeKind.ADDED))
        elif old != stamp:
            out.append(FileChange(path=path, kind=FileChangeKind.MODIFIED))
    out.extend(
        FileChange(path=path, kind=FileChangeKind.DELETED)
        for path in before
        if path not in after and path not in skip
    )
    out.sort(key=lambda c: c.path)
    return out


def refine_written(changes: Iterable[FileChange], before: Mapping[str, Stamp]) -> list[FileChange]:
    """WRITTEN changes become ADDED when the file was not in the ``before`` snapshot, MODIFIED
    when it was."""
    out = []
    for change in changes:
        if change.kind is FileChangeKind.WRITTEN:
            kind = FileChangeKind.MODIFIED if change.path in before else FileChangeKind.ADDED
            change = attrs.evolve(change, kind=kind)
        out.append(change)
    return out
