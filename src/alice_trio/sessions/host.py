"""An agent process that hosts many conversations: :class:`AgentHost` and its conversations.

Three of the interactive protocols address every message to one conversation inside one
process: codex app-server (``threadId``, each thread with its own cwd), ACP (``sessionId``,
``session/new`` with its own cwd; gemini ``--acp`` and Kimi Code ``kimi acp``). An
:class:`AgentHost` owns that process and its :class:`~alice_trio.transports.jsonrpc.JsonRpcClient`:

* :meth:`AgentHost.run` spawns the CLI (``open_agent_process``), starts the reader, performs
  the protocol's process-wide handshake once (:class:`HostProtocol`), reports started, and
  then routes every incoming notification to the conversation its route key names
  (``threadId`` / ``sessionId``). A message for a key nobody holds yet (codex announces a
  thread before ``thread/start`` answers) is kept, bounded, and handed over when a
  conversation claims the key. Server→client requests (approvals, questions) go to the
  conversation's own handler in their own task; an unroutable one gets ``-32601``.
* Every conversation has an **unbounded** inbox: the shared reader never waits for one
  conversation's consumer, so a conversation nobody reads cannot stall the others (the price:
  per-conversation backpressure to the child is given up; what the CLI writes for one
  conversation is bounded by that conversation's turn).
* When the process ends (crash, EOF) every request in flight fails at once with
  :class:`~alice_trio.errors.TransportClosedError` (the client's rule), every conversation's
  inbox closes and its driver's ``run`` returns: the session of each conversation fails its
  own pending turns with typed errors and is replaced on its next run (resume by thread id).

:class:`HostedConversation` is the :class:`~alice_trio.sessions.driver.SessionDriver` of one
conversation on a host. It wraps the provider's ordinary driver (an
:class:`~alice_trio.sessions.rpc_driver.RpcDriver` built by the provider's own factory, so argv,
policy, mapping and approvals are the per-process driver's code, not a copy) and attaches it to
the host instead of spawning: ``run`` gives the inner driver a :class:`_Link` for its client
(requests go to the shared client; ``initialize`` is answered from the host's handshake and
``initialized`` is not repeated), runs the inner driver's own handshake (ACP ``session/new`` /
``session/load`` with this conversation's cwd) and the :class:`HostProtocol`'s ``open`` step
(codex: ``thread/start`` / ``thread/resume`` at once, so its route key is known before any turn).
On an ACP process conversations open and close one at a time
(:attr:`HostProtocol.serial_lifecycle`: gemini 0.61's ``session/new`` takes twice as long for
each one that overlaps another; Kimi Code 2.1.0 fails a ``session/new`` with "session not
found" when another session of the same directory is closed meanwhile); the wait counts toward
the session's start timeout, or its ``close_grace``.

A conversation the agent keeps after it was closed (ACP without ``session/close``; codex,
which keeps a thread loaded after ``thread/unsubscribe``) is *parked* on its host: its resume
is routed back to that process (another one would load a second copy, or is refused).

Opens the agent may apply although nobody waits for them: a conversation's open request (ACP
``session/new``/``session/load``, codex ``thread/start``/``thread/resume``) runs in the host's
own task (:meth:`AgentHost.call`). Its conversation cancelled while it is in flight still
awaits it (shielded, at most ``close_grace``); what it opened is released or parked when the
conversation ends, like any conversation that opened. Not answered by then, the host takes it
over (:meth:`AgentHost.adopt`) and releases what it opens once answered; a new open of that
thread waits for it first (:meth:`AgentHost.settled`). So the agent never holds a conversation
the host does not know about (gemini refuses to load it again; Kimi Code 2.1 fails a load that
overlaps a ``session/close`` of it).

Isolation: interrupting, cancelling or timing out a turn uses the protocol's own per-turn
cancel (``turn/interrupt``, ``session/cancel``) and never touches the process. Closing a
conversation with a turn still running interrupts that turn and waits ``close_grace`` for its
end; only then is the conversation released (codex ``thread/unsubscribe``; ACP
``session/close`` when the agent offers it). An ordered response (the ACP ``session/prompt``
that ends a turn) reaches the conversation after every notification that preceded it on the
wire: the link puts a marker into the conversation's inbox and waits for its pump to reach it.
"""

from __future__ import annotations

import collections
import math
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import trio

