"""Server-sent events over httpx: an async reader over the pure frame parser.

:class:`~alice_trio.protocols.sse.SSEParser` (re-exported here) turns bytes into event payloads;
an event larger than ``max_frame_bytes`` raises :class:`~alice_trio.errors.LineTooLongError`
(never a silent stop, §13.19). :func:`read_events` streams a ``GET`` with httpx and yields the
payloads; it calls ``on_open()`` once the response headers arrived — the subscription is live
from then on, so a caller can wait for that before sending anything whose events it needs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

import httpx

from ..errors import ProtocolError
from ..protocols.sse import DEFAULT_MAX_FRAME_BYTES, SSEParser

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "SSEParser", "read_events"]


async def read_events(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    on_open: Callable[[], Awaitable[None] | None] | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> AsyncGenerator[str, None]:
    """Yield the payload of each event of ``GET url`` until the server ends the stream.

    Raises :class:`ProtocolError` for a non-2xx answer, ``httpx`` transport errors as they come.
    """
    parser = SSEParser(max_frame_bytes)
    headers = {"Accept": "text/event-stream"}
    async with client.stream("GET", url, params=params, headers=headers, timeout=None) as resp:
        if resp.status_code // 100 != 2:
            body = (await resp.aread())[:4096].decode("utf-8", errors="replace").strip()
            raise ProtocolError(f"GET {url} failed status={resp.status_code} body={body}")
        if on_open is not None:
            result = on_open()
            if result is not None:
                await result
        async for chunk in resp.aiter_raw():
            for payload in parser.feed(chunk):
                yield payload
        for payload in parser.feed_eof():
            yield payload
