"""JSON-RPC over JSON lines, sans I/O: classify one incoming line, encode outgoing messages.

One JSON object per line in each direction. The ``"jsonrpc":"2.0"`` member is optional: codex
app-server neither sends nor wants it, ACP and the legacy kimi wire use it. Nothing here
reads or writes a stream; :mod:`alice_trio.transports.jsonrpc` does the I/O.

Ids keep their JSON type. A server→client request's id is echoed back exactly as it came (an
integer stays an integer, a string stays a string: codex sends ``0``, kimi sends UUID strings),
so the peer matches our answer to its request (spec §13.14 last point). Responses are matched
by :func:`id_key`, which makes ``3`` and ``"3"`` the same slot for peers that change the type.

:func:`parse_line` never raises: a line that is not JSON, not an object or not a JSON-RPC
message becomes :class:`Invalid`, which callers surface instead of dropping.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from .. import safejson
from ..errors import JsonRpcError

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "METHOD_NOT_FOUND",
    "ErrorResponse",
    "Invalid",
    "JsonRpcError",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "Response",
    "encode_error",
    "encode_notification",
    "encode_request",
    "encode_result",
    "id_key",
    "parse_line",
]

RequestId = int | str

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


@attrs.frozen(kw_only=True)
class Request:
    """A request (from the peer: a server→client request). ``id`` keeps its JSON type."""

    id: RequestId
    method: str
    params: Any = None
    raw: str = ""


@attrs.frozen(kw_only=True)
class Notification:
    method: str
    params: Any = None
    raw: str = ""


@attrs.frozen(kw_only=True)
class Response:
    id: RequestId
    result: Any = None
    raw: str = ""


@attrs.frozen(kw_only=True)
class ErrorResponse:
    """An error object; ``id`` is ``None`` when the peer could not tell which request failed."""

    id: RequestId | None
    code: int
    message: str = ""
    data: Any = None
    raw: str = ""

    def to_error(self, method: str = "", **kw: Any) -> JsonRpcError:
        return JsonRpcError(self.message, code=self.code, data=self.data, method=method, **kw)


@attrs.frozen(kw_only=True)
class Invalid:
    """A line that is no usable JSON-RPC message; ``reason`` says why."""

    raw: str
    reason: str


Message = Request | Notification | Response | ErrorResponse | Invalid


def id_key(value: RequestId) -> str:
    """The matching key of an id: ``3`` and ``"3"`` are the same request."""
    return str(value)


def _valid_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def parse_line(line: str) -> Message | None:
    """Classify one line. Blank lines give ``None``; everything else a message (never raises).

    * ``method`` + non-null ``id`` → :class:`Request`; ``method`` without id →
      :class:`Notification`;
    * ``id`` without ``method``: ``error`` non-null → :class:`ErrorResponse`, else
      :class:`Response`;
    * ``error`` with a null id → :class:`ErrorResponse` with ``id=None``;
    * anything else → :class:`Invalid`.
    """
    s = line.strip()
    if not s:
        return None
    try:
        obj = safejson.loads(s)
    except safejson.NotJSON:
        return Invalid(raw=line, reason="non-JSON line")
    if not isinstance(obj, dict):
        return Invalid(raw=line, reason="JSON line that is not an object")
    method = obj.get("method")
    has_id = obj.get("id") is not None
    if method is not None:
        if not isinstance(method, str) or not method:
            return Invalid(raw=line, reason="method is not a string")
        if has_id:
            if not _valid_id(obj["id"]):
                return Invalid(raw=line, reason="request id is neither an integer nor a string")
            return Request(id=obj["id"], method=method, params=obj.get("params"), raw=line)
        return Notification(method=method, params=obj.get("params"), raw=line)
    error = obj.get("error")
    if error is not None:
        rid = obj.get("id")
        if rid is not None and not _valid_id(rid):
            return Invalid(raw=line, reason="response id is neither an integer nor a string")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message")
            return ErrorResponse(
                id=rid,
                code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
                message=message if isinstance(message, str) else "",
                data=error.get("data"),
                raw=line,
            )
        return ErrorResponse(id=rid, code=0, message=str(error), raw=line)
    if has_id:
        if not _valid_id(obj["id"]):
            return Invalid(raw=line, reason="response id is neither an integer nor a string")
        return Response(id=obj["id"], result=obj.get("result"), raw=line)
    return Invalid(raw=line, reason="neither request, notification nor response")


def _dump(obj: dict[str, Any], jsonrpc: bool) -> bytes:
    if jsonrpc:
        obj = {"jsonrpc": "2.0", **obj}
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def encode_request(rid: RequestId, method: str, params: Any = None, *, jsonrpc: bool) -> bytes:
    """A request line; ``params`` ``None`` leaves the member out."""
    obj: dict[str, Any] = {"id": rid, "method": method}
    if params is not None:
        obj["params"] = params
    return _dump(obj, jsonrpc)


def encode_notification(method: str, params: Any = None, *, jsonrpc: bool) -> bytes:
    """A notification line (no id); ``params`` ``None`` leaves the member out."""
    obj: dict[str, Any] = {"method": method}
    if params is not None:
        obj["params"] = params
    return _dump(obj, jsonrpc)


def encode_result(rid: RequestId, result: Any, *, jsonrpc: bool) -> bytes:
    """The answer to a peer's request; ``rid`` is echoed with its original JSON type."""
    return _dump({"id": rid, "result": result}, jsonrpc)


def encode_error(
    rid: RequestId | None, code: int, message: str, data: Any = None, *, jsonrpc: bool
) -> bytes:
    """An error answer to a peer's request (``rid`` echoed with its original JSON type)."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return _dump({"id": rid, "error": err}, jsonrpc)
