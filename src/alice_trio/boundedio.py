"""Reading a whole file with a size bound: a huge file (or ``/dev/zero``, a FIFO that never
ends) is an error, never a read until memory runs out."""

from __future__ import annotations

import errno
import os

__all__ = ["FileTooLargeError", "read_bounded"]


class FileTooLargeError(OSError):
    """The file holds more than the bound (``errno`` EFBIG; ``strerror`` says the bound)."""


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``; raises :class:`FileTooLargeError` (an ``OSError``) when it holds
    more than ``limit`` bytes (at most ``limit + 1`` bytes are ever read), ``OSError`` when it
    cannot be read (a folder: ``EISDIR``)."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(errno.EFBIG, f"larger than {_size(limit)}", os.fspath(path))
    return data


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"
