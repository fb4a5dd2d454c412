"""What a provider is: pure code that knows one CLI's flags and output, and nothing of processes.

A provider module holds

* a config class (attrs, subclass of :class:`CLIConfig`) for its YAML profile keys,
* ``build_invocation(request, config) -> Invocation``: argv, env overrides, cwd, stdin bytes,
* a decoder class: a state machine fed one stdout line at a time (``feed(line) -> events``) whose
  ``finish()`` gives a :class:`DecodeOutcome` (the result, or the failure the agent reported),

and registers one :class:`Provider` object (see :mod:`alice_trio.providers.registry`). Neither
the builder nor the decoder imports trio or does I/O: they are tested on recorded transcripts
without any process, and the engine (:mod:`alice_trio.engine`) is the only place that spawns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from ..errors import AliceError, ConfigError
from ..file_changes import FileChange, WriteTools, changes_from_tool_call, format_file_changes
from ..framing import DEFAULT_MAX_LINE_BYTES
from ..models import (
    EventKind,
    ExecPolicy,
    RunRequest,
    RunResult,
    TurnEvent,
    Usage,
    redacted_env,
)
from .record import Flavor

__all__ = [
    "CLIConfig",
    "DecodeOutcome",
    "Decoder",
    "Invocation",
    "JsonLineDecoder",
    "Provider",
    "RunLimits",
    "as_int",
    "as_str",
    "merge_env",
]

DEFAULT_TIMEOUT = 172800.0  # 48 h, the spec's default overall timeout

try:  # orjson is used when installed (not a dependency); it parses ~3x faster than json
    from orjson import loads as json_loads
except ImportError:  # pragma: no cover - depends on the environment
    json_loads = json.loads

_BIG_LINE = 1 << 20


@attrs.frozen(kw_only=True)
class RunLimits:
    """Engine knobs that bound a run. All durations are seconds.

    * ``kill_grace``: SIGTERM to the group → this long → SIGKILL to the group.
    * ``drain_timeout``: after a terminal event, how long the CLI may take to exit by itself
      (it flushes its transcript, C7) before it is killed; after the CLI exits, how long a
      grandchild may keep stdout open before reading stops (C9).
    * ``max_line_bytes`` / ``line_policy``: a longer stdout line is an error (``"error"``) or is
      skipped and reported as an ``unknown`` raw event (``"skip"``).
    * ``stderr_tail_bytes``: how much of the end of stderr is kept for errors.
    * ``callback_buffer``: events queued for the callbacks before the reader waits for them.
    * ``sweep``: after the group is gone, kill the run's processes that escaped it (setsid'd
      tool processes), see :mod:`alice_trio.engine.reaper`. ``keep_background`` opts out for
      a normal exit (an agent's background job may then outlive the turn).
    """

    kill_grace: float = 0.25
    drain_timeout: float = 2.0
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    line_policy: str = attrs.field(
        default="error", validator=attrs.validators.in_(("error", "skip"))
    )
    stderr_tail_bytes: int = 64 * 1024
    callback_buffer: int = 4096
    sweep: bool = True
    keep_background: bool = False


def _env_dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


@attrs.frozen(kw_only=True)
class CLIConfig:
    """Settings shared by every CLI provider; providers subclass it to add their own keys.

    ``command`` empty means the provider's default command. ``timeout`` ≤ 0 means 48 h.
    ``idle_timeout`` (seconds of stdout silence) ``None`` means no idle watchdog.
    ``extra_args`` are appended before the prompt terminator.
    """

    command: str = ""
    timeout: float = DEFAULT_TIMEOUT
    idle_timeout: float | None = None
    model: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_env_dict, repr=redacted_env)
    workspace_dir: str = ""
    exec_policy: ExecPolicy = ExecPolicy()
    extra_args: tuple[str, ...] = ()
    limits: RunLimits = RunLimits()

    def effective_timeout(self) -> float:
        return self.timeout if self.timeout and self.timeout > 0 else DEFAULT_TIMEOUT

    def effective_idle_timeout(self) -> float | None:
        """``idle_timeout`` when it is set and positive, capped at the overall timeout."""
        idle = self.idle_timeout
        return min(idle, self.effective_timeout()) if idle and idle > 0 else None


@attrs.frozen(kw_only=True)
class Invocation:
    """How to start one CLI process. ``env`` holds overrides only: the engine merges them over
    the host's environment and removes ``env_remove``. ``stdin`` ``None`` means stdin is
    closed at once; bytes are written and then stdin is closed (EOF). ``idle_timeout`` and
    ``timeout`` are seconds (``None``: none)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_env_dict, repr=redacted_env)
    env_remove: tuple[str, ...] = ()
    cwd: str | None = None
    stdin: bytes | None = None
    timeout: float | None = None
    idle_timeout: float | None = None
    limits: RunLimits = RunLimits()


