"""alice_trio: drive AI coding-agent CLIs from trio.

One request in, one agent turn out: build the CLI command, stream progress while the agent
works, return the final reply, the thread id to resume with and the token usage; keep
long-lived interactive sessions; cancel fast and leave no process behind.

**The public API is what this module exports** (``__all__``; a test pins the list and checks
that the README and ``docs/*.md`` import nothing else). The same objects are reachable from the
public modules they are defined in — :mod:`alice_trio.errors`, :mod:`alice_trio.models`,
:mod:`alice_trio.config`, :mod:`alice_trio.routing`, :mod:`alice_trio.backend`,
:mod:`alice_trio.transcript`, :mod:`alice_trio.validation` and :mod:`alice_trio.file_changes`
(for provider authors), :mod:`alice_trio.providers` (``base``, ``record``, ``registry`` and
one module per provider), :mod:`alice_trio.sessions` (``session``, ``backend``, ``driver``,
``approval``) — and those modules' ``__all__`` names are public too.

Everything else is **internal** and may change in any release: :mod:`alice_trio.engine`
(except the switches documented in docs/process-cleanup.md: ``engine.reaper.configure`` /
``describe`` and ``engine.guardian.configure``), :mod:`alice_trio.transports`,
:mod:`alice_trio.protocols`, :mod:`alice_trio.framing`, :mod:`alice_trio.cli`, the session
drivers' own modules (``sessions.codex_app_server``, ``sessions.acp``, …: reach them through
the provider record), and the doc generators. Renaming 40 modules with a leading underscore
would break every import path in the history and the tests for no gain; the boundary is
stated here, in each internal package's docstring, and enforced by the test on the docs.
"""

#: ``typing`` is not imported at run time: this module is the first the ``alice-trio`` command
#: loads, before its signal handling is in place (see :mod:`alice_trio.cli.entry`)
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from .backend import OneShotBackend, run_once
    from .config import AppConfig, ProfileConfig, load_config, parse_config
    from .errors import (
        AgentError,
        AliceError,
        CallbackError,
        CLINotFoundError,
        ConfigError,
        ConversationLimitError,
        EmptyPromptError,
        IdleTimeoutError,
        JsonRpcError,
        LineTooLongError,
        NoActiveTurnError,
        ProcessFailedError,
        ProtocolError,
        ResumeUnsupportedError,
        RunInterruptedError,
        RunTimeoutError,
        SessionClosedError,
        SessionError,
        SessionStateError,
        SteerUnsupportedError,
        TransportClosedError,
        UnknownProviderError,
    )
    from .models import (
        EventKind,
        ExecPolicy,
        QuestionInfo,
        QuestionOption,
        RawEvent,
        RunRequest,
        RunResult,
        TurnEvent,
        TurnQuestion,
        Usage,
    )
    from .providers.base import (
        CLIConfig,
        DecodeOutcome,
        Decoder,
        Invocation,
        JsonLineDecoder,
        Provider,
        RunLimits,
    )
    from .providers.claude import ClaudeConfig
    from .providers.codex import CodexConfig, ProfileOverride
    from .providers.gemini import GeminiConfig
    from .providers.kimi import KimiConfig
    from .providers.opencode import OpenCodeConfig
    from .providers.record import (
        AuthCheck,
        Capabilities,
        CredentialPath,
        Flavor,
        SessionSpec,
        VersionCheck,
    )
    from .providers.registry import get_provider, provider_names, register_provider
    from .providers.replay import ReplayConfig
    from .routing import Backend, MultiBackend, backend_from_config
    from .sessions.approval import (
        ApprovalDecision,
        ApprovalOption,
        ApprovalRequest,
        Approver,
    )
    from .sessions.backend import SESSION_KEY_ENV, SessionBackend
    from .sessions.driver import SessionDriver, SteerMode, SubmitMode, SubmitResult, TurnRef
    from .sessions.scaling import ScalingConfig
    from .sessions.session import InteractiveSession, SessionState, open_session
    from .transcript import decode_transcript

