"""The shared machinery of the JSON-RPC session drivers (codex app-server, ACP, kimi wire).

:class:`RpcDriver` implements the I/O half of :class:`~alice_trio.sessions.driver.SessionDriver`:
``run`` spawns the CLI (:func:`~alice_trio.transports.process.open_agent_process`), starts the
:class:`~alice_trio.transports.jsonrpc.JsonRpcClient` reader, performs the subclass's handshake,
reports started, and then pumps incoming notifications through the subclass's pure mapper into
``emit`` (awaited: backpressure, never a drop). Server→client requests are answered from their
own tasks by :meth:`RpcDriver.answer_request` (approvals and questions through
:attr:`RpcDriver.gate`, the shared round trip of :mod:`alice_trio.sessions.approval`).

``run`` returns when the CLI closes stdout. A request still waiting then fails at once with
:class:`~alice_trio.errors.TransportClosedError` (exit status + stderr tail); a turn whose
protocol request was in flight gets an ``error`` event carrying that text, so a crash is never a
silent hang or a bare cancellation (spec §13.13).

``aclose(graceful=True)`` closes stdin and waits ``close_grace`` seconds for the CLI to exit,
then kills the process group; ``graceful=False`` kills at once. Either way it returns only when
``run`` has finished and the processes are reaped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import trio

from ..errors import AliceError, SessionClosedError, TransportClosedError
from ..models import EventKind, RunRequest, TurnEvent
from ..protocols.jsonrpc import ErrorResponse, Invalid, Notification, Request
from ..providers.base import Invocation
from ..transports.jsonrpc import Barrier, JsonRpcClient
from ..transports.process import AgentProcess, open_agent_process
from .approval import Answer, ApprovalDecision, ApprovalGate, ApprovalRequest, Approver
from .driver import Emit, SteerMode, TurnErrors, TurnRef
from .wait_any import wait_any

__all__ = ["RpcDriver", "TurnStart"]


async def _discard(event: TurnEvent) -> None:
    return None


class TurnStart:
    """The answer to a turn's start whose protocol request runs in the background
    (:meth:`RpcDriver.request_turn`): confirmed once the request is written, else failed with
    the error that kept it from being written (the agent process is gone:
    :class:`TransportClosedError`). The first answer counts."""

    def __init__(self) -> None:
        self._done = trio.Event()
        self._error: AliceError | None = None

    def confirm(self) -> None:
        self._done.set()

    def fail(self, error: AliceError) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> None:
        """Return once the request was written; raise the error that kept it from it."""
        await self._done.wait()
        if self._error is not None:
            raise self._error


class RpcDriver:
    """Base class; subclasses set the class attributes and implement the hooks."""

    provider: ClassVar[str] = ""
    steer_mode: SteerMode = SteerMode.QUEUE_WHEN_BUSY
    jsonrpc: ClassVar[bool] = True
    string_ids: ClassVar[bool] = False
    id_prefix: ClassVar[str] = ""

    def __init__(
        self,
        invocation: Invocation,
        *,
        approver: Approver | None = None,
        close_grace: float = 2.0,
    ) -> None:
        self.invocation = invocation
        self.approver = approver
        self.close_grace = close_grace
        self.client: JsonRpcClient | None = None
        self.process: AgentProcess | None = None
        self.approval_errors: list[BaseException] = []
        self.gate = ApprovalGate(
            provider=self.provider, approver=approver, errors=self.approval_errors
        )
        self._emit: Emit = _discard
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._started = False
        self._done = trio.Event()
        self._next_invocation: Invocation | None = None
        self._restarted = trio.Event()
        self._process_scope: trio.CancelScope | None = None
        #: the TransportClosedError a turn got from its process's end
        self._turn_errors = TurnErrors()
        #: turn id -> its announcement, while its request is being written (request_turn)
        self._unannounced: dict[str, Callable[[], Awaitable[None]]] = {}

    # -- hooks for subclasses -------------------------------------------------------------------
    async def handshake(self, client: JsonRpcClient) -> None:
        """Initialize the protocol (runs before ``task_status.started()``)."""

    def map_notification(self, msg: Notification) -> list[TurnEvent]:
        """Pure mapping of one notification to events."""
        return []

    async def answer_request(self, req: Request) -> Any:
        """Answer one server→client request (raise JsonRpcError for an error reply)."""
        from ..protocols.jsonrpc import METHOD_NOT_FOUND, JsonRpcError

        raise JsonRpcError(f"method not supported: {req.method}", code=METHOD_NOT_FOUND)

    def eof_events(self) -> list[TurnEvent]:
        """Events to flush when stdout ends (e.g. buffered text)."""
        return []

    # -- SessionDriver ----------------------------------------------------------------------------
    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                await self._run_process(task_status)
                while self._next_invocation is not None:  # restart() asked for a new process
                    self.invocation, self._next_invocation = self._next_invocation, None
                    await self._run_process(None)
        finally:
            self._done.set()

    async def _run_process(self, task_status: trio.TaskStatus[None] | None) -> None:
        """One process: spawn, handshake, report started (first) or restarted, pump to EOF."""
        async with open_agent_process(
            self.invocation, name=self.provider, close_grace=self.close_grace
        ) as proc:
            self.process = proc
            client = JsonRpcClient(
                proc,
                jsonrpc=self.jsonrpc,
                on_request=self._on_request,
                string_ids=self.string_ids,
                id_prefix=self.id_prefix,
            )
            self.client = client
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._process_scope = nursery.cancel_scope
                await nursery.start(client.run)
                nursery.start_soon(self._pump, client)
                await self.handshake(client)
                proc.ready()
                if task_status is not None:
                    self._started = True
                    task_status.started()
                else:
                    self._restarted.set()

    async def restart(self, invocation: Invocation) -> None:
        """Replace the process with ``invocation`` (same session, e.g. another ``--model``):
        stdin EOF, up to ``close_grace`` for the old process to exit (then its group is
        killed), spawn and handshake the new one. Returns once the new process answered its
        handshake. Raises :class:`SessionClosedError` when the session is closed, and
        :class:`TransportClosedError` when the new process did not come up (the session is
        then over). Only call it between turns."""
        proc, scope = self.process, self._process_scope
        if proc is None or scope is None or not self._started or self._done.is_set():
            raise SessionClosedError(f"{self.provider} session is not running")
        self._next_invocation = invocation
        self._restarted = restarted = trio.Event()
        await proc.close_stdin()
        with trio.move_on_after(self.close_grace):
            await proc.exited.wait()
        scope.cancel()
        await wait_any(restarted, self._done)
        if not restarted.is_set():
            current = self.process
            raise TransportClosedError(
                f"{self.provider}: the restarted process did not start"
                + (f" ({current.exit_description()})" if current is not None else ""),
                provider=self.provider,
                stderr_tail=current.stderr_tail() if current is not None else "",
            )

    async def aclose(self, *, graceful: bool) -> None:
        if self._scope is None:
            return
        if graceful and self.process is not None and not self._done.is_set():
            await self.process.close_stdin()
            with trio.move_on_after(self.close_grace):
                await self._done.wait()
        self._scope.cancel()
        await self._done.wait()

    # -- helpers --------------------------------------------------------------------------------
    def _require_client(self) -> JsonRpcClient:
        client = self.client
        if client is None or not self._started:
            raise SessionClosedError(f"{self.provider} session is not running")
        if client.closed.is_set():
            client._check_open()
        return client

    def _spawn(self, fn: Any, *args: Any) -> None:
        if self._nursery is None:
            raise SessionClosedError(f"{self.provider} session is not running")
        self._nursery.start_soon(fn, *args)

    async def emit(self, event: TurnEvent) -> None:
        await self._emit(event)

    async def _pump(self, client: JsonRpcClient) -> None:
        async with client.incoming:
            async for msg in client.incoming:
                if isinstance(msg, Barrier):
                    msg.release()
                    continue
                for event in self._map_incoming(msg):
                    await self.announce_before(event.turn_id)
                    await self._emit(event)
        for event in self.eof_events():
            await self._emit(event)

    def _map_incoming(self, msg: Notification | Invalid | ErrorResponse) -> list[TurnEvent]:
        if isinstance(msg, Notification):
            return self.map_notification(msg)
        if isinstance(msg, Invalid):
            return [self.unknown(msg.raw, msg.reason)]
        text = f"json-rpc error code={msg.code} message={msg.message}"
        return [self.unknown(msg.raw, text)]

    def unknown(self, raw: str, text: str) -> TurnEvent:
        return TurnEvent(kind=EventKind.UNKNOWN, text=text, raw=raw, provider=self.provider)

    async def _on_request(self, req: Request) -> Any:
        return await self.answer_request(req)

    async def decide(
        self, request: ApprovalRequest, fallback: ApprovalDecision, raw: str
    ) -> Answer:
        """The approval/question round trip (:class:`ApprovalGate`), events through ``emit``."""
        await self.announce_before(request.turn_id)
        return await self.gate.decide(request, fallback, self._emit, raw=raw)

    async def request_turn(
        self,
        ref: TurnRef,
        method: str,
        params: Any,
        on_result: Any,
        on_cancel: Any = None,
        *,
        start: TurnStart | None = None,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run ``method`` (a request that ends with the turn) in the background; ``on_result``
        maps its result to events. Once the request is written, ``announce`` runs (e.g. the
        ``turn_started`` event; earlier, right before the first event of ``ref``'s turn the
        reader gets, when that comes first: :meth:`announce_before`) and ``start`` is
        confirmed. A request that could not be written
        fails ``start`` (the turn never began: ``start_turn`` raises the typed error, no event);
        after that, a JSON-RPC error or a dead process becomes an ``error`` event of ``ref``'s
        turn."""
        written = False
        if announce is not None:
            self._unannounced[ref.turn_id] = announce

        async def on_written() -> None:
            nonlocal written
            written = True
            pending = self._unannounced.pop(ref.turn_id, None)
            if pending is not None:
                await pending()
            if start is not None:
                start.confirm()

        try:
            client = self._require_client()
            result = await client.request(
                method, params, on_cancel=on_cancel, ordered=True, on_written=on_written
            )
        except AliceError as exc:
            early = announce is not None and ref.turn_id not in self._unannounced
            self._unannounced.pop(ref.turn_id, None)
            if not written and start is not None:
                start.fail(exc)
                if early:  # output of it announced it already: the announced turn ends
                    await self._emit(self._error_event(ref, str(exc)))
                return
            if isinstance(exc, TransportClosedError):  # the process's end, not the agent's verdict
                self._turn_errors.record(ref.turn_id, exc)
            await self._emit(self._error_event(ref, str(exc), getattr(exc, "stderr_tail", "")))
            return
        finally:
            self._unannounced.pop(ref.turn_id, None)
            if start is not None:  # cancelled before it was written: the session is closing
                start.fail(SessionClosedError(f"{self.provider} session is not running"))
        for event in on_result(result):
            await self._emit(event)

    async def announce_before(self, turn_id: str) -> None:
        """Before the reader emits an event of turn ``turn_id`` (or an approval of it is
        asked): announce the turn first when its request is still on its way out
        (:meth:`request_turn`), so its announcement stays its first event."""
        pending = self._unannounced.pop(turn_id, None)
        if pending is not None:
            await pending()

    def exit_error(self) -> AliceError | None:
        """Once the process ended: the :class:`TransportClosedError` saying how (None before)."""
        client = self.client
        if isinstance(client, JsonRpcClient) and client.closed.is_set():
            return client._copy_closed()
        return None

    def turn_error(self, turn_id: str) -> AliceError | None:
        """The typed error behind turn ``turn_id``'s ``error`` event when it was the process's
        end (:class:`TransportClosedError`, as on every other driver); None for a turn the agent
        failed itself (a JSON-RPC error reply is its verdict: :class:`AgentError`)."""
        return self._turn_errors.get(turn_id)

    def _error_event(self, ref: TurnRef, message: str, stderr_tail: str = "") -> TurnEvent:
        text = message
        if stderr_tail.strip() and stderr_tail.strip() not in text:
            text = f"{text}\nstderr tail:\n{stderr_tail.strip()[-2000:]}"
        return TurnEvent(
            kind=EventKind.ERROR, error=text, thread_id=ref.thread_id, turn_id=ref.turn_id,
            provider=self.provider,
        )  # fmt: skip

    @staticmethod
    def check_prompt(request: RunRequest) -> str:
        from ..errors import EmptyPromptError

        prompt = request.prompt
        if not prompt:
            raise EmptyPromptError()
        return prompt
