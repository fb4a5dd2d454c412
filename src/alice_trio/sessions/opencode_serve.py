"""opencode as a session driver: ``opencode serve`` over HTTP + server-sent events (httpx).

Server: with ``config.server_url`` the driver attaches to that server; otherwise it spawns
``opencode serve --hostname 127.0.0.1 --port 0`` (cwd = workspace, ``PWD`` set, no stdin),
takes the first ``http(s)://`` token of its stdout as the base URL and keeps draining stdout
for the life of the process (§13.16: a full pipe would block the server). The process group
is killed on close (``serve`` ignores stdin EOF, so there is no graceful wait to pay, §13.12).

Authentication: a spawned server gets a fresh random password per process
(``secrets.token_urlsafe``) in ``OPENCODE_SERVER_PASSWORD`` — its environment only, never argv,
never in a repr or an error — so no other local process can drive it (opencode answers 401
without it). Every request and the event subscription send it as HTTP basic auth (user
``opencode``). An attached server is sent the ``OPENCODE_SERVER_PASSWORD`` /
``OPENCODE_SERVER_USERNAME`` of the config's or the request's env, when given, or the
``secret`` it is built with (a conversation on a shared server: that server's credentials).

Session: ``POST /session`` (or the initial request's thread id), then ``GET /event`` —
:meth:`run` reports the driver started only once that subscription answered, so no event of a
prompt can be published before we listen (§13.16). Every call carries ``?directory=`` (the
workspace) and an HTTP timeout (``http_timeout``; the event stream has none). If the event
stream drops it is reopened; the session's messages and status are then fetched and replayed
through the mapper (idempotent), so a turn whose terminal event fell into the gap still ends.
A completion that arrives before any text of its message makes the driver fetch that message's
parts first (``GET /session/{id}/message/{msg}``): under load opencode publishes them late.

Turns: ``start_turn``/``steer_turn`` post ``prompt_async`` (steer mode ``native_enqueue``; each
steer gets its own turn id) and the mapping in :mod:`alice_trio.protocols.opencode_events`
attributes the answers. ``interrupt_turn`` posts ``/abort``. Model: each prompt names the
request's model, else the config's (:func:`model_ref`; a name that is not ``provider/model``
raises :class:`ConfigError`). Without either opencode runs a prompt on the session's *last*
model, so once a prompt named one, a later prompt without one names the base model (the
initial request's, else ``GET /config``'s ``model``) — a switch holds for its own turn only.

Approvals and questions (one :class:`~alice_trio.sessions.approval.ApprovalGate`, each in its
own task): ``permission.asked`` (a tool opencode's ``permission`` config sets to ``ask``) goes
to the ``approver``, else :func:`~alice_trio.sessions.approval.default_decision` of the exec
policy; the answer is posted to ``/permission/{id}/reply`` (accept → ``once``, accept for the
session → ``always``, decline → ``reject`` with a message, so the tool does not run and the model
continues; cancel → ``reject`` alone, which ends opencode's loop). ``question.asked`` becomes a
``question`` event and goes to the approver as a ``question`` request: its answers are posted
to ``/question/{id}/reply``; no approver or no answer rejects the question at once
(``/question/{id}/reject``), so the turn never waits for an answer nobody will give. The older
``on_question`` callback (the question → a list of label lists, or ``None`` to reject) takes
precedence when given; :meth:`OpenCodeServeDriver.reply_question` / :meth:`reject_question`
remain for callers who answer by hand (with ``on_question`` returning a never-resolving wait).
"""

from __future__ import annotations

import inspect
import itertools
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import attrs
import httpx
import trio

