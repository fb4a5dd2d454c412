"""What a provider can do, as data: the parts of the :class:`~alice_trio.providers.base.Provider`
record that the session registry, ``alice-trio doctor``, ``alice-trio providers`` and the
generated docs (``docs/providers.md``) read instead of keeping copies of their own.

A provider has one or more :class:`Flavor` s, chosen by one field of its config
(:attr:`Provider.flavor_field <alice_trio.providers.base.Provider.flavor_field>`): kimi's
``flavor`` (Kimi Code 2.x or the legacy kimi-cli, two different CLIs), gemini's
``session_protocol`` (``gemini --acp`` or one ``gemini -p`` per turn). A flavor says

* which interactive session driver speaks it (:class:`SessionSpec`: a lazily imported
  ``"module:factory"`` reference, so this package never imports trio), with its steer mode and
  :class:`Capabilities`;
* how to ask the CLI for its version and which versions it was verified with
  (:class:`VersionCheck`; the e2e lane's pins in ``tests/e2e/clis/`` must equal the newest
  verified version, a test checks that);
* how to tell whether it is logged in (:class:`AuthCheck`);
* where it keeps state that its start creates or migrates (:class:`StateDir`): the engine
  starts such a CLI one process at a time per directory until one came up
  (:mod:`alice_trio.engine.first_start`).

Everything here is pure data with validation at construction; nothing does I/O.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "EVERY_CAPABILITY",
    "ONESHOT_SESSION_FACTORY",
    "STEER_MODES",
    "AuthCheck",
    "Capabilities",
    "CredentialPath",
    "Flavor",
    "SessionSpec",
    "StateDir",
    "VersionCheck",
    "version_key",
]

#: the values of :class:`alice_trio.sessions.driver.SteerMode` (kept as strings here so that
#: providers/ stays free of trio; a test checks that both lists agree)
STEER_MODES = ("native", "native_enqueue", "queue_when_busy", "interrupt_only")

#: the factory that wraps a provider's one-shot runs as a session (one process per turn)
ONESHOT_SESSION_FACTORY = "alice_trio.sessions.registry:open_oneshot_driver"

_FACTORY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _factory_ref(instance: Any, attribute: Any, value: Any) -> None:
    if callable(value):
        return
    if not isinstance(value, str) or not _FACTORY_RE.match(value):
        raise ValueError(f"{attribute.name} must be 'module:factory' or a callable, got {value!r}")


_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _names(value: Any) -> tuple[str, ...]:
    return tuple(value)


def _module_names(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    for name in value:
        if not isinstance(name, str) or not _MODULE_RE.match(name):
            raise ValueError(f"{attribute.name} must be dotted module names, got {name!r}")


def _script_names(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    for name in value:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{attribute.name} must be script names, got {name!r}")


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a session driver does beyond start, queue and interrupt.

    * ``approvals``: asks the session's approver callback before a tool runs (a driver without
      it runs with the CLI's own permission mode; ``open_session(approver=...)`` is refused).
    * ``questions``: the agent's questions reach the caller as ``question`` events.
    * ``file_changes``: file edits are reported as ``file_change`` events.
    * ``model_switch``: a later request's ``model`` applies to its own turn (otherwise the
      first request's model holds for the life of the process).
    * ``resume``: the first request's ``thread_id`` resumes that conversation.
    """

    approvals: bool = False
    questions: bool = False
    file_changes: bool = False
    model_switch: bool = False
    resume: bool = False

    def names(self) -> list[str]:
        """The capabilities that are true, in field order."""
        return [a.name for a in attrs.fields(Capabilities) if getattr(self, a.name)]


#: a session driver that does all of it (most built-in interactive drivers)
EVERY_CAPABILITY = Capabilities(
    approvals=True, questions=True, file_changes=True, model_switch=True, resume=True
)