from ..errors import AliceError, ProtocolError, SessionClosedError
from ..models import EventKind, RunRequest, TurnEvent
from ..protocols import acp as acp_proto
from ..protocols import codex_app_server as codex_proto
from ..protocols.jsonrpc import (
    METHOD_NOT_FOUND,
    ErrorResponse,
    Invalid,
    JsonRpcError,
    Notification,
    Request,
)
from ..providers.base import Invocation, as_str
from ..transports.jsonrpc import Barrier, JsonRpcClient
from ..transports.process import AgentProcess, open_agent_process
from ._groups import single_exception
from .driver import Emit, SessionDriver, SteerMode, TurnRef
from .hosting import ProcessHost
from .rpc_driver import RpcDriver

__all__ = [
    "ACP_HOST",
    "CODEX_HOST",
    "AgentHost",
    "HostProtocol",
    "HostedConversation",
]

#: the env var that marks the tool processes of one conversation (where the protocol allows)
CONVERSATION_ENV = "ALICE_TRIO_CONVERSATION"
#: messages kept per unclaimed route key, and unclaimed keys kept (oldest dropped first)
ORPHAN_MESSAGES = 256
ORPHAN_KEYS = 64


class HostProtocol:
    """What differs between the protocols a host speaks (the rest is JSON-RPC routing)."""

    name = ""
    jsonrpc = True
    #: open and close the process's conversations one at a time (see :class:`_AcpHost`)
    serial_lifecycle = False

    def route_key(self, method: str, params: Any) -> str:
        """The conversation a message belongs to ("" for process-wide chatter)."""
        return as_str(params.get("sessionId")) if isinstance(params, Mapping) else ""

    async def initialize(self, client: JsonRpcClient) -> Any:
        """The process-wide handshake; its result answers every conversation's
        ``initialize``."""
        raise NotImplementedError

    async def open(self, driver: RpcDriver, initial: RunRequest) -> str:
        """After the inner driver's handshake: open the protocol conversation if the handshake
        did not, and return its route key."""
        raise NotImplementedError

    async def release(self, client: JsonRpcClient, key: str, info: Any) -> bool:
        """Ask the agent to forget conversation ``key`` (it stays resumable on disk). False:
        the agent cannot, the conversation stays loaded in the process (*parked*)."""
        return False

    def frees(self, info: Any) -> bool:
        """The process gives a released conversation's memory back, so ``host_capacity``
        counts live conversations (else every one the process opened: it retires). Measured
        (``benchmarks/capacity.py``): codex keeps an unsubscribed thread, and so did Kimi Code
        2.1 with a closed ACP session (its memory kept growing with every new one); no ACP
        agent here frees one."""
        return False

    def reopen(self, method: str, params: Any, parked: set[str]) -> Any:
        """The local answer to a request that reopens a parked conversation (the agent has it
        loaded already and may refuse to load it twice), or None to send the request."""
        return None

    #: the requests that open a conversation on the agent (see :meth:`opened_key`)
    opens: frozenset[str] = frozenset()

    def opened_key(self, method: str, params: Any, result: Any) -> str:
        """The conversation an answered request of :attr:`opens` opened on the agent."""
        return ""

    def tag(self, method: str, params: Any, tag: str) -> Any:
        """``params`` of a conversation's request with its tool tag added, where the protocol
        lets a conversation set its tools' environment (see :data:`CONVERSATION_ENV`)."""
        return params

    @property
    def tags_tools(self) -> bool:
        return False


