"""Interactive codex: ``codex app-server --listen stdio://`` (JSON-RPC lines without ``jsonrpc``).

Steer mode ``native``: input that arrives during a turn goes to ``turn/steer`` with the active
turn as ``expectedTurnId`` and is answered inside the same turn.

* Handshake: ``initialize`` (clientInfo ``alice_trio``, ``experimentalApi``) → ``initialized``.
* Thread: the first turn opens it, ``thread/start`` or ``thread/resume {threadId}`` with the
  model, cwd, ``approvalPolicy`` and ``sandbox`` of the config merged with that request's
  exec policy (spec §13.14: the Go driver ignored the per-request policy). Later turns reuse it.
* ``start_turn``: ``turn/start`` (text input, model, effort, personality, cwd, approvalPolicy;
  the config's model/effort/personality are the defaults; codex keeps a turn's model for the
  turns after it, so without a request's or the config's model a turn names the model the
  thread started on and a switch holds for its own turn only). Returns once codex accepted the
  turn, with codex's own turn id; the turn's events follow through ``emit``.
* ``interrupt_turn``: ``turn/interrupt``; codex then ends the turn with status ``interrupted``.
* Approvals: the approver callback, else :func:`~alice_trio.sessions.approval.default_decision`
  of the effective exec policy (never a blanket accept). Questions
  (``item/tool/requestUserInput``) go to the callback; unanswered they get a JSON-RPC error.
  Any other server request (auth refresh, dynamic tools, attestation) gets ``-32601``.

Events and errors: see :mod:`alice_trio.protocols.codex_app_server`. A JSON-RPC error to
``turn/start`` / ``turn/steer`` raises :class:`~alice_trio.protocols.jsonrpc.JsonRpcError`,
except codex's answer that the turn to steer is over (-32600 "no active turn to steer": the
turn ended before the steer reached codex), which raises
:class:`~alice_trio.errors.NoActiveTurnError` like a steer without a turn;
a dead process raises :class:`~alice_trio.errors.TransportClosedError` with the stderr tail.
"""

from __future__ import annotations

from typing import Any

import trio

from ..errors import NoActiveTurnError, ProtocolError
from ..models import RunRequest, TurnEvent
from ..protocols import codex_app_server as proto
from ..protocols.jsonrpc import METHOD_NOT_FOUND, JsonRpcError, Notification, Request
from ..providers.base import Invocation, as_str
from ..providers.codex import CodexConfig, codex_env
from .approval import Approver, default_decision
from .driver import SteerMode, TurnRef
from .rpc_driver import RpcDriver

__all__ = ["CodexAppServerDriver", "build_invocation", "open_driver"]


def build_invocation(config: CodexConfig, initial: RunRequest) -> Invocation:
    """``<command> app-server --listen stdio:// [extra_args…]`` in the workspace; env is
    ``CODEX_HOME`` from ``codex_home``, the config's env, then the first request's env."""
    command = config.command.strip() or "codex"
    return Invocation(
        argv=(command, "app-server", "--listen", "stdio://", *config.extra_args),
        env=codex_env(config, initial.env),
        cwd=initial.workspace_dir or config.workspace_dir.strip() or None,
        limits=config.limits,
    )


