"""The public data model: what a caller sends in and gets back.

Everything here is a frozen attrs class, pure data with no I/O, shared by the one-shot engine,
interactive sessions and every provider. Field meanings follow the Alice spec §2.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs

from . import validation as v
from .file_changes import FileChange

__all__ = [
    "EventKind",
    "EventsCallback",
    "ExecPolicy",
    "ProgressCallback",
    "QuestionInfo",
    "QuestionOption",
    "RawEvent",
    "RawEventCallback",
    "RunRequest",
    "RunResult",
    "TurnEvent",
    "TurnQuestion",
    "Usage",
    "call_maybe_async",
    "raw_detail",
    "redacted_env",
]

SANDBOX_VALUES = ("read-only", "workspace-write", "danger-full-access")
APPROVAL_VALUES = ("untrusted", "on-request", "on-failure", "never")


def _count(value: int) -> int:
    """A token count: never negative."""
    return value if value > 0 else 0


def redacted_env(env: Mapping[str, str]) -> str:
    """The ``repr`` of an env mapping with its values hidden: API keys never reach a log line
    through ``repr(request)`` / ``repr(config)``."""
    return "{" + ", ".join(f"{key!r}: '***'" for key in env) + "}"


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class ExecPolicy:
    """Sandbox / approval / extra writable dirs (spec §2.5). Empty strings mean "not set".

    ``sandbox`` is one of :data:`SANDBOX_VALUES`, ``ask_for_approval`` one of
    :data:`APPROVAL_VALUES` (trimmed, case-insensitive; anything else is a
    :class:`~alice_trio.errors.ConfigError` naming the allowed values). ``add_dirs``: strings or
    paths, trimmed, empties dropped, de-duplicated keeping the first spelling and order.
    """

    sandbox: str = attrs.field(default="", metadata=v.meta(v.choice(SANDBOX_VALUES, empty=True)))
    ask_for_approval: str = attrs.field(
        default="", metadata=v.meta(v.choice(APPROVAL_VALUES, empty=True))
    )
    add_dirs: tuple[str, ...] = attrs.field(default=(), metadata=v.meta(v.paths))

    def merged(self, override: ExecPolicy | None) -> ExecPolicy:
        """``self`` with ``override`` on top: non-empty fields replace, add_dirs are appended."""
        if override is None:
            return self
        return ExecPolicy(
            sandbox=override.sandbox or self.sandbox,
            ask_for_approval=override.ask_for_approval or self.ask_for_approval,
            add_dirs=self.add_dirs + override.add_dirs,
        )


@attrs.frozen(kw_only=True)
class Usage:
    """Token counts of a turn, as the CLI reports them. ``total_tokens`` is input + output.

    Whether ``input_tokens`` includes the cached tokens follows the model API behind the CLI:
    OpenAI/Gemini-style CLIs (codex, gemini, kimi) count cached tokens inside input; claude and
    opencode report non-cached input and the cache reads separately. A negative count (a
    broken or hostile CLI) is 0.
    """

    input_tokens: int = attrs.field(default=0, converter=_count)
    cached_input_tokens: int = attrs.field(default=0, converter=_count)
    output_tokens: int = attrs.field(default=0, converter=_count)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def has_usage(self) -> bool:
        return bool(self.input_tokens or self.cached_input_tokens or self.output_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
        }


@attrs.frozen(kw_only=True)
class RawEvent:
    """A backend-internal event for ``on_raw_event``: ``line`` is the raw protocol line,
    ``detail`` a human-readable summary (spec §2.3)."""

    kind: str
    line: str = ""
    detail: str = ""


ProgressCallback = Callable[[str], Awaitable[None] | None]
RawEventCallback = Callable[[RawEvent], Awaitable[None] | None]
#: ``on_events``: the typed events of a run, a batch (a list, in order) per call
EventsCallback = Callable[[Sequence["TurnEvent"]], Awaitable[None] | None]


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> None:
    """Call a sync or async callback and await it if it returned an awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class RunRequest:
    """One agent turn to run.

    ``user_text`` is the full prompt (trimmed; empty is rejected with ``EmptyPromptError``; a lone
    surrogate, e.g. from undecodable input read with ``surrogateescape``, becomes U+FFFD).
    ``workspace_dir`` is a string or a path. A value of the wrong type (or a sandbox value that
    does not exist, an env key with ``=``) raises :class:`~alice_trio.errors.ConfigError` at
    construction, naming the field.
    ``thread_id`` resumes a provider session. ``env`` is merged over the provider config's env,
    which is merged over the process env. ``on_progress`` receives complete assistant messages,
    ``[file_change] …`` notices and retry notices; ``on_raw_event`` receives everything else.
    ``on_events`` receives every :class:`TurnEvent` of the run (the typed, frozen events the
    decoder produced, ``thread_started`` and the terminal event included), in order, a batch
    per call: the events of one read of the CLI's output, or whatever queued up while the
    callback ran — the cheap way to follow a flood. Any of the three may be combined.
    Callbacks may be sync or async; they run in their own task and never stall the CLI's pipe.
    ``raw_lines`` (debugging, off by default; one-shot runs) also sends every protocol line the
    CLI prints on stdout to ``on_raw_event`` as ``RawEvent(kind="stdout_line", line=...)``,
    before the events decoded from it; like other informational events these may be shed when
    the callback lags (then one ``dropped`` raw event reports how many; ``on_events`` gets a
    ``skipped`` event saying so).
    ``informational_rate`` (0: no limit) lets at most that many informational events (tool use,
    tool results, reasoning, unknown lines, usage updates, echoed user text, ``stdout_line``
    events) per one-second window reach ``on_events`` / ``on_raw_event``; the others are
    counted, not built where the decoder can tell (the run's state — reply, thread id, usage,
    file changes — is kept from every line). One ``skipped`` event
    (``RawEvent(kind="skipped")``) says how many, of which kinds: before the first event let
    through in a later window, before the terminal event, or at the end of the run. Progress,
    terminal, question and file-change events always pass.
    A callback that raises fails the run (``CallbackError``) after the process group is killed.
    """

    user_text: str = attrs.field(metadata=v.meta(v.unicode_text))
    thread_id: str = ""
    agent_name: str = ""
    scene: str = ""
    provider: str = ""
    model: str = ""
    variant: str = ""
    profile: str = ""
    reasoning_effort: str = ""
    personality: str = ""
    workspace_dir: str = attrs.field(default="", metadata=v.meta(v.path_text))
    exec_policy: ExecPolicy | None = attrs.field(
        default=None,
        metadata=v.meta(v.instance(ExecPolicy, "an ExecPolicy", optional=True), nested=True),
    )
    env: Mapping[str, str] = attrs.field(
        factory=dict, repr=redacted_env, metadata=v.meta(v.env_map)
    )
    on_progress: ProgressCallback | None = attrs.field(
        default=None, eq=False, repr=False, metadata=v.meta(v.callback)
    )
    on_raw_event: RawEventCallback | None = attrs.field(
        default=None, eq=False, repr=False, metadata=v.meta(v.callback)
    )
    on_events: EventsCallback | None = attrs.field(
        default=None, eq=False, repr=False, metadata=v.meta(v.callback)
    )
    raw_lines: bool = False
    informational_rate: int = 0

    @property
    def prompt(self) -> str:
        return self.user_text.strip()

    def evolve(self, **changes: Any) -> RunRequest:
        return attrs.evolve(self, **changes)