class _CodexHost(HostProtocol):
    name = "codex"
    jsonrpc = False
    opens = frozenset({"thread/start", "thread/resume"})

    def opened_key(self, method: str, params: Any, result: Any) -> str:
        return self.route_key(method, result) or self.route_key(method, params)

    def route_key(self, method: str, params: Any) -> str:
        if not isinstance(params, Mapping):
            return ""
        key = as_str(params.get("threadId")) or as_str(params.get("conversationId"))
        thread = params.get("thread")
        if not key and isinstance(thread, Mapping):
            key = as_str(thread.get("id"))
        return key

    async def initialize(self, client: JsonRpcClient) -> Any:
        info = await client.request("initialize", codex_proto.initialize_params())
        await client.notify("initialized")
        return info

    async def open(self, driver: RpcDriver, initial: RunRequest) -> str:
        ensure = getattr(driver, "_ensure_thread", None)
        if ensure is None:
            raise ProtocolError("codex host: the driver cannot open a thread", provider="codex")
        return str(await ensure(initial))

    async def release(self, client: JsonRpcClient, key: str, info: Any) -> bool:
        # codex 0.171 stops sending the thread's events but keeps it loaded — its memory, and
        # its writer lock: another process refuses to resume it ("already has an active
        # writer") while this one lives (measured: benchmarks/capacity.py). So it is parked
        # here, and its resume comes back to this process.
        await client.request("thread/unsubscribe", {"threadId": key})
        return False

    def tag(self, method: str, params: Any, tag: str) -> Any:
        # codex does not stop a running command on turn/interrupt (0.171: it runs on, in its
        # own session); the thread's config sets an env var in every command it spawns
        if method not in ("thread/start", "thread/resume") or not isinstance(params, Mapping):
            return params
        # a dotted key overrides that one entry and keeps the user's policy (inherit, exclude)
        config = dict(params.get("config") or {})
        config[f"shell_environment_policy.set.{CONVERSATION_ENV}"] = tag
        return {**params, "config": config}

    @property
    def tags_tools(self) -> bool:
        return True


class _AcpHost(HostProtocol):
    name = "acp"
    jsonrpc = True
    # gemini 0.61 takes twice as long for each session/new that overlaps another on the
    # process (eight at once: 0.4 … 13 s; one at a time ~0.15 s each), so thirty conversations
    # started at once on one process failed their start timeout. Kimi Code 2.1.0 answers a
    # session/new with -32603 "session not found: <its new id>" when a session/close of another
    # session in the same directory runs meanwhile (1 in 2-3 on a warm pool's spare replaced
    # by a conversation's own open): opens and closes never overlap on one process.
    serial_lifecycle = True
    opens = frozenset({"session/new", "session/load"})

    def opened_key(self, method: str, params: Any, result: Any) -> str:
        where = result if method == "session/new" else params
        return as_str(where.get("sessionId")) if isinstance(where, Mapping) else ""

    async def initialize(self, client: JsonRpcClient) -> Any:
        return await client.request("initialize", acp_proto.initialize_params())

    async def open(self, driver: RpcDriver, initial: RunRequest) -> str:
        sid = as_str(getattr(driver, "session_id", ""))
        if not sid:
            raise ProtocolError("ACP host: the conversation has no session id", provider="acp")
        return sid

    async def release(self, client: JsonRpcClient, key: str, info: Any) -> bool:
        if self.closes(info):
            await client.request("session/close", {"sessionId": key})
            return True
        return False

    def closes(self, info: Any) -> bool:
        """The agent offers ``session/close`` (``initialize``'s ``info``): a closed session is
        not parked and may be loaded again anywhere. Its memory is another matter
        (:meth:`frees`: Kimi Code 2.1 kept it)."""
        caps = info.get("agentCapabilities") if isinstance(info, Mapping) else None
        sessions = caps.get("sessionCapabilities") if isinstance(caps, Mapping) else None
        return isinstance(sessions, Mapping) and "close" in sessions

    def reopen(self, method: str, params: Any, parked: set[str]) -> Any:
        # gemini 0.61 answers session/load of a session it still holds with -32603
        if method != "session/load" or not isinstance(params, Mapping):
            return None
        sid = as_str(params.get("sessionId"))
        if sid not in parked:
            return None
        parked.discard(sid)
        return {}


CODEX_HOST: HostProtocol = _CodexHost()
ACP_HOST: HostProtocol = _AcpHost()


class _Call:
    """A request the host sends from its own task (see :meth:`AgentHost.call`)."""

    __slots__ = ("done", "error", "ok", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self, name: str) -> Any:
        if self.ok:
            return self.result
        if self.error is not None:
            raise self.error
        raise SessionClosedError(f"{name} host is not running", provider=name)


class _Marker:
    """Put into a conversation's inbox behind everything routed so far (see ``_Link.sync``)."""

    __slots__ = ("reached",)

    def __init__(self) -> None:
        self.reached = trio.Event()


_Inboxed = Notification | Request | _Marker


