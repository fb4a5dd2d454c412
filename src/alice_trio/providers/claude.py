"""Anthropic claude Code, one-shot: ``claude -p --output-format stream-json --verbose``
(spec §6.2.2, checked against claude 2.1.197 and 2.1.332).

Argv (the prompt on **stdin**, never in argv)::

    claude -p [--add-dir=<dir>]... [--allowedTools=<tools>] --output-format stream-json --verbose
           [--include-partial-messages] [--permission-mode=<mode>] [--model=<m>]
           [--resume=<thread id> | --session-id=<uuid>] [extra_args...]

With ``-p`` and no prompt argument claude reads the prompt from stdin (transcript
``claude_stdin_prompt``); the engine writes it and closes stdin at once. That matters: with an
open stdin pipe that never sends data claude waits 3 s ("no stdin data received in 3s"). Every
value is passed in ``--opt=value`` form, so a thread id, model or directory starting with ``-``
is never read as a flag, and the variadic ``--add-dir`` / ``--allowedTools`` cannot swallow a
following argument.

**Root and bypassPermissions.** ``permission_mode`` defaults to ``bypassPermissions`` (as
Alice did). Run as root, claude refuses that mode ("cannot be used with root/sudo privileges",
exit 1, before any request) unless ``IS_SANDBOX=1`` is in its environment. Set
``is_sandbox: true`` in the config to pass it, only where the agent really runs in a sandbox;
:func:`explain_exit` points at this when the refusal happens.

Decoding (:class:`ClaudeStreamDecoder`):

* any ``session_id`` updates the thread id (``system/init`` first of all);
* ``assistant``: the text blocks of the line → one ``assistant_text`` (a complete message; the
  reply is the last one, text blocks of one message id are joined), ``tool_use`` blocks →
  ``tool_use`` ``tool_use name=`X` id=`Y```; a line with both gives **both** (§13.17 fixed);
  ``thinking`` → reasoning. Messages of a sub-agent (``parent_tool_use_id`` set) are reasoning,
  never the reply;
* ``user``: ``tool_result`` blocks → ``tool_result``; text → ``user_text``;
* ``system/api_retry`` → a visible ``retry`` notice ("retrying 2/10 after 529 (overloaded)…");
* ``stream_event`` (``--include-partial-messages``) and other ``system`` lines are ignored;
* ``result``: usage (``input_tokens``, ``cache_read_input_tokens`` as cached, ``output_tokens``),
  ``result.result`` as the reply when no assistant text came (§13.17 fixed), ``is_error`` → an
  error with ``api_error_status`` (else the last retried status) as status and the result text
  or ``errors[]``; subtype ``error_during_execution`` after an interrupt ("[Request interrupted
  by user…]") → interrupted.

SIGTERM makes claude exit 143 at once with no ``result``; the engine reports the exit. The
decoder never raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

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
)

__all__ = [
    "PROVIDER",
    "ClaudeConfig",
    "ClaudeStreamDecoder",
    "build_invocation",
    "explain_exit",
    "new_decoder",
]

DEFAULT_PERMISSION_MODE = "bypassPermissions"
NO_REPLY_MESSAGE = "claude returned no final assistant message"
INTERRUPT_MARKER = "[Request interrupted by user"
_TRUTHY = ("true", "1", "yes")


def _tools(value: Any) -> tuple[str, ...]:
    """Tool names: a list, or one string separated by commas/spaces; empties dropped."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return tuple(s for s in v.str_tuple(value) if s)


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class ClaudeConfig(CLIConfig):
    """claude settings.

    * ``permission_mode``: ``--permission-mode`` (default ``bypassPermissions``; ``""`` omits
      the flag and claude uses its own default, which refuses most edits headless).
    * ``is_sandbox``: set ``IS_SANDBOX=1``, which claude requires for ``bypassPermissions`` when
      run as root. Only enable it where the agent really is sandboxed.
    * ``include_partial_messages``: ask for ``stream_event`` lines (ignored by the decoder; only
      useful to keep an idle watchdog fed during a long reply).
    * ``allowed_tools``: ``--allowedTools`` (tool names or patterns such as ``Bash(git *)``).
    * ``session_id``: a UUID for a *new* session (``--session-id``), unused when resuming.
    * ``exec_policy.add_dirs`` → ``--add-dir`` each.
    """

    permission_mode: str = DEFAULT_PERMISSION_MODE
    is_sandbox: bool = False
    include_partial_messages: bool = False
    allowed_tools: tuple[str, ...] = attrs.field(default=(), metadata=v.meta(_tools))
    session_id: str = ""