from .. import safejson
from ..errors import (
    AliceError,
    ConfigError,
    EmptyPromptError,
    LineTooLongError,
    ProcessFailedError,
    ProtocolError,
    SessionClosedError,
    TransportClosedError,
)
from ..models import EventKind, RunRequest, TurnEvent, TurnQuestion
from ..protocols import opencode_events as oc_proto
from ..protocols.opencode_events import OpenCodeMapper
from ..providers.base import Invocation, as_list, merge_env
from ..providers.opencode import STATE, OpenCodeConfig, resolve_agent
from ..transports.http_client import async_client
from ..transports.http_sse import DEFAULT_MAX_FRAME_BYTES, read_events
from ..transports.process import EXIT_GRACE, AgentProcess, open_agent_process
from ._groups import single_exception
from .approval import ApprovalDecision, ApprovalGate, Approver, default_decision, question_answers
from .driver import Emit, SteerMode, TurnErrors, TurnRef
from .stream_turns import Sending, exit_error, report_exit, send_turn

__all__ = ["OpenCodeServeDriver", "ServerSecret", "find_url", "open_driver", "prompt_body"]

QuestionCallback = Callable[[TurnQuestion], Awaitable[Any] | Any]

PASSWORD_ENV = "OPENCODE_SERVER_PASSWORD"
USERNAME_ENV = "OPENCODE_SERVER_USERNAME"
DEFAULT_USERNAME = "opencode"


class ServerSecret:
    """The basic-auth credentials of one ``opencode serve``; the password never shows in a repr."""

    __slots__ = ("password", "username")

    def __init__(self, password: str, username: str = DEFAULT_USERNAME) -> None:
        self.username = username
        self.password = password

    @classmethod
    def generate(cls) -> ServerSecret:
        return cls(secrets.token_urlsafe(32))

    def auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.username, self.password)

    def __repr__(self) -> str:
        return f"ServerSecret(username={self.username!r}, password='***')"


def find_url(line: str) -> str:
    """The first ``http(s)://`` token of a ``serve`` stdout line, or ""."""
    for token in line.split():
        if token.startswith(("http://", "https://")):
            return token.rstrip(".,)").rstrip("/")
    return ""


def model_ref(model: str) -> dict[str, str]:
    """``provider/model`` as opencode's ``{providerID, modelID}`` (split at the first "/").
    Raises :class:`ConfigError` for a name without both parts: opencode cannot be asked for
    it, and leaving it out would run the turn on the session's last model."""
    provider_id, sep, model_id = model.strip().partition("/")
    if not (sep and provider_id and model_id):
        raise ConfigError(f"opencode model {model!r} is not 'provider/model'", provider="opencode")
    return {"providerID": provider_id, "modelID": model_id}


def prompt_body(request: RunRequest, config: OpenCodeConfig) -> dict[str, Any]:
    """The ``prompt_async`` body (spec §6.5.1: parts, model split at the first "/" —
    :func:`model_ref` —, variant, agent for the built-in agents)."""
    body: dict[str, Any] = {"parts": [{"type": "text", "text": request.prompt}]}
    model = request.model.strip() or config.model.strip()
    if model:
        body["model"] = model_ref(model)
    variant = request.variant or config.variant.strip()
    if variant:
        body["variant"] = variant
    agent = resolve_agent(request, config)
    if agent:
        body["agent"] = agent
    return body