class _Link:
    """One conversation's view of the host's client (what the inner driver calls ``client``)."""

    def __init__(self, host: AgentHost, conversation: HostedConversation) -> None:
        self.host = host
        self.conversation = conversation
        self.send, self.inbox = trio.open_memory_channel[_Inboxed](math.inf)
        self.keys: set[str] = set()
        #: conversations the agent may hold because of this link: opened (answered), reopened
        #: locally from the parked set, or opened by a request answered after this link gave
        #: up on it — released (or parked) when the link ends (:meth:`AgentHost.detach`)
        self.held: set[str] = set()

    @property
    def shared(self) -> JsonRpcClient:
        client = self.host.client
        if client is None:
            raise SessionClosedError(f"{self.host.name} host is not running")
        return client

    @property
    def closed(self) -> trio.Event:
        return self.shared.closed

    @property
    def process(self) -> AgentProcess | None:
        return self.host.process

    def _check_open(self) -> None:
        self.shared._check_open()

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        on_cancel: Any = None,
        ordered: bool = False,
        on_written: Any = None,
    ) -> Any:
        if method == "initialize":
            return self.host.info
        protocol = self.host.protocol
        parked = self.host.parked
        before = set(parked) if parked else set()
        local = protocol.reopen(method, params, parked)
        if local is not None:
            self.held |= before - parked
            if on_written is not None:
                await on_written()
            return local
        params = protocol.tag(method, params, self.conversation.tag)
        if method in protocol.opens:
            return await self._open(method, params)
        try:
            return await self.shared.request(
                method, params, on_cancel=on_cancel, ordered=ordered, on_written=on_written
            )
        finally:
            if ordered:
                await self.sync()

    async def _open(self, method: str, params: Any) -> Any:
        """A request that opens a conversation on the agent. The agent may apply it although
        we stop waiting, so it runs in the host's task: cancelled while it is in flight, it is
        still awaited (shielded, at most the host's ``close_grace``) and what it opened is
        :attr:`held` like any other open — released or parked when the link ends, never left
        loaded in the agent unknown to the host (whose next load of it the agent refuses:
        Kimi Code and gemini, -32603). Not answered by then, the host takes it over
        (:meth:`AgentHost.adopt`). Then ``trio.Cancelled`` propagates."""
        host = self.host
        call = host.call(method, params)
        try:
            await call.done.wait()
        except trio.Cancelled:
            with trio.CancelScope(shield=True), trio.move_on_after(host.close_grace):
                await call.done.wait()
            if call.done.is_set():
                self._opened(method, params, call)
            else:
                host.adopt(call, method, params)
            raise
        self._opened(method, params, call)
        return call.outcome(host.name)

    def _opened(self, method: str, params: Any, call: _Call) -> None:
        key = self.host.protocol.opened_key(method, params, call.result) if call.ok else ""
        if key:
            self.held.add(key)

    async def notify(self, method: str, params: Any = None) -> None:
        if method == "initialized":
            return
        await self.shared.notify(method, params)

    async def send_untracked(self, method: str, params: Any = None, *, request: bool) -> None:
        await self.shared.send_untracked(method, params, request=request)

    async def sync(self) -> None:
        """Wait until this conversation handled every message routed to it so far."""
        marker = _Marker()
        try:
            self.send.send_nowait(marker)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        await marker.reached.wait()


