"""Pure line framing: bytes in, complete lines out, with a byte limit per line.

No I/O and no trio: the engine feeds whatever ``receive_some`` returned, and the framer hands
back complete lines (without the ``\\n`` and a trailing ``\\r``). A line longer than
``max_line_bytes`` is never buffered past the limit: the framer drops its bytes as they arrive
and reports one :class:`OversizedLine` with the full size once its newline (or EOF) comes, so
memory stays bounded whatever the CLI prints. The engine decides what an oversized line means
(a typed error or a skipped-and-reported line).
"""

from __future__ import annotations

import attrs

__all__ = ["DEFAULT_MAX_LINE_BYTES", "LineFramer", "OversizedLine", "decode_line"]

DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
_HEAD = 200  # bytes of an oversized line kept for diagnostics


@attrs.frozen
class OversizedLine:
    """A line whose length exceeded the limit; ``size`` is its full length in bytes and
    ``head`` its first bytes (at most 200), for diagnostics."""

    size: int
    head: bytes = b""
    #: False for an eager report (``LineFramer(eager=True)``): ``size`` is what arrived so far,
    #: the line is longer
    complete: bool = True

    def describe(self) -> str:
        """``"a line of N bytes"`` (``"of at least N bytes"`` for an eager report)."""
        return f"a line of {'' if self.complete else 'at least '}{self.size} bytes"


class LineFramer:
    """Split a byte stream into lines.

    ``feed(data)`` returns the lines completed by ``data``; ``feed_eof()`` returns the final
    unterminated line, if any. Any split of the same stream into chunks gives the same lines.

    ``eager``: report an oversized line as soon as it passes the limit (``complete=False``)
    instead of at its newline — for callers that fail on it, so a CLI that prints an endless
    line without a newline is caught at once; the rest of that line is then dropped unreported.
    """

    __slots__ = ("_buf", "_discarding", "_eof", "_head", "_reported", "eager", "max_line_bytes")

    def __init__(
        self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, eager: bool = False
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._discarding = 0  # >0: bytes seen so far of an oversized line being skipped
        self._head = b""
        self._eof = False
        self.eager = eager
        self._reported = False  # the oversized line being dropped was reported eagerly

    @property
    def buffered(self) -> int:
        """Bytes held for the current partial line (never more than ``max_line_bytes``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | OversizedLine]:
        if self._eof:
            raise RuntimeError("feed() after feed_eof()")
        out: list[bytes | OversizedLine] = []
        if not data:
            return out
        limit = self.max_line_bytes
        start = 0
        n = len(data)
        while start < n:
            if not self._discarding and not self._buf:
                # no line in progress: the complete lines up to the chunk's last newline are
                # split off at once (C speed) when together they are within the limit (then no
                # line can be over it, and the copy is bounded like a buffered line)
                last = data.rfind(b"\n", start)
                if last >= 0 and last - start <= limit:
                    block = data[start:last]
                    if b"\r" in block:
                        out += [_strip_cr(line) for line in block.split(b"\n")]
                    else:
                        out += block.split(b"\n")
                    start = last + 1
                    continue
            nl = data.find(b"\n", start)
            if self._discarding:
                end = n if nl < 0 else nl
                if len(self._head) < _HEAD:  # the head is the line's first bytes
                    self._head += data[start : min(end, start + _HEAD - len(self._head))]
                if nl < 0:
                    self._discarding += n - start
                    return out
                size = self._discarding + (nl - start)
                if not self._reported:
                    out.append(OversizedLine(size, self._head))
                self._reported = False
                self._discarding = 0
                self._head = b""
                start = nl + 1
                continue
            if nl < 0:
                # partial line: keep it, unless it already exceeds the limit
                if len(self._buf) + (n - start) > limit:
                    self._start_discard(data[start:])
                    if self.eager:
                        out.append(OversizedLine(self._discarding, self._head, complete=False))
                        self._reported = True
                else:
                    self._buf += data[start:]
                return out
            if self._buf:
                total = len(self._buf) + (nl - start)
                if total > limit:
                    self._buf += data[start : min(nl, start + _HEAD)]
                    out.append(OversizedLine(total, bytes(self._buf[:_HEAD])))
                    self._buf.clear()
                else:
                    self._buf += data[start:nl]
                    out.append(_strip_cr(bytes(self._buf)))
                    self._buf.clear()
            else:
                if nl - start > limit:
                    out.append(OversizedLine(nl - start, data[start : min(nl, start + _HEAD)]))
                else:
                    out.append(_strip_cr(data[start:nl]))
            start = nl + 1
        return out

    def _start_discard(self, rest: bytes) -> None:
        self._head = bytes((self._buf + rest[:_HEAD])[:_HEAD])
        self._discarding = len(self._buf) + len(rest)
        self._buf.clear()

    def feed_eof(self) -> list[bytes | OversizedLine]:
        """Signal end of stream; returns the unterminated last line, if any."""
        self._eof = True
        if self._discarding:
            size, self._discarding = self._discarding, 0
            return [] if self._reported else [OversizedLine(size, self._head)]
        if self._buf:
            line = _strip_cr(bytes(self._buf))
            self._buf.clear()
            return [line]
        return []


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


def decode_line(line: bytes) -> str:
    """UTF-8 with replacement: non-UTF-8 output never crashes a run."""
    return line.decode("utf-8", errors="replace")
