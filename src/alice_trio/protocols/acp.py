"""Agent Client Protocol (ACP, JSON-RPC 2.0 over stdio), client side, sans I/O.

Checked against the recorded traffic of Gemini CLI 0.61 (``gemini --acp``) and Kimi Code 2.1
(``kimi acp``), protocol version 1.

* :func:`initialize_params`: protocol version 1; the client offers **no** ``fs`` or
  ``terminal`` capability (we do not implement them, so the agent uses its own tools).
* ``session/new {cwd, mcpServers: []}`` → ``sessionId``; ``session/load`` resumes (the agent
  replays the history as ``session/update`` s, which the driver discards, see
  :attr:`AcpUpdateMapper.replaying`).
* ``session/prompt``: its **response** ends the turn (:meth:`AcpUpdateMapper.finish`):
  ``stopReason`` ``cancelled`` → ``turn_interrupted``; ``refusal`` → ``error``; anything else
  (``end_turn``, ``max_tokens``, ``max_turn_requests``) → ``turn_completed``. Usage comes from the
  result's ``usage`` or gemini's ``_meta.quota.token_count``, else the last ``usage_update`` of
  the turn (context tokens in use, reported as input tokens).
* ``session/update`` (:meth:`AcpUpdateMapper.update`): ``agent_message_chunk`` s are joined
  (verbatim, no trimming) into one complete ``assistant_text`` per message, flushed when another
  kind of update arrives, the ``messageId`` changes or the turn ends; ``agent_thought_chunk`` →
  ``reasoning`` likewise; ``tool_call`` and status changes of ``tool_call_update`` →
  ``tool_use``; ``user_message_chunk`` → ``user_text``; ``usage_update`` → ``usage``; plan,
  commands, mode and session-info updates → nothing; an unknown kind → ``unknown``.
* Late updates: ACP updates carry no turn id, so an update that arrives after the prompt's
  response (a cancelled turn's agent may still report a tool ending) belongs to the finished
  turn and is dropped until the next :meth:`AcpUpdateMapper.begin`; after it, a
  ``tool_call_update`` of a call started in an earlier turn, or a chunk whose ``messageId`` was
  seen in an earlier turn, is dropped too — never credited to the new turn. A ``usage_update``
  after the response (kimi sends one there) is reported under the finished turn's id and does
  not become the next turn's usage — also when it arrives after the next prompt went out: a
  ``usage_update`` before any output of a turn is the previous turn's.
* Trailing usage. Kimi Code 2.1 sends its only ``usage_update`` of a turn when the turn ends,
  built asynchronously (``AcpSession.onTurnEnded`` → ``emitUsageUpdate``: a catalog lookup and a
  context count, then the notification): mostly ~1 ms *after* the prompt's response, seconds
  after it on a loaded machine, sometimes just *before* it (then the turn simply has it when it
  ends). Its rule (:attr:`AcpUpdateMapper.usage_rule`, read from its source): one
  ``usage_update`` for every prompt that launched a turn — completed, failed, refused or
  cancelled — while the session's model is one of its catalog's (the ``model`` config option's
  ``currentValue`` among its ``options``: :func:`model_in_catalog`, from the
  ``session/new``/``session/load`` result and every ``config_option_update``); none for a slash
  command it answers itself (:func:`slash_command`: ``/help``, ``/usage``, an unknown ``/name``;
  a skill's ``/name`` runs a turn, whose usage is reported under its id when it comes), a prompt
  refused with a JSON-RPC error, or a model outside the catalog. A turn that ended normally
  without usage and is *promised* its ``usage_update`` by that rule is *held* by
  :meth:`AcpUpdateMapper.finish` and given out with the ``usage_update`` that follows — the
  driver waits for it however late it comes (:attr:`AcpUpdateMapper.promised`; released early
  only by the process's end, an interrupt or the run's own timeouts, and after the driver's
  ``promised_usage_wait`` — a bound against an agent that breaks its rule:
  :meth:`AcpUpdateMapper.release`).
  Cancelled and refused turns end at their response; their usage is reported under their id when
  it comes (before the next turn's output: the rule says which earlier turn still expects one).
  Without the rule (another agent, or a Kimi session whose result named no model option) the
  mapper *learns* it (:attr:`AcpUpdateMapper.trailing_usage`): an agent that sends a
  ``usage_update`` after a response is held for it from then on, bounded by the driver's
  ``usage_wait`` (best effort). A turn released without its usage is *owed* it: the next
  ``usage_update`` (while a later turn has no output yet, or waits for its own) is reported
  under the owed turn's id, never as the later turn's usage. In the learned mode a turn still
  owed its usage when the next one ends got none: the agent is taken not to send them, and turns
  end at their response again.
* ``session/request_permission`` → :func:`permission_request` / :func:`permission_result`:
  the decision picks an offered option **by kind** (``allow_once``, ``allow_always``,
  ``reject_once``, ``reject_always``), never by a guessed id; CANCEL (or no rejecting option)
  answers ``{"outcome": {"outcome": "cancelled"}}``.
* Gemini's session files (:func:`gemini_kept_name`, :func:`gemini_chat_dirs`): what the
  driver needs to keep a conversation loadable within the minute it was written (see
  :mod:`alice_trio.sessions.acp`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Container, Mapping
from typing import Any

import attrs

from ..file_changes import FileChange, FileChangeKind, format_file_changes, merge_changes
from ..models import EventKind, QuestionInfo, QuestionOption, TurnEvent, TurnQuestion, Usage
from ..providers.base import as_int, as_list, as_map, as_str
from .approval import ApprovalDecision, ApprovalOption, ApprovalRequest

__all__ = [
    "PROTOCOL_VERSION",
    "AcpUpdateMapper",
    "cancel_params",
    "current_models",
    "gemini_chat_dirs",
    "gemini_kept_name",
    "gemini_short_id",
    "initialize_params",
    "load_session_params",
    "model_in_catalog",
    "new_session_params",
    "permission_request",
    "permission_result",
    "prompt_params",
    "result_usage",
    "set_model_params",
    "slash_command",
]

PROTOCOL_VERSION = 1

_QUIET = frozenset(
    {
        "available_commands_update", "current_mode_update", "session_info_update", "plan",
        "config_option_update", "config_options_update",
    }
)  # fmt: skip


def initialize_params() -> dict[str, Any]:
    return {
        "protocolVersion": PROTOCOL_VERSION,
        "clientCapabilities": {
            "fs": {"readTextFile": False, "writeTextFile": False},
            "terminal": False,
        },
    }


def new_session_params(cwd: str) -> dict[str, Any]:
    return {"cwd": cwd, "mcpServers": []}


def load_session_params(session_id: str, cwd: str) -> dict[str, Any]:
    return {"sessionId": session_id, "cwd": cwd, "mcpServers": []}


def prompt_params(session_id: str, text: str) -> dict[str, Any]:
    return {"sessionId": session_id, "prompt": [{"type": "text", "text": text}]}


def cancel_params(session_id: str) -> dict[str, Any]:
    return {"sessionId": session_id}


def set_model_params(session_id: str, model_id: str) -> dict[str, Any]:
    """``session/set_model`` (gemini 0.61 and Kimi Code 2.1 answer ``{}``; the next prompt runs
    on the model; Kimi Code refuses a model its config.toml does not name with -32603)."""
    return {"sessionId": session_id, "modelId": model_id}


# gemini-cli 0.61 ChatRecordingService.initialize names a new conversation's file
# ``session-<YYYY-MM-DDTHH-MM>-<sanitized session id, first 8 chars>.jsonl`` (UTC, by the minute;
# older versions wrote ``.json``). SessionSelector finds a session by the ``sessionId`` inside
# any ``session-*.json[l]`` of the project's ``chats`` dir. Its startup cleanup
# (cleanupExpiredSessions) deletes every file without resumable content and, with it, every
# file whose name ends in ``-<that file's short id>.json[l]`` (SHORT_ID_REGEX).
_GEMINI_CHAT = re.compile(r"session-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2})-([A-Za-z0-9_-]{8})(\.jsonl?)")


def gemini_short_id(session_id: str) -> str:
    """The id part of gemini's file name: ``sanitizeFilenamePart(id).slice(0, 8)``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", session_id)[:8]