@attrs.frozen(kw_only=True)
class RunResult:
    """What a turn produced. On errors the same shape travels as ``error.partial``."""

    reply: str = ""
    next_thread_id: str = ""
    goal_done: bool = False
    usage: Usage = Usage()
    #: the files the turn added, modified or deleted (one entry per path, sorted)
    file_changes: tuple[FileChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "reply": self.reply,
            "next_thread_id": self.next_thread_id,
            "goal_done": self.goal_done,
            "usage": self.usage.to_dict(),
            "file_changes": [c.to_dict() for c in self.file_changes],
        }


class EventKind(enum.Enum):
    """Normalized kinds of event a provider decoder or session driver produces."""

    THREAD_STARTED = "thread_started"
    TURN_STARTED = "turn_started"
    ASSISTANT_TEXT = "assistant_text"  # always a complete message, never a delta
    USER_TEXT = "user_text"
    REASONING = "reasoning"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    FILE_CHANGE = "file_change"
    RETRY = "retry"  # the CLI retries an API call; text is a user-visible notice
    STEER_CONSUMED = "steer_consumed"
    QUESTION = "question"
    USAGE = "usage"  # a usage update outside the terminal event
    TURN_COMPLETED = "turn_completed"
    TURN_INTERRUPTED = "turn_interrupted"
    ERROR = "error"
    UNKNOWN = "unknown"  # unrecognized type, non-JSON line: visible, never fatal
    #: informational events a callback did not get (``RunRequest.informational_rate``, or
    #: shed for a lagging callback); ``text`` says how many, of which kinds
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({EventKind.TURN_COMPLETED, EventKind.TURN_INTERRUPTED, EventKind.ERROR})
#: a module global is ~10x cheaper to read than ``EventKind.ERROR`` (3.11's enum class lookup)
_ERROR = EventKind.ERROR