class AgentHost(ProcessHost):
    """One agent process hosting many conversations (see the module docstring). ``key`` is
    what conversations must share to live here (the pool's business); ``capacity``: see
    :class:`~alice_trio.sessions.hosting.ProcessHost`."""

    def __init__(
        self,
        invocation: Invocation,
        protocol: HostProtocol,
        *,
        name: str,
        key: Any = None,
        capacity: int = 32,
        close_grace: float = 2.0,
    ) -> None:
        super().__init__(invocation, name=name, key=key, capacity=capacity, close_grace=close_grace)
        self.protocol = protocol
        self.client: JsonRpcClient | None = None
        self.info: Any = None
        #: conversations closed here that the agent still holds (it could not release them)
        self.parked: set[str] = set()
        self.unrouted = 0
        #: held while a conversation opens or is released, when the protocol does one at a time
        self.lifecycle = trio.Lock()
        self._routes: dict[str, _Link] = {}
        self._orphans: collections.OrderedDict[str, list[_Inboxed]] = collections.OrderedDict()
        self._nursery: trio.Nursery | None = None
        #: conversation key -> set when an open of it that its link gave up on was answered
        self._settling: dict[str, trio.Event] = {}

    @property
    def frees(self) -> bool:
        return self.protocol.frees(self.info)

    def holds(self, key: str) -> bool:
        return bool(key) and key in self._routes

    def has_parked(self, key: str) -> bool:
        return bool(key) and key in self.parked

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Spawn, handshake, report started, route until the process ends. A failure before
        started is raised (typed); after it, it is kept in :attr:`failure` and ``run`` returns
        (the conversations see their inboxes close)."""
        try:
            with self._lifetime():
                async with open_agent_process(
                    self.invocation, name=self.name, close_grace=self.close_grace
                ) as proc:
                    self.process = proc
                    client = JsonRpcClient(
                        proc, jsonrpc=self.protocol.jsonrpc, on_request=self._on_request
                    )
                    self.client = client
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        await nursery.start(client.run)
                        nursery.start_soon(self._route, client)
                        self.info = await self.protocol.initialize(client)
                        proc.ready()
                        self.started.set()
                        task_status.started()
        finally:
            for link in list(self.links):
                link.send.close()

    async def aclose(self, *, graceful: bool = True) -> None:
        """End the process: graceful = stdin EOF and ``close_grace``, then the group is
        killed. Returns when it is reaped. Safe to call at any time, more than once."""
        self.closing = True
        if self._scope is None:
            return
        proc = self.process
        if graceful and proc is not None and not self.done.is_set():
            await proc.close_stdin()
            with trio.move_on_after(self.close_grace):
                await self.done.wait()
        self._scope.cancel()
        await self.done.wait()

    # -- conversations ------------------------------------------------------------------------
    def attach(self, conversation: HostedConversation) -> _Link:
        if not self.alive or self.client is None:
            raise SessionClosedError(f"{self.name} host is not running", provider=self.name)
        link = _Link(self, conversation)
        self.links.add(link)
        self.opened += 1
        return link

    def claim(self, link: _Link, key: str) -> None:
        """Route ``key`` to ``link`` from now on; messages kept for it are delivered first."""
        if not key or self._routes.get(key) is link:
            return
        owner = self._routes.get(key)
        if owner is not None:
            raise SessionClosedError(
                f"{self.name}: conversation {key!r} is already open on this process",
                provider=self.name,
            )
        self._routes[key] = link
        link.keys.add(key)
        for msg in self._orphans.pop(key, ()):
            link.send.send_nowait(msg)

    async def detach(self, link: _Link) -> None:
        """Stop routing to ``link``; the agent is asked to forget what it holds because of
        the link (:attr:`_Link.held`; bounded, shielded: a close never hangs on a wedged
        agent); what it did not release in time is parked."""
        for key in link.keys:
            if self._routes.get(key) is link:
                del self._routes[key]
        link.send.close()
        try:
            await self._release(link.held)
        finally:
            # counted until released: a host that retires once empty must not end while
            # another conversation's release still waits its turn
            self.links.discard(link)
            self._emptied()

    async def _release(self, keys: set[str]) -> None:
        """Ask the agent to forget ``keys`` (bounded, shielded); the ones it kept are parked."""
        if not keys or self.client is None or self.done.is_set():
            return
        kept = set(keys)  # parked unless the agent released it in time
        with trio.CancelScope(shield=True), trio.move_on_after(self.close_grace):
            async with self.one_at_a_time():
                for key in keys:
                    try:
                        if await self.protocol.release(self.client, key, self.info):
                            kept.discard(key)
                    except AliceError:
                        pass
        self.parked |= kept

    def call(self, method: str, params: Any) -> _Call:
        """Send ``method`` from the host's own task (it lives as long as the process): its
        answer is awaited even when the conversation that asked stops waiting."""
        client, nursery = self.client, self._nursery
        if client is None or nursery is None or self.done.is_set():
            raise SessionClosedError(f"{self.name} host is not running", provider=self.name)
        call = _Call()

        async def send() -> None:
            try:
                call.result = await client.request(method, params)
                call.ok = True
            except AliceError as exc:
                call.error = exc
            finally:
                call.done.set()

        nursery.start_soon(send)
        return call

    def adopt(self, call: _Call, method: str, params: Any) -> None:
        """Take over an open whose conversation gave up waiting for it: once answered, what
        it opened is released (or parked); until then a new open of the same key waits
        (:meth:`settled`). Ends with the process."""
        key = self.protocol.opened_key(method, params, None)
        settled = trio.Event()
        if key:
            self._settling[key] = settled

        async def finish() -> None:
            try:
                await call.done.wait()
                opened = self.protocol.opened_key(method, params, call.result) if call.ok else ""
                await self._release({opened} if opened else set())
            finally:
                if key and self._settling.get(key) is settled:
                    del self._settling[key]
                settled.set()

        if self._nursery is not None:
            self._nursery.start_soon(finish)

    async def settled(self, key: str) -> None:
        """Wait until no open of ``key`` that its conversation gave up on is unanswered (call
        it before :meth:`one_at_a_time`: the takeover releases under that lock)."""
        while key and key in self._settling:
            await self._settling[key].wait()

    @asynccontextmanager
    async def one_at_a_time(self) -> AsyncIterator[None]:
        """Hold the process's lifecycle lock while a conversation opens or is released, when
        the protocol wants those one at a time (:attr:`HostProtocol.serial_lifecycle`); else
        nothing. Cancelled while waiting, it leaves nothing held."""
        if not self.protocol.serial_lifecycle:
            yield
            return
        async with self.lifecycle:
            yield

    # -- routing ------------------------------------------------------------------------------
    async def _route(self, client: JsonRpcClient) -> None:
        async with client.incoming:
            async for msg in client.incoming:
                if isinstance(msg, Barrier):
                    msg.release()
                elif isinstance(msg, Notification):
                    self._deliver(self.protocol.route_key(msg.method, msg.params), msg)
                else:
                    self._drop(msg)

    def _drop(self, msg: Invalid | ErrorResponse | Notification) -> None:
        self.unrouted += 1

    def _deliver(self, key: str, msg: Notification) -> None:
        link = self._routes.get(key) if key else None
        if link is not None:
            try:
                link.send.send_nowait(msg)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._drop(msg)
            return
        if not key:
            self._drop(msg)
            return
        kept = self._orphans.setdefault(key, [])
        self._orphans.move_to_end(key)
        kept.append(msg)
        del kept[:-ORPHAN_MESSAGES]
        while len(self._orphans) > ORPHAN_KEYS:
            self._orphans.popitem(last=False)

    async def _on_request(self, req: Request) -> Any:
        key = self.protocol.route_key(req.method, req.params)
        link = self._routes.get(key) if key else None
        if link is None:
            raise JsonRpcError(f"no conversation {key!r} for {req.method}", code=METHOD_NOT_FOUND)
        return await link.conversation.inner.answer_request(req)


def _tagged(marker: bytes) -> list[int]:
    me = os.getpid()
    out: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    out.append(int(name))
        except OSError:
            continue
    return out


async def kill_tagged(env: str, value: str, *, max_seconds: float = 5.0) -> int:
    """SIGKILL every process whose environment has ``env=value`` (a conversation's tools and
    their children, which inherit it), until none is left or ``max_seconds`` passed; our own
    zombie children among them (orphans re-parented to us by the subreaper) are reaped.
    Returns how many were killed. Touches nothing else: the tag is a fresh uuid."""
    marker = f"{env}={value}".encode()
    killed: set[int] = set()
    deadline = trio.current_time() + max_seconds
    while True:
        found = _tagged(marker)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        _reap_ours(killed)
        if not found or trio.current_time() >= deadline:
            return len(killed)
        await trio.sleep(0.01)


def _reap_ours(pids: set[int]) -> None:
    """Reap those of ``pids`` that are our exited children (``WNOHANG``: never blocks)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