def gemini_kept_name(file_name: str, session_id: str, taken: Container[str] = ()) -> str:
    """The name to move ``file_name`` to, or ``""`` when it is not one of gemini's own
    per-minute names for ``session_id``.

    ``session-2026-12-01T14-00-70b1459c.jsonl`` → ``session-2026-12-01T14-00-70b1459c-kept.jsonl``
    (``-kept-2``, ``-kept-3``, … when a name is in ``taken``). Gemini still finds the session in
    it (by the ``sessionId`` inside, any ``session-*.jsonl``), but never creates that name
    (so no later recording lands in it by name) and its cleanup never matches it by short id
    (the name does not end in ``-<8 alphanumerics>.jsonl``)."""
    m = _GEMINI_CHAT.fullmatch(file_name)
    if m is None or not session_id or m.group(2) != gemini_short_id(session_id):
        return ""
    stamp, short, ext = m.groups()
    for n in itertools.count(1):
        name = f"session-{stamp}-{short}-kept{f'-{n}' if n > 1 else ''}{ext}"
        if name not in taken:
            return name
    raise AssertionError("unreachable")  # pragma: no cover


def gemini_chat_dirs(gemini_dir: str, cwd_candidates: list[str], registry: Any) -> list[str]:
    """The ``chats`` dirs gemini 0.61 may keep a project's sessions in: ``<gemini_dir>/tmp/
    <slug>/chats`` for the slug ``projects.json`` (``registry``, parsed) gives the project
    root, and the pre-registry ``tmp/<sha256(root)>/chats``. Paths only, no I/O."""
    projects = registry.get("projects") if isinstance(registry, Mapping) else None
    names: list[str] = []
    for root in cwd_candidates:
        slug = projects.get(root) if isinstance(projects, Mapping) else None
        if isinstance(slug, str) and slug and "/" not in slug and slug not in (".", ".."):
            names.append(slug)
        names.append(hashlib.sha256(root.encode()).hexdigest())
    return [f"{gemini_dir}/tmp/{n}/chats" for n in dict.fromkeys(names)]


