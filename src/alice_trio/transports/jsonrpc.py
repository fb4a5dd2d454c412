"""A JSON-RPC client over a long-lived CLI's stdin/stdout (:class:`AgentProcess`).

:class:`JsonRpcClient` owns the reading side of the process: start :meth:`JsonRpcClient.run`
in a nursery, then

* ``await client.request(method, params)`` returns the ``result`` or raises
  :class:`~alice_trio.protocols.jsonrpc.JsonRpcError` for an error object. When stdout reaches
  EOF (the process died or closed it) **every pending request fails at once** with
  :class:`~alice_trio.errors.TransportClosedError` carrying the exit status and the stderr tail
  (peer class C11), and later requests fail the same way without writing. A request cancelled by
  the caller is forgotten locally; its ``on_cancel`` hook (the protocol's own cancel, if it has
  one) is sent, shielded and bounded, and a late response is ignored.
* ``await client.notify(method, params)`` writes a notification.
* Incoming notifications (and lines that are no valid message, and error objects with a null id)
  arrive on :attr:`JsonRpcClient.incoming`, a bounded channel: when the consumer is slow the
  reader waits, which back-pressures the child through its stdout pipe. Nothing is dropped.
* Server→client requests are handed to ``on_request`` in **their own task**, so a slow handler
  (a user asked to approve a command) never stops the reader (spec §13.9). The handler returns
  the result or raises ``JsonRpcError`` to answer with an error; the reply echoes the request id
  with its original JSON type. Without a handler every server request gets ``-32601 method not
  found`` (never a blanket ``{}``).

Writes go through :meth:`AgentProcess.send` (the process's writer task: a message is written
whole even when its caller is cancelled, and the reader never waits for a write). A peer that
does not take a message within ``write_timeout`` seconds is killed and the write raises
``TransportClosedError``: a child that stopped reading its stdin cannot wedge a caller forever,
and no half message is ever followed by the next one. The line byte limit is the process's
framer limit (``RunLimits.max_line_bytes``); with policy ``"error"`` an over-long line ends the
process context with :class:`~alice_trio.errors.LineTooLongError` instead of silently stopping.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..errors import AliceError, TransportClosedError
from ..protocols.jsonrpc import (
    INTERNAL_ERROR,
    METHOD_NOT_FOUND,
    ErrorResponse,
    Invalid,
    JsonRpcError,
    Notification,
    Request,
    RequestId,
    Response,
    encode_error,
    encode_notification,
    encode_request,
    encode_result,
    id_key,
    parse_line,
)
from ..providers.base import STRAY_LINE_CHARS
from .process import EXIT_GRACE, AgentProcess

__all__ = ["Barrier", "Incoming", "JsonRpcClient", "RequestHandler"]
RequestHandler = Callable[[Request], Awaitable[Any]]


class _Slot:
    __slots__ = ("error", "event", "method", "ordered", "result")

    def __init__(self, method: str, ordered: bool = False) -> None:
        self.method = method
        self.ordered = ordered
        self.event = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class Barrier:
    """The response of an ``ordered`` request, queued behind the notifications that preceded
    it on the wire. The consumer of :attr:`JsonRpcClient.incoming` calls :meth:`release` when
    it reaches it, which wakes the requester: so a turn-ending response (ACP ``session/prompt``,
    kimi ``prompt``) is seen only after every update of that turn was handled."""

    __slots__ = ("_slot",)

    def __init__(self, slot: _Slot) -> None:
        self._slot = slot

    def release(self) -> None:
        self._slot.event.set()


Incoming = Notification | Invalid | ErrorResponse | Barrier


class JsonRpcClient:
    """See the module docstring. ``jsonrpc`` adds ``"jsonrpc":"2.0"`` to every message;
    ``string_ids`` makes our request ids strings (``"<prefix>1"``; kimi wire requires strings),
    otherwise they are integers counting from 1."""

    def __init__(
        self,
        process: AgentProcess,
        *,
        jsonrpc: bool,
        on_request: RequestHandler | None = None,
        string_ids: bool = False,
        id_prefix: str = "",
        incoming_buffer: int = 256,
        write_timeout: float | None = 60.0,
    ) -> None:
        self.process = process
        self.name = process.name
        self.jsonrpc = jsonrpc
        self.on_request = on_request
        self.string_ids = string_ids
        self.id_prefix = id_prefix
        self.write_timeout = write_timeout
        self._ids = itertools.count(1)
        self._pending: dict[str, _Slot] = {}
        self._send_incoming, self.incoming = trio.open_memory_channel[Incoming](incoming_buffer)
        self._closed: TransportClosedError | None = None
        self.closed = trio.Event()
        self.late_responses = 0  # responses to requests that were cancelled/forgotten
        self.server_requests = 0
        # the first line that was not JSON, while the peer has not spoken JSON-RPC yet: what a
        # CLI printed instead of the protocol (a deprecation notice) is named when it ends
        self.stray_line = ""
        self._spoke = False

    # -- public API ---------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        on_cancel: Callable[[], Awaitable[None]] | None = None,
        ordered: bool = False,
        on_written: Callable[[], Awaitable[None]] | None = None,
    ) -> Any:
        """Send a request and wait for its response (see the module docstring for errors).
        ``ordered``: the response is delivered through :attr:`incoming` as a :class:`Barrier`
        (its consumer must release it). ``on_written`` is awaited once the request is written
        whole (not when it could not be: then TransportClosedError is raised without it)."""
        self._check_open()
        rid = self._new_id()
        key = id_key(rid)
        slot = _Slot(method, ordered)
        self._pending[key] = slot
        try:
            await self._write(encode_request(rid, method, params, jsonrpc=self.jsonrpc))
            if on_written is not None:
                await on_written()
            await slot.event.wait()
        except trio.Cancelled:
            if on_cancel is not None and not slot.event.is_set():
                with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                    try:
                        await on_cancel()
                    except AliceError:
                        pass
            raise
        finally:
            self._pending.pop(key, None)
        if slot.error is not None:
            raise slot.error
        return slot.result

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification. Raises TransportClosedError once the peer is gone."""
        self._check_open()
        await self._write(encode_notification(method, params, jsonrpc=self.jsonrpc))

    async def send_untracked(self, method: str, params: Any = None, *, request: bool) -> None:
        """Write a request whose answer nobody waits for (``request=True``) or a notification,
        even while the reader is shutting down: for a protocol's cancel sent from a cancelled
        request's ``on_cancel``. Raises TransportClosedError only when stdin is gone."""
        if request:
            data = encode_request(self._new_id(), method, params, jsonrpc=self.jsonrpc)
        else:
            data = encode_notification(method, params, jsonrpc=self.jsonrpc)
        await self._write(data)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read stdout until EOF, dispatching every line; then fail what is pending."""
        try:
            async with self._send_incoming, trio.open_nursery() as handlers:
                task_status.started()
                async for line in self.process.lines:
                    await self._dispatch(line, handlers)
                await self._on_eof()
                handlers.cancel_scope.cancel()
        finally:
            if self._closed is None:  # cancelled or the process context failed
                self._close(
                    TransportClosedError(
                        f"{self.name}: connection closed", provider=self.name,
                        stderr_tail=self.process.stderr_tail(),
                    )
                )  # fmt: skip

    # -- internals ----------------------------------------------------------------------------
    def _new_id(self) -> RequestId:
        n = next(self._ids)
        return f"{self.id_prefix}{n}" if self.string_ids else n

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._copy_closed()

    def _copy_closed(self) -> TransportClosedError:
        c = self._closed
        assert c is not None
        return TransportClosedError(c.message, provider=c.provider, stderr_tail=c.stderr_tail)

    async def _write(self, data: bytes) -> None:
        """Write one message whole (:meth:`AgentProcess.send`). A peer that does not take it
        within ``write_timeout`` is killed (:meth:`AgentProcess.abort`): the transport fails
        loudly rather than leave a half-written message behind."""
        if self.write_timeout is None:
            await self.process.send(data)
            return
        with trio.move_on_after(self.write_timeout) as scope:
            await self.process.send(data)
        if scope.cancelled_caught:
            error = TransportClosedError(
                f"{self.name} did not read its input for {self.write_timeout:g} s "
                "(the process was killed)",
                provider=self.name,
                stderr_tail=self.process.stderr_tail(),
            )
            self.process.abort(error)
            raise error

    async def _dispatch(self, line: str, handlers: trio.Nursery) -> None:
        msg = parse_line(line)
        if msg is None:
            return
        if not isinstance(msg, Invalid):
            self._spoke = True
        elif not self._spoke and not self.stray_line and msg.reason == "non-JSON line":
            self.stray_line = line.strip()[:STRAY_LINE_CHARS]
        if isinstance(msg, Response | ErrorResponse) and msg.id is not None:
            slot = self._pending.pop(id_key(msg.id), None)
            if slot is None:
                self.late_responses += 1
                return
            if isinstance(msg, ErrorResponse):
                slot.error = msg.to_error(slot.method, provider=self.name)
            else:
                slot.result = msg.result
            if slot.ordered:
                await self._send_incoming.send(Barrier(slot))
            else:
                slot.event.set()
            return
        if isinstance(msg, Request):
            self.server_requests += 1
            handlers.start_soon(self._serve, msg)
            return
        await self._send_incoming.send(msg)

    async def _serve(self, req: Request) -> None:
        if self.on_request is None:
            data = encode_error(
                req.id, METHOD_NOT_FOUND, f"method not supported: {req.method}",
                jsonrpc=self.jsonrpc,
            )  # fmt: skip
        else:
            try:
                result = await self.on_request(req)
            except JsonRpcError as exc:
                data = encode_error(req.id, exc.code, exc.rpc_message, exc.data,
                                    jsonrpc=self.jsonrpc)  # fmt: skip
            except Exception as exc:
                data = encode_error(req.id, INTERNAL_ERROR, f"client handler failed: {exc}",
                                    jsonrpc=self.jsonrpc)  # fmt: skip
                await self._reply(data)
                raise
            else:
                data = encode_result(req.id, result, jsonrpc=self.jsonrpc)
        await self._reply(data)

    async def _reply(self, data: bytes) -> None:
        if self._closed is not None:
            return
        try:
            await self._write(data)
        except TransportClosedError:
            pass  # the peer is gone; run() reports it

    async def _on_eof(self) -> None:
        # after stdout EOF: the exit status and the last stderr, for the message only
        with trio.move_on_after(EXIT_GRACE):
            await self.process.exited.wait()
            await trio.sleep(0.01)  # let the stderr reader take the last bytes
        if self.process.failure is not None:  # we killed it: say why
            self._close(self._closed_copy(self.process.failure))
            return
        what, status = self.process.end_state()
        printed = f"; it printed: {self.stray_line!r}" if self.stray_line else ""
        self._close(
            TransportClosedError(
                f"{self.name} {what} ({status}){printed}",
                provider=self.name,
                stderr_tail=self.process.stderr_tail(),
            )
        )

    def _closed_copy(self, error: TransportClosedError) -> TransportClosedError:
        return TransportClosedError(
            error.message, provider=error.provider, stderr_tail=self.process.stderr_tail()
        )

    def _close(self, error: TransportClosedError) -> None:
        self._closed = error
        pending, self._pending = self._pending, {}
        for slot in pending.values():
            if not slot.event.is_set():
                slot.error = self._copy_closed()
                slot.event.set()
        self.closed.set()
