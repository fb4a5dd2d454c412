"""Showing a run as it happens, at a cost bounded by what a reader can take in.

:class:`ProgressPrinter` takes the engine's ``on_raw_event`` callback (the CLI passes no
``on_progress``, so every event — assistant messages, tool calls, file changes, retries — arrives
here with its kind). The callback never writes; the output happens in frames (:meth:`run`):

* **live** (the stream is a terminal): at most :data:`FRAME_SECONDS` apart, each frame prints
  the newest :data:`LIVE_LINES` events that arrived since the last one (the callback keeps only
  those and counts the others, shown as one ``… N more events`` line) and redraws a one-line
  status (spinner, elapsed time, event count) that is erased again before anything else is
  written. A flood of 200,000 events costs a few hundred frames, not 200,000 terminal writes.
* **lines** (a file or a pipe): the callback formats one plain line per event (no colours, no
  markup), written in batches (:data:`BATCH_BYTES` or one frame interval, whichever comes first).

The ``alice-trio run`` command passes :meth:`ProgressPrinter.on_events` (``RunRequest.on_events``:
the typed events, a batch per read of the agent's output): the same output as
:meth:`ProgressPrinter.on_raw_event` per event, without a ``RawEvent`` per event, one clock read
per batch, and in live mode only the newest events of a batch formatted (the others counted).

Texts are clipped when formatted (``head … [N bytes] … tail``): a 50 MB assistant
message costs a slice of a few hundred characters, never a copy of the text. The frame task
(:meth:`ProgressPrinter.run`) is cancel-safe: cancelling it loses nothing, :meth:`close` (or
:meth:`flush`) writes what is still buffered. Without a running frame task (``replay``) every
call writes at once.

:class:`JsonLinesPrinter` is ``--jsonl``: one JSON object per event, batched the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import trio

from ..models import RawEvent, RunResult, TurnEvent, raw_detail
from .streams import display_text, shown_as_is, std, write_text

__all__ = [
    "BATCH_BYTES",
    "FRAME_SECONDS",
    "LIVE_LINES",
    "PROGRESS_RATE",
    "JsonLinesPrinter",
    "ProgressPrinter",
    "clip",
    "utf8_len",
    "write_text",
]

#: the longest time buffered progress waits before it is written (also the live frame rate)
FRAME_SECONDS = 0.1
#: lines-mode output is written when this much is buffered (or a frame interval passed)
BATCH_BYTES = 1 << 16
#: newest events shown per live frame; older ones in the same frame are only counted
LIVE_LINES = 6
#: a one-line detail (tool call, reasoning, …) is clipped to this many characters
_LINE_CHARS = 300
#: an assistant message shown in progress is clipped to this many characters
_TEXT_CHARS = 1200
#: the kinds shown without --verbose: kind → (label, ANSI style, keep newlines, clip length)
_STYLES: dict[str, tuple[str, str, bool, int]] = {
    "assistant_text": ("assistant›", "1;36", True, _TEXT_CHARS),
    "tool_use": ("tool›", "35", False, _LINE_CHARS),
    "tool_result": ("  ↳", "2", False, 160),
    "file_change": ("file›", "32", False, _LINE_CHARS),
    "retry": ("retry›", "33", False, _LINE_CHARS),
    "error": ("error›", "1;31", False, 2000),
    "reasoning": ("thinking›", "2;3", False, 160),
    "question": ("question›", "1;33", False, 2000),
    "dropped": ("note›", "2", False, _LINE_CHARS),
    "skipped": ("…", "2", False, _LINE_CHARS),
}
#: ``RunRequest.informational_rate`` of ``alice-trio run`` without ``--verbose``: a flood
#: of tool calls shows this many a second and one ``… N events skipped`` line for the rest,
#: and the events it does not show are not built (the run's cost stays the agent's)
PROGRESS_RATE = 100
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
#: characters per write when a long text goes out (bounds the encoded copy)
_CHUNK_CHARS = 1 << 20
#: the bookkeeping kinds ``on_events`` delivers and ``on_raw_event`` never sees: not shown
_BOOKKEEPING = frozenset({"thread_started", "turn_started"})
#: what the printer holds back or keeps for the next frame: the event as it arrived
_Event = RawEvent | TurnEvent


def _kind(event: _Event) -> str:
    return event.kind if isinstance(event, RawEvent) else event.kind._value_


def _detail(event: _Event) -> str:
    return event.detail if isinstance(event, RawEvent) else raw_detail(event)


def _line(event: _Event) -> str:
    return event.line if isinstance(event, RawEvent) else event.raw.strip()


def utf8_len(text: str) -> int:
    """UTF-8 size of ``text`` without encoding it whole (chunks of 1 Mi characters)."""
    if text.isascii():
        return len(text)
    return sum(
        len(text[i : i + _CHUNK_CHARS].encode("utf-8", "surrogatepass"))
        for i in range(0, len(text), _CHUNK_CHARS)
    )


def clip(text: str, limit: int, *, one_line: bool = False) -> str:
    """``text`` stripped, at most about ``limit`` characters: a longer one becomes
    ``head … [N bytes] … tail``. Only the kept parts are copied; ``one_line`` turns newlines
    into ``⏎``."""
    n = len(text)
    if n > limit + 64:
        head, tail = text[: limit * 2 // 3].strip(), text[n - limit // 3 :].strip()
        text = f"{head} … [{utf8_len(text):,} bytes] … {tail}"
    else:
        text = text.strip()
    if one_line and "\n" in text:
        text = text.replace("\r\n", "\n").replace("\n", " ⏎ ")
    return text


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


class ProgressPrinter:
    """Progress for humans on ``stream`` (default stderr); see the module docstring.

    ``live`` defaults to whether ``stream`` is a terminal; ``plain`` turns colours and the
    status line off (``NO_COLOR`` turns colours off). ``hold_reply``: the newest assistant
    message is written only once a later event shows it was not the final reply, and
    :meth:`finish` drops it when it is the reply (printed on stdout anyway): the reply is then
    shown once, not twice, when stdout and stderr are the same terminal.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        plain: bool = False,
        verbose: bool = False,
        live: bool | None = None,
        hold_reply: bool = False,
        title: str = "",
    ) -> None:
        self.stream = stream if stream is not None else std("stderr")
        self.verbose = verbose
        self.live = _isatty(self.stream) if live is None else live
        self.status_line = self.live and not plain
        self.color = self.status_line and not os.environ.get("NO_COLOR")
        self.hold_reply = hold_reply
        self.title = title
        self.events = 0
        self._held: _Event | None = None
        self._lines: list[str] = []  # lines mode: formatted, not yet written
        self._size = 0
        self._recent: deque[_Event] = deque(maxlen=LIVE_LINES)  # live: the newest events
        self._skipped: Counter[str] = Counter()  # live mode: kinds not shown this frame
        self._last_write = time.monotonic()
        self._started = self._last_write
        self._frames = 0
        self._status_shown = False
        self._active = False  # a turn runs: the status line may be drawn
        self._ticking = False
        self._last_kind = ""
        self._fast: dict[str, tuple[str, bool, int]] | None = None  # see _fast_styles

    # -- the frame task -------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write buffered progress every :data:`FRAME_SECONDS` (and redraw the status line)
        until cancelled. Cancel-safe: what is still buffered is written by :meth:`close`."""
        self._ticking = True
        task_status.started()
        try:
            while True:
                await trio.sleep(FRAME_SECONDS)
                self._frame()
        finally:
            self._ticking = False

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """Buffer as under a running frame task, without one (``replay``: events arrive all at
        once): lines are written in batches of :data:`BATCH_BYTES`, the rest on leaving."""
        self._ticking = True
        try:
            yield
        finally:
            self._ticking = False
            self._frame()

    def start(self) -> None:
        """A turn starts: from now on (after half a second without events) the status line
        is drawn, until :meth:`close`."""
        self._active = True
        self._started = time.monotonic()
        self.events = 0
        self._last_kind = ""

    def close(self) -> None:
        """Write what is buffered and erase the status line (the turn is over)."""
        self._active = False
        self._frame()

    flush = close

    # -- events ---------------------------------------------------------------------------
    def on_raw_event(self, event: RawEvent) -> None:
        """The ``on_raw_event`` callback: formats and buffers; never blocks."""
        if event.kind not in _STYLES and not self.verbose:
            return
        if not self._active:
            self.start()
        self._take(event)

    def on_events(self, events: Sequence[TurnEvent]) -> None:
        """The ``on_events`` callback (a batch of typed events): what :meth:`on_raw_event`
        shows for each event's ``RawEvent``, at a per-batch cost where it can; never blocks."""
        if self.live or self.hold_reply or not self._ticking:
            self._take_all(events)
            return
        # lines mode, the hot path: each shown event formatted into a line at once; the texts'
        # control characters checked for the whole batch (at C speed), not text by text
        lines, texts, last = self._format_batch(events, careful=False)
        if texts and not shown_as_is(texts):  # an agent's ESC, CR, …: shown, not obeyed
            lines, texts, last = self._format_batch(events, careful=True)
        if not lines:
            return
        if not self._active:
            self.start()
        self.events += len(lines)
        self._last_kind = last
        self._lines += lines
        self._size += sum(map(len, lines))
        if self._size >= BATCH_BYTES or time.monotonic() - self._last_write >= FRAME_SECONDS:
            self._frame()

    def _format_batch(
        self, events: Sequence[TurnEvent], *, careful: bool
    ) -> tuple[list[str], list[str], str]:
        """The lines of the shown ``events`` (as :meth:`_format` writes them), the agent texts
        they show on the fast path, and the last shown kind. ``careful``: each text's control
        characters made visible (:func:`display_text`); else the caller checks ``texts``."""
        fast = self._fast_styles()
        verbose = self.verbose
        lines: list[str] = []
        append = lines.append
        texts: list[str] = []
        add_text = texts.append
        last = ""
        for event in events:
            kind = event.kind._value_
            style = fast.get(kind)
            if style is None or event.question is not None:  # rare: the general path
                if style is None and kind not in _STYLES and (not verbose or kind in _BOOKKEEPING):
                    continue
                line = self._format(event)
            else:
                prefix, keep, limit = style
                text = event.text
                if (
                    len(text) > limit
                    or (not keep and "\n" in text)
                    or text.strip() != text  # no copy when there is nothing to strip
                ):
                    text = clip(text, limit, one_line=not keep)
                if careful:
                    text = display_text(text)
                else:
                    add_text(text)
                if keep and "\n" in text:
                    text = _indented(text)
                line = f"{prefix}{text}\n"
            append(line)
            last = kind
        return lines, texts, last

    def _fast_styles(self) -> dict[str, tuple[str, bool, int]]:
        """kind → (the line's label as printed, keep newlines, clip length), for the kinds whose
        detail is their text (not ``error``, whose detail is its error message)."""
        fast = self._fast
        if fast is None:
            fast = self._fast = {
                kind: (self._paint(label, "", ansi)[:-2] + " ", keep, limit)
                for kind, (label, ansi, keep, limit) in _STYLES.items()
                if kind != "error"
            }
        return fast

    def _take_all(self, events: Sequence[TurnEvent]) -> None:
        """:meth:`on_events` event by event (live mode, a held reply, no frame task); live,
        what a long batch would push out of the frame is only counted."""
        verbose = self.verbose
        shown = [
            e
            for e in events
            if e.kind._value_ in _STYLES or (verbose and e.kind._value_ not in _BOOKKEEPING)
        ]
        if not shown:
            return
        if not self._active:
            self.start()
        cut = len(shown) - LIVE_LINES - 1
        if self.live and self._ticking and cut > 0:
            # the same as adding them one by one: at least LIVE_LINES events follow each of
            # these (and a held reply, shown before the next event), so all are pushed out
            skipped = self._skipped
            for old in self._recent:
                skipped[_kind(old)] += 1
            self._recent.clear()
            if self._held is not None:
                skipped[_kind(self._held)] += 1
                self._held = None
            skipped.update([e.kind._value_ for e in shown[:cut]])
            self.events += cut
            shown = shown[cut:]
        for event in shown:
            self._take(event)

    def _take(self, event: _Event) -> None:
        """One shown event: counted, a reply maybe held back (``hold_reply``), buffered."""
        kind = _kind(event)
        self.events += 1
        self._last_kind = kind
        if self.hold_reply and kind == "assistant_text":
            held, self._held = self._held, event
            if held is None:
                return
            event = held
        elif self._held is not None and kind != "skipped":  # a count says nothing of the reply
            held, self._held = self._held, None
            self._add_event(held)
        self._add_event(event)

    def finish(self, reply: str) -> None:
        """The run ended with ``reply``: a held-back assistant message is shown unless it is
        that reply."""
        held, self._held = self._held, None
        if held is not None and not _same_text(_detail(held), reply):
            self._add_event(held)

    def message(self, text: str, style: str = "2") -> None:
        self._add_line(self._paint("›", clip(text, 2000), style))

    def error(self, text: str) -> None:
        self._add_line(self._paint("error:", text.rstrip(), "1;31"))

    def summary(self, result: RunResult) -> None:
        """Thread id and usage after the reply."""
        if result.next_thread_id:
            self._add_line(self._paint("thread:", result.next_thread_id, "2"))
        u = result.usage
        if u.has_usage:
            text = (
                f"{u.input_tokens} input ({u.cached_input_tokens} cached), "
                f"{u.output_tokens} output tokens"
            )
            self._add_line(self._paint("usage:", text, "2"))

    # -- formatting -----------------------------------------------------------------------
    def _format(self, event: _Event) -> str:
        kind = _kind(event)
        style = _STYLES.get(kind)
        if style is None:
            label, ansi, keep, limit = f"{kind}›", "2", False, _LINE_CHARS
            text = _detail(event) or _line(event)
        else:
            label, ansi, keep, limit = style
            text = _detail(event)
        if (
            len(text) > limit
            or (not keep and "\n" in text)
            or text.strip() != text  # no copy when there is nothing to strip
        ):
            text = clip(text, limit, one_line=not keep)  # details arrive stripped: rarely taken
        if not text.isprintable():  # an agent's ESC or CR must not drive the terminal
            text = _indented(display_text(text))
        if self.color:
            return f"\x1b[{ansi}m{label}\x1b[0m {text}\n"
        return f"{label} {text}\n"

    def _paint(self, label: str, text: str, ansi: str) -> str:
        text = _indented(display_text(text))
        if self.color:
            return f"\x1b[{ansi}m{label}\x1b[0m {text}\n"
        return f"{label} {text}\n"

    # -- output ---------------------------------------------------------------------------
    def _add_event(self, event: _Event) -> None:
        """Buffer one event: live, only the newest :data:`LIVE_LINES` are kept (and formatted
        at the next frame), the others counted; lines mode, formatted now and batched."""
        if self.live:
            recent = self._recent
            if len(recent) == LIVE_LINES:
                self._skipped[_kind(recent[0])] += 1
            recent.append(event)
            if not self._ticking:
                self._frame()
            return
        line = self._format(event)
        self._lines.append(line)
        self._size += len(line)
        if (
            not self._ticking
            or self._size >= BATCH_BYTES
            or time.monotonic() - self._last_write >= FRAME_SECONDS
        ):
            self._frame()

    def _add_line(self, line: str) -> None:
        """A message, an error, the summary: written at once, after the events before it."""
        if self.live:
            self._move_recent_out()
        self._lines.append(line)
        self._size += len(line)
        self._frame()

    def _move_recent_out(self) -> None:
        if self._skipped:
            total = sum(self._skipped.values())
            kinds = ", ".join(f"{k} {n:,}" for k, n in self._skipped.most_common(4))
            self._lines.append(self._paint("…", f"{total:,} more events ({kinds})", "2"))
            self._skipped.clear()
        self._lines.extend(self._format(event) for event in self._recent)
        self._recent.clear()

    def _frame(self) -> None:
        """Write buffered lines (and, live, redraw the status line below them)."""
        if self.live:
            self._move_recent_out()
        self._last_write = time.monotonic()
        draw_status = (
            self.status_line
            and self._active
            and (self.events > 0 or self._last_write - self._started >= 0.5)
        )
        if not self._lines and not self._status_shown and not draw_status:
            return
        out = "\r\x1b[2K" if self._status_shown else ""
        self._status_shown = False
        if self._lines:
            out += "".join(self._lines)
            self._lines.clear()
            self._size = 0
        if draw_status:
            out += self._status()
            self._status_shown = True
        try:
            write_text(self.stream, out)
        except (BrokenPipeError, ValueError):  # stream closed under us: progress is optional
            self.status_line = False

    def _status(self) -> str:
        self._frames += 1
        spin = _SPINNER[self._frames % len(_SPINNER)]
        elapsed = self._last_write - self._started
        text = f"{self.title or 'working'} · {elapsed:.0f} s · {self.events:,} events"
        if self._last_kind:
            text += f" · last: {self._last_kind}"
        width = shutil.get_terminal_size((80, 24)).columns
        text = text[: max(10, width - 3)]
        return f"\x1b[36m{spin}\x1b[0m {text}" if self.color else f"{spin} {text}"