def current_models(result: Any) -> frozenset[str]:
    """The names a ``session/new`` / ``session/load`` result gives the current model:
    ``models.currentModelId`` (gemini), the ``model`` config option's current value and that
    option's display name (Kimi Code: ``__kimi_env_model__`` named ``fake-kimi-model``)."""
    r: Mapping[str, Any] = result if isinstance(result, Mapping) else {}
    names: set[str] = set()
    models = r.get("models")
    if isinstance(models, Mapping) and as_str(models.get("currentModelId")):
        names.add(as_str(models.get("currentModelId")))
    for option in r.get("configOptions") or ():
        if not (isinstance(option, Mapping) and as_str(option.get("id")) == "model"):
            continue
        value = as_str(option.get("currentValue"))
        if value:
            names.add(value)
        for choice in option.get("options") or ():
            if isinstance(choice, Mapping) and as_str(choice.get("value")) == value:
                if as_str(choice.get("name")):
                    names.add(as_str(choice.get("name")))
    return frozenset(names)


def model_in_catalog(config_options: Any) -> bool | None:
    """Whether the ``model`` config option's ``currentValue`` is one of its ``options``
    (Kimi Code 2.1 lists its model catalog there; it reports usage only for such a model);
    ``None`` when ``config_options`` (a list) has no model option."""
    for option in config_options if isinstance(config_options, list) else ():
        if isinstance(option, Mapping) and as_str(option.get("id")) == "model":
            current = as_str(option.get("currentValue"))
            values = {
                as_str(choice.get("value"))
                for choice in as_list(option.get("options"))
                if isinstance(choice, Mapping)
            }
            return bool(current) and current in values
    return None


