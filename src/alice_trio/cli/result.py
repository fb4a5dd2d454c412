"""The one result object ``run --json``, ``run --jsonl`` (its last line) and ``replay --json``
print, and its JSON Schema (:data:`RESULT_SCHEMA`, documented in ``docs/cli.md``).

Every field is always present. ``schema`` is :data:`SCHEMA_VERSION`; it changes only when a
field is removed or changes meaning (new fields may be added within one version).
"""

from __future__ import annotations

from typing import Any

from ..errors import AliceError
from ..file_changes import json_path
from ..models import RunResult

__all__ = ["EVENT_SCHEMA", "RESULT_SCHEMA", "SCHEMA_VERSION", "result_json"]

SCHEMA_VERSION = 1

_USAGE = {
    "type": "object",
    "required": ["input_tokens", "cached_input_tokens", "output_tokens"],
    "additionalProperties": False,
    "properties": {
        "input_tokens": {"type": "integer", "minimum": 0},
        "cached_input_tokens": {"type": "integer", "minimum": 0},
        "output_tokens": {"type": "integer", "minimum": 0},
    },
}

_FILE_CHANGE = {
    "type": "object",
    "required": ["path", "path_bytes", "kind", "added_lines", "removed_lines", "failed"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string"},
        # the exact name, base64, when it is not UTF-8 (``path`` shows its bytes as \xNN)
        "path_bytes": {"type": ["string", "null"], "contentEncoding": "base64"},
        "kind": {"enum": ["added", "modified", "deleted", "written"]},
        "added_lines": {"type": "integer", "minimum": 0},
        "removed_lines": {"type": "integer", "minimum": 0},
        "failed": {"type": "boolean"},
    },
}

_FIELDS = (
    "schema", "command", "ok", "reply", "next_thread_id", "goal_done", "usage", "file_changes",
    "provider", "profile", "error", "error_type", "stderr_tail",
)  # fmt: skip

#: JSON Schema (draft 2020-12) of the result object
RESULT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "alice-trio result",
    "type": "object",
    "required": list(_FIELDS),
    "additionalProperties": False,
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "command": {"enum": ["run", "replay"]},
        "ok": {"type": "boolean"},
        "reply": {"type": "string"},
        "next_thread_id": {"type": "string"},
        "goal_done": {"type": "boolean"},
        "usage": _USAGE,
        "file_changes": {"type": "array", "items": _FILE_CHANGE},
        "provider": {"type": "string"},
        "profile": {"type": "string"},
        "error": {"type": ["string", "null"]},
        "error_type": {"type": ["string", "null"]},
        "stderr_tail": {"type": "string"},
    },
    # ok ⇔ no error
    "if": {"properties": {"ok": {"const": True}}},
    "then": {"properties": {"error": {"type": "null"}, "error_type": {"type": "null"}}},
    "else": {"properties": {"error": {"type": "string"}, "error_type": {"type": "string"}}},
}

#: JSON Schema of one ``--jsonl`` event line (the last line is ``{"type": "result", …}``)
EVENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "alice-trio --jsonl event",
    "type": "object",
    "required": ["type", "kind", "detail", "line"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "event"},
        "kind": {"type": "string"},
        "detail": {"type": "string"},
        "line": {"type": "string"},
    },
}


def result_json(
    result: RunResult | None,
    *,
    command: str,
    provider: str = "",
    profile: str = "",
    error: str | None = None,
    error_type: str | None = None,
    stderr_tail: str = "",
) -> dict[str, Any]:
    """The result object (see :data:`RESULT_SCHEMA`) of a finished, failed or interrupted
    run; ``result`` is the run's result or the error's partial result."""
    base = (result or RunResult()).to_dict()
    return {
        "schema": SCHEMA_VERSION,
        "command": command,
        "ok": error is None,
        "reply": base["reply"],
        "next_thread_id": base["next_thread_id"],
        "goal_done": bool(base["goal_done"]),
        "usage": base["usage"],
        "file_changes": [_file_change(change) for change in base["file_changes"]],
        "provider": provider,
        "profile": profile,
        "error": error,
        "error_type": error_type if error is not None else None,
        "stderr_tail": stderr_tail,
    }


def _file_change(change: dict[str, Any]) -> dict[str, Any]:
    """A file change of the result: its path as text (a name that is not UTF-8 with its bytes
    as ``\\xNN``) and, for such a name, its exact bytes (see
    :func:`~alice_trio.file_changes.json_path`)."""
    path, path_bytes = json_path(change["path"])
    return {"path": path, "path_bytes": path_bytes,
            **{k: v for k, v in change.items() if k != "path"}}  # fmt: skip


def error_json(
    error: AliceError, *, command: str, provider: str = "", profile: str = ""
) -> dict[str, Any]:
    """The result object of a run that failed with ``error``."""
    return result_json(
        error.partial,
        command=command,
        provider=provider,
        profile=profile,
        error=error.message,
        error_type=type(error).__name__,
        stderr_tail=error.stderr_tail,
    )