class OpenCodeServeDriver:
    """See the module docstring."""

    steer_mode = SteerMode.NATIVE_ENQUEUE

    def __init__(
        self,
        config: OpenCodeConfig,
        initial: RunRequest,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        invocation: Invocation | None = None,
        http_timeout: float = 30.0,
        start_timeout: float = 60.0,
        reconnect_delay: float = 0.5,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        on_question: QuestionCallback | None = None,
        approver: Approver | None = None,
        secret: ServerSecret | None = None,
    ) -> None:
        self.config = config
        self.initial = initial
        self.directory = (initial.workspace_dir or config.workspace_dir).strip()
        self.transport = transport
        self.invocation = invocation
        self.http_timeout = http_timeout
        self.start_timeout = start_timeout
        self.reconnect_delay = reconnect_delay
        self.max_frame_bytes = max_frame_bytes
        self.on_question = on_question
        self.base_url = config.server_url.strip().rstrip("/")
        if secret is not None:  # the credentials of a server we know (a shared ServeHost)
            self.secret: ServerSecret | None = secret
        else:
            self.secret = self._attach_secret() if self.base_url else ServerSecret.generate()
        self.mapper = OpenCodeMapper(session_id=initial.thread_id)
        self._client: httpx.AsyncClient | None = None
        self._proc: AgentProcess | None = None
        self._turn_errors = TurnErrors()  # the TransportClosedError of turns the exit failed
        self._sending = Sending("opencode")  # turns whose prompt is being sent (send_turn)
        self._emit: Emit | None = None
        self._nursery: trio.Nursery | None = None
        self._ids = itertools.count(1)
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._closing = False
        self._model_named = False  # a prompt named its model: opencode keeps it for later ones
        self._base: str | None = None  # see _base_model
        self.reconnects = 0
        self.approval_errors: list[BaseException] = []
        self.gate = ApprovalGate(
            provider="opencode", approver=approver, errors=self.approval_errors
        )
        self.policy = config.exec_policy.merged(initial.exec_policy)
        self._asked: set[str] = set()  # permission/question ids already being answered

    def exit_error(self) -> AliceError | None:
        """Once the process ended: the :class:`TransportClosedError` saying how (None before)."""
        return exit_error(self._proc, "opencode serve", "opencode")

    def turn_error(self, turn_id: str) -> AliceError | None:
        """The :class:`TransportClosedError` behind turn ``turn_id``'s ``error`` event when the
        process's end failed it (None otherwise: the agent's own failure)."""
        return self._turn_errors.get(turn_id)

    def stderr_tail(self) -> str:
        return self._proc.stderr_tail() if self._proc is not None else ""

    def _attach_secret(self) -> ServerSecret | None:
        env = merge_env(self.config.env, self.initial.env)
        password = env.get(PASSWORD_ENV, "")
        if not password:
            return None
        return ServerSecret(password, env.get(USERNAME_ENV, "") or DEFAULT_USERNAME)

    # -- lifecycle --------------------------------------------------------------------------------
    def serve_invocation(self) -> Invocation:
        """The ``serve`` command; its env (only) carries this driver's password."""
        invocation = self.invocation
        if invocation is None:
            command = self.config.command.strip() or "opencode"
            cwd = self.directory or None
            env = merge_env(self.config.env, self.initial.env)
            env["PWD"] = os.path.abspath(cwd) if cwd else os.getcwd()
            argv = (command, "serve", "--hostname", "127.0.0.1", "--port", "0")
            invocation = Invocation(
                argv=(*argv, *self.config.extra_args), env=env, cwd=cwd,
                limits=self.config.limits, state=STATE,
            )  # fmt: skip
        if self.secret is None:
            return invocation
        env = dict(invocation.env)
        env[PASSWORD_ENV] = self.secret.password
        env[USERNAME_ENV] = self.secret.username
        return attrs.evolve(invocation, env=env)

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        try:
            with single_exception(), self._scope:
                async with async_client(
                    transport=self.transport,
                    timeout=self.http_timeout,
                    auth=self.secret.auth() if self.secret is not None else None,
                ) as client:
                    self._client = client
                    if self.base_url:
                        await self._serve(task_status)
                    else:
                        async with open_agent_process(
                            self.serve_invocation(),
                            name="opencode",
                            stdin=False,
                            graceful=False,
                        ) as proc:
                            self._proc = proc
                            self.base_url = await self._read_url(proc)
                            proc.ready()
                            async with trio.open_nursery() as n:
                                n.start_soon(self._drain_stdout, proc)
                                await self._serve(task_status)
                                n.cancel_scope.cancel()
        finally:
            self._done.set()

    async def _read_url(self, proc: AgentProcess) -> str:
        with trio.move_on_after(self.start_timeout):
            async for line in proc.lines:
                url = find_url(line)
                if url:
                    return url
            with trio.move_on_after(1.0):
                await proc.exited.wait()
            raise ProcessFailedError(
                f"opencode serve exited before reporting its URL ({proc.exit_description()})",
                returncode=proc.returncode,
                provider="opencode",
                stderr_tail=proc.stderr_tail(),
            )
        raise ProcessFailedError(
            f"opencode serve printed no URL within {self.start_timeout:g} s",
            provider="opencode",
            stderr_tail=proc.stderr_tail(),
        )

    async def _drain_stdout(self, proc: AgentProcess) -> None:
        async for _ in proc.lines:
            pass

    async def _serve(self, task_status: trio.TaskStatus[None]) -> None:
        if not self.mapper.session_id:
            created = await self._post("/session", {})
            sid = created.get("id") if isinstance(created, dict) else None
            if not isinstance(sid, str) or not sid:
                raise ProtocolError("opencode serve returned no session id", provider="opencode")
            self.mapper.session_id = sid
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._events)
            task_status.started()
            if self._proc is not None:
                await self._proc.exited.wait()
                await self._report_exit()
                nursery.cancel_scope.cancel()

    async def _events(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Keep one live ``/event`` subscription; after a reconnect, reconcile (see module)."""
        started = False

        def opened() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()  # listening: prompts may be posted from now on
            elif self._nursery is not None:
                self._nursery.start_soon(self._resubscribe)

        while True:
            try:
                events = read_events(
                    self._http(),
                    f"{self.base_url}/event",
                    params=self._params(),
                    on_open=opened,
                    max_frame_bytes=self.max_frame_bytes,
                )
                async with aclosing(events) as stream:
                    async for payload in stream:
                        await self._handle(payload)
            except (httpx.HTTPError, ProtocolError, LineTooLongError) as exc:
                if not started:
                    raise TransportClosedError(
                        f"opencode event stream failed: {exc}",
                        provider="opencode",
                        stderr_tail=self.stderr_tail(),
                    ) from exc
            if not started:
                raise TransportClosedError(
                    "opencode event stream ended before it opened",
                    provider="opencode",
                    stderr_tail=self.stderr_tail(),
                )
            if self._closing:
                return
            await trio.sleep(self.reconnect_delay)
            self.reconnects += 1

    async def _resubscribe(self) -> None:
        """After a gap: replay the session's messages and status (the mapper is idempotent)."""
        if not self.mapper.pending:
            return
        try:
            messages = await self._get(f"/session/{self.mapper.session_id}/message")
            status = await self._get("/session/status")
        except (httpx.HTTPError, AliceError):
            return
        sid = self.mapper.session_id
        for item in messages if isinstance(messages, list) else ():
            info = item.get("info") if isinstance(item, dict) else None
            if not isinstance(info, dict):
                continue
            # role and parent first, then the parts, then the message's final state
            opening = {k: v for k, v in info.items() if k not in ("finish", "error", "time")}
            objs = [{"type": "message.updated", "properties": {"sessionID": sid, "info": opening}}]
            objs += [
                {"type": "message.part.updated", "properties": {"sessionID": sid, "part": part}}
                for part in as_list(item.get("parts"))
            ]
            objs.append({"type": "message.updated", "properties": {"sessionID": sid, "info": info}})
            for obj in objs:
                await self._handle_obj(obj)
        entry = status.get(sid) if isinstance(status, dict) else None
        if not (isinstance(entry, dict) and entry.get("type") == "busy"):
            await self._emit_all(self.mapper.resync_idle())

    async def _handle(self, payload: str) -> None:
        try:
            obj = safejson.loads(payload)
        except safejson.NotJSON:
            return
        if isinstance(obj, dict):
            await self._handle_obj(obj, payload)

    async def _handle_obj(self, obj: dict[str, Any], raw: str = "") -> None:
        if obj.get("type") == "permission.asked":
            self._permission_asked(obj, raw)
        msg_id = self.mapper.completes_without_text(obj)
        if msg_id:
            await self._fetch_parts(msg_id)
        await self._emit_all(self.mapper.feed(obj, raw))

    async def _fetch_parts(self, msg_id: str) -> None:
        """Feed the stored parts of ``msg_id`` (its completion came before its text); a failed
        fetch only loses what the event stream lost."""
        sid = self.mapper.session_id
        try:
            message = await self._get(f"/session/{sid}/message/{msg_id}")
        except (httpx.HTTPError, AliceError):
            return
        parts = message.get("parts") if isinstance(message, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict):
                obj = {
                    "type": "message.part.updated",
                    "properties": {"sessionID": sid, "part": part},
                }
                await self._emit_all(self.mapper.feed(obj))

    async def _emit_all(self, events: list[TurnEvent]) -> None:
        assert self._emit is not None
        for event in events:
            if event.kind is EventKind.QUESTION and self.on_question is not None:
                assert self._nursery is not None and event.question is not None
                self._nursery.start_soon(self._ask, event.question)
            elif event.kind is EventKind.QUESTION and event.question is not None:
                self._question_asked(event)
            await self._sending.before(event, self._emit)
            await self._emit(event)

    def _permission_asked(self, obj: dict[str, Any], raw: str) -> None:
        props = obj.get("properties")
        if not isinstance(props, dict) or props.get("sessionID") != self.mapper.session_id:
            return
        owner = self.mapper.pending[-1].turn_id if self.mapper.pending else ""
        approval = oc_proto.permission_request(props, turn_id=owner)
        if approval is None or f"per:{approval.params['id']}" in self._asked:
            return
        self._asked.add(f"per:{approval.params['id']}")
        assert self._nursery is not None
        self._nursery.start_soon(self._answer_permission, approval, raw)

    async def _answer_permission(self, approval: Any, raw: str) -> None:
        """Decide one ``permission.asked`` and post the reply (a failed post is dropped: the
        server is gone or the request was answered elsewhere)."""
        assert self._emit is not None
        answer = await self.gate.decide(
            approval, default_decision(self.policy), self._emit, raw=raw
        )
        if answer is ApprovalDecision.CANCEL and self.mapper.interrupt_requested:
            return  # withdrawn by an interrupt: the abort rejects it (a reply would race it)
        try:
            await self._post(
                f"/permission/{approval.params['id']}/reply", oc_proto.permission_reply(answer)
            )
        except AliceError:
            pass

    def _question_asked(self, event: TurnEvent) -> None:
        assert event.question is not None
        key = f"que:{event.question.request_id}"
        if key in self._asked:
            return
        self._asked.add(key)
        assert self._nursery is not None
        self._nursery.start_soon(self._answer_question, event)

    async def _answer_question(self, event: TurnEvent) -> None:
        """The approver's answers to ``/question/{id}/reply``, else reject (never a wait)."""
        question = event.question
        assert question is not None
        request = oc_proto.question_request(
            question, session_id=event.thread_id, turn_id=event.turn_id
        )
        # the QUESTION event was emitted by the mapper: the gate only asks
        answer = await self.gate.decide(request, ApprovalDecision.DECLINE)
        if answer is ApprovalDecision.CANCEL and self.mapper.interrupt_requested:
            return  # withdrawn by an interrupt: the abort ends the question
        try:
            if isinstance(answer, Mapping) and answer:
                await self.reply_question(question.request_id, question_answers(question, answer))
            else:
                await self.reject_question(question.request_id)
        except AliceError:
            pass

    async def _ask(self, question: TurnQuestion) -> None:
        assert self.on_question is not None
        answer: Any = self.on_question(question)
        if inspect.isawaitable(answer):
            answer = await answer
        try:
            if answer is None:
                await self.reject_question(question.request_id)
            else:
                await self.reply_question(question.request_id, answer)
        except AliceError:
            pass

    async def _report_exit(self) -> None:
        if self._proc is None or self._closing:
            return
        turn_ids = self.mapper.take_pending()
        thread_id = self.mapper.session_id
        await report_exit(
            self._emit,
            self._proc,
            "opencode serve",
            turn_ids,
            "opencode",
            thread_id,
            errors=self._turn_errors,
            sending=self._sending,
        )

    # -- HTTP ---------------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._done.is_set():
            raise SessionClosedError(provider="opencode")
        return self._client

    def _params(self) -> dict[str, str]:
        return {"directory": self.directory} if self.directory else {}

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        client = self._http()
        kwargs: dict[str, Any] = {"params": self._params()}
        if body is not None:
            kwargs["json"] = body
        try:
            resp = await client.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.HTTPError as exc:
            if self._proc is not None and isinstance(exc, httpx.TransportError):
                # the server went away: say how, once its exit is seen (EXIT_GRACE at most)
                with trio.move_on_after(EXIT_GRACE):
                    await self._proc.exited.wait()
            ended = exit_error(self._proc, "opencode serve", "opencode")
            raise TransportClosedError(
                f"opencode serve {method} {path} failed: {exc!r}"
                + (f"; {ended.message}" if ended is not None else ""),
                provider="opencode",
                stderr_tail=self.stderr_tail(),
            ) from exc
        if resp.status_code // 100 != 2:
            text = resp.text[:4096].strip()
            raise ProtocolError(
                f"opencode serve {path} failed status={resp.status_code} body={text}",
                provider="opencode",
            )
        if not resp.content:
            return None
        try:  # hostile JSON (deep nesting, lone surrogates) is "no usable body", never a crash
            return safejson.loads(resp.content)
        except safejson.NotJSON:
            return None

    async def _post(self, path: str, body: Any = None) -> Any:
        return await self._request("POST", path, body)

    async def _get(self, path: str) -> Any:
        return await self._request("GET", path)

    # -- commands -----------------------------------------------------------------------------
    async def _prompt(self, request: RunRequest, *, started: bool) -> TurnRef:
        if not request.prompt:
            raise EmptyPromptError(provider="opencode")
        if self._closing or self._done.is_set():
            raise SessionClosedError(provider="opencode")
        body = prompt_body(request, self.config)
        if "model" in body:
            self._model_named = True
        elif self._model_named:  # opencode would stay on the last named model: go back
            base = await self._base_model()
            if base:
                body["model"] = model_ref(base)
        sid = self.mapper.session_id
        ref = TurnRef(thread_id=sid, turn_id=f"opencode-{next(self._ids)}")
        self.mapper.submit(ref.turn_id, request.prompt)

        async def send() -> None:
            await self._post(f"/session/{sid}/prompt_async", body)

        return await send_turn(
            ref,
            send,
            self.mapper.withdraw,
            self._emit,
            provider="opencode",
            announce=started,
            sending=self._sending,
        )

    async def _base_model(self) -> str:
        """The model a request without one runs on: the initial request's, else the one
        opencode's configuration names (``GET /config``), "" when neither says."""
        if self._base is None:
            base = self.initial.model.strip()
            if not base:
                config = await self._get("/config")
                named = config.get("model") if isinstance(config, dict) else None
                base = named.strip() if isinstance(named, str) else ""
            self._base = base
        return self._base

    async def start_turn(self, request: RunRequest) -> TurnRef:
        return await self._prompt(request, started=True)

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        return await self._prompt(request, started=False)

    async def interrupt_turn(self, turn: TurnRef) -> None:
        self.mapper.request_interrupt()
        self.gate.withdraw_all()  # pending prompts stop waiting; the abort rejects them
        await self._post(f"/session/{self.mapper.session_id}/abort")

    async def reply_question(self, request_id: str, answers: Sequence[Sequence[str]]) -> None:
        """Answer a ``question`` event: one list of chosen labels per question."""
        await self._post(f"/question/{request_id}/reply", {"answers": [list(a) for a in answers]})

    async def reject_question(self, request_id: str) -> None:
        await self._post(f"/question/{request_id}/reject")

    async def aclose(self, *, graceful: bool) -> None:
        if self._done.is_set():
            return
        self._closing = True
        self._scope.cancel()
        await self._done.wait()


def open_driver(
    config: Any, initial: RunRequest, *, approver: Approver | None = None
) -> OpenCodeServeDriver:
    """Session factory for opencode (registry entry); ``approver`` decides permission prompts
    and answers questions (module docstring)."""
    if not isinstance(config, OpenCodeConfig):
        raise ConfigError("the opencode session driver needs an OpenCodeConfig")
    return OpenCodeServeDriver(config, initial, approver=approver)
