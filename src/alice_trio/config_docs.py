"""The configuration reference, generated from the config classes.

``python -m alice_trio.config_docs --write docs/configuration.md`` rewrites the generated part
of the reference (between the ``BEGIN``/``END GENERATED`` markers); a test fails when the file
and the classes drift apart, or when a config field has no description here.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

import attrs

from . import generated_docs
from .config import DEFAULT_AUTH_STATUS_TIMEOUT, config_keys, yaml_key
from .models import APPROVAL_VALUES, SANDBOX_VALUES, ExecPolicy
from .providers.base import DEFAULT_TIMEOUT, CLIConfig, RunLimits
from .providers.registry import BUILTIN_MODULES, get_provider
from .sessions.scaling import ScalingConfig

__all__ = ["BEGIN", "END", "KEY_DOCS", "render", "splice"]

BEGIN = "<!-- BEGIN GENERATED (python -m alice_trio.config_docs --write docs/configuration.md) -->"
END = "<!-- END GENERATED -->"

#: top-level keys of the file
TOP_DOCS: dict[str, tuple[str, str, str]] = {
    "llm_profiles": ("mapping", "{}", "Profile name → profile (below). Names are trimmed and "
                     "lower-cased; two names that differ only in case are an error."),
    "default_profile": ("string", '""', "The profile used when a request names none. Required "
                        "when there are several profiles; with one profile, that one."),
    "env": ("mapping", "{}", "Environment variables for every agent CLI (a profile's `env` "
            "wins). Keys are trimmed (case kept); empty values are dropped."),
    "workspace_dir": ("string", '""', "Default working directory of every CLI (a profile's "
                      "`workspace_dir` and a request's win). Empty: the caller's cwd."),
    "auth_status_timeout_secs": ("number", f"{DEFAULT_AUTH_STATUS_TIMEOUT:g}",
                                 "Timeout of each `alice-trio doctor` check. Must be > 0."),
}  # fmt: skip

#: (class name or "*", YAML key) → description; "*" = every provider (CLIConfig fields)
KEY_DOCS: dict[tuple[str, str], str] = {
    ("*", "command"): "The agent CLI to run (a name on PATH or a path). Empty: the provider's "
    "default command.",
    ("*", "timeout_secs"): f"Overall timeout of one turn in seconds; <= 0 means "
    f"{DEFAULT_TIMEOUT:g} (48 h).",
    ("*", "idle_timeout_secs"): "Fail the turn when stdout is silent this long (seconds; "
    "a `SessionBackend` turn: no event of its conversation); null: no idle watchdog (codex "
    "one-shot: see its tiers).",
    ("*", "model"): "Default model (a request's `model` wins). Empty: the CLI's default.",
    ("*", "env"): "Environment variables for this profile, over the top-level `env` (a "
    "request's env wins). Values are never logged.",
    ("*", "workspace_dir"): "Working directory of the CLI (a request's wins).",
    ("*", "permissions"): "Exec policy: `sandbox` (" + ", ".join(SANDBOX_VALUES) + "), "
    "`ask_for_approval` (" + ", ".join(APPROVAL_VALUES) + "), `add_dirs` (extra writable "
    "directories). Values are trimmed and lower-cased; empty = the provider's default.",
    ("*", "extra_args"): "Extra arguments appended to the CLI's argv (before the prompt).",
    ("*", "limits"): "Engine limits (see the `limits` table).",
    # codex
    ("CodexConfig", "reasoning_effort"): "`-c model_reasoning_effort=...` (low, medium, high, "
    "xhigh); also picks the idle-timeout tier. Lower-cased.",
    ("CodexConfig", "personality"): "`-c personality=...`. Lower-cased.",
    ("CodexConfig", "provider_profile"): "codex's own `-p <profile>` from its config.toml "
    "(empty: none). Never the alice-trio profile name.",
    ("CodexConfig", "default_idle_timeout_secs"): "Idle timeout when `idle_timeout_secs` is "
    "not set and the effort is neither high nor xhigh.",
    ("CodexConfig", "high_idle_timeout_secs"): "Idle timeout for reasoning effort `high`.",
    ("CodexConfig", "xhigh_idle_timeout_secs"): "Idle timeout for reasoning effort `xhigh`.",
    ("CodexConfig", "profile_overrides"): "Request profile name → `{command, timeout_secs, "
    "provider_profile, permissions}` used when a request carries that profile (spec §5.5).",
    ("CodexConfig", "codex_home"): "Sets `CODEX_HOME` for codex (its config.toml, auth and "
    "sessions; `~` expanded). Empty: codex's default (`~/.codex`) or the env's `CODEX_HOME`; "
    "an explicit `CODEX_HOME` in `env` wins.",
    # claude
    ("ClaudeConfig", "permission_mode"): '`--permission-mode` (default bypassPermissions; "" '
    "omits the flag).",
    ("ClaudeConfig", "is_sandbox"): "Set `IS_SANDBOX=1`, which claude requires for "
    "bypassPermissions as root. Only where the agent really is sandboxed.",
    ("ClaudeConfig", "include_partial_messages"): "Ask for `stream_event` lines (keeps an idle "
    "watchdog fed during long replies).",
    ("ClaudeConfig", "allowed_tools"): "`--allowedTools` entries (tool names or patterns).",
    ("ClaudeConfig", "session_id"): "UUID for a new session (`--session-id`); unused when "
    "resuming.",
    # gemini
    ("GeminiConfig", "yolo"): "Pass `--yolo` (default true) unless `approval_mode` is set.",
    ("GeminiConfig", "approval_mode"): "`--approval-mode` (default, auto_edit, yolo, plan); "
    "replaces `--yolo`.",
    ("GeminiConfig", "trust_workspace"): "Set `GEMINI_CLI_TRUST_WORKSPACE=true` (headless "
    "gemini exits 55 in an untrusted folder).",
    ("GeminiConfig", "no_relaunch"): "Set `GEMINI_CLI_NO_RELAUNCH=true` (one process, faster "
    "start).",
    ("GeminiConfig", "session_id"): "UUID for a new session (`--session-id`).",
    ("GeminiConfig", "prompt_via"): "`stdin` (default) or `argv` (`--prompt=<text>`; a prompt "
    "over 128 KiB or with a NUL byte is then a ConfigError before spawning).",
    ("GeminiConfig", "session_protocol"): "Interactive sessions: `acp` (default; one "
    "long-lived `gemini --acp`, real interrupt) or `oneshot` (one `gemini -p` per turn, input "
    "queued while busy).",
    # kimi
    ("KimiConfig", "flavor"): "`code` (Kimi Code 2.x, npm @moonshot-ai/kimi-code) or `legacy` "
    "(PyPI kimi-cli 1.50–1.51; its interactive mode is the wire protocol). Kimi Code takes the "
    "prompt only in argv: a prompt over 128 KiB (Linux MAX_ARG_STRLEN) or with a NUL byte is a "
    "ConfigError before spawning; `legacy` reads it on stdin.",
    ("KimiConfig", "yolo"): "Pass `--yolo` (off: print/prompt modes already auto-approve).",
    ("KimiConfig", "disable_telemetry"): "Set `KIMI_DISABLE_TELEMETRY=1` (saves ~3 s per run).",
    ("KimiConfig", "disable_auto_update"): "Set `KIMI_CODE_NO_AUTO_UPDATE=1` / "
    "`KIMI_CLI_NO_AUTO_UPDATE=1`.",
    # opencode
    ("OpenCodeConfig", "variant"): "Default `--variant` (provider-specific effort). Lower-cased.",
    ("OpenCodeConfig", "agent"): "Default `--agent`.",
    ("OpenCodeConfig", "profile_overrides"): "Request profile name → opencode agent.",
    ("OpenCodeConfig", "thinking"): "Pass `--thinking` (reasoning events).",
    ("OpenCodeConfig", "auto_approve"): "Pass `--auto` (approve permission requests).",
    ("OpenCodeConfig", "max_unknown_steps"): "End a run looping on reason-less steps after "
    "this many in a row (0: never).",
    ("OpenCodeConfig", "server_url"): "A running `opencode serve` to attach to (interactive "
    "sessions; the one-shot ignores it).",
    # replay
    ("ReplayConfig", "transcript"): "File to replay (timeline .jsonl, capture .json or raw "
    "stdout). Empty: the packaged codex transcript.",
    ("ReplayConfig", "decode_as"): "Provider whose decoder reads the transcript.",
    ("ReplayConfig", "speed"): "Time factor (2 = twice as fast, 0 = no delays).",
    # RunLimits
    # scaling (sessions/scaling.py; SessionBackend only)
    ("ScalingConfig", "share"): "Put conversations on shared agent processes where the "
    "protocol allows (codex, gemini ACP, Kimi Code, opencode; see docs/scaling.md).",
    ("ScalingConfig", "warm"): "Spare conversations started ahead of need, so a new "
    "conversation's first run costs what a warm run costs. 0: none.",
    ("ScalingConfig", "max_processes"): "Agent processes per backend (0: no bound); a new one "
    "waits in FIFO order after spares and idle conversations were closed to make room.",
    ("ScalingConfig", "max_conversations"): "Live conversations per backend (0: no bound); the "
    "least recently used idle one is closed and resumes by thread id on its next run.",
    ("ScalingConfig", "max_turns"): "Turns running at once (0: no bound); the rest wait in "
    "FIFO order and `on_progress` says so.",
    ("ScalingConfig", "host_capacity"): "Conversations per shared process: live ones "
    "(opencode), or every one it opened for an agent that keeps a closed conversation loaded "
    "(codex, gemini, Kimi Code: the process then takes no more and closes when its last one "
    "ends).",
    ("ScalingConfig", "spare_retry"): "Seconds before a spare that failed to start is tried "
    "again (doubling, at most 300).",
    ("ScalingConfig", "close_unresumable"): "Let `idle_ttl` and `max_conversations` close a "
    "conversation the agent cannot resume (an ACP agent without `loadSession`); its context is "
    "then lost. Off: such a conversation stays open, and a new one at the bound fails with "
    "`ConversationLimitError`.",
    ("RunLimits", "kill_grace_secs"): "SIGTERM to the process group, this long, then SIGKILL.",
    ("RunLimits", "drain_timeout_secs"): "After the final event, how long the CLI may take to "
    "exit by itself before it is killed.",
    ("RunLimits", "max_line_bytes"): "Longest accepted stdout line (> 0).",
    ("RunLimits", "line_policy"): "A longer line fails the run (`error`) or is skipped (`skip`).",
    ("RunLimits", "stderr_tail_bytes"): "How much of stderr's end is kept for error messages.",
    ("RunLimits", "callback_buffer"): "Events buffered for slow progress callbacks.",
    ("RunLimits", "sweep"): "After the run, kill processes of the run that escaped its group.",
    ("RunLimits", "keep_background"): "Skip that sweep after a successful run.",
    ("RunLimits", "file_changes"): (
        "Stat the workspace before and after each turn and report the files no write/edit tool "
        "event named (tool events are reported either way)."
    ),
    ("RunLimits", "file_changes_max_files"): (
        "A workspace with more entries than this is not snapshotted."
    ),
    # ExecPolicy (permissions)
    ("ExecPolicy", "sandbox"): "One of " + ", ".join(SANDBOX_VALUES) + "; empty: the provider's "
    "default (codex: workspace-write).",
    ("ExecPolicy", "ask_for_approval"): "One of " + ", ".join(APPROVAL_VALUES) + "; empty: the "
    "provider's default (codex: never).",
    ("ExecPolicy", "add_dirs"): "Extra writable directories (trimmed, empties dropped, "
    "duplicates removed).",
    # ProfileOverride (codex profile_overrides values)
    ("ProfileOverride", "command"): "Replaces `command` (when non-empty).",
    ("ProfileOverride", "timeout_secs"): "Replaces `timeout_secs` (when > 0).",
    ("ProfileOverride", "provider_profile"): "codex `-p` for this request profile (empty: none).",
    ("ProfileOverride", "permissions"): "Merged over the profile's permissions.",
}


def _type_name(t: Any) -> str:
    if t is str:
        return "string"
    if t is bool:
        return "bool"
    if t is int:
        return "integer"
    if t is float:
        return "number"
    args = set(typing.get_args(t))
    if args == {float, type(None)}:
        return "number or null"
    non_null = [x for x in args if x is not type(None)]
    if len(non_null) == 1 and type(None) in args and attrs.has(non_null[0]):
        return "mapping or null"
    origin = typing.get_origin(t)
    if origin is tuple:
        return "list of strings"
    if (origin is not None and "Mapping" in str(origin)) or origin is dict:
        return "mapping"
    if attrs.has(t):
        return "mapping"
    return str(t)


def _default(a: attrs.Attribute[Any]) -> str:
    d = a.default
    if isinstance(d, attrs.Factory):  # type: ignore[arg-type]
        d = d.factory()  # type: ignore[union-attr]
    if d is None:
        return "null"
    if isinstance(d, bool):
        return "true" if d else "false"
    if isinstance(d, str):
        return f'`"{d}"`' if d else '""'
    if isinstance(d, float):
        return f"{d:g}"
    if isinstance(d, (dict, tuple, list)) and not d:
        return "{}" if isinstance(d, dict) else "[]"
    if attrs.has(type(d)):
        return "(see table)"
    return f"{d}"


def describe(cl: type, key: str) -> str | None:
    for klass in cl.__mro__:
        text = KEY_DOCS.get((klass.__name__, key))
        if text:
            return text
    if issubclass(cl, CLIConfig):
        return KEY_DOCS.get(("*", key))
    return None


def missing_docs(classes: list[type]) -> list[str]:
    """``Class.key`` for every field without a description (the test wants none)."""
    out = []
    for cl in classes:
        for key in config_keys(cl):
            if describe(cl, key) is None:
                out.append(f"{cl.__name__}.{key}")
    return out


def _table(cl: type, keys: list[str] | None = None) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    fields = attrs.fields(attrs.resolve_types(cl))
    for a in fields:
        key = yaml_key(cl, a)
        if keys is not None and key not in keys:
            continue
        text = (describe(cl, key) or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(a.type)} | {_default(a)} | {text} |")
    return rows


def builtin_classes() -> list[type]:
    classes: list[type] = [get_provider(n).config_class for n in BUILTIN_MODULES]
    from .providers.codex import ProfileOverride

    return [*classes, RunLimits, ProfileOverride, ExecPolicy, ScalingConfig]


def render() -> str:
    """The generated part of docs/configuration.md."""
    out: list[str] = [BEGIN, "", "### Top-level keys", ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, (typ, default, text) in TOP_DOCS.items():
        out.append(f"| `{key}` | {typ} | {default} | {text} |")
    common = config_keys(CLIConfig)
    out += ["", "### Keys of every profile", ""]
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    out += [
        "| `provider` | string | (required) | The provider: "
        + ", ".join(f"`{n}`" for n in BUILTIN_MODULES)
        + " or one registered through the `alice_trio.providers` entry point. Lower-cased. |",
        '| `description` | string | "" | Free text, shown by tools. |',
        "| `scaling` | mapping | (see table) | Shared processes, warm pool and admission "
        "bounds of a `SessionBackend` (see the `scaling` table). |",
    ]
    out += _table(CLIConfig)[2:]
    for name in BUILTIN_MODULES:
        provider = get_provider(name)
        cl = provider.config_class
        own = [k for k in config_keys(cl) if k not in common]
        out += ["", f"### `provider: {name}` ({cl.__name__})", ""]
        out += [f"{provider.description}. Default command: `{_command(provider)}`.", ""]
        if own:
            out += _table(cl, own)
        else:
            out.append("No keys beyond the common ones.")
    from .providers.codex import ProfileOverride

    out += ["", "### `permissions`", "", *_table(ExecPolicy)]
    out += ["", "### `limits`", "", *_table(RunLimits)]
    out += ["", "### `scaling`", "", *_table(ScalingConfig)]
    out += ["", "### codex `profile_overrides` values", "", *_table(ProfileOverride)]
    out += ["", END]
    return "\n".join(out) + "\n"


def _command(provider: Any) -> str:
    return "python (sys.executable)" if provider.name == "replay" else provider.default_command


def splice(document: str, generated: str) -> str:
    """``document`` with its generated part replaced by ``generated``."""
    return generated_docs.splice(document, generated, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    return generated_docs.main("python -m alice_trio.config_docs", render, BEGIN, END, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
