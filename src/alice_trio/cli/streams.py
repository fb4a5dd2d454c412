"""The one place the ``alice-trio`` command writes to stdout and stderr.

A stream that is missing (the command started with it closed: ``>&-``), closed by the reader
(``| head``: EPIPE) or that fails (``>/dev/full``: ENOSPC) never raises: the write is dropped,
the stream is marked lost and its file descriptor is pointed at ``/dev/null`` so the
interpreter's flush at exit stays quiet. Losing stderr (progress, messages) is not fatal;
:func:`stdout_outcome` tells the command how a lost stdout (the reply) ends it, per
:mod:`alice_trio.cli.exits`: a reader that closed early is exit 0, any other loss exit 1.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import TextIO

__all__ = [
    "MissingStream",
    "display_line",
    "display_text",
    "reset",
    "shown_as_is",
    "std",
    "stdout_outcome",
    "write_reply",
    "write_text",
]

#: a huge reply is written in pieces of this many characters (never encoded whole at once)
_CHUNK_CHARS = 1 << 20

#: id(stream) -> why it was lost ("" for a reader that closed the pipe)
_lost: dict[int, str] = {}
#: why the process's stdout was lost, when it was
_stdout_lost: list[str] = []


#: Control characters an agent's text may carry that a terminal would act on (ESC starts
#: sequences that move the cursor, clear the screen, set the title or write the clipboard;
#: C1 controls do the same in one byte): shown in caret or ``\\xNN`` form instead.
_CONTROLS = {c: f"^{chr(c + 64)}" for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS[0x7F] = "^?"
_CONTROLS.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
#: Unicode's bidirectional controls (embeddings, overrides, isolates, marks): a terminal that
#: lays text out by them shows a tool's command in another order than it runs ("Trojan
#: Source"); shown as ``<U+202E>`` instead
_CONTROLS.update(
    {
        c: f"<U+{c:04X}>"
        for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
    }
)
#: Unicode's line and paragraph separators: no terminal breaks a line there, but a log reader
#: that splits lines as Python does (``str.splitlines``) would start a forged one
_CONTROLS.update({c: f"<U+{c:04X}>" for c in (0x2028, 0x2029)})


def display_text(text: str) -> str:
    """``text`` with the control characters a terminal acts on made visible (tab and newline
    kept; ``\\r`` shows as ``^M``). Text without any is returned as is, at C speed."""
    if text.isprintable() or not any(ord(c) in _CONTROLS for c in text):
        return text
    return text.translate(_CONTROLS)


def display_line(text: str) -> str:
    """:func:`display_text` for one cell or line of a table or summary (a name or value from a
    config file, a CLI's output, a plugin): a newline shows as ``^J`` too, so it cannot start
    a forged line."""
    return display_text(text).replace("\n", "^J")


#: the ASCII characters :func:`display_text` changes (see :func:`shown_as_is`)
_ASCII_CONTROLS = tuple(chr(c) for c in _CONTROLS if c < 0x80)


def shown_as_is(texts: list[str]) -> bool:
    """Whether :func:`display_text` leaves every one of ``texts`` unchanged. ASCII texts are
    checked together: one join, then one ``in`` scan (memchr) per ASCII control character —
    a progress printer's batch of tool lines costs a small fraction of a ``str.isprintable``
    per text. Other texts are checked one by one."""
    block = "".join(texts)
    if block.isascii():
        return not any(control in block for control in _ASCII_CONTROLS)
    return all(display_text(text) is text for text in texts)


class MissingStream:
    """Stands for ``sys.stdout`` / ``sys.stderr`` when the process started without it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def isatty(self) -> bool:
        return False


def std(name: str) -> TextIO:
    """``sys.stdout`` or ``sys.stderr`` (``name``), or a :class:`MissingStream` for it (which
    :func:`write_text` treats as lost)."""
    stream = getattr(sys, name)
    return stream if stream is not None else MissingStream(name)  # type: ignore[return-value]


def reset() -> None:
    """Forget earlier losses (a new command in the same process, as in tests)."""
    _lost.clear()
    _stdout_lost.clear()


def _is_stdout(stream: TextIO | None) -> bool:
    return stream is sys.stdout or (stream is not None and stream is sys.__stdout__)


def _mark_lost(stream: TextIO | None, reason: str) -> None:
    if stream is not None:
        _lost[id(stream)] = reason
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            fd = -1
        if fd >= 0:
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(null, fd)
                finally:
                    os.close(null)
            except OSError:
                pass
    if (stream is None or _is_stdout(stream)) and not _stdout_lost:
        _stdout_lost.append(reason)


def write_text(stream: TextIO | None, text: str) -> bool:
    """Write ``text`` and flush; False (and the stream marked lost) when it cannot be written.
    ``None`` stands for a missing stdout (pass :func:`std` for a stream that may be missing).

    Written in pieces of at most 1 Mi characters; characters the stream cannot encode (a lone
    surrogate from a ``\\ud800`` escape) become ``?`` instead of failing the write."""
    if stream is None or isinstance(stream, MissingStream):
        if stream is None or stream.name == "stdout":
            _mark_lost(None, "stdout is closed")
        return False
    if id(stream) in _lost:
        return False
    buffer = getattr(stream, "buffer", None)
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        for i in range(0, len(text), _CHUNK_CHARS):
            piece = text[i : i + _CHUNK_CHARS]
            if buffer is not None:
                stream.flush()
                buffer.write(piece.encode(encoding, "replace"))
            else:
                stream.write(piece)
        if buffer is not None:
            buffer.flush()
        stream.flush()
    except BrokenPipeError:
        _mark_lost(stream, "")
        return False
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EBADF:
            reason = "it is closed"
        _mark_lost(stream, reason)
        return False
    except ValueError:  # I/O operation on closed file
        _mark_lost(stream, "it is closed")
        return False
    return True


def write_reply(stream: TextIO | None, text: str) -> bool:
    """:func:`write_text` of an agent's reply: on a terminal its control characters are shown,
    not obeyed (:func:`display_text`); to a pipe or file the reply goes byte for byte."""
    isatty = getattr(stream, "isatty", None)
    try:
        tty = bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        tty = False
    return write_text(stream, display_text(text) if tty else text)


def stdout_outcome() -> tuple[int, str] | None:
    """None while stdout took every write; else ``(exit code, message)``: ``(0, "")`` when
    its reader closed early, ``(1, "cannot write to stdout: …")`` when it was missing or
    failed (the reply is lost)."""
    from .exits import EXIT_FAILED, EXIT_OK

    if not _stdout_lost:
        return None
    reason = _stdout_lost[0]
    if not reason:
        return EXIT_OK, ""
    if reason == "stdout is closed":
        return EXIT_FAILED, "cannot write the reply: stdout is closed"
    return EXIT_FAILED, f"cannot write to stdout: {reason}"