@attrs.frozen(kw_only=True)
class DecodeOutcome:
    """What a decoder concluded after the last line.

    ``error`` is the failure the agent reported (empty: none), ``status`` its HTTP/API status.
    ``interrupted``: the CLI reported the turn as interrupted. ``missing_reply``: the message to
    use when the turn ended with no assistant text (empty: a missing reply is fine).
    ``terminal``: a terminal event was seen.
    """

    result: RunResult
    error: str = ""
    status: int | None = None
    interrupted: bool = False
    terminal: bool = False
    missing_reply: str = ""
    unknown_lines: int = 0


@runtime_checkable
class Decoder(Protocol):
    """A pure state machine over one run's stdout lines."""

    @property
    def terminal(self) -> bool:
        """True once the turn's terminal event was seen (the engine then only drains)."""
        ...

    def feed(self, line: str) -> list[TurnEvent]: ...

    def finish(self) -> DecodeOutcome: ...


def _flavor_tuple(value: Iterable[Flavor]) -> tuple[Flavor, ...]:
    return tuple(value)


def _flavors(instance: Any, attribute: Any, value: tuple[Flavor, ...]) -> None:
    names = [f.name for f in value]
    if not names:
        raise ValueError("a provider needs at least one flavor")
    if len(set(names)) != len(names):
        raise ValueError(f"flavor names must be unique, got {names!r}")
    if not instance.flavor_field and len(names) != 1:
        raise ValueError("several flavors need a flavor_field to choose between them")
    if instance.flavor_field and instance.flavor_field not in attrs.fields_dict(
        instance.config_class
    ):
        raise ValueError(f"flavor_field {instance.flavor_field!r} is not a config field")


@attrs.frozen(kw_only=True)
class Provider:
    """The registration record of a provider: how to run it one-shot, and what it can do.

    The one-shot part: ``build_invocation``/``new_decoder`` (pure), ``explain_exit`` (optional)
    turns an exit code and stderr tail into a clearer message (e.g. gemini's "workspace not
    trusted", exit 55), or into a more specific error (e.g. an
    :class:`~alice_trio.errors.AgentError` with the API status that kimi only prints on
    stderr). ``idle_retry`` (optional): after an idle timeout, the request for exactly one more
    attempt (e.g. codex resumes the thread it already started), or None to give up.
    ``prepare_request`` (optional): completes a request before argv and decoder are built (e.g.
    legacy kimi picks the session id of a new session itself, since it prints it only on stderr).

    What it can do, as data (:mod:`alice_trio.providers.record`): ``flavors`` — for each
    flavor its interactive session driver (steer mode, capabilities), its version check with
    the versions it was verified with, and its login check. ``flavor_field`` names the config
    field whose value picks the flavor ("" for a provider with one flavor). The session
    registry, ``alice-trio doctor``, ``alice-trio providers`` and ``docs/providers.md`` read
    these; nothing else keeps a copy. The default is one flavor wrapping one-shot runs as a
    session (steer mode ``queue_when_busy``), no version table and no login check.
    """

    name: str
    default_command: str
    config_class: type[CLIConfig]
    build_invocation: Callable[[RunRequest, Any], Invocation]
    new_decoder: Callable[[RunRequest, Any], Decoder]
    description: str = ""
    explain_exit: Callable[[int, str], str | AliceError | None] | None = None
    idle_retry: Callable[[RunRequest, RunResult], RunRequest | None] | None = None
    prepare_request: Callable[[RunRequest, Any], RunRequest] | None = None
    flavor_field: str = ""
    flavors: tuple[Flavor, ...] = attrs.field(
        default=(Flavor(),), converter=_flavor_tuple, validator=_flavors
    )

    def command(self, config: CLIConfig) -> str:
        return config.command.strip() or self.default_command

    @property
    def default_flavor(self) -> Flavor:
        """The flavor of a config that leaves ``flavor_field`` at its default."""
        if self.flavor_field:
            fields = attrs.fields_dict(self.config_class)
            field = fields.get(self.flavor_field)
            if field is not None and field.default is not attrs.NOTHING:
                return self.flavor(str(field.default))
        return self.flavors[0]

    def flavor(self, name: str) -> Flavor:
        """The flavor called ``name``; raises :class:`~alice_trio.errors.ConfigError`."""
        for f in self.flavors:
            if f.name == name:
                return f
        known = ", ".join(repr(f.name) for f in self.flavors)
        raise ConfigError(f"{self.name} has no flavor {name!r} (known: {known})")

    def flavor_of(self, config: CLIConfig) -> Flavor:
        """The flavor ``config`` selects through ``flavor_field``."""
        if not self.flavor_field:
            return self.flavors[0]
        value = getattr(config, self.flavor_field, None)
        if value is None:
            return self.default_flavor
        return self.flavor(str(value))