@attrs.frozen(kw_only=True)
class QuestionOption:
    label: str
    description: str = ""


@attrs.frozen(kw_only=True)
class QuestionInfo:
    question: str
    header: str = ""
    options: tuple[QuestionOption, ...] = ()
    multiple: bool = False
    custom: bool = False


@attrs.frozen(kw_only=True)
class TurnQuestion:
    """A structured question the agent asks the user (opencode ``question.asked``)."""

    request_id: str
    questions: tuple[QuestionInfo, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "requestID": self.request_id,
            "questions": [
                {
                    "question": q.question,
                    "header": q.header,
                    "options": [
                        {"label": o.label, "description": o.description} for o in q.options
                    ],
                    "multiple": q.multiple,
                    "custom": q.custom,
                }
                for q in self.questions
            ],
        }


@attrs.frozen(kw_only=True, slots=False)
class TurnEvent:
    """One normalized event of a turn.

    ``raw`` is the protocol line it came from. ``error`` is set on ERROR events (a message the
    CLI or API reported); ``status`` carries an HTTP/API status code when the CLI gave one.
    ``usage`` is set where the event reports usage. ``files`` lists the files of a
    ``FILE_CHANGE`` event (``text`` is their readable form).

    Frozen like every model here; a dict class rather than a slots class because it is built
    once per protocol line (see :func:`plain_event`).
    """

    kind: EventKind
    text: str = ""
    thread_id: str = ""
    turn_id: str = ""
    usage: Usage | None = None
    error: str = ""
    status: int | None = None
    raw: str = ""
    question: TurnQuestion | None = None
    provider: str = ""
    files: tuple[FileChange, ...] = ()

    def to_raw_event(self) -> RawEvent:
        """The ``on_raw_event`` form of this event (spec §5.3)."""
        # ``_value_``: the member's value without the ``value`` descriptor's cost; the object
        # built as ``_raw_event`` builds it, inlined (hot path: one call per delivered event)
        kind = self.kind
        if self.question is None and (kind is not _ERROR or not self.error):
            detail = self.text.strip()  # raw_detail's common case, inlined
        else:
            detail = raw_detail(self)
        event = _new(RawEvent)
        _r_kind(event, kind._value_)
        _r_line(event, self.raw.strip())
        _r_detail(event, detail)
        return event