# -- argv ---------------------------------------------------------------------------------------


def _value(name: str, value: str) -> str:
    if value.startswith("-") or "\n" in value or "\x00" in value:
        raise ConfigError(f"claude {name} is not a valid value: {value!r}")
    return value


def build_invocation(request: RunRequest, config: ClaudeConfig) -> Invocation:
    """argv, env, cwd, stdin and timeouts for one ``claude -p`` turn.

    Raises :class:`EmptyPromptError` for a blank prompt and :class:`ConfigError` for a model,
    thread id, permission mode or directory that would read as a flag.
    """
    prompt = request.prompt
    if not prompt:
        raise EmptyPromptError()
    command = config.command.strip() or "claude"
    model = request.model or config.model.strip()
    policy = config.exec_policy.merged(request.exec_policy)

    argv: list[str] = [command, "-p"]
    for d in policy.add_dirs:
        argv.append(f"--add-dir={_value('add_dir', d)}")
    if config.allowed_tools:
        argv.append(f"--allowedTools={_value('allowed_tools', ','.join(config.allowed_tools))}")
    argv += ["--output-format", "stream-json", "--verbose"]
    if config.include_partial_messages:
        argv.append("--include-partial-messages")
    if config.permission_mode:
        argv.append(f"--permission-mode={_value('permission_mode', config.permission_mode)}")
    if model:
        argv.append(f"--model={_value('model', model)}")
    if request.thread_id:
        argv.append(f"--resume={_value('thread id', request.thread_id)}")
    elif config.session_id:
        argv.append(f"--session-id={_value('session_id', config.session_id)}")
    argv += config.extra_args

    env: dict[str, str] = {"IS_SANDBOX": "1"} if config.is_sandbox else {}
    env.update(config.env)
    env.update(request.env)
    timeout = config.effective_timeout()
    return Invocation(
        argv=tuple(argv),
        env=env,
        cwd=request.workspace_dir or config.workspace_dir.strip() or None,
        stdin=prompt.encode("utf-8"),
        timeout=timeout,
        idle_timeout=config.effective_idle_timeout(),
        limits=config.limits,
    )


# -- decoder ------------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in _TRUTHY
    return False


def _status(value: Any) -> int | None:
    n = as_int(value)
    return n if n > 0 else None


def _result_text(block: Mapping[str, Any]) -> str:
    """The text of a ``tool_result`` block's event: its id, ``error``, its output."""
    text = f"tool_result id=`{as_str(block.get('tool_use_id'))}`"
    if _truthy(block.get("is_error")):
        text += " error"
    output = _block_text(block.get("content"))
    if output:
        text += f": {output}"
    return text


def _format_tool_use(block: Mapping[str, Any]) -> str:
    parts = ["tool_use"]
    name, ident = as_str(block.get("name")), as_str(block.get("id"))
    if name:
        parts.append(f"name=`{name}`")
    if ident:
        parts.append(f"id=`{ident}`")
    return " ".join(parts)