def slash_command(text: str) -> bool:
    """Kimi Code 2.1's slash intent (``parseSlashInput``): ``/`` then a name without ``/``.
    It answers its builtins and unknown names itself, without a turn (and without usage)."""
    if not text.startswith("/"):
        return False
    rest = text[1:].strip()
    return bool(rest) and "/" not in rest.split(" ", 1)[0]


def _content_text(content: Any) -> str:
    """Text of an ACP content block (or list of blocks); other block types give ""."""
    if isinstance(content, list):
        return "".join(_content_text(c) for c in content)
    if not isinstance(content, Mapping):
        return ""
    text = content.get("text")
    if content.get("type") == "text" and isinstance(text, str):
        return text
    if content.get("type") == "content":  # tool call content wrapper
        return _content_text(content.get("content"))
    return ""


def result_usage(result: Any) -> Usage | None:
    """Usage of a ``session/prompt`` result: ``usage`` (ACP) or ``_meta.quota.token_count``
    (gemini); ``None`` when it has neither."""
    if not isinstance(result, Mapping):
        return None
    usage = result.get("usage")
    if isinstance(usage, Mapping):
        return Usage(
            input_tokens=as_int(usage.get("inputTokens")),
            cached_input_tokens=as_int(usage.get("cachedReadTokens")),
            output_tokens=as_int(usage.get("outputTokens")),
        )
    meta = result.get("_meta")
    quota = meta.get("quota") if isinstance(meta, Mapping) else None
    tc = quota.get("token_count") if isinstance(quota, Mapping) else None
    if isinstance(tc, Mapping):
        return Usage(
            input_tokens=as_int(tc.get("input_tokens")),
            cached_input_tokens=as_int(tc.get("cached_input_tokens")),
            output_tokens=as_int(tc.get("output_tokens")),
        )
    return None


