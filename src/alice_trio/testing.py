"""Fakes for testing a bot built on alice_trio: no agent CLI, no network, no model.

Like httpx's ``MockTransport``, they keep the real machinery running and replace only the agent:

* :func:`fake_turn` writes the transcript of one agent turn (codex ``exec --json`` lines: thread,
  progress messages, shell commands, file changes, the reply or a failure, usage, stderr, exit
  code, optional delays) and :func:`fake_config` returns the ``replay`` provider config that plays
  it. The whole one-shot engine runs for real — process group, stdin, decoding, callbacks,
  timeouts, teardown::

      backend = OneShotBackend("replay", fake_config("hello", progress=["thinking…"]))

  In YAML, a ``provider: replay`` profile with ``transcript: PATH`` (and ``speed: 0``) does the
  same, so a bot's config-driven routing is testable too.
* :class:`ScriptedDriver` is an interactive session driver without a process: a test pushes the
  agent's events and ends turns by hand, or lets it answer every prompt by itself::

      SessionBackend("codex", driver_factory=lambda cfg, req: ScriptedDriver(auto_reply=True))
      open_session("codex", initial=request, driver=ScriptedDriver())

alice_trio's own tests use these same fakes.

Errors: the functions raise ``ValueError`` for arguments they cannot write (a negative or
non-finite delay, a string where a list of strings belongs, an unknown file kind, an exit code
that is neither 0..255 nor minus a signal that ends a process);
nothing here touches the network or spawns anything by itself.
"""

from __future__ import annotations

import atexit
import itertools
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import trio

from .errors import SessionClosedError, TransportClosedError
from .models import EventKind, RunRequest, TurnEvent, Usage
from .protocols.session_core import steer_mode_of
from .providers.replay import ReplayConfig
from .replay_cli import KILLING_SIGNALS
from .sessions.driver import Emit, SteerMode, TurnRef

__all__ = ["ScriptedDriver", "fake_config", "fake_turn"]

_DEFAULT_USAGE = Usage(input_tokens=12, cached_input_tokens=2, output_tokens=5)
_counter = itertools.count(1)
_scratch: tempfile.TemporaryDirectory[str] | None = None


def _scratch_dir() -> Path:
    """One owner-only (0700) temporary folder per process for transcripts, removed at exit."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.TemporaryDirectory(prefix="alice-trio-fakes-")
        atexit.register(_scratch.cleanup)
    return Path(_scratch.name)


def fake_turn(
    reply: str = "",
    *,
    thread_id: str = "fake-thread",
    progress: Sequence[str] = (),
    commands: Sequence[str] = (),
    files: Iterable[tuple[str, str]] = (),
    usage: Usage = _DEFAULT_USAGE,
    error: str = "",
    stderr: str = "",
    exit_code: int = 0,
    delay: float = 0.0,
    directory: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the transcript of one turn and return its path (in ``directory``, else in a
    private temporary folder of this process).

    In order: ``thread.started`` with ``thread_id``, one progress message per ``progress``
    text, one finished shell command per ``commands`` entry, one ``file_change`` item naming
    ``files`` (``(path, kind)`` pairs, kind ``added``/``modified``/``deleted``), the ``reply``
    (the last assistant message), then ``turn.completed`` with ``usage`` — or, with ``error``,
    ``turn.failed`` with that message (an :class:`~alice_trio.errors.AgentError` for the bot).
    ``stderr`` is written to stderr; the process exits with ``exit_code`` (a negative value: killed
    by that signal). ``delay``: seconds before each line (a slow agent, to test cancellation
    and timeouts; ``speed`` in :func:`fake_config` scales it).
    """
    _check_turn(reply, thread_id, files, usage, error, stderr, exit_code, delay)
    progress, commands = _strings("progress", progress), _strings("commands", commands)
    lines: list[dict[str, Any]] = [{"type": "thread.started", "thread_id": thread_id}]
    lines.append({"type": "turn.started"})
    items: list[dict[str, Any]] = [{"type": "agent_message", "text": text} for text in progress]
    for command in commands:
        items.append(
            {"type": "command_execution", "command": command, "aggregated_output": "",
             "exit_code": 0, "status": "completed"}
        )  # fmt: skip
    changes = _file_pairs(files)
    if changes:
        items.append({"type": "file_change", "changes": changes, "status": "completed"})
    if reply:
        items.append({"type": "agent_message", "text": reply})
    for n, item in enumerate(items):
        lines.append({"type": "item.completed", "item": {"id": f"item_{n}", **item}})
    if error:
        lines.append({"type": "turn.failed", "error": {"message": error}})
    else:
        lines.append({"type": "turn.completed", "usage": usage.to_dict()})
    records = [
        {"t_ms": round(delay * 1000 * (i + 1)), "stream": "stdout", "line": json.dumps(line)}
        for i, line in enumerate(lines)
    ]
    if stderr:
        records.insert(0, {"t_ms": 0, "stream": "stderr", "line": stderr.rstrip("\n")})
    records.append({"exit": exit_code})
    folder = Path(directory) if directory is not None else _scratch_dir()
    path = folder / f"fake-turn-{os.getpid()}-{next(_counter)}.timeline.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


