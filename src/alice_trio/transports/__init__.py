"""Transports for interactive sessions: a long-lived process (``process``), JSON-RPC over JSON
lines (``jsonrpc``), and HTTP + SSE (``http_sse``)."""
