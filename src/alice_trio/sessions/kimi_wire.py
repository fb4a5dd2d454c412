"""Interactive legacy kimi-cli (≤ 1.51): ``kimi --wire`` (JSON-RPC 2.0, string ids).

Steer mode ``native``: ``steer {user_input}`` adds input to the running turn; kimi reports it
with a ``SteerInput`` event and answers within the same turn (same turn id).

* Process: ``<command> --wire --session=<id> [--model=M] [--yolo] [--add-dir=D…] [extra…]``.
  ``<id>`` is the request's thread id, or a **fresh uuid4** for a new session (kimi-cli creates
  a missing session under that id), so the thread id reported on every event and returned for
  resuming is kimi's real session id, never the Go placeholder ``"kimi-wire"`` (spec §13.15).
* Preload: the process imports at start what kimi-cli would import at the first prompt
  (the record's ``SessionSpec.preload``) and runs the record's warm-up scripts
  (``preload_scripts``: the OpenAI SDK's first-call caches), :mod:`.preload`, so a warm
  spare's first turn costs about what a later one does.
* Handshake: ``initialize`` (protocol 1.10; ``supports_question`` only when an approver
  callback exists, otherwise kimi hides its question tool).
* ``start_turn``: ``prompt`` in the background (turn id ``wire-<n>``); its response ends the
  turn. Cancelling it (session closed) sends ``cancel`` (spec §13.11); a JSON-RPC error (e.g.
  ``-32003`` chat provider error) or a dead process becomes an ``error`` event of the turn.
* ``interrupt_turn``: ``cancel``; the prompt then ends ``cancelled`` → ``turn_interrupted``.
* Model (§13.17): the wire protocol has no way to change the model of a running process, so a
  request whose model (else the config's, else the starting one) differs from the process's
  restarts it between turns (:meth:`RpcDriver.restart`: stdin EOF, then ``--wire
  --session=<same id> --model=<new>``; kimi-cli resumes the session from disk, so the history
  is kept). A process that does not come back raises :class:`TransportClosedError` from
  ``start_turn``.
* Approvals/questions: the approver callback, else
  :func:`~alice_trio.sessions.approval.default_decision` of the exec policy with kimi's
  defaults for unset fields (``yolo``, or no sandbox/approval policy set → accept, as kimi's
  ``--print`` mode does; a policy asking for approvals or a sandbox → reject; questions are
  dismissed, never answered with ``""``).
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

import attrs

from ..errors import NoActiveTurnError
from ..models import RunRequest, TurnEvent
from ..protocols import kimi_wire as proto
from ..protocols.jsonrpc import METHOD_NOT_FOUND, JsonRpcError, Notification, Request
from ..providers.base import Invocation, Provider, as_map, as_str, merge_env
from ..providers.kimi import PROVIDER, KimiConfig
from .approval import KIMI_DEFAULT_POLICY, Approver, default_decision
from .driver import SteerMode, TurnRef
from .preload import with_preload
from .rpc_driver import RpcDriver, TurnStart

__all__ = ["KimiWireDriver", "build_invocation", "open_driver"]


def build_invocation(config: KimiConfig, initial: RunRequest, session_id: str) -> Invocation:
    model = initial.model or config.model.strip()
    policy = config.exec_policy.merged(initial.exec_policy)
    argv = [config.command.strip() or "kimi", "--wire", f"--session={session_id}"]
    if model:
        argv.append(f"--model={model}")
    if config.yolo:
        argv.append("--yolo")
    argv += [f"--add-dir={d}" for d in policy.add_dirs]
    argv += config.extra_args
    env: dict[str, str] = {}
    if config.disable_telemetry:
        env["KIMI_DISABLE_TELEMETRY"] = "1"
    if config.disable_auto_update:
        env["KIMI_CLI_NO_AUTO_UPDATE"] = "1"
    wd = initial.workspace_dir or config.workspace_dir.strip()
    return Invocation(
        argv=tuple(argv), env=merge_env(env, config.env, initial.env),
        cwd=os.path.abspath(wd) if wd else None, limits=config.limits,
    )  # fmt: skip


class KimiWireDriver(RpcDriver):
    provider = "kimi"
    steer_mode = SteerMode.NATIVE
    jsonrpc = True
    string_ids = True

    def __init__(
        self,
        config: KimiConfig,
        initial: RunRequest,
        *,
        approver: Approver | None = None,
        invocation: Invocation | None = None,
        session_id: str = "",
        close_grace: float = 2.0,
        preload: tuple[str, ...] = (),
        preload_scripts: tuple[str, ...] = (),
    ) -> None:
        self.session_id = initial.thread_id or session_id or str(uuid.uuid4())
        if invocation is None:
            invocation = with_preload(
                build_invocation(config, initial, self.session_id), preload,
                scripts=preload_scripts,
            )  # fmt: skip
        super().__init__(invocation, approver=approver, close_grace=close_grace)
        self.config = config
        self.model = self.base_model = initial.model or config.model.strip()
        self.policy = KIMI_DEFAULT_POLICY.merged(config.exec_policy.merged(initial.exec_policy))
        self.mapper = proto.KimiWireMapper(session_id=self.session_id)
        self.server_info: dict[str, Any] = {}
        self._turns = itertools.count(1)

    async def handshake(self, client: Any) -> None:
        params = proto.initialize_params(supports_question=self.approver is not None)
        info = await client.request("initialize", params)
        self.server_info = info if isinstance(info, dict) else {}

    def map_notification(self, msg: Notification) -> list[TurnEvent]:
        if msg.method != "event":
            return [self.unknown(msg.raw, f"kimi wire notification {msg.method}")]
        return self.mapper.feed(msg.params, msg.raw)

    def eof_events(self) -> list[TurnEvent]:
        return self.mapper.flush()

    async def _switch_model(self, request: RunRequest) -> None:
        wanted = request.model or self.config.model.strip() or self.base_model
        if wanted == self.model:
            return
        await self.restart(self._with_model(wanted))
        self.model = wanted

    def _with_model(self, model: str) -> Invocation:
        """The current invocation with ``--model=<model>`` (added, replaced, or removed for
        ``""``: kimi's default)."""
        argv = [a for a in self.invocation.argv if not a.startswith("--model=")]
        at = next((i + 1 for i, a in enumerate(argv) if a.startswith("--session=")), len(argv))
        if model:
            argv.insert(at, f"--model={model}")
        return attrs.evolve(self.invocation, argv=tuple(argv))

    async def start_turn(self, request: RunRequest) -> TurnRef:
        text = self.check_prompt(request)
        self._require_client()
        await self._switch_model(request)
        ref = TurnRef(thread_id=self.session_id, turn_id=f"wire-{next(self._turns)}")
        started = TurnStart()
        self._spawn(self._prompt, ref, text, started)
        await started.wait()  # raises when the prompt could not be written (the process died)
        return ref

    async def _cancel(self) -> None:
        """``cancel`` for a prompt being abandoned (fire and forget)."""
        if self.client is not None:
            await self.client.send_untracked("cancel", {}, request=True)

    async def _prompt(self, ref: TurnRef, text: str, started: TurnStart) -> None:
        self.mapper.flush()
        self.mapper.begin(ref.turn_id)
        await self.request_turn(ref, "prompt", {"user_input": text}, self.mapper.finish,
                                on_cancel=self._cancel, start=started)  # fmt: skip

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        """``steer``; :class:`NoActiveTurnError` when the turn already ended on kimi's side
        (the session then starts the input as a turn of its own)."""
        text = self.check_prompt(request)
        try:
            await self._require_client().request("steer", {"user_input": text})
        except JsonRpcError as exc:
            if proto.no_turn_in_progress(exc.code, exc.rpc_message):
                raise NoActiveTurnError(provider=self.provider) from exc
            raise
        return turn

    async def interrupt_turn(self, turn: TurnRef) -> None:
        """``cancel``; a turn that already ended on kimi's side has nothing left to stop."""
        self.gate.withdraw_all()  # a pending approval is rejected: kimi can stop the turn
        try:
            await self._require_client().request("cancel", {})
        except JsonRpcError as exc:
            if not proto.no_turn_in_progress(exc.code, exc.rpc_message):
                raise

    async def answer_request(self, req: Request) -> Any:
        params = req.params if isinstance(req.params, dict) else {}
        payload = as_map(params.get("payload"))
        rtype = as_str(params.get("type"))
        if req.method != "request":
            raise JsonRpcError(f"method not supported: {req.method}", code=METHOD_NOT_FOUND)
        if rtype == "HookRequest":
            return {"request_id": as_str(payload.get("id")), "action": "allow", "reason": ""}
        if rtype == "ToolCallRequest":
            return {"tool_call_id": as_str(payload.get("id")), "return_value": {
                "is_error": True, "output": "", "display": [],
                "message": "alice_trio has no external tool handler"}}  # fmt: skip
        approval = proto.approval_request(
            params, session_id=self.session_id, turn_id=self.mapper.turn_id
        )
        if approval is None:
            raise JsonRpcError(f"request type not supported: {rtype}", code=METHOD_NOT_FOUND)
        fallback = default_decision(self.policy, auto_approve=self.config.yolo)
        answer = await self.decide(approval, fallback, req.raw)
        result = proto.approval_result(approval, answer)
        if result is None:
            raise JsonRpcError("question dismissed: no answer", code=-32000)
        return result


def open_driver(
    config: KimiConfig,
    initial: RunRequest,
    *,
    approver: Approver | None = None,
    provider: Provider | None = None,
) -> KimiWireDriver:
    """The legacy-wire session factory (Kimi Code 2.x has no wire mode: use
    :func:`alice_trio.sessions.acp.open_kimi_driver`). The process preloads the modules the
    provider record (``provider``, else kimi's) names for this flavor
    (:mod:`~alice_trio.sessions.preload`)."""
    spec = (provider or PROVIDER).flavor_of(config).session
    return KimiWireDriver(
        config, initial, approver=approver, preload=spec.preload,
        preload_scripts=spec.preload_scripts,
    )  # fmt: skip