@attrs.frozen(kw_only=True)
class SessionSpec:
    """The interactive session driver of a flavor.

    ``factory``: ``"module:factory"`` (imported only when a session opens) or a callable,
    ``factory(config, initial_request, *, approver=..., provider=...) -> SessionDriver``; the
    keywords are passed only to a factory that declares them. ``protocol``: what it speaks, for
    people. ``long_lived``: one process serves every turn (``False``: one process per turn).
    ``steer_mode``: one of :data:`STEER_MODES` — what happens to input sent during a turn; it
    must equal the created driver's ``steer_mode`` (a test opens every built-in factory).
    ``preload``: Python modules a Python CLI imports lazily at a conversation's first user
    message (legacy kimi-cli: the OpenAI SDK's resources, ~0.5 s); the driver has its process
    import them at start (:mod:`alice_trio.sessions.preload`), so a warm spare has paid for
    them before a conversation takes it. Names only: nothing is imported here.
    ``preload_scripts``: warm-up scripts shipped with alice_trio
    (``alice_trio/data/preload/warm/<name>.py``) that such a process runs after those imports:
    each drives a library's first call inside the process against an in-process fake, filling
    the caches a first model request would fill (``openai_chat``: the OpenAI SDK's streamed
    chat completion). No socket, no file, no output; one that fails is skipped.
    ``spare_warm_up``: what the driver does to a spare conversation of the warm pool once it
    is up, ahead of its first message (for people; empty: nothing). When set, the pool awaits
    the driver's ``warm_up()`` before it counts the spare as ready; a warm-up never calls the
    model and leaves the conversation as it was.
    """

    factory: str | Callable[..., Any] = attrs.field(
        default=ONESHOT_SESSION_FACTORY, validator=_factory_ref
    )
    protocol: str = "one one-shot run per turn"
    long_lived: bool = False
    steer_mode: str = attrs.field(
        default="queue_when_busy", validator=attrs.validators.in_(STEER_MODES)
    )
    capabilities: Capabilities = Capabilities()
    preload: tuple[str, ...] = attrs.field(default=(), converter=_names, validator=_module_names)
    preload_scripts: tuple[str, ...] = attrs.field(
        default=(), converter=_names, validator=_script_names
    )
    spare_warm_up: str = ""

    def factory_name(self) -> str:
        f = self.factory
        if isinstance(f, str):
            return f
        return f"{getattr(f, '__module__', '?')}:{getattr(f, '__qualname__', repr(f))}"


def version_key(version: str) -> tuple[int, ...]:
    """``"2.1.197"`` → ``(2, 1, 197)``; non-numeric parts end the key (``"1.2.3-rc1"`` →
    ``(1, 2, 3)``)."""
    out: list[int] = []
    for part in version.strip().split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group(0)))
        if m.end() != len(part):
            break
    return tuple(out)


def _versions(value: Any) -> tuple[str, ...]:
    items = tuple(str(v).strip() for v in value or ())
    if any(not version_key(v) for v in items):
        raise ValueError(f"verified versions must be dotted numbers, got {items!r}")
    return tuple(sorted(items, key=version_key))


def _notes(value: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()}


def _pattern(instance: Any, attribute: Any, value: str) -> None:
    re.compile(value)


@attrs.frozen(kw_only=True)
class VersionCheck:
    """How to ask the CLI for its version, and which versions the CLI was verified with.

    ``args``: appended to the command (no shell). ``pattern``: a regex whose first match in the
    output (stdout, then stderr) is the version (group ``v`` if it has one, else the match).
    ``verified``: the versions the e2e lane passed with (sorted on construction; the newest is
    the lane's pin). ``source``: where that CLI comes from (``npm @openai/codex``,
    ``pypi kimi-cli``). ``notes``: substring of the output → a note for doctor (e.g. a stub
    release that only prints a deprecation notice).
    """

    args: tuple[str, ...] = ("--version",)
    pattern: str = attrs.field(default=r"\d+\.\d+\.\d+", validator=_pattern)
    verified: tuple[str, ...] = attrs.field(default=(), converter=_versions)
    source: str = ""
    notes: Mapping[str, str] = attrs.field(factory=dict, converter=_notes)

    @property
    def newest(self) -> str:
        return self.verified[-1] if self.verified else ""

    def parse(self, output: str) -> str:
        """The version in ``output`` ("" when none)."""
        m = re.search(self.pattern, output)
        if not m:
            return ""
        return m.group("v") if "v" in m.re.groupindex else m.group(0)

    def compare(self, version: str) -> str:
        """``"verified"``, ``"newer"`` (than the newest verified), ``"older"`` (than the
        oldest), ``"unverified"`` (between verified ones), or ``"unknown"`` (no version, or
        nothing verified)."""
        key = version_key(version)
        if not key or not self.verified:
            return "unknown"
        if version.strip() in self.verified:
            return "verified"
        if key > version_key(self.verified[-1]):
            return "newer"
        if key < version_key(self.verified[0]):
            return "older"
        return "unverified"


