"""Kimi one-shot provider: Kimi Code 2.x ``kimi -p … --output-format stream-json`` and the legacy
kimi-cli (≤ 1.51) ``kimi --print --input-format stream-json --output-format stream-json``.

Pure: :func:`build_invocation` turns a request into argv/env/cwd/stdin and :class:`KimiDecoder`
turns stdout lines into events; neither does I/O.

Prompt delivery. Kimi Code 2.x only takes the prompt as the value of ``-p/--prompt`` (its
``--help`` has no stdin input for prompt mode), so it goes into argv in the ``--prompt=<text>``
form, which a leading ``-`` cannot turn into a flag. The legacy CLI reads
``{"role":"user","content":…}`` lines from stdin with ``--input-format stream-json``, so there the
prompt never touches argv (no ``ps`` exposure, no ``ARG_MAX``).

Output (both flavors print *whole messages*, never deltas):

* ``{"role":"assistant","content":str|[parts],"tool_calls":[…]}`` → ``assistant_text`` (think
  parts skipped) and ``tool_use``; the reply is the last non-empty assistant text.
* ``{"role":"tool","tool_call_id":…,"content":…}`` → ``tool_result``.
* Kimi Code meta lines: ``session.resume_hint`` carries the session id (→ thread id, and it is
  the last line of a finished turn → ``turn_completed``, terminal); ``turn.step.retrying`` → a
  visible ``retry`` notice; other meta lines (``system.version``) produce nothing.
* Legacy plain-text lines on stdout: ``Error code: 500 - {…}`` (an API failure, wrapped by the
  CLI's console at 80 columns: continuation lines are joined back) → ``error`` with the status;
  ``Interrupted by user`` (after SIGINT) → ``turn_interrupted``.

Thread id. Only from the stream (Kimi Code's resume hint) or the request's own thread id; never
a placeholder and never by scanning ``~/.kimi`` (racy when runs share a workspace, spec §13.21).
The legacy CLI prints its resume hint only on **stderr** (``To resume this session: kimi -r
<id>``); :func:`thread_id_from_stderr` extracts it for an engine that wants to use the stderr
tail. Kimi Code's final API failure is likewise only on stderr (``error: failed to run prompt:
…``): :func:`explain_exit` turns it into the message.

Errors: the decoder never raises; unknown JSON shapes become ``unknown`` events.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any, ClassVar

import attrs

from .. import safejson
from .. import validation as v
from ..errors import AgentError
from ..file_changes import FileChangeKind, WriteTools
from ..models import EventKind, RunRequest, TurnEvent
from .base import (
    CLIConfig,
    DecodeOutcome,
    Invocation,
    JsonLineDecoder,
    Provider,
    as_int,
    as_str,
    merge_env,
    prompt_argument,
)

__all__ = [
    "FLAVORS",
    "PROVIDER",
    "KimiConfig",
    "KimiDecoder",
    "build_invocation",
    "default_env",
    "explain_exit",
    "format_tool_calls",
    "new_decoder",
    "thread_id_from_stderr",
]

FLAVORS = ("code", "legacy")
#: why a Kimi Code prompt is refused before spawning (it has no stdin prompt mode)
CODE_PROMPT_LIMIT = (
    "Kimi Code takes the prompt only in argv (-p/--prompt; it has no stdin prompt mode): "
    "shorten the prompt, or use flavor: legacy (kimi-cli), which reads it on stdin"
)

#: printed when a turn produced no assistant text
NO_REPLY_MESSAGE = "kimi returned no final assistant message"

_THINK_TYPES = frozenset({"think", "thinking", "reasoning"})
_SESSION_KEYS = ("session_id", "sessionId", "thread_id", "threadId")
_LEGACY_ERROR_RE = re.compile(r"^Error code:\s*(\d{3})\b")
_INTERRUPTED_LINE = "Interrupted by user"
_RESUME_HINT_RE = re.compile(
    r"To resume this session:\s*kimi\s+(?:-r|-S|--resume|--session)[ =]?\s*(\S+)"
)
_CODE_ERROR_RE = re.compile(r"^error:\s*(.+)$", re.MULTILINE)
#: ``error: failed to run prompt: provider.api_error: 500 …`` → 500
_API_STATUS_RE = re.compile(r"provider\.\w+:\s*(\d{3})\b")


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class KimiConfig(CLIConfig):
    """Kimi settings.

    * ``flavor``: ``"code"`` (Kimi Code 2.x, npm ``@moonshot-ai/kimi-code``, the default) or
      ``"legacy"`` (PyPI ``kimi-cli`` ≤ 1.51 in ``--print`` mode).
    * ``yolo``: pass ``--yolo``. Off by default: both prompt/print modes already auto-approve
      tools, and in Kimi Code ``-y`` selects the *ask-when-needed* mode.
    * ``disable_telemetry``: set ``KIMI_DISABLE_TELEMETRY=1`` (Kimi Code otherwise waits ~3 s
      for its telemetry flush at exit).
    * ``disable_auto_update``: set ``KIMI_CODE_NO_AUTO_UPDATE=1`` / ``KIMI_CLI_NO_AUTO_UPDATE=1``.

    Values in ``env`` (and the request's env) override these defaults.
    """

    flavor: str = attrs.field(default="code", metadata=v.meta(v.choice(FLAVORS)))
    yolo: bool = False
    disable_telemetry: bool = True
    disable_auto_update: bool = True


def _result_detail(msg: dict[str, Any]) -> str:
    """The text of a ``tool`` message's ``tool_result`` event: its call id and output."""
    text = _text_of(msg.get("content"))
    call_id = as_str(msg.get("tool_call_id"))
    detail = f"tool_result id=`{call_id}`" if call_id else "tool_result"
    return f"{detail} {text}" if text else detail


def _workspace(request: RunRequest, config: CLIConfig) -> str | None:
    wd = request.workspace_dir or config.workspace_dir.strip()
    return os.path.abspath(os.path.normpath(wd)) if wd else None


def default_env(config: KimiConfig) -> dict[str, str]:
    """The env switches of a kimi process (telemetry, auto-update), before config/request env."""
    env: dict[str, str] = {}
    if config.disable_telemetry:
        env["KIMI_DISABLE_TELEMETRY"] = "1"
    if config.disable_auto_update:
        key = "KIMI_CODE_NO_AUTO_UPDATE" if config.flavor == "code" else "KIMI_CLI_NO_AUTO_UPDATE"
        env[key] = "1"
    return env


def build_invocation(request: RunRequest, config: KimiConfig) -> Invocation:
    """argv/env/cwd/stdin for one kimi turn.

    Kimi Code: ``kimi --output-format=stream-json [--model=M] [--session=ID] [--yolo]
    [--add-dir=D…] [extra…] --prompt=<prompt>``; stdin closed.
    Legacy: ``kimi --print --input-format=stream-json --output-format=stream-json [--model=M]
    [--session=ID] [--yolo] [--add-dir=D…] [extra…]`` with one ``{"role":"user","content":…}``
    line on stdin, then EOF.
    """
    prompt = request.prompt
    model = request.model or config.model.strip()
    policy = config.exec_policy.merged(request.exec_policy)
    argv: list[str] = [PROVIDER.command(config)]
    stdin: bytes | None = None
    if config.flavor == "legacy":
        argv += ["--print", "--input-format=stream-json", "--output-format=stream-json"]
        line = json.dumps({"role": "user", "content": prompt}, ensure_ascii=False)
        stdin = (line + "\n").encode("utf-8")
    else:
        argv.append("--output-format=stream-json")
    if model:
        argv.append(f"--model={model}")
    if request.thread_id:
        argv.append(f"--session={request.thread_id}")
    if config.yolo:
        argv.append("--yolo")
    argv += [f"--add-dir={d}" for d in policy.add_dirs]
    argv += list(config.extra_args)
    if config.flavor != "legacy":
        argv.append(prompt_argument("--prompt=", prompt, provider="kimi", why=CODE_PROMPT_LIMIT))
    return Invocation(
        argv=tuple(argv),
        env=merge_env(default_env(config), config.env, request.env),
        cwd=_workspace(request, config),
        stdin=stdin,
        timeout=config.effective_timeout(),
        idle_timeout=config.effective_idle_timeout(),
        limits=config.limits,
    )


# -- decoding --------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Visible text of a message's ``content``: a string, or the text parts of an array joined
    with newlines. Think/thinking parts and non-text parts are skipped; a part's *type name* is
    never used as text (spec §13.15)."""
    if isinstance(content, str):
        return content.strip()
    if not isinstance(content, list):
        return ""
    out: list[str] = []
    for part in content:
        if isinstance(part, str):
            s = part.strip()
        elif isinstance(part, dict):
            ptype = as_str(part.get("type")).lower()
            if ptype in _THINK_TYPES or ptype not in ("", "text"):
                continue
            s = as_str(part.get("text"))
        else:
            continue
        if s:
            out.append(s)
    return "\n".join(out)


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def tool_calls(calls: Any) -> list[tuple[str, str, Any]]:
    """``(id, name, arguments)`` of each OpenAI-style tool call; string arguments are parsed
    as JSON (left as they are when they are not JSON)."""
    out: list[tuple[str, str, Any]] = []
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        src = fn if isinstance(fn, dict) else call
        args = src.get("arguments", src.get("args"))
        if isinstance(args, str):
            try:
                args = safejson.loads(args)
            except safejson.NotJSON:
                pass
        out.append((as_str(call.get("id")), as_str(src.get("name")), args))
    return out


#: Kimi Code's (``Write``/``Edit``) and legacy kimi-cli's (``WriteFile``/``StrReplaceFile``)
#: file-writing tools: name → (path arguments, kind)
WRITE_TOOLS: WriteTools = {
    "Write": (("path", "file_path"), FileChangeKind.WRITTEN),
    "Edit": (("path", "file_path"), FileChangeKind.MODIFIED),
    "WriteFile": (("path",), FileChangeKind.WRITTEN),
    "StrReplaceFile": (("path",), FileChangeKind.MODIFIED),
}


def format_tool_calls(calls: Any) -> str:
    """Spec §6.4.2 tool format: ``<type> id=`…` name=`…` arguments=`…``` per call (empty parts
    left out), several calls joined with ``"; "``."""
    if not isinstance(calls, list):
        return ""
    items: list[str] = []
    for call in calls:
        if not isinstance(call, dict):
            continue
        fn = call.get("function")
        src = fn if isinstance(fn, dict) else call
        name = as_str(src.get("name"))
        args = _arguments(src.get("arguments", src.get("args")))
        bits = [as_str(call.get("type")) or "tool_call"]
        call_id = as_str(call.get("id"))
        if call_id:
            bits.append(f"id=`{call_id}`")
        if name:
            bits.append(f"name=`{name}`")
        if args:
            bits.append(f"arguments=`{args}`")
        items.append(" ".join(bits))
    return "; ".join(items)


def _retry_text(obj: dict[str, Any]) -> str:
    failed = as_int(obj.get("failed_attempt"))
    nxt = as_int(obj.get("next_attempt"))
    total = as_int(obj.get("max_attempts"))
    delay_ms = obj.get("delay_ms")
    reason = as_str(obj.get("error_message")) or as_str(obj.get("error_name")) or "API error"
    text = f"kimi: model API call failed ({reason})"
    if failed and total:
        text += f" on attempt {failed}/{total}"
    if nxt:
        text += f"; retrying (attempt {nxt}"
        if total:
            text += f"/{total}"
        text += ")"
        if isinstance(delay_ms, int | float) and not isinstance(delay_ms, bool) and delay_ms > 0:
            text += f" in {delay_ms / 1000:.1f}s"
    return text


class KimiDecoder(JsonLineDecoder):
    """State machine over one kimi run's stdout (both flavors). Never raises."""

    provider: ClassVar[str] = "kimi"
    no_reply_message: ClassVar[str] = NO_REPLY_MESSAGE
    write_tools: ClassVar[WriteTools] = WRITE_TOOLS

    def __init__(self, *, thread_id: str = "") -> None:
        super().__init__(thread_id=thread_id)
        self._in_legacy_error = False  # the previous line was (part of) an "Error code:" line
        self._pending_retry: dict[str, Any] | None = None  # last retry not yet followed by output
        self.retries = 0

    # plain-text lines (legacy) ---------------------------------------------------------------
    def feed(self, line: str) -> list[TurnEvent]:
        s = line.strip()
        if not s:
            return []
        obj: Any = None
        if s.startswith("{"):
            try:
                obj = safejson.loads(s)
            except safejson.NotJSON:
                obj = None
        if isinstance(obj, dict):
            self._in_legacy_error = False
            return self._decode_guarded(obj, line)
        return self._plain(s, line)

    def _plain(self, s: str, line: str) -> list[TurnEvent]:
        m = _LEGACY_ERROR_RE.match(s)
        if m:
            self._in_legacy_error = True
            return [self._fail(s, line, status=int(m.group(1)))]
        if s == _INTERRUPTED_LINE:
            self._in_legacy_error = False
            self.interrupted = True
            self._terminal = True
            return [self._event(EventKind.TURN_INTERRUPTED, line, text=s)]
        if self._in_legacy_error:
            # the CLI's console hard-wraps the error at 80 columns: join the pieces back (the
            # text is a Python dict repr, whose ": " / ", " separators lose their space at a wrap)
            sep = " " if self.error.endswith((":", ",")) else ""
            self.error += sep + s
            return []
        return [self._not_json(line)]

    # JSON lines -------------------------------------------------------------------------------
    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        inner = obj.get("message")
        msg: dict[str, Any] = inner if isinstance(inner, dict) else obj
        events: list[TurnEvent] = []
        sid = self._session_id(obj, msg)
        if sid and sid != self.thread_id:
            self.thread_id = sid
            events.append(self._event(EventKind.THREAD_STARTED, line, text=sid))
        role = as_str(msg.get("role")).lower()
        if role == "meta":
            return events + self._meta(msg, line)
        if role == "assistant":
            self._pending_retry = None
            events += self._assistant(_text_of(msg.get("content")), line)
            tools = format_tool_calls(msg.get("tool_calls"))
            if tools:
                self._informational(events, EventKind.TOOL_USE, line, str, tools)
                for call_id, name, args in tool_calls(msg.get("tool_calls")):
                    self._tool_called(call_id, name, args)
            return events
        if role == "tool":
            self._pending_retry = None
            call_id = as_str(msg.get("tool_call_id"))
            ok = not any(msg.get(key) is True for key in ("is_error", "isError"))
            done = self._tool_done(call_id, ok, line)
            self._informational(events, EventKind.TOOL_RESULT, line, _result_detail, msg)
            return [*events, *done]
        if role in ("user", "system"):
            return events
        if events:
            return events
        return [self._unknown(line, f"unknown kimi message role {role!r}")]

    def _session_id(self, obj: dict[str, Any], msg: dict[str, Any]) -> str:
        for src in (obj, msg):
            for key in _SESSION_KEYS:
                v = as_str(src.get(key))
                if v:
                    return v
        return ""

    def _meta(self, msg: dict[str, Any], line: str) -> list[TurnEvent]:
        mtype = as_str(msg.get("type"))
        if mtype == "turn.step.retrying":
            self.retries += 1
            self._pending_retry = msg
            status = as_int(msg.get("status_code")) or None
            return [self._event(EventKind.RETRY, line, text=_retry_text(msg), status=status)]
        if mtype == "session.resume_hint":
            # printed once the prompt run finished: the turn is complete
            self._pending_retry = None
            return [self._complete(line)]
        return []  # system.version and future meta lines: nothing to report

    def finish(self) -> DecodeOutcome:
        """Kimi Code prints no error line when it gives up retrying (only stderr and exit 1):
        a retry for the *last* attempt that was never followed by output is reported as the
        failure, with the API status of that retry."""
        pending = self._pending_retry
        if pending is not None and not self.error and not self.interrupted:
            nxt = as_int(pending.get("next_attempt"))
            total = as_int(pending.get("max_attempts"))
            if total and nxt >= total:
                reason = as_str(pending.get("error_message")) or as_str(pending.get("error_name"))
                self.error = f"kimi model API failed after {total} attempts: {reason or 'error'}"
                self.status = as_int(pending.get("status_code")) or None
        return super().finish()


def new_decoder(request: RunRequest, config: KimiConfig) -> KimiDecoder:
    return KimiDecoder(thread_id=request.thread_id)


def thread_id_from_stderr(text: str) -> str:
    """The session id in kimi's stderr resume hint (``To resume this session: kimi -r <id>``),
    the last one when there are several; ``""`` when there is none. Legacy kimi-cli prints its
    session id only there."""
    found = _RESUME_HINT_RE.findall(text or "")
    return found[-1].strip() if found else ""


def explain_exit(returncode: int, stderr_tail: str) -> str | AgentError | None:
    """A clearer message for a failed kimi process, or ``None``.

    Kimi Code reports a turn that failed for good as ``error: failed to run prompt: <why>`` on
    stderr (exit 1), e.g. after exhausting its API retries.
    """
    found = _CODE_ERROR_RE.findall(stderr_tail or "")
    if not found:
        return None
    message = f"kimi exited with code {returncode}: {found[-1].strip()}"
    api = _API_STATUS_RE.search(found[-1])
    if api:  # the model API refused: an agent failure with its status, not a crash
        return AgentError(message, status=int(api.group(1)))
    return message


def prepare_request(request: RunRequest, config: KimiConfig) -> RunRequest:
    """Legacy kimi-cli prints a new session's id only on stderr, but accepts
    ``--session=<new id>`` for a new session: pick a fresh UUID so the run returns a real
    thread id (never a placeholder). Kimi Code reports its id on stdout; nothing to do."""
    if config.flavor == "legacy" and not request.thread_id:
        return request.evolve(thread_id=str(uuid.uuid4()))
    return request


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
    name="kimi",
    default_command="kimi",
    config_class=KimiConfig,
    build_invocation=build_invocation,
    new_decoder=new_decoder,
    description="Kimi Code 2.x (kimi -p --output-format stream-json) or legacy kimi-cli --print",
    explain_exit=explain_exit,
    prepare_request=prepare_request,
    flavor_field="flavor",
    flavors=(
        Flavor(
            name="code",
            label="Kimi Code 2.x",
            session=SessionSpec(
                factory="alice_trio.sessions.acp:open_kimi_driver",
                protocol="`kimi acp` (ACP)",
                long_lived=True,
                steer_mode="queue_when_busy",
                capabilities=EVERY_CAPABILITY,
            ),
            versions=VersionCheck(verified=("2.1.0",), source="npm @moonshot-ai/kimi-code"),
            auth=AuthCheck(
                env_keys=("KIMI_MODEL_API_KEY", "KIMI_API_KEY", "MOONSHOT_API_KEY"),
                files=(
                    CredentialPath(
                        dir_env="KIMI_CODE_HOME", default_dir="~/.kimi-code", means="unknown"
                    ),
                ),
                otherwise="no",
            ),
        ),
        Flavor(
            name="legacy",
            label="kimi-cli (legacy)",
            session=SessionSpec(
                factory="alice_trio.sessions.kimi_wire:open_driver",
                protocol="`kimi --wire` (legacy wire JSON-RPC)",
                long_lived=True,
                steer_mode="native",
                capabilities=EVERY_CAPABILITY,
                # imported by kimi-cli 1.50 only at the first prompt (``client.chat`` loads
                # all of ``openai.resources``, ~0.5 s; httpx's first connect loads anyio's
                # asyncio backend; ``find_kimi_provider`` the chaos wrapper)
                preload=(
                    "openai.resources", "anyio._backends._asyncio", "kosong.chat_provider.chaos"
                ),
                # and computed by the OpenAI SDK at its first request (type hints, response
                # schemas, `uname -p`): ~20 ms of CPU of the first prompt
                preload_scripts=("openai_chat",),
            ),
            versions=VersionCheck(
                verified=("1.50.0", "1.51.0"),
                source="pypi kimi-cli",
                # kimi-cli 1.52.0 (the final release) is a stub: every command prints only this
                # notice (English, or Chinese under a zh locale) and exits 0
                notes=dict.fromkeys(
                    ("no longer maintained", "已停止维护"),
                    "a deprecation stub (kimi-cli ≥ 1.52 only prints a notice): "
                    "install kimi-cli 1.51.0",
                ),
            ),
            auth=AuthCheck(
                env_keys=("KIMI_API_KEY",),
                files=(
                    CredentialPath(
                        name="config.toml", dir_env="KIMI_SHARE_DIR", default_dir="~/.kimi",
                        means="unknown",
                    ),
                ),
                otherwise="no",
            ),
        ),
    ),
)  # fmt: skip
