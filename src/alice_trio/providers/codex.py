"""OpenAI codex, one-shot: ``codex exec --json`` (spec §6.1.2, checked against codex 0.171).

Argv (root flags first, the prompt on **stdin**, never in argv)::

    codex [-a <approval>] [--sandbox <sandbox>] [--add-dir <dir>]... [-m <model>] [-p <profile>]
          [-c model_reasoning_effort="<effort>"] [-c personality="<personality>"]
          exec [resume] --json --skip-git-repo-check [--dangerously-bypass-approvals-and-sandbox]
          [extra_args...] -- [<thread id>] -

``-`` makes codex read the prompt from stdin (``codex exec --help``); the engine writes it and
closes stdin, which codex waits for anyway. Positional arguments follow ``--``, so a thread id
starting with ``-`` is never read as a flag. The bypass flag replaces ``-a``/``--sandbox`` only
for ``danger-full-access`` + ``never``.

The decoder maps the JSON lines of ``codex exec --json`` to :class:`TurnEvent` s. ``usage`` is
what codex reports in ``turn.completed``: for a resumed thread codex reports the **cumulative**
usage of the whole thread, not of this turn, and it is passed on unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .. import validation as v
from ..errors import ConfigError, EmptyPromptError
from ..file_changes import (
    FileChange,
    FileChangeKind,
    format_file_changes,
    merge_changes,
    relative_path,
)
from ..models import EventKind, ExecPolicy, RunRequest, RunResult, TurnEvent, Usage, plain_event
from .base import (
    MAX_COUNT,
    CLIConfig,
    DecodeOutcome,
    Invocation,
    JsonLineDecoder,
    Provider,
    as_int,
    as_str,
)

__all__ = [
    "PROVIDER",
    "CodexConfig",
    "CodexExecDecoder",
    "ProfileOverride",
    "build_invocation",
    "explain_exit",
    "file_changes_of",
    "format_file_change",
    "idle_retry",
    "idle_timeout_for",
    "new_decoder",
]

DEFAULT_SANDBOX = "workspace-write"
DEFAULT_APPROVAL = "never"
BYPASS_FLAG = "--dangerously-bypass-approvals-and-sandbox"
MCP_RESOURCE_ROOT_ENV = "ALICE_MCP_RESOURCE_ROOT"


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class ProfileOverride:
    """A runner override keyed by the **outer** profile name (spec §5.5).

    ``command`` (non-empty) and ``timeout`` (> 0) replace the config's; ``provider_profile`` is
    what goes to ``-p`` (empty: no ``-p``; the outer name is never forwarded); ``exec_policy`` is
    merged over the config's default policy.
    """

    command: str = ""
    timeout: float = 0.0
    provider_profile: str = ""
    exec_policy: ExecPolicy | None = attrs.field(
        default=None,
        metadata=v.meta(v.instance(ExecPolicy, "an ExecPolicy", optional=True), nested=True),
    )


def _overrides(value: Any) -> dict[str, ProfileOverride]:
    if not isinstance(value, Mapping):
        raise v.InvalidValue(f"expected a mapping of profile names, got {v.show(value)}")
    out = {}
    for key, override in value.items():
        if not isinstance(override, ProfileOverride):
            raise v.InvalidValue(f"{key}: expected a ProfileOverride, got {v.show(override)}")
        out[str(key).strip()] = override
    return out


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class CodexConfig(CLIConfig):
    """codex settings. Idle timeouts (seconds) are picked by reasoning effort unless
    ``idle_timeout`` is set explicitly; ``provider_profile`` is the default ``-p`` ("" = none)."""

    reasoning_effort: str = attrs.field(default="", metadata=v.meta(v.lower_text))
    personality: str = attrs.field(default="", metadata=v.meta(v.lower_text))
    provider_profile: str = ""
    default_idle_timeout: float = 900.0
    high_idle_timeout: float = 1800.0
    xhigh_idle_timeout: float = 3600.0
    profile_overrides: Mapping[str, ProfileOverride] = attrs.field(
        factory=dict, metadata=v.meta(_overrides, nested=True)
    )
    codex_home: str = ""


def codex_env(config: CodexConfig, request_env: Mapping[str, str]) -> dict[str, str]:
    """The env overrides of a codex process: ``CODEX_HOME`` from ``codex_home`` (``~``
    expanded, made absolute), then the config's env, then the request's (each wins over the
    one before, so an explicit ``CODEX_HOME`` in an env still decides)."""
    env: dict[str, str] = {}
    if config.codex_home:
        env["CODEX_HOME"] = os.path.abspath(os.path.expanduser(config.codex_home))
    return {**env, **config.env, **request_env}


# -- argv ---------------------------------------------------------------------------------------


def idle_timeout_for(effort: str, config: CodexConfig, overall: float) -> float | None:
    """The idle timeout: ``config.idle_timeout`` if set, else the tier of ``effort``
    (``xhigh`` / ``high`` / anything else, trimmed and case-insensitive), capped at ``overall``."""
    if config.idle_timeout is not None:
        idle = config.effective_idle_timeout()
        return min(idle, overall) if idle else None
    tier = effort.strip().lower()
    if tier == "xhigh":
        idle = config.xhigh_idle_timeout
    elif tier == "high":
        idle = config.high_idle_timeout
    else:
        idle = config.default_idle_timeout
    return min(idle, overall) if idle > 0 else None


def _flag_value(name: str, value: str) -> str:
    if value.startswith("-"):
        raise ConfigError(f"codex {name} must not start with '-': {value!r}")
    return value


def _toml_string(value: str) -> str:
    """A TOML basic string. Not ``json.dumps``: its ``\\ud83d\\ude00`` surrogate pairs and a
    raw DEL are invalid TOML. Control characters are ``\\uXXXX``-escaped, the rest is literal."""
    body = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else "\\" + c if c in '"\\' else c
        for c in value
    )
    return f'"{body}"'


def build_invocation(request: RunRequest, config: CodexConfig) -> Invocation:
    """argv, env, cwd, stdin and timeouts for one ``codex exec`` turn.

    Raises :class:`EmptyPromptError` for a blank prompt and :class:`ConfigError` for a model,
    profile, sandbox, approval or directory that would read as a flag.
    """
    prompt = request.prompt
    if not prompt:
        raise EmptyPromptError()
    override = config.profile_overrides.get(request.profile) if request.profile else None
    command = (override.command.strip() if override else "") or config.command.strip() or "codex"
    timeout = override.timeout if override and override.timeout > 0 else config.effective_timeout()
    if override is not None:
        provider_profile = override.provider_profile.strip()  # never the outer name
    else:
        provider_profile = request.profile or config.provider_profile.strip()
    model = request.model or config.model.strip()
    effort = request.reasoning_effort or config.reasoning_effort.strip()
    personality = request.personality or config.personality.strip()
    env = codex_env(config, request.env)

    policy = config.exec_policy.merged(override.exec_policy if override else None)
    policy = policy.merged(request.exec_policy)
    sandbox = policy.sandbox or DEFAULT_SANDBOX
    approval = policy.ask_for_approval or DEFAULT_APPROVAL
    add_dirs = list(policy.add_dirs)
    resource_root = env.get(MCP_RESOURCE_ROOT_ENV, "").strip()
    if resource_root and resource_root not in add_dirs:
        add_dirs.append(resource_root)
    bypass = sandbox == "danger-full-access" and approval == "never"

    argv: list[str] = [command]
    if not bypass:
        argv += ["-a", _flag_value("approval", approval)]
        argv += ["--sandbox", _flag_value("sandbox", sandbox)]
    for d in add_dirs:
        argv += ["--add-dir", _flag_value("add_dir", d)]
    if model:
        argv += ["-m", _flag_value("model", model)]
    if provider_profile:
        argv += ["-p", _flag_value("profile", provider_profile)]
    if effort:
        argv += ["-c", f"model_reasoning_effort={_toml_string(effort)}"]
    if personality:
        argv += ["-c", f"personality={_toml_string(personality)}"]
    argv.append("exec")
    if request.thread_id:
        argv.append("resume")
    argv += ["--json", "--skip-git-repo-check"]
    if bypass:
        argv.append(BYPASS_FLAG)
    argv += config.extra_args
    argv.append("--")
    if request.thread_id:
        argv.append(request.thread_id)
    argv.append("-")  # the prompt comes from stdin

    return Invocation(
        argv=tuple(argv),
        env=env,
        cwd=request.workspace_dir or config.workspace_dir.strip() or None,
        stdin=prompt.encode("utf-8"),
        timeout=timeout,
        idle_timeout=idle_timeout_for(effort, config, timeout),
        limits=config.limits,
    )


# -- file changes (spec §7.4, without git) -------------------------------------------------------

_PATH_KEYS = ("path", "file_path", "filename", "file")
_KIND_KEYS = (
    "kind", "change_type", "change_kind", "change", "operation", "op", "action",
    "file_change_type", "status",
)  # fmt: skip
_ADDED_KEYS = ("added_lines", "additions", "added", "insertions", "plus")
_REMOVED_KEYS = ("removed_lines", "deletions", "removed", "minus")
_KINDS = {
    "modified": (
        "已更改 更改 修改 updated update modified modify changed change edit edited rewrite "
        "rewritten"
    ),
    "added": "已新增 新增 新建 create created add added new created_file",
    "deleted": "已删除 删除 delete deleted remove removed rm unlink",
}
_KIND_OF = {word: kind for kind, words in _KINDS.items() for word in words.split()}


def _kind(entry: Mapping[str, Any]) -> str:
    for key in _KIND_KEYS:
        value = entry.get(key)
        if isinstance(value, Mapping):  # app-server style {"type": "add"}
            value = value.get("type")
        kind = _KIND_OF.get(as_str(value).lower())
        if kind:
            return kind
    return ""


def _stat(entry: Mapping[str, Any], keys: tuple[str, ...]) -> int:
    for source in (entry, entry.get("diff_stats"), entry.get("stats")):
        if isinstance(source, Mapping):
            for key in keys:
                if key in source and not isinstance(source[key], Mapping):
                    n = as_int(source[key])
                    if n:
                        return n
    return 0


def file_changes_of(item: Mapping[str, Any], workspace: str = "") -> list[FileChange]:
    """The files of a codex ``file_change`` item, sorted by path, relative to ``workspace``
    when under it; ``[]`` if it names no path.

    Entries come from the item itself, ``changed_file`` and ``changes[]``; a path named twice
    keeps added/deleted over modified and real line counts over zeros.
    """
    default_kind = _kind(item)
    entries: list[Mapping[str, Any]] = [item]
    if isinstance(item.get("changed_file"), Mapping):
        entries.append(item["changed_file"])
    changes = item.get("changes")
    if isinstance(changes, list):
        entries += [c for c in changes if isinstance(c, Mapping)]
    elif isinstance(changes, Mapping):  # {"path": {...}} form
        entries += [{"path": k, **v} for k, v in changes.items() if isinstance(v, Mapping)]
    failed = as_str(item.get("status")).lower() == "failed"
    out = []
    for entry in entries:
        path = next((as_str(entry.get(k)) for k in _PATH_KEYS if as_str(entry.get(k))), "")
        if not path:
            continue
        kind = (_kind(entry) if entry is not item else "") or default_kind or "modified"
        out.append(
            FileChange(
                path=relative_path(path, workspace),
                kind=FileChangeKind(kind),
                added_lines=max(0, _stat(entry, _ADDED_KEYS)),
                removed_lines=max(0, _stat(entry, _REMOVED_KEYS)),
                failed=failed,
            )
        )
    return merge_changes(out)


def format_file_change(item: Mapping[str, Any], workspace: str = "") -> str:
    """A readable summary of a codex ``file_change`` item: one ``- `path` kind (+a/-d)`` line
    per path (:func:`file_changes_of`), ``""`` if it names no path."""
    return format_file_changes(file_changes_of(item, workspace))


# -- decoder ------------------------------------------------------------------------------------

_TOOL_USE = EventKind.TOOL_USE
_RETRY_RE = re.compile(r"^\s*Reconnecting\.\.\.\s*\d+\s*/\s*\d+")


def _tool_detail(item: Mapping[str, Any], completed: bool) -> str:
    command, status = item.get("command"), item.get("status")  # as_str, inlined (hot path)
    command = command.strip() if isinstance(command, str) else ""
    status = status.strip() if isinstance(status, str) else ""
    if completed:
        code = item.get("exit_code")
        if type(code) is not int or not -MAX_COUNT <= code <= MAX_COUNT:  # as_int's fast case
            code = as_int(code)
        return f"command=`{command}` status=`{status}` exit_code=`{code}`"
    return f"command=`{command}` status=`{status}`"


class CodexExecDecoder(JsonLineDecoder):
    """Decoder of ``codex exec --json`` stdout; never raises.

    * ``thread.started`` sets the thread id; ``turn.started`` / ``turn.completed`` (usage as
      reported, cumulative for a resumed thread) / ``turn.failed`` (an :class:`AgentError`
      message) as named.
    * ``item.completed``: ``agent_message`` → assistant text (the reply is the last one),
      ``reasoning`` → reasoning, ``file_change`` → a readable list of paths and kinds,
      ``error`` (a warning such as unknown model metadata) → a visible, non-fatal ``unknown``
      event. ``command_execution`` on ``item.started`` and ``item.completed`` → tool use.
    * ``error`` events: ``Reconnecting... n/N`` → retry notices; any other is shown as an
      ``unknown`` event and kept as the failure if the turn never completes.
    """

    provider = "codex"
    no_reply_message = "codex returned no final agent message"

    def __init__(self, *, thread_id: str = "", workspace: str = "") -> None:
        super().__init__(thread_id=thread_id)
        self.workspace = workspace
        self._completed = False
        self._error_notice = ""

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        kind = obj.get("type")
        # items first: all but a handful of a turn's lines are items
        if kind == "item.completed" or kind == "item.started" or kind == "item.updated":
            item = obj.get("item")
            if type(item) is not dict and not isinstance(item, Mapping):
                return [self._unknown(line, f"{kind} without an item")]
            completed = kind == "item.completed"
            if item.get("type") == "command_execution":  # the hot path, inlined from _item
                if kind == "item.updated":
                    return []
                if self.quiet:  # nobody would get it: counted, not built
                    # _skip, inlined: the flood's hot path (the call costs ~560 instructions
                    # a line, ~4% of it; callgrind, cli_stages' quiet stage)
                    skipped = self.skipped
                    skipped["tool_use"] = skipped.get("tool_use", 0) + 1
                    return []
                return [
                    plain_event(
                        _TOOL_USE, line, self.provider, self.thread_id,
                        _tool_detail(item, completed),
                    )
                ]  # fmt: skip
            return self._item(item, completed, kind == "item.updated", line)
        if kind == "thread.started":
            self.thread_id = as_str(obj.get("thread_id")) or self.thread_id
            return [self._event(EventKind.THREAD_STARTED, line)]
        if kind == "turn.started":
            return [self._event(EventKind.TURN_STARTED, line)]
        if kind == "turn.completed":
            self._completed = True
            return [self._complete(line, _usage(obj.get("usage")))]
        if kind == "turn.failed":
            err = obj.get("error")
            message = as_str(err.get("message")) if isinstance(err, Mapping) else as_str(err)
            return [self._fail(message or self._error_notice or "codex turn failed", line)]
        if kind == "error":
            message = as_str(obj.get("message")) or "codex reported an error"
            if _RETRY_RE.match(message):
                return [self._event(EventKind.RETRY, line, text=message)]
            self._error_notice = message
            return [self._event(EventKind.UNKNOWN, line, text=message)]
        return [self._unknown(line, f"unknown codex event type {kind!r}")]

    def _item(
        self, item: Mapping[str, Any], completed: bool, updated: bool, line: str
    ) -> list[TurnEvent]:
        itype = item.get("type")
        if itype == "command_execution":
            if updated:
                return []
            return [self._event(EventKind.TOOL_USE, line, text=_tool_detail(item, completed))]
        if not completed:  # other items are reported once, complete
            return []
        if itype == "agent_message":
            return self._assistant(as_str(item.get("text")), line)
        if itype == "reasoning":
            text = as_str(item.get("text"))
            return [self._event(EventKind.REASONING, line, text=text)] if text else []
        if itype == "file_change":
            files = file_changes_of(item, self.workspace)
            return self._file_changes(files, line) if files else []
        if itype == "error":
            return [self._event(EventKind.UNKNOWN, line, text=as_str(item.get("message")))]
        if itype == "mcp_tool_call":
            text = (
                f"mcp server=`{as_str(item.get('server'))}` tool=`{as_str(item.get('tool'))}` "
                f"status=`{as_str(item.get('status'))}`"
            )
            return [self._event(EventKind.TOOL_USE, line, text=text)]
        if itype == "web_search":
            text = f"web_search query=`{as_str(item.get('query'))}`"
            return [self._event(EventKind.TOOL_USE, line, text=text)]
        return [self._unknown(line, f"unknown codex item type {itype!r}")]

    def finish(self) -> DecodeOutcome:
        outcome = super().finish()
        if not outcome.error and not self._completed and self._error_notice:
            return attrs.evolve(outcome, error=self._error_notice)
        return outcome


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")) or as_int(raw.get("prompt_tokens")),
        cached_input_tokens=as_int(raw.get("cached_input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")) or as_int(raw.get("completion_tokens")),
    )


def new_decoder(request: RunRequest, config: CodexConfig) -> CodexExecDecoder:
    return CodexExecDecoder(
        thread_id=request.thread_id,
        workspace=request.workspace_dir or config.workspace_dir.strip(),
    )


def explain_exit(returncode: int, stderr_tail: str) -> str | None:
    """A clearer message when codex refused its command line (usually a codex version that
    does not know a flag or value we passed); ``None`` otherwise."""
    if returncode == 2:
        for line in stderr_tail.splitlines():
            if line.startswith("error:"):
                return f"codex rejected its arguments (check the installed codex version): {line}"
    return None


IDLE_RESUME_PROMPT = (
    "Resume the current thread from its existing state and finish the task. Do not repeat "
    "completed analysis. If required repo or file updates are still pending, perform them now, "
    "then emit the required final assistant completion message."
)


def idle_retry(request: RunRequest, partial: RunResult) -> RunRequest | None:
    """After an idle timeout with a known thread (resumed or announced by ``thread.started``),
    resume it once with the fixed prompt of spec §6.1.2; otherwise give up."""
    thread = partial.next_thread_id or request.thread_id
    if not thread:
        return None
    return request.evolve(thread_id=thread, user_text=IDLE_RESUME_PROMPT)


# -- registration ---------------------------------------------------------------------------------

from .record import EVERY_CAPABILITY, AuthCheck, Flavor, SessionSpec, VersionCheck  # noqa: E402

PROVIDER = Provider(
    name="codex",
    default_command="codex",
    config_class=CodexConfig,
    build_invocation=build_invocation,
    new_decoder=new_decoder,
    description="OpenAI codex, one-shot `codex exec --json` (prompt on stdin)",
    explain_exit=explain_exit,
    idle_retry=idle_retry,
    flavors=(
        Flavor(
            label="codex-cli",
            session=SessionSpec(
                factory="alice_trio.sessions.codex_app_server:open_driver",
                protocol="`codex app-server` (JSON-RPC over stdio)",
                long_lived=True,
                steer_mode="native",
                capabilities=EVERY_CAPABILITY,
            ),
            versions=VersionCheck(verified=("0.171.0",), source="npm @openai/codex"),
            auth=AuthCheck(
                status_args=("login", "status"),
                env_keys=("OPENAI_API_KEY", "CODEX_API_KEY"),
                otherwise="no",
            ),
        ),
    ),
)  # fmt: skip