def _indented(text: str) -> str:
    """``text`` with every line after the first indented by two spaces: a line of progress that
    starts in the first column is always one of ours (``thread:``, ``usage:``, ``error:``, a
    label), never one an agent's text forged."""
    return text.replace("\n", "\n  ") if "\n" in text else text


def _same_text(a: str, b: str) -> bool:
    if a is b:
        return True
    if abs(len(a) - len(b)) > 64:
        return False
    return a.strip() == b.strip()


class JsonLinesPrinter:
    """``--jsonl``: one JSON object per event on ``stream`` (default stdout):
    ``{"type": "event", "kind", "detail", "line"}``, then one ``{"type": "result", …}``
    (the result schema, see :mod:`alice_trio.cli.result`). Events are batched like
    :class:`ProgressPrinter`'s lines mode (run :meth:`run` beside the turn; without it every
    event is written at once)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else std("stdout")
        self._lines: list[str] = []
        self._size = 0
        self._last_write = time.monotonic()
        self._ticking = False
        #: a write failed: the stream is gone (see :meth:`run`)
        self.lost = False

    async def run(self) -> None:
        """Flush every :data:`FRAME_SECONDS` until cancelled (cancel-safe); returns once the
        stream is lost (its reader closed it, or it failed): nobody reads the events any more,
        so the caller ends the run instead of letting the agent work on unseen."""
        self._ticking = True
        try:
            while not self.lost:
                await trio.sleep(FRAME_SECONDS)
                self.flush()
        finally:
            self._ticking = False

    def flush(self) -> None:
        self._last_write = time.monotonic()
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            self._size = 0
            if not write_text(self.stream, text):
                self.lost = True

    close = flush

    def emit(self, obj: dict[str, Any]) -> None:
        self._lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
        self.flush()

    def on_raw_event(self, event: RawEvent) -> None:
        self._add(event.kind, event.detail, event.line)
        self._maybe_flush()

    def on_events(self, events: Sequence[TurnEvent]) -> None:
        """The ``on_events`` callback: the object :meth:`on_raw_event` writes for each event's
        ``RawEvent`` (the bookkeeping ``thread_started`` / ``turn_started`` are not written)."""
        for event in events:
            kind = event.kind._value_
            if kind not in _BOOKKEEPING:
                self._add(kind, raw_detail(event), event.raw.strip())
        self._maybe_flush()

    def _add(self, kind: str, detail: str, line: str) -> None:
        text = json.dumps(
            {"type": "event", "kind": kind, "detail": detail, "line": line}, ensure_ascii=False
        )
        self._lines.append(text + "\n")
        self._size += len(text)

    def _maybe_flush(self) -> None:
        if (
            not self._ticking
            or self._size >= BATCH_BYTES
            or time.monotonic() - self._last_write >= FRAME_SECONDS
        ):
            self.flush()