class AcpUpdateMapper:
    """Pure state machine over one ACP session's updates (see the module docstring).

    :meth:`begin` sets the turn that later updates belong to. While :attr:`replaying` is true
    (a ``session/load`` history replay) updates are counted in :attr:`replayed` and produce
    nothing.
    """

    def __init__(
        self,
        *,
        provider: str,
        session_id: str = "",
        trailing_usage: bool = False,
        usage_rule: bool = False,
    ) -> None:
        self.provider = provider
        #: learned: the agent reports a turn's usage just after the prompt's response
        self.trailing_usage = trailing_usage
        #: the agent follows Kimi Code 2.1's usage rule (module docstring)
        self.usage_rule = usage_rule
        #: the session's model is in the agent's catalog (:func:`model_in_catalog`), if known
        self.catalog_model: bool | None = None
        self._slash = False  # the current turn's prompt is a slash command
        self._held: TurnEvent | None = None  # a terminal event waiting for its trailing usage
        self._held_promised = False  # ... that the agent's rule promises
        # the rule's bookkeeping: the current turn's usage_update came before its response;
        # the current / the previous turn still expects its usage_update
        self._seen = False
        self._expects = False
        self._prev_expects = False
        self._owed = ""  # a turn released without its trailing usage: the next one is its
        self.session_id = session_id
        self.turn_id = ""
        self.replaying = False
        self.replayed = 0
        self._text: list[str] = []
        self._text_raw = ""
        self._text_id: Any = None
        self._thought: list[str] = []
        self._thought_raw = ""
        self._tools: dict[str, dict[str, str]] = {}
        self._tool_paths: dict[str, list[str]] = {}  # tool call id -> its locations' paths
        self._context_usage: Usage | None = None
        self._ended = False  # the current turn got its terminal event
        self._output = False  # an update of the current turn's own came (not quiet, not usage)
        self._previous_turn = ""  # the turn before the current one
        self._turn_of: dict[str, str] = {}  # tool call / message id -> turn that started it
        self.dropped = 0  # late updates of finished turns

    @property
    def holding(self) -> bool:
        """A finished turn's terminal event waits for the ``usage_update`` after it."""
        return self._held is not None

    @property
    def promised(self) -> bool:
        """The held terminal event's ``usage_update`` is promised by the agent's rule: the
        driver waits for it however late, within ``promised_usage_wait`` (see the module
        docstring)."""
        return self._held is not None and self._held_promised

    def _rule_known(self) -> bool:
        return self.usage_rule and self.catalog_model is not None

    def note_config(self, config_options: Any) -> None:
        """The session's config options (a ``session/new``/``session/load`` result's
        ``configOptions``, a ``config_option_update``): whether its model is in the catalog."""
        known = model_in_catalog(config_options)
        if known is not None:
            self.catalog_model = known

    def release(self) -> list[TurnEvent]:
        """The held terminal event (without the usage that did not come), or nothing."""
        held, self._held = self._held, None
        self._held_promised = False
        if held is None:
            return []
        self._owed = held.turn_id  # its usage_update is late: when it comes, it is that turn's
        return [held]

    def begin(self, turn_id: str, prompt: str = "") -> None:
        """A new turn (``prompt``: its text, for :func:`slash_command`)."""
        self._slash = slash_command(prompt)
        if self._owed and not self.trailing_usage and not self._rule_known():
            self._owed = ""  # given up on: a usage_update from now on is its own turn's
        if turn_id != self.turn_id:
            self._previous_turn = self.turn_id
            self._prev_expects = self._expects
        self._expects = self._seen = False
        self.turn_id = turn_id
        self._context_usage = None
        self._ended = False
        self._output = False

    def _late(self, key: str) -> bool:
        """Whether an update keyed ``key`` (tool call or message id) belongs to a finished turn;
        a new key is recorded as the current turn's."""
        if not key:
            return False
        owner = self._turn_of.setdefault(key, self.turn_id)
        return owner != self.turn_id

    def _event(self, kind: EventKind, raw: str, **kw: Any) -> TurnEvent:
        return TurnEvent(kind=kind, thread_id=self.session_id, turn_id=self.turn_id, raw=raw,
                         provider=self.provider, **kw)  # fmt: skip

    def flush(self) -> list[TurnEvent]:
        out: list[TurnEvent] = []
        text = "".join(self._text)
        if text.strip():
            out.append(self._event(EventKind.ASSISTANT_TEXT, self._text_raw, text=text))
        thought = "".join(self._thought)
        if thought.strip():
            out.append(self._event(EventKind.REASONING, self._thought_raw, text=thought))
        self._text, self._thought, self._text_id = [], [], None
        return out

    def feed(self, params: Any, raw: str = "") -> list[TurnEvent]:
        if not isinstance(params, Mapping):
            return [self._event(EventKind.UNKNOWN, raw, text="session/update without params")]
        update = params.get("update")
        if not isinstance(update, Mapping):
            return [self._event(EventKind.UNKNOWN, raw, text="session/update without update")]
        kind = as_str(update.get("sessionUpdate"))
        if kind in ("config_option_update", "config_options_update"):
            self.note_config(update.get("configOptions"))
        if self.replaying:
            self.replayed += 1
            return []
        if self.turn_id and kind not in _QUIET and kind != "usage_update":
            key = as_str(update.get("toolCallId")) if kind.startswith("tool_call") else ""
            if kind in ("agent_message_chunk", "agent_thought_chunk") and update.get("messageId"):
                key = f"message:{as_str(update.get('messageId'))}"
            if self._ended or self._late(key):
                self.dropped += 1
                return []
        if kind not in _QUIET and kind != "usage_update":
            self._output = True
        if kind == "agent_message_chunk":
            msg_id = update.get("messageId")
            out = []
            if self._thought or (msg_id is not None and self._text and msg_id != self._text_id):
                out = self.flush()
            self._text.append(_content_text(update.get("content")))
            self._text_raw, self._text_id = raw, msg_id
            return out
        if kind == "agent_thought_chunk":
            out = self.flush() if self._text else []
            self._thought.append(_content_text(update.get("content")))
            self._thought_raw = raw
            return out
        out = self.flush()
        if kind in _QUIET:
            return out
        if kind == "user_message_chunk":
            text = _content_text(update.get("content"))
            return out + ([self._event(EventKind.USER_TEXT, raw, text=text)] if text else [])
        if kind in ("tool_call", "tool_call_update"):
            return out + self._tool(update, raw, new=kind == "tool_call")
        if kind == "usage_update":
            used, size = as_int(update.get("used")), as_int(update.get("size"))
            usage = Usage(input_tokens=used)
            text = f"context {used}/{size} tokens" if size else f"context {used} tokens"
            event = self._event(EventKind.USAGE, raw, text=text, usage=usage)
            earlier = self._usage_of_earlier_turn()
            if earlier:
                self.trailing_usage = True
                return [*out, attrs.evolve(event, turn_id=earlier)]
            if not self._ended:
                # Kimi Code sends it at the turn's end, sometimes just before the response
                self._context_usage = usage
                self._seen = True
            elif self._held is None:
                self.trailing_usage = True
            self._expects = False
            out.append(event)
            if self._held is not None:  # the held terminal event, given out with its usage
                out.append(attrs.evolve(self._held, usage=usage))
                self._held, self._held_promised = None, False
            return out
        return [*out, self._event(EventKind.UNKNOWN, raw, text=f"ACP update {kind!r}")]

    def _usage_of_earlier_turn(self) -> str:
        """The turn a ``usage_update`` arriving now belongs to when it is not the current (or
        held) turn's, else "". Kimi sends it just after the prompt's response: then it is the
        finished turn's and never the next turn's terminal usage — also when the next prompt
        went out before it arrived. The late usage of a turn whose end stopped waiting for it
        (:meth:`release`) is that turn's (one ``usage_update`` per turn, in order); one before
        any output of this turn is the previous turn's (an agent reports a step's context use
        after the step's output)."""
        owed, self._owed = self._owed, ""
        late = self._held is not None or not self._output or self._ended
        if owed and owed != self.turn_id and late:
            return owed
        if self.turn_id and not self._output and self._previous_turn and not self._ended:
            if self._prev_expects or not self._rule_known():  # by the rule: only one it owes
                self._prev_expects = False
                return self._previous_turn
        return ""

    def _tool(self, update: Mapping[str, Any], raw: str, *, new: bool) -> list[TurnEvent]:
        tid = as_str(update.get("toolCallId"))
        known = self._tools.setdefault(tid, {"title": "", "kind": "", "status": "", "command": ""})
        for key in ("title", "kind"):
            if as_str(update.get(key)):
                known[key] = as_str(update.get(key))
        command = _tool_command(update)
        if command:
            known["command"] = command
        paths = [
            as_str(loc.get("path"))
            for loc in as_list(update.get("locations"))
            if isinstance(loc, Mapping) and as_str(loc.get("path"))
        ]
        if paths:
            self._tool_paths[tid] = paths
        status = as_str(update.get("status"))
        if not new and (not status or status == known["status"]):
            return []  # a content-only update: nothing new to show
        known["status"] = status or known["status"]
        text = known["title"] or tid
        if known["kind"]:
            text += f" [{known['kind']}]"
        if known["status"]:
            text += f" status=`{known['status']}`"
        out = [self._event(EventKind.TOOL_USE, raw, text=text)]
        if known["status"] in ("completed", "failed"):
            self._tools.pop(tid, None)
            paths = self._tool_paths.pop(tid, [])
            change = _FILE_KINDS.get(known["kind"])
            if known["status"] == "completed" and change is not None and paths:
                files = merge_changes(FileChange(path=p, kind=change) for p in paths)
                out.append(
                    self._event(
                        EventKind.FILE_CHANGE, raw, text=format_file_changes(files),
                        files=tuple(files),
                    )
                )  # fmt: skip
        return out

    def tool_info(self, tool_id: str) -> dict[str, str]:
        """What the updates said so far about a running tool call (title, kind, command)."""
        return dict(self._tools.get(tool_id, {}))

    def finish(self, result: Any, raw: str = "") -> list[TurnEvent]:
        """The prompt's response: flush, then the terminal event of the current turn."""
        out = self.flush()
        self._ended = True
        stop = as_str(result.get("stopReason")) if isinstance(result, Mapping) else ""
        usage = result_usage(result) or self._context_usage
        if self._rule_known():  # one usage_update per turn it ran; it may precede the response
            self._expects = (
                self.catalog_model is True and not self._slash and not self._seen
                and result_usage(result) is None
            )  # fmt: skip
        if stop == "cancelled":
            out.append(self._event(EventKind.TURN_INTERRUPTED, raw, usage=usage))
        elif stop == "refusal":
            out.append(self._event(EventKind.ERROR, raw, error="the agent refused the prompt",
                                   usage=usage))  # fmt: skip
        else:
            text = "" if stop in ("", "end_turn") else f"stop reason: {stop}"
            done = self._event(EventKind.TURN_COMPLETED, raw, text=text, usage=usage or Usage())
            if self._rule_known():  # the agent's own rule says whether a usage_update follows
                hold = promised = self._expects
            else:
                if self._owed and self._owed != self.turn_id:
                    # the turn before this one is still owed its usage after a whole turn:
                    # this agent sent none, so turns end at their response again — until a
                    # usage_update after one (a late one is still the owed turn's)
                    self.trailing_usage = False
                hold, promised = self.trailing_usage, False
            if hold and result_usage(result) is None:
                self._held = done  # given out with the usage_update that follows
                self._held_promised = promised
            else:
                out.append(done)
        return out


