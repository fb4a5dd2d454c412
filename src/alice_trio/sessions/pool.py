"""Where a :class:`~alice_trio.sessions.backend.SessionBackend` gets each conversation's driver:
shared agent processes, a warm pool of spares, and a bound on processes.

:class:`HostPool` is the backend's driver factory. For a new conversation it returns:

1. a **spare** made for an equal request, if one is warm (the process is up, the handshake is
   done and, on a shared process, the protocol conversation is already open), else
2. on a provider whose protocol hosts many conversations in one process (:func:`share_plan`:
   codex app-server, gemini ``--acp``, Kimi Code ``kimi acp``, any ACP agent), a
   :class:`~alice_trio.sessions.host.HostedConversation` on a live :class:`AgentHost` with the
   same **host key** — everything the process is started with: argv (gemini's ``--model`` and
   approval flags included, so a request that needs another process-wide setting gets another
   process), the environment (config env with the request's env on top, minus the session key:
   a request with its own env gets its own process) and the run limits — else on a new host,
3. otherwise (claude stream-json, legacy kimi wire, opencode, one-shot wrapping, custom
   drivers) the provider's ordinary one-process driver.

**Spares** (``ScalingConfig.warm``, default 1; 0 turns them off): the pool keeps that many
conversations started ahead of need for the request of the most recent *new* conversation
(at open: a request with the config's defaults). A spare only serves a new conversation (no
thread id) whose request equals the one it was made for except for the prompt, callbacks and
session key (the config's own defaults spelled out count as left out: :meth:`HostPool._plain`).
A spare that is a process of its own is ready once its driver started and, where
the provider record names a ``spare_warm_up`` (claude), once the driver's ``warm_up()`` did the
work the CLI would otherwise do at the first message. Taking one starts its replacement in the
background; on a shared host the replacement is one more protocol conversation in the same
process (no spawn), and it waits until the conversation that took the spare has ended its first
turn (or its driver ended): made at once it would run on the agent's single event loop during
that turn (gemini's ``session/new`` made a first turn on the fake model 2-3× a warm one). A new
conversation that finds no spare meanwhile starts the replacement at once. A spare that
dies is dropped when found; a replacement after a failed start waits ``spare_retry`` seconds,
doubling, so a broken CLI is never restarted in a loop. Closing the pool closes every spare.

**Bounds**: at most ``max_processes`` agent processes (hosts, one-process conversations and
spares; 0 = no bound). To start one at the bound the pool closes a process nothing needs — a
spare process, a host whose only conversation is the spare, a host without conversations —
else asks ``on_pressure`` (the backend closes its least recently used idle conversation), and
looks again each time something closed, until a slot is free (a conversation closed on a host
that holds others frees none); only when nothing can be closed does it wait in FIFO order for
a slot (a spare still starting is something that can: the pool looks again once it is
up). A host opens at most ``host_capacity`` conversations; it then takes no new ones and
closes once its last one detaches (an agent keeps a conversation's state in memory until it
is released). At the
process bound, a new conversation joins the least loaded compatible host even when it is full.
A host whose last conversation detached closes after ``idle_ttl`` unless reused. A host is
chosen when the driver is handed out but counts the conversation only once its ``run``
attached: a host closed in between (to free a slot, retired) makes the conversation choose
again, the same way (``rehost``).

**Resume**: a conversation that resumes a thread goes to the process that still holds it
(parked there after its conversation closed), never to another one. While a live conversation
of the pool has that thread open, :meth:`HostPool.driver` waits until it is closed (a second
open of one thread is refused by the agent, or loads a second copy of it on another process);
:class:`~alice_trio.sessions.backend.SessionBackend` closes that conversation itself when it is
idle (:mod:`alice_trio.sessions.threads`), a caller of the pool closes it.

Cancellation: :meth:`HostPool.driver` may wait (for a process slot, a host's start, a thread's
conversation to close); cancelling it leaves nothing behind. Errors: what starting the agent
raises (:class:`CLINotFoundError`, :class:`ProtocolError`, ...), typed; a host that has not
spawned and finished its handshake within ``start_timeout`` seconds is killed and
:class:`RunTimeoutError` raised.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AsyncExitStack
from typing import Any

import attrs
import trio

from ..errors import AliceError, ConfigError, RunTimeoutError, SessionClosedError
from ..models import ExecPolicy, RunRequest, TurnEvent
from ..providers.base import CLIConfig, Invocation, Provider
from ._groups import single_exception
from .driver import Emit, SessionDriver
from .host import ACP_HOST, CODEX_HOST, AgentHost, HostedConversation, HostProtocol
from .hosting import DriverWrapper
from .rpc_driver import RpcDriver
from .scaling import ScalingConfig
from .starting import start_task

__all__ = [
    "HostPool",
    "Prestarted",
    "ScalingConfig",
    "SharePlan",
    "request_key",
    "share_plan",
]

SESSION_KEY_ENV = "ALICE_SESSION_KEY"  # the same name as sessions.backend.SESSION_KEY_ENV

#: another host for a conversation whose chosen one closed before it attached
Rehost = Callable[[], Awaitable[Any]]


# -- what may share a process -------------------------------------------------------------------


class SharePlan:
    """How one provider's conversations share a process. ``template`` builds the provider's
    own per-process driver for a request (never run by itself: its argv, env, policy, mapping
    and approvals are what the shared process and the conversation use)."""

    #: env vars of the template's invocation that do not decide the process (per conversation)
    per_conversation_env: tuple[str, ...] = ()

    def template(self, config: CLIConfig, base: RunRequest, approver: Any) -> Any:
        raise NotImplementedError

    def invocation(self, template: Any) -> Invocation:
        return template.invocation  # type: ignore[no-any-return]

    def new_host(self, invocation: Invocation, template: Any, **kw: Any) -> Any:
        raise NotImplementedError

    def conversation(
        self,
        host: Any,
        template: Any,
        config: CLIConfig,
        base: RunRequest,
        close_grace: float,
        rehost: Rehost | None = None,
    ) -> SessionDriver:
        """``rehost()`` (awaited by the conversation's ``run`` when ``host`` no longer takes
        it then): another host for it, chosen as ``host`` was."""
        raise NotImplementedError


class RpcPlan(SharePlan):
    """codex app-server and ACP: an :class:`AgentHost` routing JSON-RPC by conversation."""

    def __init__(self, protocol: HostProtocol, factory: Callable[..., RpcDriver]) -> None:
        self.protocol = protocol
        self.factory = factory

    def template(self, config: CLIConfig, base: RunRequest, approver: Any) -> Any:
        return self.factory(config, base, approver=approver)

    def new_host(self, invocation: Invocation, template: Any, **kw: Any) -> Any:
        limits = attrs.evolve(invocation.limits, line_policy="skip")
        return AgentHost(attrs.evolve(invocation, limits=limits), self.protocol, **kw)

    def conversation(
        self,
        host: Any,
        template: Any,
        config: CLIConfig,
        base: RunRequest,
        close_grace: float,
        rehost: Rehost | None = None,
    ) -> SessionDriver:
        return HostedConversation(host, template, base, close_grace=close_grace, rehost=rehost)


class OpenCodePlan(SharePlan):
    """opencode serve: a :class:`~alice_trio.sessions.shared_opencode.ServeHost`, every
    conversation an attached driver (``?directory=`` per request, so cwd/PWD do not count, nor
    does the random password each template draws: the server keeps the one it was spawned
    with, and every conversation attached to it sends that one)."""

    per_conversation_env = ("PWD", "OPENCODE_SERVER_PASSWORD")

    def template(self, config: CLIConfig, base: RunRequest, approver: Any) -> Any:
        from .opencode_serve import OpenCodeServeDriver

        return OpenCodeServeDriver(config, base)  # type: ignore[arg-type]

    def invocation(self, template: Any) -> Invocation:
        return template.serve_invocation()  # type: ignore[no-any-return]

    def new_host(self, invocation: Invocation, template: Any, **kw: Any) -> Any:
        from .shared_opencode import ServeHost

        return ServeHost(invocation, template, **kw)

    def conversation(
        self,
        host: Any,
        template: Any,
        config: CLIConfig,
        base: RunRequest,
        close_grace: float,
        rehost: Rehost | None = None,
    ) -> SessionDriver:
        from .shared_opencode import AttachedConversation

        return AttachedConversation(host, config, base, rehost=rehost)  # type: ignore[arg-type]


def share_plan(provider: Provider, config: CLIConfig, approver: Any = None) -> SharePlan | None:
    """The plan for ``provider``, or None when its conversations need a process each (and
    for opencode with an approver, which its driver rejects: the ordinary path says so)."""
    from . import acp, codex_app_server, opencode_serve
    from .registry import resolve_factory

    try:
        factory = resolve_factory(provider, config)
    except ConfigError:
        return None
    if factory is codex_app_server.open_driver:
        return RpcPlan(CODEX_HOST, factory)
    if factory in (acp.open_gemini_driver, acp.open_kimi_driver, acp.open_acp_driver):
        return RpcPlan(ACP_HOST, factory)
    if factory is opencode_serve.open_driver and approver is None:
        if getattr(config, "server_url", "").strip():
            return None  # the caller runs its own server
        return OpenCodePlan()
    return None


def _warms_up(provider: Provider, config: CLIConfig) -> bool:
    """Whether the provider record says its session driver warms up a spare."""
    from .registry import session_spec

    try:
        return bool(session_spec(provider, config).spare_warm_up)
    except ConfigError:
        return False


def _env_key(env: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in dict(env).items() if k != SESSION_KEY_ENV))


def host_key(invocation: Invocation, skip: tuple[str, ...] = ()) -> Hashable:
    """What conversations must share to live in one process (cwd is per conversation, and so
    are the env vars named in ``skip``)."""
    env = {k: v for k, v in invocation.env.items() if k not in skip}
    return (invocation.argv, _env_key(env), invocation.env_remove, invocation.limits)


def request_key(request: RunRequest) -> Hashable:
    """What a spare was made for: the request without its prompt, thread, callbacks and
    session key."""
    return (
        request.agent_name, request.scene, request.model, request.variant, request.profile,
        request.reasoning_effort, request.personality, request.workspace_dir,
        request.exec_policy, _env_key(request.env),
    )  # fmt: skip


def _same_dir(a: str, b: str) -> bool:
    """``a`` and ``b`` name one directory (resolved; spelling, ``..`` and links aside)."""
    return a.strip() == b.strip() or os.path.realpath(a.strip()) == os.path.realpath(b.strip())


def _without_key(request: RunRequest) -> RunRequest:
    if SESSION_KEY_ENV not in request.env:
        return request
    env = {k: v for k, v in request.env.items() if k != SESSION_KEY_ENV}
    return request.evolve(env=env)


# -- a driver started ahead of need -------------------------------------------------------------


class Prestarted(DriverWrapper):
    """A driver whose ``run`` was started by the pool before any session wanted it.

    :meth:`warm` runs the inner driver in the pool's nursery (events before a session attaches
    are kept). As a :class:`SessionDriver` it hands those over, reports started at once and
    lasts until the inner driver ends; the inner driver's failure after start is raised from
    :meth:`run` (typed). Cancelling :meth:`run` closes the inner driver.
    """

    def __init__(self, driver: Any, key: Hashable = None, *, warm_up: bool = False) -> None:
        super().__init__(driver)
        self.key = key
        self.warm_up = warm_up
        self.taken = False
        self.failure: BaseException | None = None
        self.done = trio.Event()
        #: set by the first terminal event after a session attached, or when the driver ends
        self.first_turn_over = trio.Event()
        self._kept: list[TurnEvent] = []
        self._emit: Emit | None = None

    @property
    def alive(self) -> bool:
        return not self.done.is_set()

    async def warm(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the inner driver; report started once it is up and, with ``warm_up``, once its
        ``warm_up()`` returned (a failure of either before that is raised from here)."""
        started = False
        up = trio.Event()

        class _Status:
            def started(self, value: None = None) -> None:
                up.set()

        async def ready() -> None:
            nonlocal started
            await up.wait()
            warm_up = getattr(self.driver, "warm_up", None) if self.warm_up else None
            if callable(warm_up):
                await warm_up()
            started = True
            task_status.started()

        try:
            with single_exception():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(ready)
                    await self.driver.run(self._forward, task_status=_Status())
                    nursery.cancel_scope.cancel()
        except AliceError as exc:
            if not started:
                raise
            self.failure = exc
        finally:
            self.done.set()
            self.first_turn_over.set()

    async def _forward(self, event: TurnEvent) -> None:
        if self._emit is None:
            self._kept.append(event)
        else:
            if event.kind.terminal:
                self.first_turn_over.set()
            await self._emit(event)

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        while self._kept:
            await emit(self._kept.pop(0))
        self._emit = emit
        task_status.started()
        try:
            await self.done.wait()
        finally:
            if not self.done.is_set():
                with trio.CancelScope(shield=True):
                    await self.driver.aclose(graceful=False)
        if self.failure is not None:
            raise self.failure

    async def aclose(self, *, graceful: bool) -> None:
        await self.driver.aclose(graceful=graceful)
        await self.done.wait()