class HostedConversation:
    """One conversation on an :class:`AgentHost` (see the module docstring)."""

    def __init__(
        self,
        host: AgentHost,
        inner: RpcDriver,
        initial: RunRequest,
        *,
        close_grace: float = 2.0,
        rehost: Callable[[], Awaitable[AgentHost]] | None = None,
    ) -> None:
        """``rehost()``: another host for this conversation when ``host`` no longer takes it
        by the time :meth:`run` attaches (the pool's choice, made when the driver was handed
        out; it may close that process meanwhile, e.g. to free a process slot)."""
        self.host = host
        self._rehost = rehost
        self.inner = inner
        self.steer_mode: SteerMode = inner.steer_mode
        self._turns = cast(SessionDriver, inner)  # an RpcDriver subclass is a SessionDriver
        self.initial = initial
        self.close_grace = close_grace
        self.route_key = ""
        self.tag = uuid.uuid4().hex
        self.tools_killed = 0
        self.live: dict[str, TurnRef] = {}
        self.turn_ended = trio.Event()
        self._link: _Link | None = None
        self._emit: Emit | None = None
        self._scope: trio.CancelScope | None = None
        self._done = trio.Event()

    @property
    def provider(self) -> str:
        return self.inner.provider

    def stderr_tail(self) -> str:
        return self.host.stderr_tail()

    def __getattr__(self, name: str) -> Any:  # provider extras
        if name.startswith("_") or name in ("inner", "host"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- SessionDriver ------------------------------------------------------------------------
    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        """Attach, open the protocol conversation, report started, then pump this
        conversation's messages until the host ends or the conversation is closed."""
        self._emit = emit
        inner = self.inner
        if not self.host.alive and self._rehost is not None:
            self.host = await self._rehost()  # attached below with no checkpoint between
        link = self.host.attach(self)
        self._link = link
        try:
            with single_exception(), trio.CancelScope() as scope:
                self._scope = scope
                inner._emit = self._on_event
                inner.client = link  # type: ignore[assignment]
                inner.process = self.host.process
                self.host.claim(link, self.initial.thread_id)  # a resume's replay is ours
                async with trio.open_nursery() as nursery:
                    inner._nursery = nursery
                    nursery.start_soon(self._pump, link)
                    await self.host.settled(self.initial.thread_id)
                    async with self.host.one_at_a_time():
                        await inner.handshake(cast(JsonRpcClient, link))
                        inner._started = True
                        self.route_key = await self.host.protocol.open(inner, self.initial)
                    self.host.claim(link, self.route_key)
                    task_status.started()
                    await self.host.done.wait()
                    # the process ended: requests in flight fail and report into their turns;
                    # whatever is still running after close_grace is cancelled
                    nursery.cancel_scope.deadline = trio.current_time() + self.close_grace
                raise self.host.ended_error()
        finally:
            inner._started = False
            self._done.set()
            with trio.CancelScope(shield=True):
                await self.host.detach(link)
                await self.kill_tools()

    async def start_turn(self, request: RunRequest) -> TurnRef:
        ref = await self._turns.start_turn(request)
        self.live[ref.turn_id] = ref
        return ref

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        ref = await self._turns.steer_turn(turn, request)
        if ref.turn_id:
            self.live.setdefault(ref.turn_id, ref)
        return ref

    async def interrupt_turn(self, turn: TurnRef) -> None:
        await self._turns.interrupt_turn(turn)

    async def aclose(self, *, graceful: bool) -> None:
        """Close this conversation only (the process lives on). A turn still running is
        interrupted with the protocol's own cancel; its end is awaited ``close_grace``."""
        if self._scope is None:
            return
        if self.live and not self._done.is_set():
            with trio.CancelScope(shield=True), trio.move_on_after(self.close_grace):
                for ref in list(self.live.values()):
                    try:
                        await self._turns.interrupt_turn(ref)
                    except AliceError:
                        break
                while self.live:
                    await self._wait_turn_end()
        self._scope.cancel()
        await self._done.wait()

    # -- internals ----------------------------------------------------------------------------
    async def _wait_turn_end(self) -> None:
        ended = self.turn_ended = trio.Event()
        await ended.wait()

    async def _on_event(self, event: TurnEvent) -> None:
        if event.kind.terminal and event.turn_id in self.live:
            del self.live[event.turn_id]
            self.turn_ended.set()
            if event.kind is EventKind.TURN_INTERRUPTED and not self.live:
                await self.kill_tools()  # nothing of an interrupted turn survives it
        if self._emit is not None:
            await self._emit(event)

    async def kill_tools(self) -> None:
        """Kill the processes this conversation's tools left (tagged ones only; see
        :func:`kill_tagged`). Shielded and bounded."""
        if self.host.protocol.tags_tools:
            with trio.CancelScope(shield=True):
                self.tools_killed += await kill_tagged(CONVERSATION_ENV, self.tag)

    async def _pump(self, link: _Link) -> None:
        inner = self.inner
        async for msg in link.inbox:
            if isinstance(msg, _Marker):
                msg.reached.set()
            elif isinstance(msg, Notification):
                for event in inner._map_incoming(msg):
                    await inner.announce_before(event.turn_id)
                    await self._on_event(event)
        for event in inner.eof_events():
            await self._on_event(event)