# -- permissions ---------------------------------------------------------------------------------

_TOOL_KIND = {"execute": "command", "edit": "file_change", "delete": "file_change",
              "move": "file_change"}  # fmt: skip


#: ACP tool kinds that change files (the spec's ``ToolKind``) -> what their locations were
_FILE_KINDS = {
    "edit": FileChangeKind.WRITTEN,
    "delete": FileChangeKind.DELETED,
    "move": FileChangeKind.WRITTEN,
}


def _tool_command(update: Mapping[str, Any]) -> str:
    """The shell command of a tool call: ``rawInput.command``, else a JSON content text with a
    ``command`` (Kimi Code streams its arguments that way)."""
    raw_input = update.get("rawInput")
    if isinstance(raw_input, Mapping) and as_str(raw_input.get("command")):
        return as_str(raw_input.get("command"))
    text = _content_text(update.get("content")).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return ""
        if isinstance(data, dict):
            return as_str(data.get("command"))
    return ""


def permission_request(
    params: Any,
    *,
    provider: str,
    turn_id: str = "",
    method: str = "session/request_permission",
    known: Mapping[str, str] | None = None,
) -> ApprovalRequest:
    """``known``: what earlier updates said about the same tool call
    (:meth:`AcpUpdateMapper.tool_info`); Kimi Code's request names only the tool ("Bash") while
    its updates carried the kind and the command. gemini's title of an ``execute`` call is the
    command itself."""
    p: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
    tool = as_map(p.get("toolCall"))
    options = tuple(
        ApprovalOption(id=as_str(o.get("optionId")), name=as_str(o.get("name")),
                       kind=as_str(o.get("kind")))
        for o in as_list(p.get("options")) if isinstance(o, Mapping)
    )  # fmt: skip
    title = as_str(tool.get("title"))
    detail = _content_text(tool.get("content")).strip()
    seen = known or {}
    kind = as_str(tool.get("kind")) or seen.get("kind", "")
    command = _tool_command(tool) or seen.get("command", "")
    if not command and kind == "execute":
        command = title
    paths = tuple(
        as_str(loc.get("path")) for loc in as_list(tool.get("locations"))
        if isinstance(loc, Mapping) and as_str(loc.get("path"))
    )  # fmt: skip
    summary = title + (f" ({detail})" if detail and detail != title else "")
    question = _question(tool if isinstance(tool, Mapping) else {}, options, detail)
    if question is not None:
        return ApprovalRequest(
            provider=provider, kind="question", summary=detail, options=options,
            question=question, thread_id=as_str(p.get("sessionId")), turn_id=turn_id,
            method=method, params=p,
        )  # fmt: skip
    return ApprovalRequest(
        provider=provider, kind=_TOOL_KIND.get(kind, "tool"),
        summary=summary or "use a tool", command=command, paths=paths, options=options,
        thread_id=as_str(p.get("sessionId")), turn_id=turn_id, method=method, params=p,
    )  # fmt: skip


