"""Interactive sessions over the Agent Client Protocol: gemini ``--acp``, Kimi Code ``kimi acp``,
and any ACP agent started by command (:class:`AcpConfig`).

Steer mode ``queue_when_busy``: ACP has no way to add input to a running prompt, so the session
queues it; :meth:`AcpDriver.steer_turn` raises :class:`SteerUnsupportedError`.

* Handshake: ``initialize`` (protocol 1, no fs/terminal capability), then ``session/new
  {cwd, mcpServers: []}``, or ``session/load`` when the first request has a thread id (the ACP
  session id). Gemini 0.61 keeps replaying the history **after** answering ``session/load``, so
  the driver waits until the agent has been quiet for ``load_settle`` seconds (at most
  ``load_settle_max``) and discards every update up to then: the replayed history is never
  reported as the new turn's reply.
* ``start_turn``: ``session/prompt`` in the background, returning once it is written (then a
  ``turn_started`` event; a prompt that cannot be written — the process is gone — raises
  :class:`~alice_trio.errors.TransportClosedError` and no turn exists); the turn
  id is ``acp-<n>`` (ACP has none), the thread id the session id. The prompt's response ends the
  turn (see :mod:`alice_trio.protocols.acp`); a JSON-RPC error or a dead process after that
  becomes an ``error`` event of that turn.
* ``interrupt_turn``: the ``session/cancel`` notification; the prompt then ends ``cancelled``.
* Model (§13.17): the session runs on the initial request's model, else the config's (gemini
  also gets ``--model``; Kimi Code has no model flag, so after ``session/new``/``session/load``
  the driver sends ``session/set_model`` unless the agent already reports that model). A later
  request whose model (else the config's, else the starting one) differs is switched with
  ``session/set_model`` before its prompt; an agent that refuses raises the
  :class:`~alice_trio.protocols.jsonrpc.JsonRpcError` from ``start_turn`` (e.g. Kimi Code:
  "Model … is not configured in config.toml") — never a prompt silently run on the old model.
* ``session/request_permission`` → the approver callback, else
  :func:`~alice_trio.sessions.approval.default_decision` (``auto_approve`` / yolo → accept).
  An approver's CANCEL also stops the turn: ACP's ``cancelled`` outcome alone lets the agent go
  on with the next model call (gemini and Kimi Code do), so the driver sends ``session/cancel``
  first (once per turn; an interrupt has sent it already) and the prompt ends ``cancelled``.
  Other agent requests (``fs/*``, ``terminal/*``, which we did not offer) get ``-32601``.

**Gemini resume** (issue 14 item 5). gemini-cli 0.61 records a conversation in
``~/.gemini/tmp/<project>/chats/session-<YYYY-MM-DDTHH-MM>-<id[:8]>.jsonl`` (the UTC minute of
its *creation*; ``ChatRecordingService.initialize``). Two things lose a resumed conversation:

1. Its ACP ``session/load`` (``AcpSessionManager.loadSession``) first initializes a fresh
   chat for the loaded id — a new recording in the file named for *the current minute* — and
   only then looks the session up (``SessionSelector.resolveSession`` → ``getSessionFiles``).
   Within the minute the session's file was created, that fresh recording is appended to the
   very file holding the history, and its ``{"$set": {"messages": [<session context>]}}``
   record clears every message before it: the lookup finds nothing resumable (-32603 "No
   previous sessions found for this project.") and the history is gone from disk.
2. In any other minute the load works, but leaves that fresh recording behind as a file with
   no resumable content. Every gemini start runs ``cleanupExpiredSessions``, which deletes
   such a file *and every file whose name ends in the same* ``-<id[:8]>.jsonl`` — the
   history file too — so the conversation is lost at the next resume.

So before every gemini ``session/load`` the driver renames the session's files that carry
gemini's per-minute name to ``session-<stamp>-<id[:8]>-kept.jsonl``
(:func:`keep_gemini_history`): gemini finds the session there by the ``sessionId`` inside and
records the resumed conversation there, but never creates that name and its cleanup never
matches it by short id. A conversation still loaded in a shared gemini process (parked, its
``session/load`` answered locally) is left alone. Side effect: gemini's own
``--delete-session`` by id no longer removes a kept file (retention by age/count still does).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from ..errors import ConfigError, ProtocolError, ResumeUnsupportedError, SteerUnsupportedError
from ..models import EventKind, ExecPolicy, RunRequest, TurnEvent
from ..protocols import acp as proto
from ..protocols.jsonrpc import METHOD_NOT_FOUND, JsonRpcError, Notification, Request
from ..providers.base import CLIConfig, Invocation, as_str, merge_env
from ..providers.gemini import GeminiConfig
from ..providers.gemini import default_env as gemini_env
from ..providers.kimi import KimiConfig
from ..providers.kimi import default_env as kimi_env
from .approval import KIMI_DEFAULT_POLICY, ApprovalDecision, Approver, default_decision
from .driver import SteerMode, TurnRef
from .rpc_driver import RpcDriver, TurnStart

__all__ = [
    "AcpConfig",
    "AcpDriver",
    "keep_gemini_history",
    "open_acp_driver",
    "open_gemini_driver",
    "open_kimi_driver",
]


def _args(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


@attrs.frozen(kw_only=True)
class AcpConfig(CLIConfig):
    """Any ACP agent: ``command`` (required) followed by ``args`` (e.g. ``("--acp",)``), then
    ``extra_args``. ``auto_approve`` accepts permission requests when no callback is given."""

    args: tuple[str, ...] = attrs.field(default=(), converter=_args)
    auto_approve: bool = False
    name: str = "acp"


class AcpDriver(RpcDriver):
    steer_mode = SteerMode.QUEUE_WHEN_BUSY
    jsonrpc = True

    def __init__(
        self,
        invocation: Invocation,
        initial: RunRequest,
        *,
        provider: str = "acp",
        cwd: str = "",
        policy: ExecPolicy | None = None,
        auto_approve: bool = False,
        approver: Approver | None = None,
        close_grace: float = 2.0,
        load_settle: float = 0.3,
        load_settle_max: float = 5.0,
        model: str = "",
        default_model: str = "",
        before_load: Callable[[str, str], object] | None = None,
        trailing_usage: bool = False,
        usage_rule: bool = False,
        usage_wait: float = 1.0,
        promised_usage_wait: float = 30.0,
    ) -> None:
        """``before_load(session_id, cwd)``: called before ``session/load`` is sent (gemini:
        :func:`keep_gemini_history`); not when a shared process answers the load locally.
        ``usage_rule``: the agent follows Kimi Code 2.1's rule for the ``usage_update`` after
        a prompt's response (:mod:`alice_trio.protocols.acp`): a turn promised one ends with
        it however late it comes, up to ``promised_usage_wait`` seconds (a bound against an
        agent that breaks its rule, not a guess at its delay: its reply is never held longer);
        the wait ends early when the process's output ends, the turn is interrupted
        (:meth:`interrupt_turn`: the caller's cancellation, the run's timeout or idle timeout)
        or the session closes, and then the turn completes without usage (a usage that comes
        later is reported under its id). ``trailing_usage``: the agent is
        taken to report usage after the response before it was seen to (the mapper also
        learns it); where the rule does not decide, the turn's end then waits up to
        ``usage_wait`` seconds for it (best effort)."""
        super().__init__(invocation, approver=approver, close_grace=close_grace)
        self.provider = provider  # type: ignore[misc]
        self.gate.provider = provider
        self.cwd = os.path.abspath(cwd or invocation.cwd or os.getcwd())
        self.policy = policy or ExecPolicy()
        self.auto_approve = auto_approve
        self.load_settle = load_settle
        self.load_settle_max = load_settle_max
        self.resume_id = initial.thread_id
        self.before_load = before_load
        self.default_model = default_model
        self.wanted_model = model or initial.model or default_model
        self.model = ""  # the model the agent runs on, once known
        self.base_model = ""  # the model it ran on after the handshake (requests without one)
        self._model_lock = trio.Lock()
        self.session_id = ""
        self.agent_info: dict[str, Any] = {}
        #: whether the agent can load this conversation again (``loadSession``), once known
        self.resumable = True
        self.mapper = proto.AcpUpdateMapper(
            provider=provider, trailing_usage=trailing_usage, usage_rule=usage_rule
        )
        self.usage_wait = usage_wait
        self.promised_usage_wait = promised_usage_wait
        self._usage_came: trio.Event | None = None
        self._usage_given_up = ""  # an interrupted turn: its end does not wait for usage
        self._turns = itertools.count(1)
        self._last_update = 0.0
        self._cancel_sent = ""  # the turn whose session/cancel went out (interrupt or CANCEL)

    async def handshake(self, client: Any) -> None:
        info = await client.request("initialize", proto.initialize_params())
        self.agent_info = info if isinstance(info, dict) else {}
        caps = self.agent_info.get("agentCapabilities") or {}
        self.resumable = isinstance(caps, dict) and caps.get("loadSession") is True
        if self.resume_id:
            if not self.resumable:
                raise ResumeUnsupportedError(
                    f"{self.provider}: the agent cannot load session {self.resume_id!r} "
                    "(its initialize offers no loadSession): run without the thread id to "
                    "start a new conversation",
                    provider=self.provider,
                )
            self.mapper.session_id = self.session_id = self.resume_id
            if self.before_load is not None and not _parked(client, self.resume_id):
                self.before_load(self.resume_id, self.cwd)
            self.mapper.replaying = True
            self._last_update = trio.current_time()
            result = await client.request(
                "session/load", proto.load_session_params(self.resume_id, self.cwd)
            )
            await self._settle()
            self.mapper.replaying = False
        else:
            result = await client.request("session/new", proto.new_session_params(self.cwd))
            sid = as_str(result.get("sessionId")) if isinstance(result, dict) else ""
            if not sid:
                raise ProtocolError(f"{self.provider}: session/new returned no sessionId",
                                    provider=self.provider)  # fmt: skip
            self.mapper.session_id = self.session_id = sid
        if isinstance(result, dict):
            self.mapper.note_config(result.get("configOptions"))
        current = proto.current_models(result)
        wanted = self.wanted_model
        if wanted and wanted not in current:
            await self._set_model(client, wanted)
        else:
            self.model = wanted or next(iter(sorted(current)), "")
        self.base_model = self.model

    async def _set_model(self, client: Any, model: str) -> None:
        """``session/set_model``; a refusal raises JsonRpcError naming the model and the
        agent's reason (``data.details``), and the model stays as it was. Cancelled (or the
        process ending) while in flight, the agent may have switched: the model is unknown
        until the next ``session/set_model`` (the next request's model is always sent)."""
        previous, self.model = self.model, ""
        try:
            await client.request(
                "session/set_model", proto.set_model_params(self.session_id, model)
            )
        except JsonRpcError as exc:
            self.model = previous
            data = exc.data
            reason = data.get("details") if isinstance(data, dict) else data
            raise JsonRpcError(
                f"{self.provider} refused to switch to model {model!r}: {exc.rpc_message}"
                + (f" ({reason})" if reason else ""),
                code=exc.code, data=exc.data, method="session/set_model", provider=self.provider,
            ) from exc  # fmt: skip
        self.model = model

    async def _switch_model(self, request: RunRequest) -> None:
        """``session/set_model`` when the request's model (else the config's) is not the
        current one; a refusal raises (JsonRpcError) and the model stays as it was."""
        wanted = request.model or self.default_model or self.base_model
        if not wanted or wanted == self.model:
            return
        async with self._model_lock:
            if wanted != self.model:
                await self._set_model(self._require_client(), wanted)

    async def _settle(self) -> None:
        deadline = trio.current_time() + self.load_settle_max
        while True:
            now = trio.current_time()
            wait = min(self._last_update + self.load_settle, deadline) - now
            if wait <= 0:
                return
            await trio.sleep(wait)

    def map_notification(self, msg: Notification) -> list[TurnEvent]:
        if msg.method != "session/update":
            return [self.unknown(msg.raw, f"ACP notification {msg.method}")]
        if self.mapper.replaying:
            self._last_update = trio.current_time()
        events = self.mapper.feed(msg.params, msg.raw)
        if self._usage_came is not None and not self.mapper.holding:
            self._usage_came.set()
        return events

    def eof_events(self) -> list[TurnEvent]:
        events = self.mapper.flush() + self.mapper.release()
        self._wake_usage_wait()
        return events

    def _wake_usage_wait(self) -> None:
        if self._usage_came is not None:
            self._usage_came.set()

    async def start_turn(self, request: RunRequest) -> TurnRef:
        text = self.check_prompt(request)
        self._require_client()
        await self._switch_model(request)
        ref = TurnRef(thread_id=self.session_id, turn_id=f"acp-{next(self._turns)}")
        started = TurnStart()
        self._spawn(self._prompt, ref, text, started)
        await started.wait()  # raises when the prompt could not be written (the process died)
        return ref

    async def _prompt(self, ref: TurnRef, text: str, started: TurnStart) -> None:
        """The turn's ``session/prompt`` (announced once it is written), then (when its end is
        held) the wait for the usage after it: promised by the agent's rule → until it comes,
        the output ends or the turn is interrupted (at most ``promised_usage_wait``); learned →
        at most ``usage_wait``. Cancelled (the session closing) while waiting, the held end is given
        out by :meth:`eof_events`."""
        self.mapper.flush()
        self.mapper.begin(ref.turn_id, text)

        async def announce() -> None:  # once the prompt is written: the turn exists
            await self.emit(TurnEvent(kind=EventKind.TURN_STARTED, thread_id=ref.thread_id,
                                      turn_id=ref.turn_id, provider=self.provider))  # fmt: skip

        async def cancel() -> None:
            if self.client is not None:
                await self.client.send_untracked(
                    "session/cancel", proto.cancel_params(self.session_id), request=False
                )

        await self.request_turn(
            ref, "session/prompt", proto.prompt_params(self.session_id, text),
            self.mapper.finish, on_cancel=cancel, start=started, announce=announce,
        )  # fmt: skip
        if self.mapper.holding:  # the turn's end waits for the usage after it
            self._usage_came = came = trio.Event()
            if self._usage_given_up == ref.turn_id:
                came.set()
            wait = self.promised_usage_wait if self.mapper.promised else self.usage_wait
            with trio.move_on_after(wait):
                await came.wait()
            self._usage_came = None
            for event in self.mapper.release():
                await self.emit(event)

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        raise SteerUnsupportedError(provider=self.provider)

    async def interrupt_turn(self, turn: TurnRef) -> None:
        """``session/cancel``, then every pending permission request is answered
        ``cancelled`` at once (the ACP rule for a cancelled prompt). A turn whose response
        came and whose end waits for its usage is over on the agent: it completes at once
        without usage (nothing is sent)."""
        self._usage_given_up = turn.turn_id
        if self.mapper.holding and self.mapper.turn_id == turn.turn_id:
            self._wake_usage_wait()
            return
        self._cancel_sent = turn.turn_id
        await self._require_client().notify("session/cancel", proto.cancel_params(self.session_id))
        self.gate.withdraw_all()

    async def answer_request(self, req: Request) -> Any:
        if req.method != "session/request_permission":
            raise JsonRpcError(f"method not supported: {req.method}", code=METHOD_NOT_FOUND)
        tool = req.params.get("toolCall") if isinstance(req.params, dict) else None
        tool_id = as_str(tool.get("toolCallId")) if isinstance(tool, dict) else ""
        approval = proto.permission_request(
            req.params, provider=self.provider, turn_id=self.mapper.turn_id,
            known=self.mapper.tool_info(tool_id),
        )  # fmt: skip
        approval = attrs.evolve(approval, thread_id=self.session_id)
        fallback = default_decision(self.policy, auto_approve=self.auto_approve)
        answer = await self.decide(approval, fallback, req.raw)
        turn = approval.turn_id
        if answer is ApprovalDecision.CANCEL and turn and self._cancel_sent != turn:
            self._cancel_sent = turn  # CANCEL stops the turn (see the module docstring)
            await self._require_client().notify(
                "session/cancel", proto.cancel_params(self.session_id)
            )
        return proto.permission_result(approval, answer)


def _parked(client: Any, session_id: str) -> bool:
    """The conversation is still loaded in a shared process, which answers its
    ``session/load`` locally (:meth:`~alice_trio.sessions.host.AgentHost.has_parked`)."""
    has_parked = getattr(getattr(client, "host", None), "has_parked", None)
    return bool(has_parked is not None and has_parked(session_id))


def _first_line(path: str, limit: int = 1 << 16) -> str:
    with open(path, "rb") as f:
        return f.readline(limit).decode("utf-8", "replace")


def _session_id_of(path: str) -> str:
    try:
        record = json.loads(_first_line(path))
    except (OSError, ValueError):
        return ""
    return as_str(record.get("sessionId")) if isinstance(record, dict) else ""


def _move(path: str, dest: str) -> None:
    """Rename without replacing ``dest``: a hard link then unlink; where the file system has
    no hard links, a rename after checking ``dest`` is free."""
    try:
        os.link(path, dest)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(dest):
            raise FileExistsError(dest) from None
        os.rename(path, dest)
        return
    os.unlink(path)


def keep_gemini_history(env: Mapping[str, str], cwd: str, session_id: str) -> list[str]:
    """Rename ``session_id``'s files that carry gemini's per-minute name (see the module
    docstring) in the chats dir of project ``cwd``, so ``session/load`` in the same minute
    cannot overwrite them; returns the new paths. ``env`` is the agent's environment
    (``GEMINI_CLI_HOME``, else ``HOME``). Only files whose first record names this session
    are touched, never replaced (another free name is taken). Best effort: a missing or
    unreadable dir or file is skipped; never raises for file-system errors. Synchronous: a
    directory listing and a few one-line reads."""
    home = env.get("GEMINI_CLI_HOME") or env.get("HOME") or os.path.expanduser("~")
    gemini_dir = os.path.join(home, ".gemini")
    try:
        with open(os.path.join(gemini_dir, "projects.json"), "rb") as f:
            registry = json.loads(f.read(1 << 22))
    except (OSError, ValueError):
        registry = None
    roots = list(dict.fromkeys([cwd, os.path.realpath(cwd)]))
    kept: list[str] = []
    for chats in proto.gemini_chat_dirs(gemini_dir, roots, registry):
        try:
            names = set(os.listdir(chats))
        except OSError:
            continue
        for name in sorted(names):
            target = proto.gemini_kept_name(name, session_id, names)
            path = os.path.join(chats, name)
            if not target or _session_id_of(path) != session_id:
                continue
            dest = os.path.join(chats, target)
            try:
                _move(path, dest)
            except OSError:
                continue
            names.add(target)
            kept.append(dest)
    return kept


def _cwd(request: RunRequest, config: CLIConfig) -> str:
    wd = request.workspace_dir or config.workspace_dir.strip()
    return os.path.abspath(wd) if wd else os.getcwd()


def open_acp_driver(
    config: AcpConfig, initial: RunRequest, *, approver: Approver | None = None, **kw: Any
) -> AcpDriver:
    """Any ACP agent by command. Raises ConfigError without a command."""
    if not config.command.strip():
        raise ConfigError("acp: a command is required")
    cwd = _cwd(initial, config)
    inv = Invocation(
        argv=(config.command.strip(), *config.args, *config.extra_args),
        env=merge_env(config.env, initial.env),
        cwd=cwd,
        limits=config.limits,
    )
    return AcpDriver(
        inv, initial, provider=config.name or "acp", cwd=cwd,
        policy=config.exec_policy.merged(initial.exec_policy),
        auto_approve=config.auto_approve, approver=approver,
        default_model=config.model.strip(), **kw,
    )  # fmt: skip


def open_gemini_driver(
    config: GeminiConfig, initial: RunRequest, *, approver: Approver | None = None, **kw: Any
) -> AcpDriver:
    """``gemini --acp [--model=M] [--approval-mode=…|--yolo] [--include-directories=D…]``
    with ``GEMINI_CLI_TRUST_WORKSPACE`` / ``GEMINI_CLI_NO_RELAUNCH`` as in one-shot mode."""
    model = initial.model or config.model.strip()
    policy = config.exec_policy.merged(initial.exec_policy)
    argv = [config.command.strip() or "gemini", "--acp"]
    if model:
        argv.append(f"--model={model}")
    if config.approval_mode:
        argv.append(f"--approval-mode={config.approval_mode}")
    elif config.yolo:
        argv.append("--yolo")
    argv += [f"--include-directories={d}" for d in policy.add_dirs]
    argv += config.extra_args
    cwd = _cwd(initial, config)
    env = merge_env(gemini_env(config), config.env, initial.env)
    inv = Invocation(argv=tuple(argv), env=env, cwd=cwd,
                     limits=config.limits)  # fmt: skip
    auto = config.approval_mode == "yolo" or (not config.approval_mode and config.yolo)

    def before_load(session_id: str, load_cwd: str) -> None:
        agent_env = {**os.environ, **inv.env}
        for key in inv.env_remove:
            agent_env.pop(key, None)
        keep_gemini_history(agent_env, load_cwd, session_id)

    kw.setdefault("before_load", before_load)
    return AcpDriver(inv, initial, provider="gemini", cwd=cwd, policy=policy,
                     auto_approve=auto, approver=approver, model=model,
                     default_model=config.model.strip(), **kw)  # fmt: skip


def open_kimi_driver(
    config: KimiConfig, initial: RunRequest, *, approver: Approver | None = None, **kw: Any
) -> AcpDriver:
    """Kimi Code 2.x: ``kimi acp`` (it has no model flag: the model comes from its config or
    ``KIMI_MODEL_*`` env, and a request's or the config's model is selected with
    ``session/set_model``). Telemetry/auto-update switches as in one-shot mode; permission
    requests without a callback follow kimi's default policy (accepted unless the caller set a
    sandbox or approval policy, like ``kimi -p``)."""
    cwd = _cwd(initial, config)
    inv = Invocation(
        argv=(config.command.strip() or "kimi", "acp", *config.extra_args),
        env=merge_env(kimi_env(config), config.env, initial.env), cwd=cwd, limits=config.limits,
    )  # fmt: skip
    return AcpDriver(inv, initial, provider="kimi", cwd=cwd,
                     policy=KIMI_DEFAULT_POLICY.merged(
                         config.exec_policy.merged(initial.exec_policy)),
                     auto_approve=config.yolo, approver=approver,
                     model=initial.model or config.model.strip(),
                     default_model=config.model.strip(), trailing_usage=True,
                     usage_rule=True, **kw)  # fmt: skip