def raw_detail(event: TurnEvent) -> str:
    """The ``detail`` of ``event``'s :class:`RawEvent`: the question as JSON, an error's
    message, else the text (stripped; the same object when there is nothing to strip)."""
    if event.question is not None:
        import json

        return json.dumps(event.question.to_dict(), ensure_ascii=False)
    if event.kind is _ERROR and event.error:
        return event.error
    return event.text.strip()


# -- construction without attrs' keyword ``__init__`` (the per-line hot path) -----------------
# ``RawEvent`` (slots): a frozen attrs ``__init__`` sets each slot through a bound
# ``object.__setattr__`` after keyword parsing; setting the slots through their descriptors
# builds the same object in about 60% of the time.
# ``TurnEvent`` (a dict class, ``slots=False``): ``plain_event`` fills a plain twin class with
# the same layout through ordinary attribute stores (which the interpreter specialises), in
# the order attrs' own ``__init__`` sets the fields, then makes it a ``TurnEvent`` by
# ``__class__`` assignment: about 40% of the cost of setting eleven slot descriptors (callgrind,
# CPython 3.11), ~240 B an event (~136 B as slots; the instance dicts share their keys).
# Only for classes with no validator, converter or factory (checked below), so the object is
# exactly the one ``__init__`` would build (equal, same hash, repr and ``vars``, still frozen:
# attrs' ``__setattr__`` refuses); a field added to either class fails here at import until
# the code below names it.
def _plain_fields(cls: type, names: tuple[str, ...]) -> None:
    fields = attrs.fields(cls)
    assert tuple(f.name for f in fields) == names, f"{cls.__name__}: update models.plain_event"
    assert all(f.validator is None and f.converter is None for f in fields)


def _setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    _plain_fields(cls, names)
    return tuple(getattr(cls, name).__set__ for name in names)


_new = object.__new__
(_r_kind, _r_line, _r_detail) = _setters(RawEvent, ("kind", "line", "detail"))
_plain_fields(
    TurnEvent,
    ("kind", "text", "thread_id", "turn_id", "usage", "error", "status", "raw", "question",
     "provider", "files"),
)  # fmt: skip


def _raw_event(kind: str, line: str, detail: str) -> RawEvent:
    """``RawEvent(kind=kind, line=line, detail=detail)``, faster (see above)."""
    event = _new(RawEvent)
    _r_kind(event, kind)
    _r_line(event, line)
    _r_detail(event, detail)
    return event


class _TurnEventDraft:
    """A mutable ``TurnEvent`` being built by :func:`plain_event` (see above): the same
    instance layout (a plain class with ``__dict__`` and ``__weakref__``), no methods."""

    kind: EventKind
    text: str
    thread_id: str
    turn_id: str
    usage: Usage | None
    error: str
    status: int | None
    raw: str
    question: TurnQuestion | None
    provider: str
    files: tuple[FileChange, ...]


def plain_event(kind: EventKind, raw: str, provider: str, thread_id: str, text: str) -> TurnEvent:
    """``TurnEvent(kind=…, raw=…, provider=…, thread_id=…, text=…)`` with every other field at
    its default: the same object, built faster (see above). For decoders' per-line paths."""
    event = _TurnEventDraft()
    event.kind = kind
    event.text = text
    event.thread_id = thread_id
    event.turn_id = ""
    event.usage = None
    event.error = ""
    event.status = None
    event.raw = raw
    event.question = None
    event.provider = provider
    event.files = ()
    event.__class__ = TurnEvent  # type: ignore[assignment]
    return event  # type: ignore[return-value]


def _check_plain_event() -> None:
    """``plain_event`` builds what the keyword constructor builds (checked once, at import)."""
    fast = plain_event(EventKind.UNKNOWN, "raw", "p", "t", "x")
    slow = TurnEvent(kind=EventKind.UNKNOWN, raw="raw", provider="p", thread_id="t", text="x")
    assert type(fast) is TurnEvent and vars(fast) == vars(slow) and fast == slow
    assert list(vars(fast)) == list(vars(slow)) and repr(fast) == repr(slow)


_check_plain_event()
