"""One agent turn as one process: the run nursery.

:func:`run_invocation` spawns the CLI (:mod:`.spawn`, the engine's one spawn path) in a new
session and runs one nursery holding

* a **stdin writer** (writes the request's stdin bytes, then closes stdin: codex exec and
  opencode run wait for EOF when stdin is a pipe; without stdin bytes the CLI gets /dev/null),
* a **stdout reader** (bytes → lines through :class:`~alice_trio.framing.LineFramer` with a byte
  limit → the provider's pure decoder → events),
* a **stderr reader** (always drained into a bounded :class:`StderrTail`),
* an **idle watchdog** (one cancel scope whose deadline moves forward on every stdout chunk),
* the overall-timeout watchdog and the exit waiter,

plus, beside it, the callback dispatcher (:mod:`alice_trio.engine.callbacks`).

The run ends when the CLI exits (then what it wrote is read and handled — the bytes left in the
pipe at its death, however slow the callbacks — and stdout/stderr get ``drain_timeout`` more to
reach EOF: a grandchild holding the pipe, silent or chatty, cannot wedge the run, C9) or when
the decoder saw the terminal event or stdout reached EOF (then the CLI gets ``drain_timeout`` to
exit by itself before it is killed: it can flush, C7, and a CLI that never exits — or closes its
stdout and lingers, saying nothing more ever — cannot wedge the run, C4; the exit status of a
CLI killed then is ours, not its own, and the decoder's outcome decides). Whatever the end —
success, error, timeout, the caller's cancellation — the whole process group is then terminated
(SIGTERM, ``kill_grace``, SIGKILL), escaped processes of the run are swept
(:mod:`alice_trio.engine.reaper`), and only then does the call return or raise. Cancellation is
trio's: ``trio.Cancelled`` propagates unchanged after the group is reaped; a second cancel cannot
orphan anything because teardown is shielded.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ..errors import (
    AliceError,
    CallbackError,
    EmptyPromptError,
    IdleTimeoutError,
    LineTooLongError,
    ProcessFailedError,
    ProtocolError,
    RunTimeoutError,
)
from ..event_check import malformed
from ..framing import LineFramer, OversizedLine, decode_line
from ..models import (
    EventKind,
    EventsCallback,
    ProgressCallback,
    RawEventCallback,
    RunRequest,
    RunResult,
    TurnEvent,
)
from ..protocols.turn_outcome import TurnEnd
from ..providers.base import CLIConfig, DecodeOutcome, Decoder, Invocation, Provider
from .callbacks import Batch, CallbackDispatcher
from .pipes import receive_chunk
from .spawn import Child, Spawner, close_child, describe_exit, spawn
from .stderr_tail import StderrTail
from .workspace import TurnFiles, watch_turn

__all__ = ["run_invocation", "run_oneshot"]


async def run_oneshot(provider: Provider, config: CLIConfig, request: RunRequest) -> RunResult:
    """Run one turn of ``provider`` for ``request``; see the module docstring for the lifecycle.

    Raises :class:`~alice_trio.errors.EmptyPromptError` before spawning for a blank prompt, and
    the other :class:`~alice_trio.errors.AliceError` subclasses (each carrying ``partial`` and
    ``stderr_tail``) when the run fails. After an :class:`IdleTimeoutError`, a provider with an
    ``idle_retry`` hook (codex) gets exactly one more attempt; usage of both attempts is summed
    and a failed retry raises its own error with ``"<idle error> and resume failed: …"``.
    """
    if not request.prompt:
        raise EmptyPromptError(provider=provider.name)
    if provider.prepare_request is not None:
        request = provider.prepare_request(request, config)
    try:
        return await _run_request(provider, config, request)
    except IdleTimeoutError as exc:
        retry = provider.idle_retry(request, exc.partial) if provider.idle_retry else None
        if retry is None:
            raise
        first = exc
    try:
        result = await _run_request(provider, config, retry)
    except AliceError as second:
        second.message = f"{first.message} and resume failed: {second.message}"
        second.args = (second.message,)
        second.partial = attrs.evolve(
            second.partial, usage=first.partial.usage + second.partial.usage
        )
        raise
    return attrs.evolve(result, usage=first.partial.usage + result.usage)


async def _run_request(provider: Provider, config: CLIConfig, request: RunRequest) -> RunResult:
    invocation = provider.build_invocation(request, config)
    decoder = provider.new_decoder(request, config)
    return await run_invocation(
        invocation,
        decoder,
        provider=provider.name,
        fallback_thread_id=request.thread_id,
        on_progress=request.on_progress,
        on_raw_event=request.on_raw_event,
        on_events=request.on_events,
        raw_lines=request.raw_lines,
        informational_rate=request.informational_rate,
        explain_exit=provider.explain_exit,
    )


def _quiet_counts(decoder: Decoder) -> dict[str, int] | None:
    """The decoder's ``skipped`` counts when it has them and a ``quiet`` flag (optional parts
    of the decoder protocol), else None."""
    skipped = getattr(decoder, "skipped", None)
    if type(skipped) is dict and type(getattr(decoder, "quiet", None)) is bool:
        return skipped
    return None


@attrs.define
class _Run:
    invocation: Invocation
    decoder: Decoder
    provider: str
    dispatcher: CallbackDispatcher
    tail: StderrTail
    proc: Child | None = None
    io: trio.Nursery | None = None
    failure: AliceError | None = None
    exited: trio.Event = attrs.Factory(trio.Event)
    stdout_eof: trio.Event = attrs.Factory(trio.Event)
    stderr_eof: trio.Event = attrs.Factory(trio.Event)
    terminal_seen: bool = False
    bytes_read: int = 0  # stdout bytes taken from the pipe
    bytes_handled: int = 0  # … and handed to the decoder and the callbacks
    killed_in_drain: bool = False  # killed by drain_then_kill: its exit status is ours
    idle_scope: trio.CancelScope | None = None
    progress: trio.Event = attrs.Factory(trio.Event)  # set (and renewed) per handled chunk
    files: TurnFiles = attrs.Factory(TurnFiles)  # the turn's file changes (workspace.py)
    raw_lines: bool = False  # every stdout line also goes to on_raw_event as "stdout_line"
    #: the decoder's ``skipped`` (kind → informational events it did not build while
    #: ``quiet``), None for a decoder without the two
    skipped: dict[str, int] | None = None
    #: the decoder is another package's: each of its events is checked (event_check.py)
    foreign: bool = False

    # -- ending ---------------------------------------------------------------------------
    def finish(self) -> None:
        assert self.io is not None
        self.io.cancel_scope.cancel()

    def fail(self, error: AliceError) -> None:
        if self.failure is None:
            self.failure = error
        self.finish()

    # -- the tasks of the run nursery -----------------------------------------------------
    async def write_stdin(self) -> None:
        assert self.proc is not None
        stdin = self.proc.stdin
        if stdin is None:
            return
        try:
            if self.invocation.stdin:
                await stdin.send_all(self.invocation.stdin)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the CLI exited or closed stdin without reading everything: not our error
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await stdin.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    async def read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        limits = self.invocation.limits
        framer = LineFramer(limits.max_line_bytes, eager=limits.line_policy == "error")
        stream = self.proc.stdout
        idle = self.invocation.idle_timeout
        while True:
            chunk = await receive_chunk(stream)
            if not chunk:
                await self.handle_lines(framer.feed_eof())
                self.stdout_eof.set()
                if not self.terminal_seen:  # it can say nothing more: exit, or be killed
                    assert self.io is not None
                    self.io.start_soon(self.drain_then_kill)
                return
            if not self.bytes_read:
                self.proc.ready()  # its first output: past its start (engine/first_start.py)
            self.bytes_read += len(chunk)
            if idle and self.idle_scope is not None and not self.terminal_seen:
                self.idle_scope.deadline = trio.current_time() + idle
            await self.handle_lines(framer.feed(chunk))
            self.bytes_handled += len(chunk)
            self.progress.set()
            self.progress = trio.Event()

    async def handle_lines(self, items: list[bytes | OversizedLine]) -> None:
        """Decode the lines of one chunk and hand their events to the dispatcher as one batch
        (one queue entry, no checkpoint while the buffer has room); the terminal event is
        queued before the drain after it starts."""
        # the per-line hot path: locals only, no call into the dispatcher per event
        decoder, dispatcher, raw_lines = self.decoder, self.dispatcher, self.raw_lines
        feed, files_event = decoder.feed, self.files.event
        self.decide_quiet()
        file_change = EventKind.FILE_CHANGE
        batch: Batch = []
        append = batch.append
        items.reverse()  # consumed from the end, so each line's bytes are freed once decoded
        pop = items.pop
        while items:
            item = pop()
            if type(item) is not bytes:  # an OversizedLine
                assert isinstance(item, OversizedLine)
                await self.offer(batch)  # the events before it first
                batch = []
                append = batch.append
                if not await self.oversized(item):
                    return
                self.decide_quiet()  # the callbacks may have held us into a new window
                continue
            line = item.decode("utf-8", "replace")  # framing.decode_line, inlined
            del item  # a 50 MB line must not be held as bytes and str while it is parsed
            if raw_lines:
                raw = dispatcher.line_event(line)
                if raw is not None:
                    append(raw)
            events = feed(line)
            if self.foreign and not self.checked(events):
                return
            for event in events:
                if event.kind is file_change:
                    event = files_event(event)
                append(event)
        await self.offer(batch)
        if not self.terminal_seen and decoder.terminal:
            self.terminal_seen = True
            if self.idle_scope is not None:
                self.idle_scope.deadline = math.inf
            assert self.io is not None
            self.io.start_soon(self.drain_then_kill)

    def checked(self, events: object) -> bool:
        """Whether another package's decoder returned a list of well-formed events; else the
        run fails with a :class:`ProtocolError` naming the first wrong field."""
        why = (
            f"feed returned {type(events).__name__}, not a list of events"
            if not isinstance(events, (list, tuple))
            else next((f"event: {w}" for w in map(malformed, events) if w), None)
        )
        if why is None:
            return True
        message = f"{self.provider} provider failed: its decoder's {why}"
        self.fail(ProtocolError(message, provider=self.provider))
        return False

    def decide_quiet(self) -> None:
        """Tell a decoder with ``quiet`` whether to build informational events: not when no
        callback would get one (the informational rate's window is full, or nobody takes
        them)."""
        if self.skipped is not None:
            self.decoder.quiet = not self.dispatcher.wants_informational()  # type: ignore[attr-defined]

    async def offer(self, batch: Batch) -> None:
        """Hand ``batch`` to the dispatcher, with what the decoder counted while it was built
        (said in the rate's next ``skipped`` notice)."""
        if self.skipped:
            self.dispatcher.count_skipped(self.skipped)
        if batch and not self.dispatcher.offer_batch_nowait(batch):
            await self.dispatcher.offer_batch(batch)

    async def oversized(self, item: OversizedLine) -> bool:
        """An over-long line: fail the run (returns False) or report it as skipped (True)."""
        limit = self.invocation.limits.max_line_bytes
        if self.invocation.limits.line_policy == "error":
            self.fail(
                LineTooLongError(
                    f"{self.provider} printed {item.describe()} (limit {limit})",
                    limit=limit,
                )
            )
            return False
        event = TurnEvent(
            kind=EventKind.UNKNOWN,
            text=f"skipped a line of {item.size} bytes (limit {limit})",
            raw=decode_line(item.head),
            provider=self.provider,
        )
        await self.dispatcher.offer(event)
        return True

    async def read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        stream = self.proc.stderr
        while True:
            chunk = await receive_chunk(stream)
            if not chunk:
                self.stderr_eof.set()
                return
            self.tail.write(chunk)

    async def idle_watchdog(self) -> None:
        idle = self.invocation.idle_timeout
        if not idle or idle <= 0:
            return
        self.idle_scope = trio.CancelScope(deadline=trio.current_time() + idle)
        with self.idle_scope:
            await trio.sleep_forever()
        if self.idle_scope.cancelled_caught:
            self.fail(
                IdleTimeoutError(
                    f"{self.provider} idle timeout: no output for {idle:g} s",
                    idle_seconds=idle,
                )
            )

    async def run_timeout(self) -> None:
        timeout = self.invocation.timeout
        if not timeout or timeout <= 0:
            return
        await trio.sleep(timeout)
        self.fail(RunTimeoutError(f"llm timeout: {self.provider} run exceeded {timeout:g} s"))

    async def wait_exit(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self.exited.set()
        if self.idle_scope is not None:
            self.idle_scope.deadline = math.inf
        await self.drain()
        self.finish()

    async def drain(self) -> None:
        """After the CLI's exit: read what it wrote, then give the pipes ``drain_timeout`` to
        reach EOF.

        Everything the CLI wrote is in the pipe by the time it is dead, so the bytes pending
        then are read and handled first however slowly the callbacks take them (nothing the CLI
        said is lost). Whatever comes after is from processes the CLI left behind holding the
        pipe (C9): it gets ``drain_timeout`` in total — a background job that never goes quiet
        cannot hold the run (issue 12.2), and the sweep kills it."""
        assert self.proc is not None
        target = self.bytes_read + self.proc.pending_output()
        while self.bytes_handled < target and not self.stdout_eof.is_set():
            await self.progress.wait()
        with trio.move_on_after(self.invocation.limits.drain_timeout):
            await self.stdout_eof.wait()
            await self.stderr_eof.wait()

    async def drain_then_kill(self) -> None:
        """After the terminal event or stdout's EOF: ``drain_timeout`` for the CLI to exit by
        itself, then the run ends (and the group is killed)."""
        with trio.move_on_after(self.invocation.limits.drain_timeout):
            await self.exited.wait()
            return  # wait_exit ends the run
        self.killed_in_drain = True
        self.finish()

    async def dispatch(self) -> None:
        try:
            await self.dispatcher.run()
        except Exception as exc:  # a user callback raised: fail the run, keep the cause
            err = CallbackError(f"{self.provider}: callback raised {exc!r}")
            err.__cause__ = exc
            self.fail(err)


async def run_invocation(
    invocation: Invocation,
    decoder: Decoder,
    *,
    provider: str,
    fallback_thread_id: str = "",
    on_progress: ProgressCallback | None = None,
    on_raw_event: RawEventCallback | None = None,
    on_events: EventsCallback | None = None,
    raw_lines: bool = False,
    informational_rate: int = 0,
    explain_exit: Callable[[int, str], str | AliceError | None] | None = None,
    spawner: Spawner = spawn,
) -> RunResult:
    """Spawn ``invocation``, feed its stdout to ``decoder``, return the result or raise.

    ``raw_lines``: every stdout line (decoded, before the decoder sees it) also reaches
    ``on_raw_event`` as ``RawEvent(kind="stdout_line", line=...)``, an informational event
    (shed like the others when the callback lags); off, it costs nothing.
    ``informational_rate``: see :class:`~alice_trio.models.RunRequest` and
    :mod:`.event_rate`; a decoder with ``quiet`` and ``skipped`` attributes
    (:class:`~alice_trio.providers.base.JsonLineDecoder`) is told, a read chunk at a time,
    whether its informational events would reach a callback at all.

    This is the engine's only entry point for one-shot runs; it knows no provider by name.
    ``spawner`` starts the process (:func:`.spawn.spawn`; tests pass a fake :class:`.Child`).
    """
    limits = invocation.limits
    run = _Run(
        invocation=invocation,
        decoder=decoder,
        provider=provider,
        dispatcher=CallbackDispatcher(
            on_progress,
            on_raw_event,
            limits.callback_buffer,
            on_events,
            provider=provider,
            rate=informational_rate,
        ),
        tail=StderrTail(limits.stderr_tail_bytes),
        raw_lines=raw_lines and on_raw_event is not None,
        skipped=_quiet_counts(decoder),
        foreign=not type(decoder).__module__.startswith("alice_trio."),
    )
    run.files = await watch_turn(
        invocation.cwd or "", enabled=limits.file_changes, max_files=limits.file_changes_max_files
    )
    try:
        run.proc = await spawner(
            invocation, name=provider, stdin="pipe" if invocation.stdin is not None else "devnull"
        )
    except BaseException:
        run.files.close()
        raise
    proc = run.proc
    timeout = invocation.timeout
    try:
        async with trio.open_nursery() as outer:
            if timeout and timeout > 0:  # also bounds a callback that never returns
                outer.cancel_scope.deadline = trio.current_time() + timeout
            outer.start_soon(run.dispatch)
            try:
                async with trio.open_nursery() as io:  # the run nursery
                    run.io = io
                    io.start_soon(run.write_stdin)
                    io.start_soon(run.read_stdout)
                    io.start_soon(run.read_stderr)
                    io.start_soon(run.idle_watchdog)
                    io.start_soon(run.run_timeout)
                    io.start_soon(run.wait_exit)
                if run.failure is None:  # changes no tool event named (a shell's `echo > f`)
                    thread_id = getattr(decoder, "thread_id", "") or fallback_thread_id
                    end = await run.files.end(provider=provider, thread_id=thread_id)
                    if end is not None:
                        await run.dispatcher.offer(end)
            finally:
                run.files.close()
                run.dispatcher.close()
                if run.failure is not None:  # a failed run waits for stuck callbacks no more
                    outer.cancel_scope.deadline = min(
                        outer.cancel_scope.deadline, trio.current_time() + limits.drain_timeout
                    )
        if outer.cancel_scope.cancelled_caught and run.failure is None:
            run.failure = RunTimeoutError(f"llm timeout: {provider} run exceeded {timeout:g} s")
    finally:
        keep = limits.keep_background and run.failure is None and proc.returncode == 0
        await close_child(proc, kill_grace=limits.kill_grace, sweep=limits.sweep and not keep)
    return _conclude(run, decoder.finish(), fallback_thread_id, explain_exit)


def _conclude(
    run: _Run,
    outcome: DecodeOutcome,
    fallback_thread_id: str,
    explain_exit: Callable[[int, str], str | AliceError | None] | None,
) -> RunResult:
    result = outcome.result
    if not result.next_thread_id and fallback_thread_id:
        result = attrs.evolve(result, next_thread_id=fallback_thread_id)
    if run.files.files:
        result = attrs.evolve(result, file_changes=run.files.all())
    tail = run.tail.text()
    common: dict[str, Any] = {"partial": result, "provider": run.provider, "stderr_tail": tail}
    if run.failure is not None:
        run.failure.partial = result
        run.failure.stderr_tail = tail
        raise run.failure
    verdict = TurnEnd.from_verdict(
        error=outcome.error, status=outcome.status, interrupted=outcome.interrupted
    )  # the one ending → error mapping (protocols/turn_outcome.py), shared with the sessions
    ended = verdict.exception(provider=run.provider, partial=result, stderr_tail=tail)
    if ended is not None:
        raise ended
    assert run.proc is not None
    rc = run.proc.returncode
    if rc is None:  # pragma: no cover - close_child always reaps
        rc = -signal.SIGKILL
    if rc != 0 and not run.killed_in_drain:
        explained = explain_exit(rc, tail) if explain_exit else None
        if isinstance(explained, AliceError):
            explained.partial = result
            explained.provider = run.provider
            explained.stderr_tail = tail
            raise explained
        message = explained or f"{run.provider} exec failed: {describe_exit(rc)}"
        raise ProcessFailedError(message, returncode=rc, **common)
    if not result.reply and outcome.missing_reply:
        raise ProtocolError(outcome.missing_reply_error(), **common)
    return result