_PREFERENCE = {
    ApprovalDecision.ACCEPT: ("allow_once", "allow_always"),
    ApprovalDecision.ACCEPT_FOR_SESSION: ("allow_always", "allow_once"),
    ApprovalDecision.DECLINE: ("reject_once", "reject_always"),
    ApprovalDecision.CANCEL: (),
}


_QUESTION_OPTION = re.compile(r"^q\d+_(opt_\d+|skip)$")


def _question(
    tool: Mapping[str, Any], options: tuple[ApprovalOption, ...], text: str
) -> TurnQuestion | None:
    """Kimi Code 2.1 asks its ``AskUserQuestion`` as a permission request (recorded
    2026-12-01): ``toolCall.title`` ``AskUserQuestion``, the question as the content text, one
    ``allow_once`` option per answer (``q0_opt_<n>``, named by the label) and a
    ``reject_once`` ``q0_skip``."""
    named = as_str(tool.get("title")) == "AskUserQuestion"
    if not options or not text:
        return None
    if not (named or all(_QUESTION_OPTION.match(o.id) for o in options)):
        return None
    answers = tuple(
        QuestionOption(label=o.name) for o in options if o.kind.startswith("allow") and o.name
    )
    info = QuestionInfo(question=text, options=answers)
    return TurnQuestion(request_id=as_str(tool.get("toolCallId")), questions=(info,))


