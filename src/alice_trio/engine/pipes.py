"""Reading a child's pipe: one chunk at a time, a broken or closed pipe reads as EOF."""

from __future__ import annotations

import trio

__all__ = ["READ_SIZE", "receive_chunk"]

#: bytes asked for per read (large chunks keep the framer and the scheduler off the hot path)
READ_SIZE = 256 * 1024


async def receive_chunk(stream: trio.abc.ReceiveStream) -> bytes:
    """The next chunk of ``stream``; ``b""`` at EOF, and also when the pipe broke or was closed
    under us (a crashed child is an end of output, not an error of the reader)."""
    try:
        return bytes(await stream.receive_some(READ_SIZE))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""
