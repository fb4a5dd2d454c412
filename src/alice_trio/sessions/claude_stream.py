"""claude as a session driver: one long-lived ``claude -p`` in bidirectional stream-json mode.

Steer mode ``native_enqueue``: a message written while a turn runs is taken by claude at its
next boundary; the driver gives it a turn id of its own and the reply is attributed by
:class:`~alice_trio.protocols.claude_stream.ClaudeBidiMapper` (module docstring there).

Process: the one-shot argv builder's flags (permission mode, model, resume, add-dirs, allowed
tools; :mod:`alice_trio.providers.claude`) with ``--input-format stream-json
--replay-user-messages`` added and stdin kept open; with an approver also
``--permission-prompt-tool=stdio``. ``--resume`` comes from the ``initial`` request.
:meth:`run` sends the ``initialize`` control request and reports the session started once
claude answered (a process that exits first raises :class:`ProcessFailedError` with the stderr
tail; how long claude may take is the session's ``start_timeout``, or ``init_timeout`` when
set).

Model switch (§13.17): the process starts on the initial request's model (else the config's).
A later request whose model (else the config's, else the starting one) differs is preceded by
the ``set_model``
control request; the message is written only after claude confirmed it, and a refusal or no
answer within ``interrupt_deadline`` raises :class:`ProtocolError` from the submit — the
request never runs silently on the old model.

Approvals (``approver`` given): claude routes its permission prompts to us
(``--permission-prompt-tool=stdio``); each ``can_use_tool`` request is decided by the shared
:class:`~alice_trio.sessions.approval.ApprovalGate` in its own task (events: ``tool_use``
``approval command: run `…` -> accept|decline``; ``AskUserQuestion`` → a ``question`` event and
the callback's answers). A declined tool does not run; claude reports the refusal as the tool's
error result and the turn goes on. Which tools prompt at all is claude's ``permission_mode``:
with ``bypassPermissions`` (the config default) nothing is asked, so set ``permission_mode:
default`` (or ``acceptEdits``) to be asked. A prompt claude withdraws
(``control_cancel_request``) cancels the callback's wait and is not answered.

Warm-up (:meth:`ClaudeStreamDriver.warm_up`, the warm pool's spares; the provider record's
``spare_warm_up``): claude does much of a conversation's setup lazily at its first user message.
The ``get_context_usage`` control request with ``detail: summary`` (answered from local
estimates: no token-count or model call, and the conversation is left as it was — the model
requests that follow are byte for byte the same) makes it build the system prompt, tool
schemas and context ahead of that message.

Interrupt writes the ``interrupt`` control request and waits up to ``interrupt_deadline`` for
its ``control_response`` (:class:`ProtocolError` when none comes); the turn's own terminal
event follows. When claude exits while submissions are pending, each gets an ``error`` event
with the exit status and stderr tail before :meth:`run` returns (§13.13: a crash is an error,
not a silent close). Close: graceful = stdin EOF then ``close_grace`` (claude exits 0 within
~0.03 s when idle), else the process group is killed at once.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import trio

from ..errors import (
    AliceError,
    EmptyPromptError,
    ProcessFailedError,
    ProtocolError,
    SessionClosedError,
    TransportClosedError,
)
from ..models import ExecPolicy, RunRequest
from ..protocols.claude_stream import (
    ClaudeBidiMapper,
    control_request,
    permission_response,
    user_message,
)
from ..providers.base import Invocation
from ..providers.claude import ClaudeConfig, build_invocation
from ..transports.process import AgentProcess, open_agent_process
from ._groups import single_exception
from .approval import ApprovalGate, ApprovalRequest, Approver, default_decision
from .driver import Emit, SteerMode, TurnErrors, TurnRef
from .stream_turns import Sending, exit_error, report_exit, send_turn

#: claude's defaults for the fields of an exec policy left unset (spec §10)
CLAUDE_DEFAULT_POLICY = ExecPolicy(sandbox="danger-full-access", ask_for_approval="never")

__all__ = ["ClaudeStreamDriver", "build_stream_invocation", "open_driver"]


def build_stream_invocation(
    config: ClaudeConfig, initial: RunRequest, *, permission_prompts: bool = False
) -> Invocation:
    """The one-shot invocation turned bidirectional: stream-json input, replayed user
    messages, stdin left open (no prompt bytes); ``permission_prompts`` adds
    ``--permission-prompt-tool=stdio``."""
    probe = initial.evolve(user_text=initial.prompt or "-")
    inv = build_invocation(probe, config)
    argv = list(inv.argv)
    extra = ["--input-format", "stream-json", "--replay-user-messages"]
    if permission_prompts:
        extra.append("--permission-prompt-tool=stdio")
    argv[2:2] = extra
    return attrs.evolve(inv, argv=tuple(argv), stdin=b"", timeout=None, idle_timeout=None)


class ClaudeStreamDriver:
    """See the module docstring."""

    steer_mode = SteerMode.NATIVE_ENQUEUE

    def __init__(
        self,
        config: ClaudeConfig,
        initial: RunRequest,
        *,
        init_timeout: float | None = None,
        interrupt_deadline: float = 5.0,
        close_grace: float = 2.0,
        invocation: Invocation | None = None,
        approver: Approver | None = None,
    ) -> None:
        self.config = config
        self.invocation = invocation or build_stream_invocation(
            config, initial, permission_prompts=approver is not None
        )
        self.init_timeout = init_timeout
        self.interrupt_deadline = interrupt_deadline
        self.close_grace = close_grace
        self.model = self.base_model = initial.model or config.model.strip()
        self.policy = CLAUDE_DEFAULT_POLICY.merged(config.exec_policy.merged(initial.exec_policy))
        self.approval_errors: list[BaseException] = []
        self.gate = ApprovalGate(provider="claude", approver=approver, errors=self.approval_errors)
        self.mapper = ClaudeBidiMapper(thread_id=initial.thread_id, handles_permissions=True)
        self._prompts: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._model_lock = trio.Lock()
        self._proc: AgentProcess | None = None
        self._turn_errors = TurnErrors()  # the TransportClosedError of turns the exit failed
        self._sending = Sending("claude")  # turns whose prompt is being sent (send_turn)
        self._emit: Emit | None = None
        self._ids = itertools.count(1)
        self._req_ids = itertools.count(1)
        self._responses: dict[str, trio.Event] = {}
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._closing = False
        self.warmed_up = False

    def exit_error(self) -> AliceError | None:
        """Once the process ended: the :class:`TransportClosedError` saying how (None before)."""
        return exit_error(self._proc, "claude", "claude")

    def turn_error(self, turn_id: str) -> AliceError | None:
        """The :class:`TransportClosedError` behind turn ``turn_id``'s ``error`` event when the
        process's end failed it (None otherwise: the agent's own failure)."""
        return self._turn_errors.get(turn_id)

    def stderr_tail(self) -> str:
        return self._proc.stderr_tail() if self._proc is not None else ""

    # -- the process -------------------------------------------------------------------------
    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        try:
            with single_exception(), self._scope:
                async with open_agent_process(
                    self.invocation, name="claude", close_grace=self.close_grace
                ) as proc:
                    self._proc = proc
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._read, proc)
                        await self._initialize(proc)
                        proc.ready()
                        task_status.started()
                        await proc.stdout_closed.wait()
                        with trio.move_on_after(self.close_grace):
                            await proc.exited.wait()
                        nursery.cancel_scope.cancel()
                await self._report_exit()
        finally:
            self._done.set()

    async def _initialize(self, proc: AgentProcess) -> None:
        rid = f"init-{next(self._req_ids)}"
        waiter = self._responses.setdefault(rid, trio.Event())
        await proc.send(control_request(rid, "initialize"))
        limit = self.init_timeout if self.init_timeout is not None else math.inf
        with trio.move_on_after(limit) as scope:
            async with trio.open_nursery() as n:

                async def gone() -> None:
                    await proc.stdout_closed.wait()
                    n.cancel_scope.cancel()

                async def answered() -> None:
                    await waiter.wait()
                    n.cancel_scope.cancel()

                n.start_soon(gone)
                n.start_soon(answered)
        if waiter.is_set():
            return
        with trio.move_on_after(self.close_grace):
            await proc.exited.wait()
        what = "no answer to initialize" if scope.cancelled_caught else proc.exit_description()
        raise ProcessFailedError(
            f"claude stream-json did not start: {what}",
            returncode=proc.returncode,
            provider="claude",
            stderr_tail=proc.stderr_tail(),
        )

    async def _read(self, proc: AgentProcess) -> None:
        assert self._emit is not None
        async for line in proc.lines:
            events = self.mapper.feed(line)
            for rid in list(self.mapper.control_responses):
                waiter = self._responses.get(rid)
                if waiter is None:  # not awaited (claude echoes our own answers): forget it
                    del self.mapper.control_responses[rid]
                else:
                    waiter.set()
            while self.mapper.outgoing:
                try:
                    await proc.send(self.mapper.outgoing.pop(0))
                except TransportClosedError:
                    pass
            while self.mapper.cancelled_requests:
                scope = self._prompts.pop(self.mapper.cancelled_requests.pop(0), None)
                if scope is not None:
                    scope.cancel()
            while self.mapper.permission_requests:
                rid, approval, raw = self.mapper.permission_requests.pop(0)
                assert self._nursery is not None
                self._prompts[rid] = scope = trio.CancelScope()
                self._nursery.start_soon(self._answer_prompt, proc, rid, approval, raw, scope)
            for event in events:
                await self._sending.before(event, self._emit)
                await self._emit(event)

    async def _answer_prompt(
        self,
        proc: AgentProcess,
        rid: str,
        approval: ApprovalRequest,
        raw: str,
        scope: trio.CancelScope,
    ) -> None:
        """One ``can_use_tool`` round trip (its own task: the reader never waits for a human)."""
        assert self._emit is not None
        with scope:
            answer = await self.gate.decide(
                approval, default_decision(self.policy), self._emit, raw=raw
            )
            try:
                await proc.send(permission_response(rid, approval, answer))
            except TransportClosedError:
                pass
        self._prompts.pop(rid, None)

    async def _report_exit(self) -> None:
        """claude exited: every pending submission gets an error (§13.13)."""
        if self._proc is None or self._closing:
            return
        turn_ids = self.mapper.take_pending()
        thread_id = self.mapper.thread_id
        await report_exit(
            self._emit,
            self._proc,
            "claude",
            turn_ids,
            "claude",
            thread_id,
            errors=self._turn_errors,
            sending=self._sending,
        )

    # -- commands ----------------------------------------------------------------------------
    def _live(self) -> AgentProcess:
        if self._proc is None or self._done.is_set() or self._closing:
            raise SessionClosedError(provider="claude")
        return self._proc

    async def _control(
        self, proc: AgentProcess, prefix: str, what: str, subtype: str, **fields: Any
    ) -> Any:
        """Send one control request and wait up to ``interrupt_deadline`` for its answer;
        raises :class:`ProtocolError` on an ``error`` answer or none."""
        rid = f"{prefix}-{next(self._req_ids)}"
        waiter = self._responses.setdefault(rid, trio.Event())
        await proc.send(control_request(rid, subtype, **fields))
        with trio.move_on_after(self.interrupt_deadline):
            await waiter.wait()
        self._responses.pop(rid, None)
        response = self.mapper.control_responses.pop(rid, None)
        if not waiter.is_set():
            raise ProtocolError(
                f"claude did not answer {what} within {self.interrupt_deadline:g} s",
                provider="claude",
                stderr_tail=proc.stderr_tail(),
            )
        if isinstance(response, dict) and response.get("subtype") == "error":
            raise ProtocolError(
                f"claude refused {what}: {response.get('error') or 'no reason given'}",
                provider="claude",
            )
        return response

    async def _switch_model(self, proc: AgentProcess, request: RunRequest) -> None:
        """``set_model`` when the request's model (else the config's, else the one the process
        started with; ``""`` = claude's default, sent as ``null``) is not the current one."""
        wanted = request.model or self.config.model.strip() or self.base_model
        if wanted == self.model:
            return
        async with self._model_lock:
            if wanted != self.model:
                what = f"the switch to model {wanted or 'default'!r}"
                await self._control(proc, "set-model", what, "set_model", model=wanted or None)
                self.model = wanted

    async def _submit(self, request: RunRequest, *, steered: bool) -> TurnRef:
        text = request.prompt
        if not text:
            raise EmptyPromptError(provider="claude")
        proc = self._live()
        await self._switch_model(proc, request)
        ref = TurnRef(
            thread_id=self.mapper.thread_id or request.thread_id,
            turn_id=f"claude-{next(self._ids)}",
        )
        # registered before the write (the reply can arrive before send returns); withdrawn
        # again if the message was not written, whatever stopped it (a cancelled or failed
        # write must not leave a submission that the next message's echo is credited to)
        self.mapper.submit(ref.turn_id, text, steered=steered)
        assert self._emit is not None

        async def send() -> None:
            await proc.send(user_message(text))

        return await send_turn(
            ref,
            send,
            self.mapper.withdraw,
            self._emit,
            provider="claude",
            announce=not steered,
            sending=self._sending,
        )

    async def start_turn(self, request: RunRequest) -> TurnRef:
        return await self._submit(request, steered=False)

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        return await self._submit(request, steered=True)

    async def warm_up(self) -> None:
        """Ahead of the first message (module docstring); ``warmed_up`` says whether claude
        answered. A refusal or no answer within ``interrupt_deadline`` (a claude without the
        request) leaves it unwarmed, silently; a closed session raises
        :class:`SessionClosedError`."""
        proc = self._live()
        try:
            await self._control(proc, "warm", "the warm-up", "get_context_usage", detail="summary")
        except ProtocolError:
            return
        self.warmed_up = True

    async def interrupt_turn(self, turn: TurnRef) -> None:
        self.gate.withdraw_all()  # a pending permission prompt is denied at once
        await self._control(self._live(), "interrupt", "the interrupt", "interrupt")

    async def aclose(self, *, graceful: bool) -> None:
        if self._done.is_set():
            return
        self._closing = True
        proc = self._proc
        if graceful and proc is not None:
            await proc.close_stdin()
            with trio.move_on_after(self.close_grace):
                await self._done.wait()
        self._scope.cancel()
        await self._done.wait()


def open_driver(
    config: Any, initial: RunRequest, *, approver: Approver | None = None
) -> ClaudeStreamDriver:
    """Session factory for claude (registry entry); ``approver`` turns on permission prompts."""
    if not isinstance(config, ClaudeConfig):
        config = ClaudeConfig()
    return ClaudeStreamDriver(config, initial, approver=approver)