_FILE_KINDS = ("added", "modified", "deleted")


def _strings(name: str, value: object) -> tuple[str, ...]:
    """``value`` as a tuple of strings (read once: a generator is fine); a lone string is
    refused, not taken as its characters."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of strings, got {value!r:.60}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be a list of strings, got an item {item!r:.60}")
    return items


def _check_turn(
    reply: object, thread_id: object, files: object, usage: object, error: object,
    stderr: object, exit_code: object, delay: object,
) -> None:  # fmt: skip
    """:func:`fake_turn`'s arguments, each of the type and range it writes: a ``ValueError``
    naming the argument instead of a transcript that plays something else (a string taken as
    its characters, an exit code the replay CLI turns into 1) or an error from deep inside."""
    for name, text in [("reply", reply), ("thread_id", thread_id), ("error", error),
                       ("stderr", stderr)]:  # fmt: skip
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a string, got {text!r:.60}")
    if not isinstance(files, Iterable) or isinstance(files, (str, bytes)):
        raise ValueError(f"files must be (path, kind) pairs, got {files!r:.60}")
    if not isinstance(usage, Usage):
        raise ValueError(f"usage must be a Usage, got {usage!r:.60}")
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        raise ValueError(f"exit_code must be an integer, got {exit_code!r:.60}")
    if not 0 <= exit_code <= 255 and -exit_code not in KILLING_SIGNALS:
        raise ValueError(
            f"exit_code must be 0..255, or minus a signal that ends a process, got {exit_code}"
        )
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise ValueError(f"delay must be a number of seconds, got {delay!r:.60}")
    if not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")


def _file_pairs(files: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for pair in files:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            raise ValueError(f"files must be (path, kind) pairs, got {pair!r:.60}")
        path, kind = pair
        if not isinstance(path, str) or not path:
            raise ValueError(f"a file path must be a non-empty string, got {path!r:.60}")
        if kind not in _FILE_KINDS:
            raise ValueError(
                f"a file kind must be one of {', '.join(_FILE_KINDS)}, got {kind!r:.60}"
            )
        out.append({"path": path, "kind": kind})
    return out


def fake_config(reply: str = "", *, speed: float = 0.0, **turn: Any) -> ReplayConfig:
    """A ``replay`` provider config that plays :func:`fake_turn` ``(reply, **turn)``; ``speed``
    scales the transcript's delays (0: none). Use it with ``OneShotBackend("replay", …)``,
    ``SessionBackend("replay", …)`` (one run per turn) or ``run_once``."""
    return ReplayConfig(transcript=str(fake_turn(reply, **turn)), speed=speed)


class ScriptedDriver:
    """A session driver with no process: it records every call (``started``, ``steered``,
    ``interrupted``, ``closed_with``) and a test pushes the agent's events with :meth:`push` /
    :meth:`finish`, or lets it answer by itself.

    ``auto_reply``: each started turn at once emits ``turn_started``, the assistant text
    ``reply(prompt)`` (default ``"reply to <prompt>"``) and ``turn_completed`` with usage (a fast
    agent). ``enqueue``: a steer gets its own turn id (``native_enqueue`` style) instead of the
    active one. ``fail_start`` (an exception) makes the next starts fail; ``start_gate`` (a
    ``trio.Event``) holds starts until set; :meth:`end` makes the "process" end by itself, with
    ``crash`` as its error. Interrupts answer ``turn_interrupted`` unless ``interrupt_reply`` is
    false. A ``steer_mode`` that is no :class:`SteerMode` (nor its value), a ``thread_id`` that
    is no string or a ``reply`` that is not callable is a ``ValueError``; a ``reply`` that
    returns no string fails the session with a :class:`~alice_trio.errors.ProtocolError` (the
    driver emitted a malformed event), as any driver would.
    """

    def __init__(
        self,
        steer_mode: SteerMode | str = SteerMode.QUEUE_WHEN_BUSY,
        *,
        auto_reply: bool = False,
        enqueue: bool = False,
        thread_id: str = "thr-1",
        reply: Callable[[str], str] | None = None,
    ) -> None:
        if not isinstance(thread_id, str):
            raise ValueError(f"thread_id must be a string, got {thread_id!r:.60}")
        if reply is not None and not callable(reply):
            raise ValueError(f"reply must be a function of the prompt, got {reply!r:.60}")
        self.steer_mode = steer_mode_of(steer_mode)  # its value ("native") too; else ValueError
        self.auto_reply = auto_reply
        self.enqueue = enqueue
        self.thread_id = thread_id
        self.reply = reply or (lambda prompt: f"reply to {prompt}")
        self.started: list[tuple[TurnRef, RunRequest]] = []
        self.steered: list[tuple[TurnRef, RunRequest]] = []
        self.interrupted: list[TurnRef] = []
        self.closed_with: list[bool] = []
        self._ids = itertools.count(1)
        self._emit: Emit | None = None
        self._end = trio.Event()
        self.fail_start: BaseException | None = None
        self.start_gate: trio.Event | None = None
        self.crash: BaseException | None = None
        self.interrupt_reply = True

    async def run(self, emit: Emit, *, task_status: trio.TaskStatus[None]) -> None:
        self._emit = emit
        task_status.started()
        await self._end.wait()
        if self.crash is not None:
            raise self.crash

    async def push(self, event: TurnEvent) -> None:
        assert self._emit is not None
        await self._emit(event)

    async def finish(
        self,
        ref: TurnRef,
        kind: EventKind = EventKind.TURN_COMPLETED,
        text: str = "",
        usage: Usage | None = None,
        error: str = "",
    ) -> None:
        """End ``ref``'s turn: its ``text`` (if any), then the terminal event ``kind``
        (``turn_completed``, ``turn_interrupted`` or ``error``; another kind ends nothing and
        is a ``ValueError``, not a turn that waits for ever)."""
        if not isinstance(kind, EventKind) or not kind.terminal:
            raise ValueError(
                f"finish ends a turn: kind must be turn_completed, turn_interrupted or error, "
                f"got {kind!r:.60}"
            )
        if text:
            await self.push(
                TurnEvent(
                    kind=EventKind.ASSISTANT_TEXT,
                    text=text,
                    thread_id=ref.thread_id,
                    turn_id=ref.turn_id,
                )
            )
        await self.push(
            TurnEvent(
                kind=kind, thread_id=ref.thread_id, turn_id=ref.turn_id, usage=usage, error=error
            )
        )

    def end(self, crash: BaseException | None = None) -> None:
        """The process ends by itself (EOF / crash)."""
        self.crash = crash
        self._end.set()

    async def start_turn(self, request: RunRequest) -> TurnRef:
        if self._end.is_set():
            raise SessionClosedError()
        if self.start_gate is not None:
            await self.start_gate.wait()
        if self.fail_start is not None:
            raise self.fail_start
        ref = TurnRef(thread_id=request.thread_id or self.thread_id, turn_id=f"t{next(self._ids)}")
        self.started.append((ref, request))
        if self.auto_reply:
            await self.push(
                TurnEvent(kind=EventKind.TURN_STARTED, thread_id=ref.thread_id, turn_id=ref.turn_id)
            )
            await self.finish(
                ref, text=self.reply(request.prompt), usage=Usage(input_tokens=3, output_tokens=2)
            )
        return ref

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        if self._end.is_set():
            raise TransportClosedError()
        ref = (
            TurnRef(thread_id=turn.thread_id, turn_id=f"t{next(self._ids)}")
            if self.enqueue
            else turn
        )
        self.steered.append((ref, request))
        return ref

    async def interrupt_turn(self, turn: TurnRef) -> None:
        self.interrupted.append(turn)
        if self.interrupt_reply:
            await self.finish(turn, EventKind.TURN_INTERRUPTED)

    async def aclose(self, *, graceful: bool) -> None:
        self.closed_with.append(graceful)
        self._end.set()

    def stderr_tail(self) -> str:
        return "scripted stderr"
