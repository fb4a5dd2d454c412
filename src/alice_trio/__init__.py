"""alice_trio: drive AI coding-agent CLIs from trio.

One request in, one agent turn out: build the CLI command, stream progress while the agent
works, return the final reply, the thread id to resume with and the token usage; keep
long-lived interactive sessions; cancel fast and leave no process behind.
"""

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

__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "AliceError",
    "CLINotFoundError",
    "CallbackError",
    "ConfigError",
    "EmptyPromptError",
    "EventKind",
    "ExecPolicy",
    "IdleTimeoutError",
    "LineTooLongError",
    "NoActiveTurnError",
    "ProcessFailedError",
    "ProtocolError",
    "RawEvent",
    "RunInterruptedError",
    "RunRequest",
    "RunResult",
    "RunTimeoutError",
    "SessionClosedError",
    "SessionError",
    "SteerUnsupportedError",
    "TransportClosedError",
    "TurnEvent",
    "TurnQuestion",
    "UnknownProviderError",
    "Usage",
    "__version__",
]
