"""opencode conversations sharing one ``opencode serve`` process.

``opencode serve`` hosts many sessions, each addressed by id, and picks the project per
request (``?directory=``). :class:`ServeHost` owns one server process (spawned, its URL read
and its stdout drained by the opencode driver's own code); every conversation on it is an
ordinary :class:`~alice_trio.sessions.opencode_serve.OpenCodeServeDriver` *attached* to that
URL (``server_url``) with that server's credentials (:attr:`ServeHost.secret`: the random
password it was spawned with, sent as basic auth; opencode answers 401 without): its own
session, its own ``/event`` subscription (the mapper keeps only its session's events), its own
``/abort``. :class:`AttachedConversation` adds what attaching
alone lacks: when the server dies, the conversation's ``run`` raises
:class:`~alice_trio.errors.TransportClosedError` (exit status, stderr tail) at once, so its
in-flight turn fails typed instead of waiting for an event stream that reconnects forever.

Closing a conversation closes its subscription only (the server lives on; the session stays on
disk, resumable by id). The host duck-types :class:`~alice_trio.sessions.host.AgentHost`'s
pool interface (``run``, ``aclose``, ``alive``, ``full``, ``load``, ``holds``, ``on_empty``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from ..errors import SessionClosedError
from ..models import RunRequest
from ..providers.base import Invocation
from ..providers.opencode import OpenCodeConfig
from ..transports.process import open_agent_process
from ._groups import single_exception
from .driver import Emit
from .hosting import DriverWrapper, ProcessHost
from .opencode_serve import (
    DEFAULT_USERNAME,
    PASSWORD_ENV,
    USERNAME_ENV,
    OpenCodeServeDriver,
    ServerSecret,
)

__all__ = ["AttachedConversation", "ServeHost"]


class ServeHost(ProcessHost):
    """One ``opencode serve`` process for many conversations (see the module docstring)."""

    kind = "server process"

    def __init__(self, invocation: Invocation, template: OpenCodeServeDriver, **kw: Any) -> None:
        super().__init__(invocation, **kw)
        self.template = template
        self.url = ""

    @property
    def secret(self) -> ServerSecret | None:
        """The credentials the server was spawned with (its invocation's env), or None."""
        password = self.invocation.env.get(PASSWORD_ENV, "")
        if not password:
            return None
        return ServerSecret(password, self.invocation.env.get(USERNAME_ENV, "") or DEFAULT_USERNAME)

    def holds(self, key: str) -> bool:
        return bool(key) and any(c.driver.mapper.session_id == key for c in self.links)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Spawn the server, read its URL, report started, drain stdout until it exits. A
        failure before started is raised (typed); after it, kept in :attr:`failure`."""
        with self._lifetime():
            async with open_agent_process(
                self.invocation, name=self.name, stdin=False, graceful=False
            ) as proc:
                self.process = proc
                self.url = await self.template._read_url(proc)
                proc.ready()
                self.started.set()
                task_status.started()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.template._drain_stdout, proc)
                    await proc.exited.wait()
                    nursery.cancel_scope.cancel()

    async def aclose(self, *, graceful: bool = True) -> None:
        """Kill the server (``serve`` ignores stdin EOF: there is no graceful wait to pay)."""
        self.closing = True
        if self._scope is not None:
            self._scope.cancel()
            await self.done.wait()

    def attach(self, conversation: AttachedConversation) -> None:
        if not self.alive:
            raise SessionClosedError(f"{self.name} server is not running", provider=self.name)
        self.links.add(conversation)
        self.opened += 1

    def detach(self, conversation: AttachedConversation) -> None:
        self.links.discard(conversation)
        self._emptied()


class AttachedConversation(DriverWrapper):
    """One opencode conversation on a :class:`ServeHost` (a SessionDriver)."""

    def __init__(
        self,
        host: ServeHost,
        config: OpenCodeConfig,
        initial: RunRequest,
        *,
        rehost: Callable[[], Awaitable[ServeHost]] | None = None,
    ) -> None:
        """``rehost()``: another server when ``host`` no longer takes conversations by the
        time :meth:`run` attaches (see :class:`~alice_trio.sessions.host.HostedConversation`)."""
        super().__init__(self._driver_on(host, config, initial))
        self.host = host
        self._config = config
        self._initial = initial
        self._rehost = rehost

    @staticmethod
    def _driver_on(
        host: ServeHost, config: OpenCodeConfig, initial: RunRequest
    ) -> OpenCodeServeDriver:
        return OpenCodeServeDriver(
            attrs.evolve(config, server_url=host.url), initial, secret=host.secret
        )

    def stderr_tail(self) -> str:
        return self.host.stderr_tail()

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        """Run the attached driver; returns when it is closed, raises the host's
        :meth:`ServeHost.ended_error` when the server died first."""
        if not self.host.alive and self._rehost is not None:
            self.host = await self._rehost()  # attached below with no checkpoint between
            self.driver = self._turns = self._driver_on(self.host, self._config, self._initial)
        self.host.attach(self)
        died = False
        try:
            with single_exception():
                async with trio.open_nursery() as nursery:
                    await nursery.start(self._run_inner, emit, nursery.cancel_scope)
                    task_status.started()
                    await self.host.done.wait()
                    died = True
                    nursery.cancel_scope.cancel()
        finally:
            self.host.detach(self)
        if died:
            raise self.host.ended_error()

    async def _run_inner(
        self, emit: Emit, scope: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        await self.driver.run(emit, task_status=task_status)
        scope.cancel()  # closed: nothing left to watch

    async def aclose(self, *, graceful: bool) -> None:
        await self.driver.aclose(graceful=graceful)
