"""Transports for interactive sessions: a long-lived process (``process``), JSON-RPC over JSON
lines (``jsonrpc``), and HTTP + SSE (``http_sse``).

Internal: no stability promise (see :mod:`alice_trio`)."""