class CodexAppServerDriver(RpcDriver):
    provider = "codex"
    steer_mode = SteerMode.NATIVE
    jsonrpc = False

    def __init__(
        self,
        config: CodexConfig,
        initial: RunRequest,
        *,
        approver: Approver | None = None,
        invocation: Invocation | None = None,
        close_grace: float = 2.0,
    ) -> None:
        super().__init__(
            invocation or build_invocation(config, initial),
            approver=approver,
            close_grace=close_grace,
        )
        self.config = config
        self.thread_id = initial.thread_id
        self._thread_ready = False
        self._base_model = ""  # the model the thread started on (thread/start's answer)
        self._thread_lock = trio.Lock()
        self.mapper = proto.CodexNotificationMapper(
            thread_id=self.thread_id, workspace=self._cwd(initial)
        )
        self._policy = config.exec_policy.merged(initial.exec_policy)

    def _cwd(self, request: RunRequest) -> str:
        return request.workspace_dir or self.config.workspace_dir.strip()

    async def handshake(self, client: Any) -> None:
        await client.request("initialize", proto.initialize_params())
        await client.notify("initialized")

    async def _ensure_thread(self, request: RunRequest) -> str:
        async with self._thread_lock:
            if self._thread_ready:
                return self.thread_id
            client = self._require_client()
            policy = self.config.exec_policy.merged(request.exec_policy)
            method, params = proto.thread_params(
                thread_id=request.thread_id or self.thread_id,
                model=request.model or self.config.model.strip(),
                cwd=self._cwd(request),
                policy=policy,
            )
            result = await client.request(method, params)
            thread = result.get("thread") if isinstance(result, dict) else None
            thread_id = as_str(thread.get("id")) if isinstance(thread, dict) else ""
            thread_id = thread_id or params.get("threadId", "")
            if not thread_id:
                raise ProtocolError("codex app-server returned no thread id", provider="codex")
            self.thread_id = self.mapper.thread_id = thread_id
            self._policy = policy
            # turn/start's model is sticky ("for this turn and subsequent turns"): a later turn
            # without one names the model the thread started on, so a switch holds for its turn
            self._base_model = as_str(result.get("model")) if isinstance(result, dict) else ""
            self._thread_ready = True
            return thread_id

    async def start_turn(self, request: RunRequest) -> TurnRef:
        text = self.check_prompt(request)
        thread_id = await self._ensure_thread(request)
        policy = self.config.exec_policy.merged(request.exec_policy)
        self._policy = policy
        params = proto.turn_start_params(
            thread_id=thread_id,
            text=text,
            model=request.model or self.config.model.strip() or self._base_model,
            effort=request.reasoning_effort or self.config.reasoning_effort.strip(),
            personality=request.personality or self.config.personality.strip(),
            cwd=self._cwd(request),
            approval=policy.ask_for_approval,
        )
        result = await self._require_client().request("turn/start", params)
        turn = result.get("turn") if isinstance(result, dict) else None
        turn_id = as_str(turn.get("id")) if isinstance(turn, dict) else ""
        if not turn_id:
            raise ProtocolError("codex app-server turn/start returned no turn id", provider="codex")
        return TurnRef(thread_id=thread_id, turn_id=turn_id)

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        text = self.check_prompt(request)
        params = proto.steer_params(thread_id=turn.thread_id, turn_id=turn.turn_id, text=text)
        try:
            result = await self._require_client().request("turn/steer", params)
        except JsonRpcError as exc:
            if proto.steer_found_no_turn(exc.code, exc.rpc_message):
                # the turn ended on codex's side before the steer reached it
                raise NoActiveTurnError(provider="codex") from exc
            raise
        turn_id = as_str(result.get("turnId")) if isinstance(result, dict) else ""
        return TurnRef(thread_id=turn.thread_id, turn_id=turn_id or turn.turn_id)

    async def interrupt_turn(self, turn: TurnRef) -> None:
        self.gate.withdraw_all()  # pending approvals are answered "cancel" at once
        params = proto.interrupt_params(thread_id=turn.thread_id, turn_id=turn.turn_id)
        await self._require_client().request("turn/interrupt", params)

    def map_notification(self, msg: Notification) -> list[TurnEvent]:
        return self.mapper.feed(msg)

    async def answer_request(self, req: Request) -> Any:
        approval = proto.approval_request(req.method, req.params, str(req.id))
        if approval is None:
            raise JsonRpcError(f"method not supported: {req.method}", code=METHOD_NOT_FOUND)
        answer = await self.decide(approval, default_decision(self._policy), req.raw)
        result = proto.approval_result(approval, answer)
        if result is None:
            raise JsonRpcError("question dismissed: no answer", code=-32000)
        return result


def open_driver(
    config: CodexConfig, initial: RunRequest, *, approver: Approver | None = None
) -> CodexAppServerDriver:
    """The session factory for codex (named in its provider record)."""
    return CodexAppServerDriver(config, initial, approver=approver)
