"""alice_trio: drive AI coding-agent CLIs from trio.

One request in, one agent turn out: build the CLI command, stream progress while the agent
works, return the final reply, the thread id to resume with and the token usage; keep
long-lived interactive sessions; cancel fast and leave no process behind.
"""

from .backend import OneShotBackend, run_once
from .config import AppConfig, load_config
from .errors import (
    AgentError,
    AliceError,
    CallbackError,
    CLINotFoundError,
    ConfigError,
    EmptyPromptError,
    IdleTimeoutError,
    LineTooLongError,
    NoActiveTurnError,
    ProcessFailedError,
    ProtocolError,
    RunInterruptedError,
    RunTimeoutError,
    SessionClosedError,
    SessionError,
    SteerUnsupportedError,
    TransportClosedError,
    UnknownProviderError,
)
from .models import (
    EventKind,
    ExecPolicy,
    RawEvent,
    RunRequest,
    RunResult,
    TurnEvent,
    TurnQuestion,
    Usage,
)
from .providers.base import CLIConfig, Invocation, Provider, RunLimits
from .providers.registry import get_provider, provider_names, register_provider
from .routing import MultiBackend
from .sessions.backend import SessionBackend
from .sessions.driver import SteerMode, SubmitMode, SubmitResult, TurnRef
from .sessions.session import InteractiveSession, SessionState, open_session

__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "AliceError",
    "AppConfig",
    "CLIConfig",
    "CLINotFoundError",
    "CallbackError",
    "ConfigError",
    "EmptyPromptError",
    "EventKind",
    "ExecPolicy",
    "IdleTimeoutError",
    "InteractiveSession",
    "Invocation",
    "LineTooLongError",
    "MultiBackend",
    "NoActiveTurnError",
    "OneShotBackend",
    "ProcessFailedError",
    "ProtocolError",
    "Provider",
    "RawEvent",
    "RunInterruptedError",
    "RunLimits",
    "RunRequest",
    "RunResult",
    "RunTimeoutError",
    "SessionBackend",
    "SessionClosedError",
    "SessionError",
    "SessionState",
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
    "__version__",
    "get_provider",
    "load_config",
    "open_session",
    "provider_names",
    "register_provider",
    "run_once",
]