def _block_text(content: Any) -> str:
    """Text of a tool_result ``content``: a string or a list of text blocks."""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        texts = [
            as_str(b.get("text"))
            for b in content
            if isinstance(b, dict) and as_str(b.get("type")).lower() == "text"
        ]
        return "\n".join(t for t in texts if t)
    return ""


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        cached_input_tokens=as_int(raw.get("cache_read_input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
    )


def retry_notice(obj: Mapping[str, Any]) -> str:
    """The notice for a ``system/api_retry`` line, e.g. ``claude API call failed, retrying
    2/10 after 529 (overloaded), next attempt in 1.1s``; parts the line lacks are left out."""
    attempt, total = as_int(obj.get("attempt")), as_int(obj.get("max_retries"))
    text = "claude API call failed, retrying"
    if attempt:
        text += f" {attempt}/{total}" if total else f" (attempt {attempt})"
    status, error = _status(obj.get("error_status")), as_str(obj.get("error"))
    if status or error:
        text += " after"
        if status:
            text += f" {status}"
        if error:
            text += f" ({error})"
    delay = obj.get("retry_delay_ms")
    if isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0:
        text += f", next attempt in {delay / 1000:.1f}s"
    return text


#: claude's file-writing tools: name → (path arguments, kind)
WRITE_TOOLS: WriteTools = {
    "Write": (("file_path",), FileChangeKind.WRITTEN),
    "Edit": (("file_path",), FileChangeKind.MODIFIED),
    "MultiEdit": (("file_path",), FileChangeKind.MODIFIED),
    "NotebookEdit": (("notebook_path",), FileChangeKind.MODIFIED),
}


class ClaudeStreamDecoder(JsonLineDecoder):
    """Decoder of ``claude -p --output-format stream-json --verbose`` stdout (see the module
    docstring for the mapping); never raises, unknown types become ``unknown`` events."""

    provider = "claude"
    no_reply_message = NO_REPLY_MESSAGE
    write_tools = WRITE_TOOLS

    def __init__(self, *, thread_id: str = "") -> None:
        super().__init__(thread_id=thread_id)
        self.saw_result = False
        self._reply_msg_id = ""  # message id whose text blocks make up the current reply
        self._reply_parts: list[str] = []  # those blocks; ``reply`` holds the last, finish() joins
        self._interrupt_seen = False
        self._retry_status: int | None = None  # status of the last api_retry

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        session = as_str(obj.get("session_id"))
        if session:
            self.thread_id = session
        kind = obj.get("type")
        if kind == "assistant":
            return self._assistant_line(obj, line)
        if kind == "user":
            return self._user_line(obj, line)
        if kind == "result":
            return self._result(obj, line)
        if kind == "system":
            subtype = as_str(obj.get("subtype")).lower()
            if subtype == "init":
                return [self._event(EventKind.THREAD_STARTED, line)]
            if subtype == "api_retry":
                self._retry_status = _status(obj.get("error_status")) or self._retry_status
                return [self._event(EventKind.RETRY, line, text=retry_notice(obj))]
            return []  # status, compact_boundary, hooks…: informational
        if kind == "stream_event":
            return []  # --include-partial-messages deltas; the complete message follows
        return [self._unknown(line, f"unknown claude event type {kind!r}")]

    def _assistant_line(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        message = obj.get("message")
        if not isinstance(message, dict):
            return [self._unknown(line, "assistant line without a message")]
        content = message.get("content")
        texts: list[str] = []
        tools: list[str] = []
        thinking: list[str] = []
        if isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                btype = as_str(block.get("type")).lower()
                if btype == "text":
                    text = as_str(block.get("text"))
                    if text:
                        texts.append(text)
                elif btype in ("tool_use", "server_tool_use"):
                    tools.append("" if self.quiet else _format_tool_use(block))
                    self._tool_called(
                        as_str(block.get("id")), as_str(block.get("name")), block.get("input")
                    )
                elif btype == "thinking":
                    text = as_str(block.get("thinking"))
                    if text:
                        thinking.append(text)
        else:
            text = as_str(message.get("text")) or as_str(content)
            if text:
                texts.append(text)

        events: list[TurnEvent] = []
        if thinking:
            self._informational(events, EventKind.REASONING, line, "\n".join, thinking)
        text = "\n".join(texts)
        if text:
            if as_str(obj.get("parent_tool_use_id")):  # a sub-agent talking, not the reply
                self._informational(events, EventKind.REASONING, line, str, text)
            else:
                msg_id = as_str(message.get("id"))
                events += self._assistant(text, line)
                if msg_id and msg_id == self._reply_msg_id:
                    self._reply_parts.append(self.reply)  # another block of the same message
                else:
                    self._reply_parts = [self.reply]
                self._reply_msg_id = msg_id
        if tools:
            self._reply_msg_id = ""  # text after a tool call starts a new reply
            self._informational(events, EventKind.TOOL_USE, line, "; ".join, tools)
        return events

    def _user_line(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        message = obj.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        events: list[TurnEvent] = []
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content.strip())
        elif isinstance(content, list):
            for block in content:
                if not isinstance(block, dict):
                    continue
                btype = as_str(block.get("type")).lower()
                if btype == "tool_result":
                    self._informational(events, EventKind.TOOL_RESULT, line, _result_text, block)
                    ok = not _truthy(block.get("is_error"))
                    events += self._tool_done(as_str(block.get("tool_use_id")), ok, line)
                elif btype == "text":
                    texts.append(as_str(block.get("text")))
        text = "\n".join(t for t in texts if t)
        if text:
            if INTERRUPT_MARKER in text:
                self._interrupt_seen = True
            events.append(self._event(EventKind.USER_TEXT, line, text=text))
        return events

    def _result(self, obj: Mapping[str, Any], line: str) -> list[TurnEvent]:
        self.saw_result = True
        usage = _usage(obj.get("usage"))
        if usage is not None:
            self.usage = usage
        text = as_str(obj.get("result"))
        if not text:
            errors = obj.get("errors")
            if isinstance(errors, list):
                text = "\n".join(s for s in (as_str(e) for e in errors) if s)
            else:
                text = as_str(errors)
        if _truthy(obj.get("is_error")):
            subtype = as_str(obj.get("subtype")).lower()
            aborted = as_str(obj.get("terminal_reason")).lower().startswith("aborted")
            if subtype == "error_during_execution" and (self._interrupt_seen or aborted):
                self.interrupted = True
                self._terminal = True
                return [self._event(EventKind.TURN_INTERRUPTED, line, usage=usage, text=text)]
            # "Repeated 529 Overloaded errors" comes with api_error_status null: the retries
            # before it said which status it was
            status = _status(obj.get("api_error_status")) or self._retry_status
            return [self._fail(text or "claude result error", line, status=status)]
        events: list[TurnEvent] = []
        if not self.reply and text:  # the reply fallback Alice's HEAD dropped (§13.17)
            events += self._assistant(text, line)
        events.append(self._complete(line, usage))
        return events

    @property
    def current_reply(self) -> str:
        """The reply so far: every text block of the last message, joined (only when asked,
        so a message with many blocks costs linear time, not quadratic)."""
        if len(self._reply_parts) > 1 and self.reply == self._reply_parts[-1]:
            return "\n".join(self._reply_parts)
        return self.reply

    def finish(self) -> DecodeOutcome:
        self.reply = self.current_reply
        self._reply_parts = [self.reply] if self.reply else []
        return super().finish()


def new_decoder(request: RunRequest, config: ClaudeConfig) -> ClaudeStreamDecoder:
    return ClaudeStreamDecoder(thread_id=request.thread_id)


def explain_exit(returncode: int, stderr_tail: str) -> str | None:
    """A clearer message for claude's known start-up refusals; ``None`` otherwise."""
    low = stderr_tail.lower()
    if "root/sudo" in low and ("skip-permissions" in low or "bypasspermissions" in low):
        return (
            "claude refuses --permission-mode bypassPermissions when run as root unless "
            "IS_SANDBOX=1 is set: set is_sandbox: true in the claude config (only inside a "
            "real sandbox), run as a normal user, or choose another permission_mode"
        )
    if "not logged in" in low or "invalid api key" in low:
        return "claude is not logged in: run `claude /login` or set ANTHROPIC_API_KEY"
    return None


# -- registration ---------------------------------------------------------------------------------

from .record import EVERY_CAPABILITY, AuthCheck, Flavor, SessionSpec, VersionCheck  # noqa: E402

PROVIDER = Provider(
    name="claude",
    default_command="claude",
    config_class=ClaudeConfig,
    build_invocation=build_invocation,
    new_decoder=new_decoder,
    description="Anthropic claude Code, one-shot `claude -p --output-format stream-json`"
    " (prompt on stdin)",
    explain_exit=explain_exit,
    flavors=(
        Flavor(
            label="Claude Code",
            session=SessionSpec(
                factory="alice_trio.sessions.claude_stream:open_driver",
                protocol="`claude -p` bidirectional stream-json",
                long_lived=True,
                steer_mode="native_enqueue",
                capabilities=EVERY_CAPABILITY,
                spare_warm_up="the `get_context_usage` control request (`detail: summary`: "
                "local estimates, no token-count call): claude builds the system prompt, tool "
                "schemas and context a first message needs",
            ),
            versions=VersionCheck(
                verified=("2.1.197", "2.1.332"), source="npm @anthropic-ai/claude-code"
            ),
            auth=AuthCheck(
                status_args=("auth", "status"),
                status_json_key="loggedIn",
                env_keys=("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"),
                otherwise="no",
            ),
        ),
    ),
)
