"""Showing a run as it happens: human progress on stderr (rich when installed) or JSON lines.

Both printers take the engine's ``on_raw_event`` callback (the CLI passes no ``on_progress``,
so every event — assistant messages, tool calls, file changes, retries — arrives here with its
kind). rich is imported lazily; without it (or with ``plain=True``) the output is plain text.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from ..models import RawEvent, RunResult

__all__ = ["JsonLinesPrinter", "ProgressPrinter", "result_json"]

_MAX_DETAIL = 300
#: raw event kinds shown without --verbose
_SHOWN = frozenset(
    {"assistant_text", "tool_use", "tool_result", "file_change", "retry", "error", "question",
     "reasoning", "dropped"}
)  # fmt: skip


def _short(text: str, limit: int = _MAX_DETAIL) -> str:
    text = text.strip()
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def result_json(
    result: RunResult | None,
    *,
    provider: str = "",
    profile: str = "",
    error: str | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    """The ``--json`` object of a run: the RunResult fields plus ``provider``, ``profile``,
    ``error`` (null on success) and ``error_type``."""
    out: dict[str, Any] = (result or RunResult()).to_dict()
    out["provider"] = provider
    out["profile"] = profile
    out["error"] = error
    out["error_type"] = error_type
    return out


class ProgressPrinter:
    """Live progress for humans on ``stream`` (default stderr)."""

    def __init__(
        self, stream: TextIO | None = None, *, plain: bool = False, verbose: bool = False
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbose = verbose
        self.console: Any = None
        if not plain:
            try:
                from rich.console import Console
            except ImportError:  # rich is an optional extra
                Console = None  # type: ignore[assignment,misc]
            if Console is not None:
                self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self._status: Any = None

    # -- a spinner while the turn runs (terminals only) --------------------------------------
    def start(self, what: str) -> None:
        if self.console is not None and self.console.is_terminal:
            self._status = self.console.status(what, spinner="dots")
            self._status.start()
        else:
            self._line("…", what, "dim")

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    # -- output -------------------------------------------------------------------------------
    def _line(self, label: str, text: str, style: str) -> None:
        if self.console is not None:
            from rich.markup import escape

            self.console.print(f"[{style}]{escape(label)}[/] {escape(text)}")
        else:
            self.stream.write(f"{label} {text}\n")
            self.stream.flush()

    def on_raw_event(self, event: RawEvent) -> None:
        kind = event.kind
        if kind not in _SHOWN and not self.verbose:
            return
        detail = event.detail
        if kind == "assistant_text":
            self._line("assistant›", detail.strip(), "bold cyan")
        elif kind == "tool_use":
            self._line("tool›", _short(detail.replace("\n", " ⏎ ")), "magenta")
        elif kind == "tool_result":
            self._line("  ↳", _short(detail.replace("\n", " ⏎ "), 160), "dim")
        elif kind == "file_change":
            self._line("file›", _short(detail), "green")
        elif kind == "retry":
            self._line("retry›", _short(detail), "yellow")
        elif kind == "error":
            self._line("error›", _short(detail), "bold red")
        elif kind == "reasoning":
            self._line("thinking›", _short(detail.replace("\n", " "), 160), "dim italic")
        elif kind == "question":
            self._line("question›", _short(detail), "bold yellow")
        elif kind == "dropped":
            self._line("note›", detail, "dim")
        else:
            self._line(f"{kind}›", _short(detail or event.line), "dim")

    def message(self, text: str, style: str = "dim") -> None:
        self._line("›", text, style)

    def summary(self, result: RunResult) -> None:
        """Thread id and usage after the reply."""
        if result.next_thread_id:
            self._line("thread:", result.next_thread_id, "dim")
        u = result.usage
        if u.has_usage:
            self._line(
                "usage:",
                f"{u.input_tokens} input ({u.cached_input_tokens} cached), "
                f"{u.output_tokens} output tokens",
                "dim",
            )

    def error(self, text: str) -> None:
        self._line("error:", text, "bold red")


class JsonLinesPrinter:
    """``--jsonl``: one JSON object per event on ``stream`` (default stdout), flushed at once:
    ``{"type": "event", "kind", "detail", "line"}`` then one ``{"type": "result", ...}``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def emit(self, obj: dict[str, Any]) -> None:
        self.stream.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.stream.flush()

    def on_raw_event(self, event: RawEvent) -> None:
        self.emit({"type": "event", "kind": event.kind, "detail": event.detail, "line": event.line})