@attrs.frozen(kw_only=True)
class CredentialPath:
    """A file (or directory, ``name`` empty) whose existence says something about the login.

    The directory is the value of ``dir_env`` in the profile's environment when set, else
    ``default_dir``, where a leading ``~`` is the ``HOME`` of that environment. ``means``:
    ``"yes"`` (logged in) or ``"unknown"`` (configured; the login itself is not visible).
    """

    name: str = ""
    dir_env: str = ""
    default_dir: str = "~"
    means: str = attrs.field(default="yes", validator=attrs.validators.in_(("yes", "unknown")))


@attrs.frozen(kw_only=True)
class AuthCheck:
    """How doctor tells whether a CLI is logged in, without reading any secret.

    In order: ``status_args`` (a CLI command, e.g. ``("auth", "status")``; logged in when it
    exits 0, or — with ``status_json_key`` — when its JSON output has that key true); any of
    ``env_keys`` non-empty in the profile's environment; the first existing ``files`` entry.
    ``otherwise``: the verdict when none of them says anything: ``"no"``, ``"unknown"`` (the
    default: the CLI may have a login we cannot see) or ``"not needed"`` (no login exists).
    """

    status_args: tuple[str, ...] = ()
    status_json_key: str = ""
    env_keys: tuple[str, ...] = ()
    files: tuple[CredentialPath, ...] = ()
    otherwise: str = attrs.field(
        default="unknown", validator=attrs.validators.in_(("no", "unknown", "not needed"))
    )


@attrs.frozen(kw_only=True)
class StateDir:
    """A directory a CLI writes when it starts, such that two first starts on one fresh copy
    of it at once break (a database it creates and migrates at start).

    The directory is the value of ``dir_env`` in the process's environment when set, else
    ``default_dir``, where a leading ``~`` is that environment's ``HOME``; ``path`` is appended
    (``"opencode"`` below ``$XDG_DATA_HOME``). ``what``: what the CLI keeps there and why its
    first starts must not overlap (for people; the generated docs show it).
    """

    dir_env: str = attrs.field(default="", validator=attrs.validators.matches_re(r"\w*"))
    default_dir: str = attrs.field(
        default="~", validator=attrs.validators.matches_re(r"~|~/|/", func=re.match)
    )
    path: str = attrs.field(default="", validator=attrs.validators.matches_re(r"(?!/).*"))
    what: str = ""

    def describe(self) -> str:
        """``$XDG_DATA_HOME/opencode (default ~/.local/share/opencode)``."""
        tail = f"/{self.path}" if self.path else ""
        if not self.dir_env:
            return f"{self.default_dir}{tail}"
        return f"${self.dir_env}{tail} (default {self.default_dir}{tail})"

    def resolve(self, env: Mapping[str, str]) -> str:
        """The directory in ``env`` (the process's whole environment), normalised; pure."""
        base = env.get(self.dir_env, "") if self.dir_env else ""
        if not base:
            base = self.default_dir
            if base == "~" or base.startswith("~/"):
                home = env.get("HOME", "") or "/"
                base = home + base[1:]
        full = f"{base}/{self.path}" if self.path else base
        return posixpath.normpath(full)


def _states(value: Any) -> tuple[StateDir, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Flavor:
    """One way a provider runs: ``name`` is the value of the provider's ``flavor_field`` that
    selects it ("" for a provider with one flavor); ``label`` names it for people. ``state``:
    the directories whose first starts must not overlap (:class:`StateDir`; the invocations
    of the flavor's builders carry the same tuple, a test checks that)."""

    name: str = ""
    label: str = ""
    session: SessionSpec = SessionSpec()
    versions: VersionCheck = VersionCheck()
    auth: AuthCheck = AuthCheck()
    state: tuple[StateDir, ...] = attrs.field(default=(), converter=_states)