def merge_env(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Merge env layers left to right (later wins)."""
    out: dict[str, str] = {}
    for layer in layers:
        if layer:
            out.update(layer)
    return out


def as_int(value: Any) -> int:
    """A token count from a JSON number or numeric string; anything else is 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except ValueError:
            return 0
    return 0


def as_str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class JsonLineDecoder:
    """Base for JSON-lines decoders: parses each line, keeps the run state, never raises.

    Subclasses implement ``_decode(obj, line) -> list[TurnEvent]`` for one parsed JSON object
    and use the helpers to record the thread id, assistant text, usage and failures. Non-JSON
    lines, non-object JSON and any exception inside ``_decode`` become ``UNKNOWN`` events and
    are counted, so a new CLI version's drift shows instead of breaking the run.
    """

    provider: ClassVar[str] = ""
    #: message used when the turn ends with no assistant text ("" = not an error)
    no_reply_message: ClassVar[str] = ""
    #: the CLI's file-writing tools (see :mod:`alice_trio.file_changes`)
    write_tools: ClassVar[WriteTools] = {}

    def __init__(self, *, thread_id: str = "") -> None:
        self.thread_id = thread_id
        self.reply = ""
        self.usage = Usage()
        self.error = ""
        self.status: int | None = None
        self.interrupted = False
        self._terminal = False
        self.unknown_lines = 0
        self._pending_writes: dict[str, list[FileChange]] = {}

    @property
    def terminal(self) -> bool:
        return self._terminal

    def feed(self, line: str) -> list[TurnEvent]:
        s = line.strip()
        if not s:
            return []
        try:
            # orjson copies its input: for a huge line the stdlib parser (no copy) keeps the
            # peak memory at the line + its parsed value
            obj = json_loads(s) if len(s) < _BIG_LINE else json.loads(s)
        except ValueError:
            return [self._unknown(line, "non-JSON line")]
        if not isinstance(obj, dict):
            return [self._unknown(line, "JSON line that is not an object")]
        try:
            return self._decode(obj, line)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            return [self._unknown(line, f"undecodable event: {exc!r}")]

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------------
    def _event(self, kind: EventKind, line: str, **kw: Any) -> TurnEvent:
        kw.setdefault("thread_id", self.thread_id)
        return TurnEvent(kind=kind, raw=line, provider=self.provider, **kw)

    def _tool_called(self, tool_id: str, name: str, arguments: Any) -> None:
        """Remember the files a write/edit tool call names until its result says it ran."""
        changes = changes_from_tool_call(self.write_tools, name, arguments)
        if changes:
            self._pending_writes[tool_id] = changes

    def _tool_done(self, tool_id: str, ok: bool, line: str) -> list[TurnEvent]:
        """The ``file_change`` event of a finished write/edit tool call (none if it failed, was
        declined or named no file: the turn-end snapshot still sees what really changed)."""
        changes = self._pending_writes.pop(tool_id, None)
        return self._file_changes(changes, line) if ok and changes else []

    def _file_changes(self, changes: list[FileChange], line: str) -> list[TurnEvent]:
        text = format_file_changes(changes)
        return [self._event(EventKind.FILE_CHANGE, line, text=text, files=tuple(changes))]

    def _unknown(self, line: str, why: str) -> TurnEvent:
        self.unknown_lines += 1
        return self._event(EventKind.UNKNOWN, line, text=why)

    def _assistant(self, text: str, line: str) -> list[TurnEvent]:
        text = text.strip()
        if not text:
            return []
        self.reply = text
        return [self._event(EventKind.ASSISTANT_TEXT, line, text=text)]

    def _fail(self, message: str, line: str, status: int | None = None) -> TurnEvent:
        self.error = message.strip() or f"{self.provider} turn failed"
        if status is not None:
            self.status = status
        self._terminal = True
        return self._event(EventKind.ERROR, line, error=self.error, status=status)

    def _complete(self, line: str, usage: Usage | None = None) -> TurnEvent:
        if usage is not None:
            self.usage = usage
        self._terminal = True
        return self._event(EventKind.TURN_COMPLETED, line, usage=usage)

    def finish(self) -> DecodeOutcome:
        return DecodeOutcome(
            result=RunResult(reply=self.reply, next_thread_id=self.thread_id, usage=self.usage),
            error=self.error,
            status=self.status,
            interrupted=self.interrupted,
            terminal=self._terminal,
            missing_reply=self.no_reply_message,
            unknown_lines=self.unknown_lines,
        )