#: public name -> the module (relative to this package) defining it. The package imports
#: nothing else at import time: ``import alice_trio`` (and the ``alice-trio`` command's entry
#: point) stays fast, and each name is imported on first use (PEP 562).
_EXPORTS: dict[str, str] = {
    "OneShotBackend": "backend",
    "run_once": "backend",
    "AppConfig": "config",
    "ProfileConfig": "config",
    "load_config": "config",
    "parse_config": "config",
    "AgentError": "errors",
    "AliceError": "errors",
    "CallbackError": "errors",
    "CLINotFoundError": "errors",
    "ConfigError": "errors",
    "EmptyPromptError": "errors",
    "IdleTimeoutError": "errors",
    "JsonRpcError": "errors",
    "LineTooLongError": "errors",
    "NoActiveTurnError": "errors",
    "ProcessFailedError": "errors",
    "ProtocolError": "errors",
    "ResumeUnsupportedError": "errors",
    "ConversationLimitError": "errors",
    "RunInterruptedError": "errors",
    "RunTimeoutError": "errors",
    "SessionClosedError": "errors",
    "SessionError": "errors",
    "SessionStateError": "errors",
    "SteerUnsupportedError": "errors",
    "TransportClosedError": "errors",
    "UnknownProviderError": "errors",
    "EventKind": "models",
    "ExecPolicy": "models",
    "QuestionInfo": "models",
    "QuestionOption": "models",
    "RawEvent": "models",
    "RunRequest": "models",
    "RunResult": "models",
    "TurnEvent": "models",
    "TurnQuestion": "models",
    "Usage": "models",
    "CLIConfig": "providers.base",
    "DecodeOutcome": "providers.base",
    "Decoder": "providers.base",
    "Invocation": "providers.base",
    "JsonLineDecoder": "providers.base",
    "Provider": "providers.base",
    "RunLimits": "providers.base",
    "ClaudeConfig": "providers.claude",
    "CodexConfig": "providers.codex",
    "ProfileOverride": "providers.codex",
    "GeminiConfig": "providers.gemini",
    "KimiConfig": "providers.kimi",
    "OpenCodeConfig": "providers.opencode",
    "AuthCheck": "providers.record",
    "Capabilities": "providers.record",
    "CredentialPath": "providers.record",
    "Flavor": "providers.record",
    "SessionSpec": "providers.record",
    "VersionCheck": "providers.record",
    "get_provider": "providers.registry",
    "provider_names": "providers.registry",
    "register_provider": "providers.registry",
    "ReplayConfig": "providers.replay",
    "Backend": "routing",
    "MultiBackend": "routing",
    "backend_from_config": "routing",
    "ApprovalDecision": "sessions.approval",
    "ApprovalOption": "sessions.approval",
    "ApprovalRequest": "sessions.approval",
    "Approver": "sessions.approval",
    "SESSION_KEY_ENV": "sessions.backend",
    "SessionBackend": "sessions.backend",
    "SessionDriver": "sessions.driver",
    "SteerMode": "sessions.driver",
    "SubmitMode": "sessions.driver",
    "SubmitResult": "sessions.driver",
    "TurnRef": "sessions.driver",
    "ScalingConfig": "sessions.scaling",
    "InteractiveSession": "sessions.session",
    "SessionState": "sessions.session",
    "open_session": "sessions.session",
    "decode_transcript": "transcript",
}

__version__ = "0.1.0"

__all__ = [
    "SESSION_KEY_ENV",
    "AgentError",
    "AliceError",
    "AppConfig",
    "ApprovalDecision",
    "ApprovalOption",
    "ApprovalRequest",
    "Approver",
    "AuthCheck",
    "Backend",
    "CLIConfig",
    "CLINotFoundError",
    "CallbackError",
    "Capabilities",
    "ClaudeConfig",
    "CodexConfig",
    "ConfigError",
    "ConversationLimitError",
    "CredentialPath",
    "DecodeOutcome",
    "Decoder",
    "EmptyPromptError",
    "EventKind",
    "ExecPolicy",
    "Flavor",
    "GeminiConfig",
    "IdleTimeoutError",
    "InteractiveSession",
    "Invocation",
    "JsonLineDecoder",
    "JsonRpcError",
    "KimiConfig",
    "LineTooLongError",
    "MultiBackend",
    "NoActiveTurnError",
    "OneShotBackend",
    "OpenCodeConfig",
    "ProcessFailedError",
    "ProfileConfig",
    "ProfileOverride",
    "ProtocolError",
    "Provider",
    "QuestionInfo",
    "QuestionOption",
    "RawEvent",
    "ReplayConfig",
    "ResumeUnsupportedError",
    "RunInterruptedError",
    "RunLimits",
    "RunRequest",
    "RunResult",
    "RunTimeoutError",
    "ScalingConfig",
    "SessionBackend",
    "SessionClosedError",
    "SessionDriver",
    "SessionError",
    "SessionSpec",
    "SessionState",
    "SessionStateError",
    "SteerMode",
    "SteerUnsupportedError",
    "SubmitMode",
    "SubmitResult",
    "TransportClosedError",
    "TurnEvent",
    "TurnQuestion",
    "TurnRef",
    "UnknownProviderError",
    "Usage",
    "VersionCheck",
    "__version__",
    "backend_from_config",
    "decode_transcript",
    "get_provider",
    "load_config",
    "open_session",
    "parse_config",
    "provider_names",
    "register_provider",
    "run_once",
]


def __getattr__(name: str) -> "Any":
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
