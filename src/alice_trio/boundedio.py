"""Reading a whole file with a size bound: a huge file (or ``/dev/zero``, a FIFO that never
ends) is an error, never a read until memory runs out.

A pipe, FIFO or terminal is read in waits of at most :data:`WAIT_SLICE` seconds: a signal that
lands just before a blocking ``read()`` would otherwise be handled only once that read returns
(Python raises ``KeyboardInterrupt`` between bytecodes, and a FIFO whose writer stays open never
returns), so Ctrl-C or SIGTERM could not end the command. Opening a FIFO never blocks either.
"""

from __future__ import annotations

import errno
import os
import select
import stat

__all__ = ["WAIT_SLICE", "FileTooLargeError", "read_bounded", "read_fd_bounded"]

#: the longest wait for data on a pipe, FIFO or terminal before pending signals are looked at
WAIT_SLICE = 0.1

_CHUNK = 1 << 20


class FileTooLargeError(OSError):
    """The file holds more than the bound (``errno`` EFBIG; ``strerror`` says the bound)."""


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``; raises :class:`FileTooLargeError` (an ``OSError``) when it holds
    more than ``limit`` bytes (at most ``limit + 1`` bytes are ever read), ``OSError`` when it
    cannot be read (a folder: ``EISDIR``). A FIFO is waited for (a writer, then its data)
    without ever blocking a pending signal."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.set_blocking(fd, True)  # our own file description: reads wait in poll() below
        return read_fd_bounded(fd, limit, name=os.fspath(path))
    finally:
        os.close(fd)


def read_fd_bounded(fd: int, limit: int, *, name: str = "") -> bytes:
    """All the bytes of the open descriptor ``fd`` up to its end (it is not closed); raises
    :class:`FileTooLargeError` past ``limit`` bytes. A descriptor that is not a regular file is
    polled in :data:`WAIT_SLICE` waits, so a signal's exception is raised within one slice."""
    status = os.fstat(fd)
    if stat.S_ISREG(status.st_mode) or not hasattr(select, "poll"):
        with open(fd, "rb", closefd=False) as f:
            # a buffer of the file's size, not of the bound (a 1 kB transcript is not a 64 MiB
            # allocation); a file that grew since the stat is read on, up to the bound
            first = min(status.st_size, limit) + 1
            data = f.read(first)
            if len(data) == first and first <= limit:
                data += f.read(limit + 1 - first)
    else:
        data = _read_polled(fd, limit)
    if len(data) > limit:
        raise FileTooLargeError(errno.EFBIG, f"larger than {_size(limit)}", name or None)
    return data


def _read_polled(fd: int, limit: int) -> bytes:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        if not poller.poll(WAIT_SLICE * 1000):
            continue  # back in Python between waits: a pending signal is raised here
        try:
            chunk = os.read(fd, min(limit + 1 - size, _CHUNK))
        except BlockingIOError:  # a descriptor someone else made non-blocking
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n} bytes"
