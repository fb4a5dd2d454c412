"""The process's HTTP clients: one TLS context for all of them.

``httpx.AsyncClient()`` builds a new :class:`ssl.SSLContext` and loads the CA bundle into it for
every client (httpx 0.28): about 1 MB of C heap that stays with the process after the client is
closed, and 10–160 ms of CPU, per client. A driver that opens a client per conversation
(``opencode serve``: its own event subscription each) paid that for every conversation — measured
0.9 MB of our own process per opencode conversation (``benchmarks/capacity.py``). Every client
made here shares one context, built on first use (an :class:`ssl.SSLContext` may serve many
connections at once); a caller's own ``transport`` (tests, custom transports) is used as given.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

__all__ = ["async_client", "tls_context"]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` honoured, as
    httpx does), built once per process."""
    return httpx.create_ssl_context()


def async_client(
    *, transport: httpx.AsyncBaseTransport | None = None, **kw: Any
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` (``kw`` as httpx takes them) on the shared TLS context."""
    if transport is None:
        kw.setdefault("verify", tls_context())
    return httpx.AsyncClient(transport=transport, **kw)