def permission_result(request: ApprovalRequest, answer: Any) -> dict[str, Any]:
    """The ``session/request_permission`` result for ``answer`` (see the module docstring).
    A question (Kimi Code's ``AskUserQuestion``) selects the option named by the answer to its
    question; no (matching) answer selects the skip option, else ``cancelled``."""
    if request.kind == "question":
        return _question_result(request, answer)
    decision = answer if isinstance(answer, ApprovalDecision) else ApprovalDecision.DECLINE
    for kind in _PREFERENCE[decision]:
        for option in request.options:
            if option.kind == kind and option.id:
                return {"outcome": {"outcome": "selected", "optionId": option.id}}
    return {"outcome": {"outcome": "cancelled"}}


def _question_result(request: ApprovalRequest, answer: Any) -> dict[str, Any]:
    if answer is ApprovalDecision.CANCEL:
        return {"outcome": {"outcome": "cancelled"}}
    chosen = ""
    if isinstance(answer, Mapping) and request.question is not None:
        info = request.question.questions[0]
        value = next(
            (answer[k] for k in (info.question, info.header, "0") if k and k in answer), None
        )
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        chosen = as_str(value) if value is not None else ""
    for option in request.options:
        if chosen and option.kind.startswith("allow") and option.name == chosen and option.id:
            return {"outcome": {"outcome": "selected", "optionId": option.id}}
    for option in request.options:
        if option.kind.startswith("reject") and option.id:
            return {"outcome": {"outcome": "selected", "optionId": option.id}}
    return {"outcome": {"outcome": "cancelled"}}
