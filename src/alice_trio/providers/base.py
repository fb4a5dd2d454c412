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

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from .. import safejson
from .. import validation as v
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
    plain_event,
    redacted_env,
)
from .record import Flavor, StateDir

__all__ = [
    "ARG_MAX",
    "DRIFT_ERRORS",
    "MAX_ARG_STRLEN",
    "MAX_COUNT",
    "CLIConfig",
    "DecodeOutcome",
    "Decoder",
    "Invocation",
    "JsonLineDecoder",
    "Provider",
    "RunLimits",
    "as_int",
    "as_list",
    "as_map",
    "as_str",
    "check_argument",
    "merge_env",
    "prompt_argument",
]

DEFAULT_TIMEOUT = 172800.0  # 48 h, the spec's default overall timeout
MAX_LINE_LIMIT = 1 << 30  # the largest max_line_bytes (a line costs about twice its size)

#: what a mapping of one decoded message may raise on hostile-but-valid JSON (a wrong type at
#: some key, an out-of-range number): the line becomes an ``unknown`` event, never a crash
DRIFT_ERRORS: tuple[type[Exception], ...] = (
    KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError,
)  # fmt: skip
#: the largest token count / status / attempt number taken from a CLI: anything beyond int64 is
#: nonsense (a hostile or broken CLI) and counts as 0
MAX_COUNT = 2**63 - 1


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
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
    * ``file_changes``: stat ``workspace_dir`` before and after each turn and report the files
      the turn added, modified or deleted that no write/edit tool event named (a shell's
      ``echo > f``; :mod:`alice_trio.file_changes`). The CLI's own write/edit tool events are
      reported either way; no workspace set, no snapshot. ``file_changes_max_files``: a
      workspace with more entries than this is not snapshotted.

    Durations are finite and >= 0, ``max_line_bytes`` > 0, the other sizes >= 0; ``kill_grace``
    is at most 60 s and ``drain_timeout`` at most an hour (a cancel or an ending must stay
    bounded), ``max_line_bytes`` at most 1 GiB; anything else raises
    :class:`~alice_trio.errors.ConfigError` naming the field.
    """

    kill_grace: float = attrs.field(default=0.25, metadata=v.meta(v.seconds(maximum=60.0)))
    drain_timeout: float = attrs.field(default=2.0, metadata=v.meta(v.seconds(maximum=3600.0)))
    max_line_bytes: int = attrs.field(
        default=DEFAULT_MAX_LINE_BYTES,
        metadata=v.meta(v.integer(0, strict=True, maximum=MAX_LINE_LIMIT)),
    )
    line_policy: str = attrs.field(default="error", metadata=v.meta(v.choice(("error", "skip"))))
    stderr_tail_bytes: int = 64 * 1024
    callback_buffer: int = 4096
    sweep: bool = True
    keep_background: bool = False
    file_changes: bool = True
    file_changes_max_files: int = 100_000


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class CLIConfig:
    """Settings shared by every CLI provider; providers subclass it (decorated with
    :func:`alice_trio.validation.config_class`) to add their own keys.

    ``command`` empty means the provider's default command. ``timeout`` ≤ 0 means 48 h.
    ``idle_timeout`` (seconds of stdout silence) ``None`` means no idle watchdog.
    ``extra_args`` (a list of strings; a bare string is an error) are appended before the prompt
    terminator. ``workspace_dir`` is a string or a path. Every field is checked at construction
    (:class:`~alice_trio.errors.ConfigError` naming the field), from YAML and Python alike.
    """

    command: str = ""
    timeout: float = attrs.field(
        default=DEFAULT_TIMEOUT, metadata=v.meta(v.seconds(negative=DEFAULT_TIMEOUT))
    )
    idle_timeout: float | None = None
    model: str = ""
    env: Mapping[str, str] = attrs.field(
        factory=dict, repr=redacted_env, metadata=v.meta(v.env_map)
    )
    workspace_dir: str = attrs.field(default="", metadata=v.meta(v.path_text))
    exec_policy: ExecPolicy = attrs.field(
        default=ExecPolicy(), metadata=v.meta(v.instance(ExecPolicy, "an ExecPolicy"), nested=True)
    )
    extra_args: tuple[str, ...] = ()
    limits: RunLimits = attrs.field(
        default=RunLimits(), metadata=v.meta(v.instance(RunLimits, "a RunLimits"), nested=True)
    )

    def effective_timeout(self) -> float:
        return self.timeout if self.timeout and self.timeout > 0 else DEFAULT_TIMEOUT

    def effective_idle_timeout(self) -> float | None:
        """``idle_timeout`` when it is set and positive, capped at the overall timeout."""
        idle = self.idle_timeout
        return min(idle, self.effective_timeout()) if idle and idle > 0 else None


#: Linux: the longest single argv element or env string, NUL included (``MAX_ARG_STRLEN``,
#: 32 pages); a longer one makes ``execve`` fail with E2BIG
MAX_ARG_STRLEN = 32 * 4096
#: Linux: argv + envp together may use a quarter of the stack limit, 2 MiB with the default
#: 8 MiB stack (``getconf ARG_MAX``). The pure check counts argv and the env *overrides*; the
#: host environment is added by the engine at spawn time.
ARG_MAX = 2 * 1024 * 1024


def _encoded(value: str, what: str) -> bytes:
    try:
        data = value.encode("utf-8", "surrogateescape")  # what os.fsencode does on Linux
    except UnicodeEncodeError:
        raise ConfigError(f"{what} is not encodable text (a lone surrogate)") from None
    if b"\x00" in data:
        raise ConfigError(f"{what} contains a NUL byte, which a process argument cannot carry")
    return data


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def check_argument(value: str, what: str) -> bytes:
    """``value`` as one argv element (or env string): text without NUL, at most
    :data:`MAX_ARG_STRLEN` bytes. Raises :class:`ConfigError` naming ``what`` and the limit."""
    data = _encoded(value, what)
    if len(data) + 1 > MAX_ARG_STRLEN:
        raise ConfigError(
            f"{what} is {len(data):,} bytes; Linux limits a single process argument to "
            f"{MAX_ARG_STRLEN - 1:,} bytes (MAX_ARG_STRLEN)"
        )
    return data


def prompt_argument(flag: str, prompt: str, *, provider: str, why: str) -> str:
    """``flag + prompt`` as one argv element, for a CLI that takes the prompt only in argv.
    Raises :class:`ConfigError` before anything is spawned when the prompt holds a NUL byte or
    is longer than one argument may be (:data:`MAX_ARG_STRLEN`), saying ``why`` it goes there."""
    arg = flag + prompt
    try:
        check_argument(arg, f"the {provider} prompt argument ({flag}...)")
    except ConfigError as exc:
        raise ConfigError(f"{exc.message}; {why}", provider=provider) from None
    return arg


def _check_invocation(inv: Invocation) -> None:
    """Everything ``execve`` would refuse, and a field of the wrong type (a builder of another
    package), as a typed error before anything is spawned."""
    _check_fields(inv)
    if not inv.argv:
        raise ConfigError("empty argv: no command to run")
    total = 0
    for i, arg in enumerate(inv.argv):
        if not isinstance(arg, str):
            raise ConfigError(f"argv[{i}] is not a string: {type(arg).__name__}")
        total += len(check_argument(arg, f"argv[{i}] ({_short(arg)})")) + 1 + 8
    for key, value in inv.env.items():
        try:
            name = v.env_key(key)
        except v.InvalidValue as exc:
            raise ConfigError(exc.message) from None
        if not isinstance(value, str):
            raise ConfigError(f"env {name} is not a string")
        total += len(check_argument(f"{name}={value}", f"env {name}")) + 1 + 8
    if inv.cwd is not None:
        _encoded(inv.cwd, "workspace dir (cwd)")
    if total > ARG_MAX:
        raise ConfigError(
            f"argv and environment overrides together are {total:,} bytes; Linux allows "
            f"{ARG_MAX:,} for argv + environment (ARG_MAX with the default stack)"
        )


def _check_fields(inv: Invocation) -> None:
    """The fields' types: ``cwd`` a string, ``stdin`` bytes, the timeouts numbers >= 0 (not
    NaN), ``limits`` a :class:`RunLimits`, ``env_remove`` strings — each None where allowed."""
    if inv.cwd is not None and not isinstance(inv.cwd, str):
        raise ConfigError(f"invocation cwd is {type(inv.cwd).__name__}, not a string")
    if inv.stdin is not None and not isinstance(inv.stdin, bytes):
        raise ConfigError(f"invocation stdin is {type(inv.stdin).__name__}, not bytes")
    for name in ("timeout", "idle_timeout"):
        value = getattr(inv, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigError(f"invocation {name} is {value!r}, not a number of seconds >= 0")
    if not isinstance(inv.limits, RunLimits):
        raise ConfigError(f"invocation limits is {type(inv.limits).__name__}, not a RunLimits")
    if isinstance(inv.env_remove, (str, bytes)) or not all(
        isinstance(k, str) for k in inv.env_remove
    ):
        raise ConfigError("invocation env_remove is not a sequence of names (strings)")


def _as_tuple(value: Iterable[str]) -> tuple[str, ...]:
    """``argv`` as a tuple; a lone string (or bytes) is refused, not split into characters."""
    if isinstance(value, (str, bytes, bytearray)):
        raise ConfigError(f"argv is a {type(value).__name__}, not a sequence of strings")
    return tuple(value)


def _as_states(value: Iterable[StateDir]) -> tuple[StateDir, ...]:
    return tuple(value)


def _as_dict(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


@attrs.frozen(kw_only=True)
class Invocation:
    """How to start one CLI process. ``env`` holds overrides only: the engine merges them over
    the host's environment and removes ``env_remove``. ``stdin`` ``None`` means stdin is
    closed at once; bytes are written and then stdin is closed (EOF). ``idle_timeout`` and
    ``timeout`` are seconds (``None``: none). ``inputs`` names the files the CLI must read
    (label → path, e.g. ``{"transcript": path}``): the spawn path checks each is a readable
    file before anything starts, so a missing one is a :class:`~alice_trio.errors.ConfigError`,
    not the CLI's own failure after it started.

    Construction checks what ``execve`` would refuse, for one-shot runs and sessions alike: a
    NUL byte or an unencodable string in argv, env or cwd, an env key with ``=``, one argument
    longer than :data:`MAX_ARG_STRLEN`, argv + env overrides beyond :data:`ARG_MAX`. Each raises
    :class:`~alice_trio.errors.ConfigError` naming the element and the limit, so a bad value
    never reaches a spawn (no bare ``OSError`` E2BIG or ``ValueError``).

    ``state``: the directories this CLI creates or migrates when it starts (the provider
    record's :attr:`Flavor.state <alice_trio.providers.record.Flavor.state>`); the engine
    starts one process at a time per such directory until one came up
    (:mod:`alice_trio.engine.first_start`)."""

    argv: tuple[str, ...] = attrs.field(converter=_as_tuple)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_as_dict, repr=redacted_env)
    env_remove: tuple[str, ...] = ()
    cwd: str | None = None
    stdin: bytes | None = None
    timeout: float | None = None
    idle_timeout: float | None = None
    limits: RunLimits = RunLimits()
    inputs: Mapping[str, str] = attrs.field(factory=dict, converter=_as_dict)
    state: tuple[StateDir, ...] = attrs.field(default=(), converter=_as_states)

    def __attrs_post_init__(self) -> None:
        _check_invocation(self)


#: how much of the first non-JSON stdout line an outcome keeps for the error message
STRAY_LINE_CHARS = 300


@attrs.frozen(kw_only=True)
class DecodeOutcome:
    """What a decoder concluded after the last line.

    ``error`` is the failure the agent reported (empty: none), ``status`` its HTTP/API status.
    ``interrupted``: the CLI reported the turn as interrupted. ``missing_reply``: the message to
    use when the turn ended with no assistant text (empty: a missing reply is fine).
    ``terminal``: a terminal event was seen. ``stray_line``: the first line of stdout that was
    not JSON (cut to :data:`STRAY_LINE_CHARS`), "" when none — what a CLI printed instead of its
    protocol (a deprecation notice, a usage message) is named in the missing reply's error.
    """

    result: RunResult
    error: str = ""
    status: int | None = None
    interrupted: bool = False
    terminal: bool = False
    missing_reply: str = ""
    unknown_lines: int = 0
    stray_line: str = ""

    def missing_reply_error(self) -> str:
        """The error of a turn that ended with no reply: ``missing_reply``, and what the CLI
        printed instead when that was not its protocol ("" when a missing reply is fine)."""
        if not self.missing_reply or not self.stray_line:
            return self.missing_reply
        return f"{self.missing_reply}; it printed instead: {self.stray_line!r}"


@runtime_checkable
class Decoder(Protocol):
    """A pure state machine over one run's stdout lines.

    Optional (:class:`JsonLineDecoder` has both): a ``quiet`` bool the engine sets while no
    callback would get an informational event (``RunRequest.informational_rate``, or nobody
    listens), and a ``skipped`` dict (kind value → count) of the informational events the
    decoder then did not build. Quiet changes only which events are built, never the state.
    """

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
    """A count from a JSON number or numeric string; anything else is 0.

    Never raises: ``inf``/``nan`` (``1e999`` parses as ``inf``), numbers beyond ±``MAX_COUNT``
    and numeric strings longer than 40 characters are 0; floats are truncated."""
    if type(value) is int:  # the common case first (bool is a subclass, not this type)
        return value if -MAX_COUNT <= value <= MAX_COUNT else 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            return 0
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return 0
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_COUNT:
            return 0
        value = int(value)
    if isinstance(value, int):
        return value if -MAX_COUNT <= value <= MAX_COUNT else 0
    return 0


def as_str(value: Any) -> str:
    """A trimmed string from a JSON string; anything else is ""."""
    return value.strip() if isinstance(value, str) else ""


def as_list(value: Any) -> list[Any]:
    """A JSON array as a list; anything else (a hostile ``"options": 1e999``) is ``[]``."""
    return value if isinstance(value, list) else []


def as_map(value: Any) -> Mapping[str, Any]:
    """A JSON object as a mapping; anything else is ``{}``."""
    return value if isinstance(value, Mapping) else {}


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
        self.stray_line = ""
        self._pending_writes: dict[str, list[FileChange]] = {}
        #: set by the engine while no callback would get an informational event: a hot path
        #: may then skip building one (counting it in ``skipped``), never a state change
        self.quiet = False
        self.skipped: dict[str, int] = {}

    @property
    def terminal(self) -> bool:
        return self._terminal

    def feed(self, line: str) -> list[TurnEvent]:
        s = line.strip()
        if not s:
            return []
        try:
            obj = safejson.loads(s)
        except safejson.NotJSON:
            return [self._not_json(line)]
        if not isinstance(obj, dict):
            return [self._unknown(line, "JSON line that is not an object")]
        try:  # _decode_guarded, inlined (one call less per line)
            return self._decode(obj, line)
        except DRIFT_ERRORS as exc:
            return [self._unknown(line, f"undecodable event: {exc!r}")]

    def _decode_guarded(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        """``_decode`` with its drift (:data:`DRIFT_ERRORS`) turned into an ``unknown`` event."""
        try:
            return self._decode(obj, line)
        except DRIFT_ERRORS as exc:
            return [self._unknown(line, f"undecodable event: {exc!r}")]

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        raise NotImplementedError

    # -- helpers for subclasses ---------------------------------------------------------------
    def _event(self, kind: EventKind, line: str, text: str = "", **kw: Any) -> TurnEvent:
        if not kw:  # the common case: built without attrs' keyword __init__ (the same object)
            return plain_event(kind, line, self.provider, self.thread_id, text)
        if "thread_id" not in kw:
            kw["thread_id"] = self.thread_id
        return TurnEvent(kind=kind, raw=line, provider=self.provider, text=text, **kw)

    def _skip(self, kind: EventKind) -> list[TurnEvent]:
        """``quiet``: count one informational ``kind`` event not built; returns ``[]``."""
        value = kind._value_
        self.skipped[value] = self.skipped.get(value, 0) + 1
        return []

    def _informational(
        self, events: list[TurnEvent], kind: EventKind, line: str, text: Any, arg: Any
    ) -> None:
        """Append the ``kind`` event of ``text(arg)`` — or, ``quiet``, count it unbuilt (the
        text is not even formatted)."""
        if self.quiet:
            self._skip(kind)
        else:
            events.append(self._event(kind, line, text=text(arg)))

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

    def _not_json(self, line: str) -> TurnEvent:
        """An ``unknown`` event for a line that is not JSON; the first one is kept as the
        outcome's ``stray_line``."""
        if not self.stray_line:
            self.stray_line = line.strip()[:STRAY_LINE_CHARS]
        return self._unknown(line, "non-JSON line")

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
            stray_line=self.stray_line,
        )