class _Slotted(DriverWrapper):
    """A one-process driver that holds a process slot for as long as it runs."""

    def __init__(self, driver: SessionDriver, pool: HostPool) -> None:
        super().__init__(driver)
        self.pool = pool

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        await self.pool._acquire(self)
        try:
            await self.driver.run(emit, task_status=task_status)
        finally:
            self.pool._release(self)

    async def aclose(self, *, graceful: bool) -> None:
        await self.driver.aclose(graceful=graceful)


async def _started_or_done(host: Any) -> None:
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        nursery.start_soon(wait, host.started)
        nursery.start_soon(wait, host.done)


# -- the pool -----------------------------------------------------------------------------------


class HostPool:
    """The drivers of one backend's conversations (see the module docstring).

    ``factory(config, initial, approver=...)`` builds a one-process driver (default: the
    provider's registered driver). ``on_pressure()`` is asked to close one idle conversation
    when a process slot is needed; it returns whether it did.
    """

    def __init__(
        self,
        provider: Provider,
        config: CLIConfig,
        *,
        scaling: ScalingConfig | None = None,
        approver: Any = None,
        factory: Callable[..., SessionDriver] | None = None,
        idle_ttl: float = 30.0,
        close_grace: float = 2.0,
        on_pressure: Callable[[], bool] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.provider = provider
        self.config = config
        self.scaling = scaling if scaling is not None else ScalingConfig()
        self.approver = approver
        self.factory = factory
        self.idle_ttl = idle_ttl
        self.close_grace = close_grace
        self.on_pressure = on_pressure
        self.start_timeout = start_timeout
        self.plan = (
            share_plan(provider, config, approver)
            if self.scaling.share and factory is None
            else None
        )
        #: one-process spares get the driver's warm-up (provider record: ``spare_warm_up``)
        self.warm_up = _warms_up(provider, config)
        limit = self.scaling.max_processes
        self.slots = trio.CapacityLimiter(limit if limit > 0 else math.inf)
        self.hosts: list[Any] = []  # AgentHost or ServeHost (the same pool interface)
        self.spares: list[Prestarted] = []
        self.spare_key: Hashable = None
        self.spare_request: RunRequest | None = None
        self.spares_started = 0
        self.spares_used = 0
        self.spare_failures = 0
        self._retry_at = 0.0
        self._retry_delay = self.scaling.spare_retry
        self._refilling = False
        self._spares_starting = 0
        #: replace a spare taken from a shared process only after the taking conversation's
        #: first turn (see the module docstring; ``False``: at once, for comparison)
        self.refill_after_first_turn = True
        self._idle_timers: dict[Any, trio.CancelScope] = {}
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._stack: AsyncExitStack | None = None
        self._closed = False

    @property
    def shared(self) -> bool:
        return self.plan is not None

    def processes(self) -> int:
        """Agent processes this pool accounts for (hosts, one-process conversations, spares)."""
        return int(self.slots.borrowed_tokens)

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> HostPool:
        """Open the pool; an open pool refuses a second entry with :class:`ConfigError`
        (nothing touched); after a full exit it opens again."""
        if self._stack is not None:
            raise ConfigError("the host pool is already open")
        self._closed = False
        self._retry_at = 0.0
        self._retry_delay = self.scaling.spare_retry
        stack = AsyncExitStack()
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._stack = stack
        if self.scaling.warm > 0:
            self._want_spares(RunRequest(user_text="", provider=self.provider.name))
        return self

    async def __aexit__(self, *exc: object) -> bool | None:
        if self._stack is None or self._nursery is None:
            raise ConfigError("HostPool.__aexit__ without a matching __aenter__")
        self._closed = True
        graceful = exc[0] is None
        try:
            with trio.CancelScope(shield=not graceful):
                async with trio.open_nursery() as closers:
                    for spare in self.spares:
                        closers.start_soon(self._close_spare, spare, graceful)
                    for host in list(self.hosts):
                        closers.start_soon(self._close_host, host, graceful)
            self.spares.clear()
            self._nursery.cancel_scope.cancel()
            # the nursery only runs our background tasks: the owner's exception is not passed
            # in, so it comes out as itself (never wrapped in a group)
            await self._stack.__aexit__(None, None, None)
            return None
        finally:
            self._nursery = None
            self._stack = None

    async def _close_spare(self, spare: Prestarted, graceful: bool) -> None:
        with trio.CancelScope(shield=True):
            await spare.driver.aclose(graceful=graceful)

    async def _close_host(self, host: Any, graceful: bool) -> None:
        with trio.CancelScope(shield=True):
            await host.aclose(graceful=graceful)

    # -- the backend's factory ----------------------------------------------------------------
    async def driver(self, initial: RunRequest) -> SessionDriver:
        """The driver of a conversation whose first request is ``initial`` (see module)."""
        if self._nursery is None or self._closed:
            raise ConfigError("the host pool is not open")
        base = self._plain(_without_key(initial))
        new = not initial.thread_id
        if new:
            spare = self._take_spare(base)
            if self.scaling.warm > 0:
                # a replacement on the spare's shared process would run on the agent's one
                # event loop while this conversation's first turn runs there: it waits for
                # that turn's end (a new conversation that finds no spare starts it at once)
                after = None
                if spare is not None and self.plan is not None and self.refill_after_first_turn:
                    after = spare.first_turn_over
                self._want_spares(base, after=after)
            if spare is not None:
                return spare
        return await self._make(base)

    def _plain(self, base: RunRequest) -> RunRequest:
        """``base`` without what only spells out the config's own defaults, which every
        driver falls back to (``request.x or config.x``): the config's workspace in any
        spelling of that directory, its model, env entries equal to the config's, an empty
        exec policy. Such a request asks for what a spare made with the defaults is, so it
        is served by one (and does not replace the spares made for the defaults). A custom
        driver factory keeps the model it was given."""
        config = self.config
        changes: dict[str, Any] = {}
        own_dir = config.workspace_dir.strip()
        if base.workspace_dir and own_dir and _same_dir(base.workspace_dir, own_dir):
            changes["workspace_dir"] = ""
        if self.factory is None and base.model and base.model == config.model.strip():
            changes["model"] = ""
        config_env = dict(config.env)
        if any(config_env.get(k, v + "\0") == v for k, v in base.env.items()):
            changes["env"] = {k: v for k, v in base.env.items() if config_env.get(k) != v}
        if base.exec_policy is not None and base.exec_policy == ExecPolicy():
            changes["exec_policy"] = None
        return base.evolve(**changes) if changes else base

    async def _make(self, base: RunRequest) -> SessionDriver:
        if self.plan is None:
            driver = self._build(base)
            return _Slotted(driver, self)
        template = self.plan.template(self.config, base, self.approver)
        host = await self._host_for(template, base.thread_id, wait=True)
        assert host is not None
        return self.plan.conversation(
            host, template, self.config, base, self.close_grace,
            rehost=self._rehost(template, base.thread_id, wait=True),
        )  # fmt: skip

    def _rehost(self, template: Any, thread_id: str, *, wait: bool) -> Rehost:
        """What a conversation handed out on a host awaits when that host no longer takes it
        by the time it attaches (it was closed to free a process slot, or retired, while the
        session was being opened): a host chosen again the same way. A spare (``wait``
        false) gets one only where there is room now, else :class:`SessionClosedError`."""

        async def rehost() -> Any:
            if self._closed or self._nursery is None:
                raise SessionClosedError(f"{self.provider.name}: the host pool is closed",
                                         provider=self.provider.name)  # fmt: skip
            host = await self._host_for(template, thread_id, wait=wait)
            if host is None:
                raise SessionClosedError(
                    f"{self.provider.name}: no room for a spare conversation",
                    provider=self.provider.name,
                )
            return host

        return rehost

    def _build(self, base: RunRequest) -> SessionDriver:
        from .registry import build_driver, create_driver

        if self.factory is not None:
            return build_driver(self.factory, self.config, base)

        return create_driver(self.provider, self.config, base, approver=self.approver)

    # -- spares -------------------------------------------------------------------------------
    def _take_spare(self, base: RunRequest) -> Prestarted | None:
        key = request_key(base)
        for spare in list(self.spares):
            if spare.done.is_set():  # died while waiting: dropped, replaced lazily
                self.spares.remove(spare)
                self.spare_failures += 1
                self._back_off()
                continue
            if spare.key == key:
                self.spares.remove(spare)
                spare.taken = True
                self.spares_used += 1
                return spare
        return None

    def _back_off(self) -> None:
        self._retry_at = trio.current_time() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, 300.0)

    def _want_spares(self, base: RunRequest, after: trio.Event | None = None) -> None:
        """Keep ``warm`` spares for requests like ``base`` (in the background; once ``after``
        is set, when given)."""
        key = request_key(base)
        if key != self.spare_key:
            self.spare_key = key
            self.spare_request = base.evolve(user_text="", thread_id="")
            for spare in [s for s in self.spares if s.key != key]:
                self.spares.remove(spare)
                assert self._nursery is not None
                self._nursery.start_soon(self._close_spare, spare, True)
        if after is not None and not after.is_set() and self._nursery is not None:
            self._nursery.start_soon(self._refill_after, after)
            return
        self._start_refill()

    def _start_refill(self) -> None:
        if not self._refilling and not self._closed and self._nursery is not None:
            self._refilling = True
            self._nursery.start_soon(self._refill)

    async def _refill_after(self, event: trio.Event) -> None:
        await event.wait()  # cancelled when the pool closes
        self._start_refill()

    async def _refill(self) -> None:
        try:
            while not self._closed and self.spare_request is not None:
                if len(self.spares) >= self.scaling.warm:
                    return
                if trio.current_time() < self._retry_at:
                    return
                if not await self._start_spare(self.spare_request):
                    return
        finally:
            self._refilling = False

    async def _start_spare(self, base: RunRequest) -> bool:
        assert self._nursery is not None
        key = request_key(base)
        try:
            if self.plan is None:
                if self.slots.available_tokens < 1:
                    return False
                driver: SessionDriver = self._build(base)
                holder = _Slotted(driver, self)
                spare = Prestarted(holder, key, warm_up=self.warm_up)
            else:
                template = self.plan.template(self.config, base, self.approver)
                host = await self._host_for(template, "", wait=False)
                if host is None:
                    return False
                conv = self.plan.conversation(
                    host, template, self.config, base, self.close_grace,
                    rehost=self._rehost(template, "", wait=False),
                )  # fmt: skip
                spare = Prestarted(conv, key)
            self._spares_starting += 1
            try:
                await start_task(self._nursery, spare.warm, name=self.provider.name)
            finally:
                self._spares_starting -= 1
        except AliceError:
            if self._closed:  # closed while it started (start_task): no failure to back off
                return False
            self.spare_failures += 1
            self._back_off()
            return False
        self.spares_started += 1
        self._retry_delay = self.scaling.spare_retry
        if self._closed or key != self.spare_key:
            await spare.driver.aclose(graceful=True)
            return False
        self.spares.append(spare)
        self.notify()  # a run waiting for a process slot may close it now (_acquire)
        return True

    # -- hosts --------------------------------------------------------------------------------
    async def _host_for(self, template: Any, thread_id: str, *, wait: bool) -> Any:
        """A host for a conversation like ``template`` (``None``: none without waiting)."""
        assert self.plan is not None
        invocation = self.plan.invocation(template)
        key = host_key(invocation, self.plan.per_conversation_env)
        while True:
            starting = [h for h in self.hosts if h.key == key and not h.started.is_set()]
            if not starting:
                break
            host = starting[0]
            await _started_or_done(host)  # one start per key at a time
            if not host.started.is_set() and trio.current_time() >= host.start_deadline:
                # a start that timed out is not tried again by every run that waited for it
                # (each would wait start_timeout more, one after the other)
                raise self._start_timed_out(host)
        for gone in [h for h in self.hosts if not h.alive and h.has_parked(thread_id)]:
            # the closing process still holds this conversation: never two at once
            await gone.done.wait()
        while holding := [h for h in self.hosts if not h.done.is_set() and h.holds(thread_id)]:
            # a live conversation has this thread open on that process: another process
            # would refuse it (codex) or load a second copy (gemini), the same one refuses a
            # second open. Wait until it is closed (parked there, or released), then route
            # (SessionBackend closes it first, threads.py; a caller of the pool closes it)
            await holding[0].released(thread_id)
        usable = [
            h for h in self.hosts
            if h.key == key and h.alive and not h.holds(thread_id)
        ]  # fmt: skip
        parked = [h for h in usable if getattr(h, "has_parked", bool)(thread_id)]
        if parked:  # the process that still holds this conversation
            return self._use(parked[0])
        roomy = [h for h in usable if not h.full]
        if roomy:
            return self._use(min(roomy, key=lambda h: h.load))
        if not wait:  # a spare: only into room that is free now, never evicting anything
            if self.slots.available_tokens < 1:
                return None
            return await self._start_host(invocation, template, key)
        if usable and not (self.slots.available_tokens >= 1 or self._free_one()):
            return self._use(min(usable, key=lambda h: h.load))
        return await self._start_host(invocation, template, key)

    def _use(self, host: Any) -> Any:
        timer = self._idle_timers.pop(host, None)
        if timer is not None:
            timer.cancel()
        return host

    async def _start_host(self, invocation: Invocation, template: Any, key: Hashable) -> Any:
        assert self._nursery is not None and self.plan is not None
        env = {k: v for k, v in invocation.env.items() if k != SESSION_KEY_ENV}
        host = self.plan.new_host(
            attrs.evolve(invocation, env=env), template, name=self.provider.name, key=key,
            capacity=self.scaling.host_capacity, close_grace=self.close_grace,
        )  # fmt: skip
        self.hosts.append(host)  # from now on a second conversation waits for this start
        try:
            await self._acquire(host)
            try:
                # the spawn and the process-wide handshake: an agent that never answers it is
                # killed (the cancelled start tears the host down) and the conversation (or
                # spare) waiting for it fails, as open_session's own start does
                host.start_deadline = trio.current_time() + self.start_timeout
                with trio.move_on_after(self.start_timeout) as starting:
                    await start_task(self._nursery, self._run_host, host, name=self.provider.name)
                if starting.cancelled_caught:
                    raise self._start_timed_out(host)
            except BaseException:
                self._release(host)
                raise
        finally:
            if not host.started.is_set():
                host.done.set()
                if host in self.hosts:
                    self.hosts.remove(host)
        return host

    def _start_timed_out(self, host: Any) -> RunTimeoutError:
        name = self.provider.name
        return RunTimeoutError(
            f"{name} {host.kind} did not start within {self.start_timeout:g} s", provider=name
        )

    async def _run_host(self, host: Any, *, task_status: trio.TaskStatus[None]) -> None:
        host.on_empty = self._host_emptied
        try:
            await host.run(task_status=task_status)
        finally:
            if host in self.hosts:
                self.hosts.remove(host)
            timer = self._idle_timers.pop(host, None)
            if timer is not None:
                timer.cancel()
            self._release(host)

    def _host_emptied(self, host: Any) -> None:
        """A host's last conversation detached: retire a full one now, else after idle_ttl.
        A start waiting at the process bound looks again (``_acquire``): an empty process is
        one it may close (it waited for the idle timer — the spare replaced for another
        request at ``max_processes`` held the only slot for ``idle_ttl``)."""
        if self._nursery is None or self._closed or not host.alive:
            return
        self.notify()
        if host.full:
            host.closing = True  # from now on: a resume parked here waits for its end
            self._nursery.start_soon(self._close_host, host, True)
            return
        if host not in self._idle_timers:
            scope = trio.CancelScope()
            self._idle_timers[host] = scope
            self._nursery.start_soon(self._idle_close, host, scope)

    async def _idle_close(self, host: AgentHost, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self.idle_ttl)
        if scope.cancelled_caught or self._idle_timers.get(host) is not scope:
            return
        del self._idle_timers[host]
        if host.load == 0:
            await self._close_host(host, True)

    # -- process slots ------------------------------------------------------------------------
    def _free_one(self) -> bool:
        """Start closing a *process* of ours that nothing needs, True if one is going: a spare
        process, a shared process whose only conversation is the spare, a shared process
        without conversations. (A spare conversation on a shared process that hosts others is
        no process: closing it frees no slot.)"""
        assert self._nursery is not None
        for spare in self.spares:
            host = getattr(spare.driver, "host", None) if self.plan is not None else None
            if host is not None and (host.load > 1 or not host.alive):
                continue
            self.spares.remove(spare)
            if host is not None:
                host.closing = True  # nothing new joins it: it goes with its spare
            self._nursery.start_soon(self._close_spare_and_host, spare, host)
            return True
        for host in self.hosts:
            if host.alive and host.load == 0:
                host.closing = True
                self._nursery.start_soon(self._close_host, host, True)
                return True
        return False

    async def _close_spare_and_host(self, spare: Prestarted, host: Any) -> None:
        await self._close_spare(spare, True)
        if host is not None:
            await self._close_host(host, True)

    async def _acquire(self, owner: object) -> None:
        """Take a process slot for ``owner``. While none is free, make one: close a process
        nothing needs (``_free_one``), else ask ``on_pressure`` to close the least recently
        used idle conversation, and look again once something closed — a conversation closed
        on a process that hosts others frees no slot, so this goes on until a process is
        empty. When nothing can be closed, wait in FIFO order for a slot, looking again when
        something changed (a busy conversation went idle). Cancellable."""
        while True:
            try:
                self.slots.acquire_on_behalf_of_nowait(owner)
                return
            except trio.WouldBlock:
                pass
            changed = self._changed
            if not (
                self._free_one()
                or (self.on_pressure is not None and self.on_pressure())
                or any(h.closing and not h.done.is_set() for h in self.hosts)
                # a spare still starting holds a slot that nothing can free yet: once it is
                # up it is a spare _free_one closes (waiting in the FIFO instead, nothing
                # would ever look again: a deadlock at max_processes with warm spares)
                or self._spares_starting
            ):
                # nothing can go now: wait in FIFO order, and look again when something
                # changed (a conversation busy until now went idle: on_pressure may close it)
                if await self._slot_or(changed, owner):
                    return
                continue
            await changed.wait()

    async def _slot_or(self, changed: trio.Event, owner: object) -> bool:
        """Wait for a process slot for ``owner`` (True, taken) or for ``changed`` (False)."""
        got = False
        async with trio.open_nursery() as nursery:

            async def slot() -> None:
                nonlocal got
                await self.slots.acquire_on_behalf_of(owner)
                got = True
                nursery.cancel_scope.cancel()

            async def look_again() -> None:
                await changed.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(slot)
            nursery.start_soon(look_again)
        return got

    def notify(self) -> None:
        """Something closed (a process, a conversation): ``_acquire`` looks again."""
        self._changed.set()
        self._changed = trio.Event()

    def _release(self, owner: object) -> None:
        try:
            self.slots.release_on_behalf_of(owner)
        except RuntimeError:
            pass
        self.notify()
