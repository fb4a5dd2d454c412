"""A bounded tail of a byte stream: keeps the last ``limit`` bytes, whatever the volume."""

from __future__ import annotations

__all__ = ["StderrTail"]


class StderrTail:
    """Append-only buffer that keeps only the last ``limit`` bytes (memory ≤ 2 × limit).

    ``total`` counts every byte ever written, so a flood is visible even though it is dropped.
    """

    __slots__ = ("_buf", "limit", "total")

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit = max(0, limit)
        self._buf = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if not self.limit:
            return
        if len(data) >= self.limit:
            self._buf[:] = data[-self.limit :]
            return
        self._buf += data
        if len(self._buf) > 2 * self.limit:
            del self._buf[: len(self._buf) - self.limit]

    def text(self) -> str:
        """The tail as text (UTF-8 with replacement), starting at a line boundary when cut."""
        data = bytes(self._buf[-self.limit :]) if self.limit else b""
        if self.total > len(data):
            nl = data.find(b"\n")
            if 0 <= nl < len(data) - 1:
                data = data[nl + 1 :]
        return data.decode("utf-8", errors="replace").strip()
