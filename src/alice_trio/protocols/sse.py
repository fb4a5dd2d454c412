"""Server-sent events framing, sans I/O: :class:`SSEParser` turns bytes into event payloads (the
joined ``data:`` lines of each event; ``event:``/``id:``/comment lines are ignored; one leading
space after ``data:`` is removed). An event larger than ``max_frame_bytes`` raises
:class:`~alice_trio.errors.LineTooLongError` (never a silent stop, §13.19) and resets the parser.
:mod:`alice_trio.transports.http_sse` feeds it from an httpx stream.

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

from ..errors import LineTooLongError

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "SSEParser"]

DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024


class SSEParser:
    """Incremental SSE framing (see the module docstring); never blocks, never does I/O."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = b""
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += chunk
        out: list[str] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line, self._buf = self._buf[:nl], self._buf[nl + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            self._line(line, out)
        if len(self._buf) + self._size > self.max_frame_bytes:
            self._too_large(len(self._buf) + self._size)
        return out

    def feed_eof(self) -> list[str]:
        out: list[str] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._flush(out)
        return out

    def _line(self, line: bytes, out: list[str]) -> None:
        if not line:
            self._flush(out)
            return
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self._size += len(value) + 1
            if self._size > self.max_frame_bytes:
                self._too_large(self._size)
            self._data.append(value)

    def _flush(self, out: list[str]) -> None:
        if self._data:
            out.append(b"\n".join(self._data).decode("utf-8", errors="replace"))
        self._data = []
        self._size = 0

    def _too_large(self, size: int) -> None:
        self._data = []
        self._size = 0
        self._buf = b""
        raise LineTooLongError(
            f"server-sent event of {size} bytes (limit {self.max_frame_bytes})",
            limit=self.max_frame_bytes,
        )
