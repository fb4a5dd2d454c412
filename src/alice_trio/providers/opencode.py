"""OpenCode one-shot provider: ``opencode run --format json``.

Pure: :func:`build_invocation` turns a request into argv/env/cwd/stdin and
:class:`OpenCodeDecoder` turns stdout lines into events; neither does I/O.

Prompt delivery. ``opencode run`` joins its message arguments (including those after ``--``)
and **wraps every argument containing a space in double quotes** (escaping inner quotes), so
``opencode run "Say hello"`` makes the model see ``"Say hello"`` with literal quotes (seen in the
recorded ``server_requests.jsonl`` of ``oc_run_*``). With no message argument, ``run`` reads
stdin to EOF when stdin is not a TTY and uses that text **unchanged** as the message. So the
prompt goes on stdin (then EOF): the model gets exactly the prompt, and it stays out of argv
(``ps``, ``ARG_MAX``). Stdin is always closed: ``run`` blocks until stdin EOF when it is a pipe.

OpenCode resolves its project directory from ``$PWD``, not from ``getcwd()``: ``PWD`` is always
set to the (absolute) working directory the process is started in.

Output (whole parts, no deltas): ``step_start`` (``sessionID`` → thread id, the first one wins),
``text`` → ``assistant_text`` (each one separate; the reply is the last), ``reasoning`` (only
with ``--thinking``), ``tool_use`` (a finished tool), ``step_finish`` (``reason`` and per-step
``tokens``), ``error`` (``error.name`` + ``error.data.{message,statusCode}``), and in newer
versions ``done``. OpenCode can print its last ``step_finish`` and then never exit, so the
decoder is ``terminal`` at the final ``step_finish``: one whose reason is neither
``tool-calls`` nor ``unknown`` (opencode's own loop stops on exactly those reasons; normally
``stop``). The engine then drains and kills.

Usage: the latest ``step_finish`` wins (each step reports its own call), mapped as the CLI
reports it: ``input`` = ``tokens.input``, ``cached`` = ``tokens.cache.read`` (or the flat
``cache_read``), ``output`` = ``tokens.output``. OpenCode's ``tokens.input`` excludes cached
tokens (Anthropic-style), like claude's. (The Go one-shot swapped cached and output, spec §13.18.)

A model stream cut off without a finish reason makes opencode loop forever, each step ending
with reason ``unknown`` (about 8 requests a second): after ``max_unknown_steps`` such steps in a
row the decoder reports an error (terminal), so the run ends instead of hanging.

Errors: the decoder never raises; unknown event types become ``unknown`` events.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from .. import validation as v
from ..file_changes import (
    FileChange,
    FileChangeKind,
    WriteTools,
    changes_from_tool_call,
    merge_changes,
)
from ..models import EventKind, RunRequest, TurnEvent, Usage
from .base import (
    CLIConfig,
    Invocation,
    JsonLineDecoder,
    Provider,
    as_int,
    as_str,
    merge_env,
)
from .record import StateDir

__all__ = [
    "BUILTIN_AGENTS",
    "PROVIDER",
    "STATE",
    "OpenCodeConfig",
    "OpenCodeDecoder",
    "build_invocation",
    "explain_exit",
    "format_tool_part",
    "new_decoder",
    "resolve_agent",
    "usage_from_tokens",
]

#: opencode's database: every start (``run``, ``serve``) creates and migrates it before it does
#: anything else; two first starts on one fresh directory at once break one of them
#: (``Unexpected error`` on ``CREATE TABLE``, or ``database is locked``; exit status 1)
STATE = (
    StateDir(
        dir_env="XDG_DATA_HOME", default_dir="~/.local/share", path="opencode",
        what="SQLite database opencode.db, created and migrated at every start",
    ),
)  # fmt: skip

NO_REPLY_MESSAGE = "opencode returned no response text"
AUTH_HINT = "opencode is not authenticated for this provider — run 'opencode auth login' first"
_AUTH_MARKERS = ("not authenticated", "not logged in", "no api key")

#: agents a profile name may select by itself (spec §6.5.1)
BUILTIN_AGENTS = ("build", "explore", "general", "plan")
#: step_finish reasons after which opencode continues the turn with another step
_CONTINUE_REASONS = frozenset({"tool-calls", "unknown"})
DEFAULT_MAX_UNKNOWN_STEPS = 20


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class OpenCodeConfig(CLIConfig):
    """OpenCode settings.

    * ``variant``: default ``--variant`` (provider-specific reasoning effort), when the request
      has none.
    * ``agent``: default ``--agent``.
    * ``profile_overrides``: request profile name → opencode agent. A profile with no entry
      selects the agent of the same name when it is one of :data:`BUILTIN_AGENTS`.
    * ``thinking``: pass ``--thinking`` so reasoning parts are printed (→ ``reasoning`` events).
    * ``auto_approve``: pass ``--auto`` (approve permission requests not explicitly denied;
      without it ``run`` rejects every permission request).
    * ``max_unknown_steps``: end a run looping on reason-less steps after this many in a row
      (0: never).
    * ``server_url``: an ``opencode serve`` to attach to (used by the interactive driver; the
      one-shot ignores it).
    """

    variant: str = attrs.field(default="", metadata=v.meta(v.lower_text))
    agent: str = ""
    profile_overrides: Mapping[str, str] = attrs.field(factory=dict)
    thinking: bool = False
    auto_approve: bool = False
    max_unknown_steps: int = DEFAULT_MAX_UNKNOWN_STEPS
    server_url: str = ""


def resolve_agent(request: RunRequest, config: OpenCodeConfig) -> str:
    """The agent for a request: the profile's mapped agent, else the profile itself when it
    names a built-in agent, else the configured default agent ("" = opencode's default)."""
    profile = request.profile
    if profile:
        mapped = config.profile_overrides.get(profile, "")
        if mapped:
            return mapped
        if profile.lower() in BUILTIN_AGENTS:
            return profile.lower()
    return config.agent.strip()


def _workdir(request: RunRequest, config: CLIConfig) -> str:
    wd = request.workspace_dir or config.workspace_dir.strip()
    return os.path.abspath(os.path.normpath(wd)) if wd else os.getcwd()


def build_invocation(request: RunRequest, config: OpenCodeConfig) -> Invocation:
    """``opencode run --format json [--model=M] [--variant=V] [--agent=A] [--session=ID]
    [--thinking] [--auto] [extra…]`` with the prompt on stdin (then EOF), cwd = ``PWD`` = the
    workspace (or the current directory)."""
    model = request.model or config.model.strip()
    variant = request.variant or config.variant.strip()
    agent = resolve_agent(request, config)
    argv: list[str] = [PROVIDER.command(config), "run", "--format", "json"]
    if model:
        argv.append(f"--model={model}")
    if variant:
        argv.append(f"--variant={variant}")
    if agent:
        argv.append(f"--agent={agent}")
    if request.thread_id:
        argv.append(f"--session={request.thread_id}")
    if config.thinking:
        argv.append("--thinking")
    if config.auto_approve:
        argv.append("--auto")
    argv += list(config.extra_args)
    workdir = _workdir(request, config)
    return Invocation(
        argv=tuple(argv),
        env=merge_env(config.env, request.env, {"PWD": workdir}),
        cwd=workdir,
        stdin=request.prompt.encode("utf-8"),
        timeout=config.effective_timeout(),
        idle_timeout=config.effective_idle_timeout(),
        limits=config.limits,
        state=STATE,
    )


# -- decoding --------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def format_tool_part(part: Any) -> str:
    """Spec tool format: ``tool_use tool=`…` call_id=`…` status=`…` command=`…`
    description=`…` title=`…``` (each part only when non-empty; ``error=`…``` for a failed
    tool); just ``tool_use`` for an empty part."""
    part = _dict(part)
    state = _dict(part.get("state"))
    inp = _dict(state.get("input"))
    meta = _dict(state.get("metadata"))
    fields = (
        ("tool", as_str(part.get("tool"))),
        ("call_id", as_str(part.get("callID"))),
        ("status", as_str(state.get("status"))),
        ("command", as_str(inp.get("command"))),
        ("description", as_str(inp.get("description")) or as_str(meta.get("description"))),
        ("title", as_str(state.get("title"))),
        ("error", as_str(state.get("error"))),
    )
    bits = ["tool_use", *(f"{k}=`{v}`" for k, v in fields if v)]
    return " ".join(bits)


#: opencode's file-writing tools: name → (path arguments, kind)
WRITE_TOOLS: WriteTools = {
    "write": (("filePath",), FileChangeKind.WRITTEN),
    "edit": (("filePath",), FileChangeKind.MODIFIED),
    "multiedit": (("filePath",), FileChangeKind.MODIFIED),
}


def part_file_changes(part: Any) -> list[FileChange]:
    """The files a message part says were changed: a *completed* write/edit tool part
    (``state.input.filePath``), or a ``patch`` part (``files[]``, opencode's own record of
    what a step changed)."""
    part = _dict(part)
    if as_str(part.get("type")) == "patch":
        files = part.get("files")
        paths = [as_str(f) for f in files] if isinstance(files, list) else []
        return merge_changes(FileChange(path=p, kind=FileChangeKind.WRITTEN) for p in paths if p)
    state = _dict(part.get("state"))
    if as_str(state.get("status")) != "completed":
        return []
    return changes_from_tool_call(WRITE_TOOLS, as_str(part.get("tool")), state.get("input"))


def usage_from_tokens(tokens: Any) -> Usage:
    """A :class:`Usage` from a ``step_finish`` ``part.tokens`` object (see the module doc)."""
    tokens = _dict(tokens)
    cache = _dict(tokens.get("cache"))
    return Usage(
        input_tokens=as_int(tokens.get("input")),
        cached_input_tokens=as_int(cache.get("read")) or as_int(tokens.get("cache_read")),
        output_tokens=as_int(tokens.get("output")),
    )


class OpenCodeDecoder(JsonLineDecoder):
    """State machine over one ``opencode run --format json`` stdout. Never raises."""

    provider: ClassVar[str] = "opencode"
    no_reply_message: ClassVar[str] = NO_REPLY_MESSAGE

    def __init__(
        self, *, thread_id: str = "", max_unknown_steps: int = DEFAULT_MAX_UNKNOWN_STEPS
    ) -> None:
        super().__init__(thread_id=thread_id)
        self._session_seen = False
        self.max_unknown_steps = max_unknown_steps
        self._unknown_steps = 0
        self.finish_reason = ""

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        sid = as_str(obj.get("sessionID")) or as_str(_dict(obj.get("part")).get("sessionID"))
        if sid and not self._session_seen:
            self._session_seen = True  # the first session id wins
            if sid != self.thread_id:
                self.thread_id = sid
            events.append(self._event(EventKind.THREAD_STARTED, line, text=sid))
        etype = as_str(obj.get("type"))
        part = _dict(obj.get("part"))
        if etype == "step_start":
            return events
        if etype == "text":
            return events + self._assistant(as_str(part.get("text")), line)
        if etype == "reasoning":
            text = as_str(part.get("text"))
            if text:
                self._informational(events, EventKind.REASONING, line, str, text)
            return events
        if etype == "tool_use":
            self._informational(events, EventKind.TOOL_USE, line, format_tool_part, part)
            changes = part_file_changes(part)
            return events + (self._file_changes(changes, line) if changes else [])
        if etype == "step_finish":
            return events + self._step_finish(part, line)
        if etype == "error":
            return [*events, self._error(obj.get("error"), line)]
        if etype == "done":
            if self._terminal:
                return events
            return [*events, self._complete(line)]
        return [*events, self._unknown(line, f"unknown opencode event type {etype!r}")]

    def _step_finish(self, part: dict[str, Any], line: str) -> list[TurnEvent]:
        reason = as_str(part.get("reason"))
        self.finish_reason = reason
        tokens = part.get("tokens")
        usage = usage_from_tokens(tokens) if isinstance(tokens, dict) else None
        if usage is not None:
            self.usage = usage
        if reason == "unknown":
            self._unknown_steps += 1
        else:
            self._unknown_steps = 0
        if reason and reason not in _CONTINUE_REASONS:
            return [self._complete(line, usage)]
        if self.max_unknown_steps > 0 and self._unknown_steps == self.max_unknown_steps:
            return [
                self._fail(
                    f"opencode ended {self._unknown_steps} steps in a row without a finish "
                    "reason (the model stream is being cut off); giving up",
                    line,
                )
            ]
        return [self._event(EventKind.USAGE, line, usage=usage, text=reason)]

    def _error(self, error: Any, line: str) -> TurnEvent:
        err = _dict(error)
        data = _dict(err.get("data"))
        message = (
            as_str(data.get("message"))
            or as_str(err.get("message"))
            or as_str(err.get("name"))
            or (error.strip() if isinstance(error, str) else "")
            or "unknown error"
        )
        status = as_int(data.get("statusCode")) or None
        return self._fail(message, line, status=status)


def new_decoder(request: RunRequest, config: OpenCodeConfig) -> OpenCodeDecoder:
    return OpenCodeDecoder(thread_id=request.thread_id, max_unknown_steps=config.max_unknown_steps)


def explain_exit(returncode: int, stderr_tail: str) -> str | None:
    """A clearer message for a failed ``opencode run``, or ``None``: missing credentials
    (spec §6.5.2) and an unknown ``--session`` id."""
    low = (stderr_tail or "").lower()
    if any(marker in low for marker in _AUTH_MARKERS):
        return f"opencode exited with code {returncode}; {AUTH_HINT}"
    if "session not found" in low:
        return f"opencode exited with code {returncode}: the session to resume was not found"
    return None


# -- registration ---------------------------------------------------------------------------------

from .record import (  # noqa: E402
    EVERY_CAPABILITY,
    AuthCheck,
    CredentialPath,
    Flavor,
    SessionSpec,
    VersionCheck,
)

PROVIDER = Provider(
    name="opencode",
    default_command="opencode",
    config_class=OpenCodeConfig,
    build_invocation=build_invocation,
    new_decoder=new_decoder,
    description="OpenCode (opencode run --format json, prompt on stdin)",
    explain_exit=explain_exit,
    flavors=(
        Flavor(
            label="OpenCode",
            session=SessionSpec(
                factory="alice_trio.sessions.opencode_serve:open_driver",
                protocol="`opencode serve` (HTTP + server-sent events)",
                long_lived=True,
                steer_mode="native_enqueue",
                capabilities=EVERY_CAPABILITY,
            ),
            versions=VersionCheck(verified=("1.18.33",), source="npm opencode-ai"),
            state=STATE,
            auth=AuthCheck(
                files=(
                    CredentialPath(
                        name="opencode/auth.json", dir_env="XDG_DATA_HOME",
                        default_dir="~/.local/share",
                    ),
                ),
                env_keys=(
                    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENROUTER_API_KEY",
                    "DEEPSEEK_API_KEY",
                ),
                otherwise="unknown",
            ),
        ),
    ),
)  # fmt: skip
