"""Google gemini CLI, one-shot: ``gemini -o stream-json`` (spec §6.3, checked against gemini
0.61.0). Alice used ``-o json`` (one document at the end, no progress, §13.20); stream-json gives
progress and survives banners on stdout.

Argv::

    gemini -o stream-json [--model=<m>] [--yolo | --approval-mode=<mode>]
           [--include-directories=<dir>]... [--resume=<thread id> | --session-id=<uuid>]
           [--prompt=<text>]  [extra_args...]

**The prompt.** By default (``prompt_via: stdin``) it goes on **stdin** and ``-p`` is left
out: gemini runs headless whenever stdin is not a TTY and takes piped stdin as the input
("``-p``: … Appended to input on stdin (if any)", ``gemini --help``). The prompt is then not
visible in ``ps`` and not limited by the kernel's 128 KiB cap on one argument; gemini caps stdin
at 8 MiB. ``prompt_via: argv`` passes ``--prompt=<text>`` instead (the form the recorded
transcripts used; the ``=`` form keeps a prompt starting with ``-`` from reading as a flag).

**Approval.** ``yolo`` defaults to true: headless gemini in its default approval mode does not
even offer the shell tool to the model (transcript ``gemini_stream_tool_default``), and Alice's
other providers run unattended too (claude bypassPermissions, kimi ``--yolo``). A non-empty
``approval_mode`` replaces ``--yolo`` (gemini rejects both together).

**Environment.** ``trust_workspace`` (default true) sets ``GEMINI_CLI_TRUST_WORKSPACE=true``:
headless gemini exits 55 in an untrusted folder. ``no_relaunch`` sets
``GEMINI_CLI_NO_RELAUNCH=true``: a single process, ~0.6 s faster start. See
:func:`explain_exit` for exit codes 55 and 41.

**Signals.** By default gemini relaunches itself as a child node process and the parent
ignores SIGTERM/SIGINT sent to its pid alone (the turn runs on to its end). Signalling the
whole process group stops it in ~30 ms; the engine always signals the group. With
``no_relaunch`` a SIGTERM exits 0 at once, with no ``result`` line: the decoder then reports
"gemini ended without a result".

Decoding (:class:`GeminiStreamDecoder`): ``init`` → thread id; assistant ``message`` chunks
(``delta: true``) are joined into one complete ``assistant_text``, emitted when any other known
event arrives (or at ``result``); ``role: user`` → ``user_text``; ``tool_use`` / ``tool_result``
→ tool events; ``thought`` → reasoning; ``error`` events are non-fatal notices (``retry`` when
they name a retryable API status, else a visible ``unknown`` event), remembered as the failure
if no ``result`` follows; ``result`` → usage from ``stats`` and the verdict (``status: error``
→ an error); a stream that started and ends without ``result`` is an error. The reply is
emitted once (§13.22: no duplicate reply, no ``[file_change] [file_change]``). The decoder
never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from .. import safejson
from .. import validation as v
from ..errors import ConfigError, EmptyPromptError
from ..file_changes import FileChangeKind, WriteTools
from ..models import EventKind, RunRequest, TurnEvent, Usage
from .base import (
    CLIConfig,
    DecodeOutcome,
    Invocation,
    JsonLineDecoder,
    Provider,
    as_int,
    as_str,
    prompt_argument,
)

__all__ = [
    "PROVIDER",
    "GeminiConfig",
    "GeminiStreamDecoder",
    "build_invocation",
    "default_env",
    "explain_exit",
    "new_decoder",
    "stats_usage",
]

APPROVAL_MODES = ("", "default", "auto_edit", "yolo", "plan")
NO_REPLY_MESSAGE = "gemini returned no final response"
NO_RESULT_MESSAGE = "gemini ended without a result"
TRUST_ENV = "GEMINI_CLI_TRUST_WORKSPACE"
NO_RELAUNCH_ENV = "GEMINI_CLI_NO_RELAUNCH"


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class GeminiConfig(CLIConfig):
    """gemini settings (see the module docstring for why the defaults are what they are).

    * ``yolo``: pass ``--yolo`` (default true) unless ``approval_mode`` is set.
    * ``approval_mode``: ``""`` | ``default`` | ``auto_edit`` | ``yolo`` | ``plan``.
    * ``trust_workspace``: ``GEMINI_CLI_TRUST_WORKSPACE=true`` (default true).
    * ``no_relaunch``: ``GEMINI_CLI_NO_RELAUNCH=true`` (default false).
    * ``session_id``: a UUID for a *new* session (``--session-id``), unused when resuming.
    * ``prompt_via``: ``stdin`` (default) or ``argv`` (``--prompt=<text>``).
    * ``session_protocol``: how interactive sessions talk to gemini: ``acp`` (default, one
      long-lived ``gemini --acp`` process, real interrupt) or ``oneshot`` (one ``gemini -p``
      run per turn, input queued while busy).
    * ``exec_policy.add_dirs`` → ``--include-directories`` each.
    """

    yolo: bool = True
    approval_mode: str = attrs.field(
        default="", metadata=v.meta(v.choice(APPROVAL_MODES, lower=False))
    )
    trust_workspace: bool = True
    no_relaunch: bool = False
    session_id: str = ""
    prompt_via: str = attrs.field(default="stdin", metadata=v.meta(v.choice(("stdin", "argv"))))
    session_protocol: str = attrs.field(
        default="acp", metadata=v.meta(v.choice(("acp", "oneshot")))
    )


# -- argv ---------------------------------------------------------------------------------------


def _value(name: str, value: str) -> str:
    if value.startswith("-") or "\n" in value or "\x00" in value:
        raise ConfigError(f"gemini {name} is not a valid value: {value!r}")
    return value


def default_env(config: GeminiConfig) -> dict[str, str]:
    """The env switches of a gemini process (workspace trust, no relaunch), before the
    config/request env."""
    env: dict[str, str] = {}
    if config.trust_workspace:
        env[TRUST_ENV] = "true"
    if config.no_relaunch:
        env[NO_RELAUNCH_ENV] = "true"
    return env


def build_invocation(request: RunRequest, config: GeminiConfig) -> Invocation:
    """argv, env, cwd, stdin and timeouts for one headless gemini turn.

    Raises :class:`EmptyPromptError` for a blank prompt and :class:`ConfigError` for a model,
    thread id or directory that would read as a flag.
    """
    prompt = request.prompt
    if not prompt:
        raise EmptyPromptError()
    command = config.command.strip() or "gemini"
    model = request.model or config.model.strip()
    policy = config.exec_policy.merged(request.exec_policy)

    argv: list[str] = [command, "-o", "stream-json"]
    if model:
        argv.append(f"--model={_value('model', model)}")
    if config.approval_mode:
        argv.append(f"--approval-mode={config.approval_mode}")
    elif config.yolo:
        argv.append("--yolo")
    for d in policy.add_dirs:
        argv.append(f"--include-directories={_value('add_dir', d)}")
    if request.thread_id:
        argv.append(f"--resume={_value('thread id', request.thread_id)}")
    elif config.session_id:
        argv.append(f"--session-id={_value('session_id', config.session_id)}")
    stdin: bytes | None = prompt.encode("utf-8")
    if config.prompt_via == "argv":
        why = "prompt_via: argv puts it there; the default prompt_via: stdin has no such limit"
        argv.append(prompt_argument("--prompt=", prompt, provider="gemini", why=why))
        stdin = None
    argv += config.extra_args

    env = {**default_env(config), **config.env, **request.env}
    timeout = config.effective_timeout()
    return Invocation(
        argv=tuple(argv),
        env=env,
        cwd=request.workspace_dir or config.workspace_dir.strip() or None,
        stdin=stdin,
        timeout=timeout,
        idle_timeout=config.effective_idle_timeout(),
        limits=config.limits,
    )


# -- decoder ------------------------------------------------------------------------------------

_RETRYABLE_STATUS = re.compile(r"\b(429|5\d\d)\b|RESOURCE_EXHAUSTED|UNAVAILABLE|overloaded|retry",
                               re.IGNORECASE)  # fmt: skip
_STATUS_IN_TEXT = re.compile(r"\b(?:status|code)\D{0,3}([1-5]\d\d)\b", re.IGNORECASE)
_GRPC_STATUS = {"RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "INTERNAL": 500}


def _status(*values: Any) -> int | None:
    """An HTTP status from a number, a numeric string, a gRPC status name or "status 503"."""
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool):
            n = as_int(value)  # inf/nan (1e999) are 0, never OverflowError
            if 100 <= n <= 599:
                return n
        elif isinstance(value, str) and value.strip():
            s = value.strip()
            if s.isdigit() and 100 <= int(s) <= 599:
                return int(s)
            if s.upper() in _GRPC_STATUS:
                return _GRPC_STATUS[s.upper()]
            m = _STATUS_IN_TEXT.search(s)
            if m:
                return int(m.group(1))
            for name, code in _GRPC_STATUS.items():
                if re.search(rf"\b{name}\b", s):
                    return code
    return None


def stats_usage(stats: Any) -> Usage | None:
    """Usage from a ``result.stats`` (stream-json) or ``stats`` (json mode) object.

    stream-json 0.61 reports totals (``input_tokens``, ``cached``, ``output_tokens``) and the
    same per model; older versions and json mode only have ``models.<m>.tokens`` with
    ``input`` / ``prompt``, ``cached`` and ``candidates``, which are summed over the models.
    """
    if not isinstance(stats, Mapping):
        return None
    if any(k in stats for k in ("input_tokens", "output_tokens", "total_tokens")):
        return Usage(
            input_tokens=as_int(stats.get("input_tokens", stats.get("input"))),
            cached_input_tokens=as_int(stats.get("cached")),
            output_tokens=as_int(stats.get("output_tokens")),
        )
    models = stats.get("models")
    if not isinstance(models, Mapping):
        return None
    total = Usage()
    for per_model in models.values():
        if not isinstance(per_model, Mapping):
            continue
        tokens = per_model.get("tokens")
        if isinstance(tokens, Mapping):
            total += Usage(
                input_tokens=as_int(tokens.get("input", tokens.get("prompt"))),
                cached_input_tokens=as_int(tokens.get("cached")),
                output_tokens=as_int(tokens.get("candidates")),
            )
        else:
            total += Usage(
                input_tokens=as_int(per_model.get("input_tokens", per_model.get("input"))),
                cached_input_tokens=as_int(per_model.get("cached")),
                output_tokens=as_int(per_model.get("output_tokens")),
            )
    return total


#: gemini-cli's file-writing tools: name → (path arguments, kind)
WRITE_TOOLS: WriteTools = {
    "write_file": (("file_path",), FileChangeKind.WRITTEN),
    "replace": (("file_path",), FileChangeKind.MODIFIED),
}


def _result_text(obj: Mapping[str, Any]) -> str:
    """The text of a ``tool_result`` event: its id, status and error or output."""
    text = f"tool_result id=`{as_str(obj.get('tool_id'))}` status=`{as_str(obj.get('status'))}`"
    err = obj.get("error")
    detail = as_str(err.get("message")) if isinstance(err, Mapping) else as_str(err)
    detail = detail or as_str(obj.get("output"))
    return f"{text}: {detail}" if detail else text


class GeminiStreamDecoder(JsonLineDecoder):
    """Decoder of ``gemini -o stream-json`` stdout (see the module docstring for the
    mapping); never raises. Lines that are not JSON objects of a known type never end an
    assistant message being assembled, so they cannot change the reply."""

    provider = "gemini"
    no_reply_message = NO_REPLY_MESSAGE
    write_tools = WRITE_TOOLS

    def __init__(self, *, thread_id: str = "") -> None:
        super().__init__(thread_id=thread_id)
        self.saw_result = False
        self._chunks: list[str] = []
        self._chunk_lines: list[str] = []
        self._error_notice = ""
        self._error_status: int | None = None
        self._started = False  # a known stream-json event was seen

    # assistant message assembly
    def _flush(self) -> list[TurnEvent]:
        if not self._chunks:
            return []
        text = "".join(self._chunks)
        raw = "\n".join(self._chunk_lines)
        self._chunks.clear()
        self._chunk_lines.clear()
        return self._assistant(text, raw)

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        kind = obj.get("type")
        if kind == "message":
            role = as_str(obj.get("role")).lower()
            if role in ("assistant", "user"):
                self._started = True  # an unknown role is drift, not proof of a stream
            return self._message(obj, line)
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            if kind is None and "response" in obj:
                return self._flush() + self._json_document(obj, line)
            return [self._unknown(line, f"unknown gemini event type {kind!r}")]
        self._started = True
        return self._flush() + handler(self, obj, line)

    def _message(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        role = as_str(obj.get("role")).lower()
        content = obj.get("content")
        text = content if isinstance(content, str) else ""
        if role == "assistant":
            if obj.get("delta") is True:
                self._chunks.append(text)
                self._chunk_lines.append(line)
                return []
            return self._flush() + self._assistant(text, line)
        if role == "user":
            events = self._flush()
            if text.strip():
                events.append(self._event(EventKind.USER_TEXT, line, text=text.strip()))
            return events
        return [self._unknown(line, f"gemini message with role {role!r}")]

    def _init(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        self.thread_id = as_str(obj.get("session_id")) or self.thread_id
        return [self._event(EventKind.THREAD_STARTED, line)]

    def _tool_use(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        name, tool_id = as_str(obj.get("tool_name")), as_str(obj.get("tool_id"))
        self._tool_called(tool_id, name, obj.get("parameters"))
        if self.quiet:
            return self._skip(EventKind.TOOL_USE)
        text = f"tool_use name=`{name}` id=`{tool_id}`"
        return [self._event(EventKind.TOOL_USE, line, text=text)]

    def _tool_result(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        ok = as_str(obj.get("status")).lower() == "success"
        done = self._tool_done(as_str(obj.get("tool_id")), ok, line)
        events: list[TurnEvent] = []
        self._informational(events, EventKind.TOOL_RESULT, line, _result_text, obj)
        return [*events, *done]

    def _thought(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        subject, description = as_str(obj.get("subject")), as_str(obj.get("description"))
        text = f"{subject}: {description}" if subject and description else subject or description
        if text and self.quiet:
            return self._skip(EventKind.REASONING)
        return [self._event(EventKind.REASONING, line, text=text)] if text else []

    def _error(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        message = as_str(obj.get("message")) or "gemini reported an error"
        status = _status(obj.get("status"), obj.get("code"), message)
        severity = as_str(obj.get("severity")).lower() or "error"
        if severity == "error":
            self._error_notice, self._error_status = message, status
        retryable = (status is not None and (status == 429 or status >= 500)) or bool(
            _RETRYABLE_STATUS.search(f"{as_str(obj.get('status'))} {message}")
        )
        if retryable:
            return [self._event(EventKind.RETRY, line, text=f"gemini: {message}", status=status)]
        return [self._event(EventKind.UNKNOWN, line, text=f"gemini {severity}: {message}")]

    def _result(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        self.saw_result = True
        usage = stats_usage(obj.get("stats"))
        if usage is not None:
            self.usage = usage
        if as_str(obj.get("status")).lower() == "error":
            err = obj.get("error")
            if isinstance(err, Mapping):
                message = as_str(err.get("message"))
                status = _status(err.get("status"), err.get("code"), message)
            else:
                message, status = as_str(err), _status(err)
            message = message or self._error_notice or "gemini turn failed"
            return [self._fail(message, line, status=status or self._error_status)]
        return [self._complete(line, usage)]

    def _json_document(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        """``-o json`` on one line: ``{"session_id", "response", "stats"}`` (Alice's format)."""
        self.saw_result = True
        self.thread_id = as_str(obj.get("session_id")) or self.thread_id
        usage = stats_usage(obj.get("stats"))
        if usage is not None:
            self.usage = usage
        err = obj.get("error")
        if isinstance(err, Mapping):
            message = as_str(err.get("message")) or "gemini turn failed"
            return [self._fail(message, line, status=_status(err.get("status"), err.get("code")))]
        response = obj.get("response")
        events = self._assistant(response if isinstance(response, str) else "", line)
        return [*events, self._complete(line, usage)]

    def finish(self) -> DecodeOutcome:
        """The outcome. A stream that started but has no ``result`` is a failure (gemini exits
        0 without one when signalled). One that never started reports nothing, so the engine
        judges by the exit status and :func:`explain_exit` can name the cause (exit 55, 41)."""
        self._flush()  # a message cut short still becomes the (partial) reply
        outcome = super().finish()
        if not outcome.error and not self.saw_result and self._started:
            message = self._error_notice or NO_RESULT_MESSAGE
            return attrs.evolve(outcome, error=message, status=self._error_status)
        return outcome


_HANDLERS = {
    "init": GeminiStreamDecoder._init,
    "tool_use": GeminiStreamDecoder._tool_use,
    "tool_result": GeminiStreamDecoder._tool_result,
    "thought": GeminiStreamDecoder._thought,
    "error": GeminiStreamDecoder._error,
    "result": GeminiStreamDecoder._result,
}


def new_decoder(request: RunRequest, config: GeminiConfig) -> GeminiStreamDecoder:
    return GeminiStreamDecoder(thread_id=request.thread_id)


def explain_exit(returncode: int, stderr_tail: str) -> str | None:
    """A clearer message for gemini's known start-up failures; ``None`` otherwise."""
    low = stderr_tail.lower()
    if returncode == 55 or ("not trusted" in low and ("workspace" in low or "folder" in low)):
        return (
            f"gemini refused to run in an untrusted workspace (exit {returncode}): headless runs "
            f"need a trusted folder; keep trust_workspace: true (sets {TRUST_ENV}=true), pass "
            "--skip-trust, or trust the folder in gemini"
        )
    if returncode == 41 or "invalid auth method" in low:
        return (
            f"gemini: invalid auth method selected (exit {returncode}): choose one in "
            '~/.gemini/settings.json, e.g. {"security":{"auth":{"selectedType":"gemini-api-key"}}}'
            " (with GOOGLE_GEMINI_BASE_URL set and no type chosen gemini picks 'gateway', which "
            "headless mode rejects), or set GEMINI_API_KEY"
        )
    if "invalid regular expression flags" in low and "node.js v18" in low:
        return (
            "gemini CLI is using an older Node runtime from PATH, ensure Node >= 20 "
            "(for example via nvm PATH)"
        )
    message = _stderr_error(stderr_tail)
    if message and returncode != 0:
        return f"gemini exec failed (exit {returncode}): {message}"
    return None


def _stderr_error(stderr_tail: str) -> str:
    """The message of the last stream-json ``error`` event gemini wrote to stderr (it reports
    start-up failures there in stream-json mode), or ``""``."""
    for raw in reversed(stderr_tail.splitlines()):
        raw = raw.strip()
        if not (raw.startswith("{") and '"error"' in raw):
            continue
        try:
            obj = safejson.loads(raw)
        except safejson.NotJSON:
            continue
        if isinstance(obj, dict) and obj.get("type") == "error":
            return as_str(obj.get("message"))
    return ""


# -- registration ---------------------------------------------------------------------------------

from .record import (  # noqa: E402
    EVERY_CAPABILITY,
    AuthCheck,
    Capabilities,
    CredentialPath,
    Flavor,
    SessionSpec,
    VersionCheck,
)

_VERSIONS = VersionCheck(verified=("0.61.0",), source="npm @google/gemini-cli")
_AUTH = AuthCheck(
    env_keys=("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"),
    files=(CredentialPath(name="oauth_creds.json", default_dir="~/.gemini"),),
    otherwise="no",
)

PROVIDER = Provider(
    name="gemini",
    default_command="gemini",
    config_class=GeminiConfig,
    build_invocation=build_invocation,
    new_decoder=new_decoder,
    description="Google gemini CLI, one-shot `gemini -o stream-json` (prompt on stdin)",
    explain_exit=explain_exit,
    flavor_field="session_protocol",
    flavors=(
        Flavor(
            name="acp",
            label="Gemini CLI, sessions over ACP",
            session=SessionSpec(
                factory="alice_trio.sessions.acp:open_gemini_driver",
                protocol="`gemini --acp` (ACP)",
                long_lived=True,
                steer_mode="queue_when_busy",
                # questions: the shared ACP driver routes an agent's questions (gemini 0.61
                # has no question tool, so in practice none arrive)
                capabilities=EVERY_CAPABILITY,
            ),
            versions=_VERSIONS,
            auth=_AUTH,
        ),
        Flavor(
            name="oneshot",
            label="Gemini CLI, one `gemini -p` per turn",
            session=SessionSpec(
                factory="alice_trio.sessions.oneshot_driver:open_gemini_driver",
                protocol="one `gemini -o stream-json` run per turn",
                long_lived=False,
                steer_mode="queue_when_busy",
                capabilities=Capabilities(file_changes=True, model_switch=True, resume=True),
            ),
            versions=_VERSIONS,
            auth=_AUTH,
        ),
    ),
)
