"""Every error alice_trio raises, under one base.

::

    AliceError                         .partial (RunResult so far), .provider, .stderr_tail
    ├── ConfigError                    bad configuration or usage (CLI exit code 2); a ValueError
    │   └── UnknownProviderError       .known (the registered names)
    ├── EmptyPromptError               "empty prompt"
    ├── CLINotFoundError               the command is not on PATH / not executable
    ├── ProcessFailedError             .returncode / .signal; the CLI died without a verdict
    ├── RunTimeoutError                the overall timeout fired ("llm timeout")
    ├── IdleTimeoutError               stdout was silent for .idle_seconds
    ├── LineTooLongError               a stdout line exceeded .limit bytes (policy "error")
    ├── AgentError                     the agent / model API reported a failed turn (.status)
    ├── ProtocolError                  the CLI spoke something we cannot work with
    ├── TransportClosedError           the peer process or connection went away (C11)
    ├── JsonRpcError                   the peer answered with a JSON-RPC error (.code, .data)
    ├── RunInterruptedError            the turn was interrupted (reported as interrupted)
    ├── CallbackError                  on_progress / on_raw_event raised (.__cause__)
    └── SessionError                   misuse of an interactive session
        ├── SessionClosedError         "interactive session is closed"
        ├── NoActiveTurnError          "no active turn to steer"
        ├── SteerUnsupportedError      "provider does not support native steer"
        └── SessionStateError          .state, .command: a transition the session core forbids

**The exception contract.** Every public entry point — ``OneShotBackend.run``,
``SessionBackend.run``/``steer`` and ``async with SessionBackend(...)`` (enter and exit),
``open_session`` (enter and exit), ``InteractiveSession.submit``/``steer``/``interrupt``/
``aclose`` and iterating ``events()``, ``MultiBackend.run``/``steer`` and its ``async with`` —
raises only

* an :class:`AliceError` subclass (below),
* a bare ``trio.Cancelled`` when the caller's own scope cancelled it (after the process group is
  dead: cancellation is not an AliceError), or a bare ``KeyboardInterrupt``,
* or the caller's own exception: raised in the body of one of the context managers, or by the
  caller's callback (then wrapped as :class:`CallbackError` with it as ``__cause__``) —

never a ``BaseExceptionGroup``, whatever the nurseries inside did. When a failure and a
cancellation meet, the failure is raised (a still-cancelled scope cancels again at its next
checkpoint); when several failures meet, the caller's own exception wins, else the first
``AliceError``, and the others are named in its ``__notes__``. Tested for every entry point,
cancelled at many scheduling steps, in ``tests/reliability/test_exception_contract.py``;
documented in ``docs/reliability.md``. A provider's or session driver's own code that raises
something outside this tree (a third-party provider's bug, a hook returning the wrong type, a
driver emitting an event whose fields have the wrong types) is a :class:`ProtocolError` with
that exception as its ``__cause__``.

Error messages never include environment values (API keys): only the command, exit status, the
CLI's own error text and the stderr tail.
"""

from __future__ import annotations

import json
from typing import Any

from .models import RunResult

__all__ = [
    "AgentError",
    "AliceError",
    "CLINotFoundError",
    "CallbackError",
    "ConfigError",
    "ConversationLimitError",
    "EmptyPromptError",
    "IdleTimeoutError",
    "JsonRpcError",
    "LineTooLongError",
    "NoActiveTurnError",
    "ProcessFailedError",
    "ProtocolError",
    "ResumeUnsupportedError",
    "RunInterruptedError",
    "RunTimeoutError",
    "SessionClosedError",
    "SessionError",
    "SessionStateError",
    "SteerUnsupportedError",
    "TransportClosedError",
    "UnknownProviderError",
]


class AliceError(Exception):
    """Base of every alice_trio error.

    ``partial`` is the :class:`RunResult` collected before the failure (thread id, usage and the
    last complete reply, if any); ``stderr_tail`` the last lines the CLI wrote to stderr.
    """

    default_message = "alice_trio error"

    def __init__(
        self,
        message: str = "",
        *,
        partial: RunResult | None = None,
        provider: str = "",
        stderr_tail: str = "",
        **extra: Any,
    ) -> None:
        self.message = message or self.default_message
        self.partial = partial if partial is not None else RunResult()
        self.provider = provider
        self.stderr_tail = stderr_tail
        for k, v in extra.items():
            setattr(self, k, v)
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled and copied as what it is: rebuilt without calling ``__init__`` again (a
        subclass's ``__init__`` takes other arguments than ``args``: ``UnknownProviderError``'s
        two, ``JsonRpcError`` builds its message from its fields), its attributes restored."""
        return (_rebuilt, (type(self), self.args), self.__dict__)

    def __str__(self) -> str:
        text = self.message
        if self.stderr_tail:
            tail = self.stderr_tail.strip()
            if len(tail) > 2000:
                tail = "…" + tail[-2000:]
            if tail and tail not in text:
                text = f"{text}\nstderr tail:\n{tail}"
        return text


def _rebuilt(cls: type[AliceError], args: tuple[Any, ...]) -> AliceError:
    """An error of ``cls`` with ``args``, not initialised (:meth:`AliceError.__reduce__`)."""
    return cls.__new__(cls, *args)


class ConfigError(AliceError, ValueError):
    """Bad configuration or usage, raised before anything is spawned: a YAML file, a config or
    request class built in Python with a bad value, an argv that cannot be executed. Also a
    ``ValueError``, as Python's own argument checks are. ``errors``: ``(key path, message)``
    pairs when the error is about values (one per problem)."""

    default_message = "invalid configuration"
    errors: tuple[tuple[str, str], ...] = ()


class UnknownProviderError(ConfigError):
    def __init__(self, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(
            f'unsupported llm_provider "{name}"; known providers: {", ".join(self.known)}'
        )


class EmptyPromptError(AliceError):
    default_message = "empty prompt"


class CLINotFoundError(AliceError):
    default_message = "agent CLI not found"


class ProcessFailedError(AliceError):
    """The CLI exited (non-zero or by a signal) without the decoder seeing a verdict."""

    def __init__(
        self,
        message: str = "",
        *,
        returncode: int | None = None,
        **kw: Any,
    ) -> None:
        self.returncode = returncode
        self.signal = -returncode if returncode is not None and returncode < 0 else None
        super().__init__(message, **kw)


class RunTimeoutError(AliceError):
    default_message = "llm timeout"


class IdleTimeoutError(AliceError):
    default_message = "idle timeout"

    def __init__(self, message: str = "", *, idle_seconds: float = 0.0, **kw: Any) -> None:
        self.idle_seconds = idle_seconds
        super().__init__(message, **kw)


class LineTooLongError(AliceError):
    default_message = "output line too long"

    def __init__(self, message: str = "", *, limit: int = 0, **kw: Any) -> None:
        self.limit = limit
        super().__init__(message, **kw)


class AgentError(AliceError):
    """The agent reported a failed turn (API error, ``is_error`` result, ``turn.failed``)."""

    default_message = "agent turn failed"

    def __init__(self, message: str = "", *, status: int | None = None, **kw: Any) -> None:
        self.status = status
        super().__init__(message, **kw)


class ProtocolError(AliceError):
    default_message = "protocol error"


class ResumeUnsupportedError(ProtocolError):
    """A run asked to resume a conversation (a thread id) the agent cannot load (an ACP agent
    whose ``initialize`` does not offer ``loadSession``): its context is not on that agent."""

    default_message = "the agent cannot resume a conversation"


class TransportClosedError(AliceError):
    default_message = "agent process closed the connection"


class JsonRpcError(AliceError):
    """The peer answered a request with a JSON-RPC error object (``.code``, ``.data``,
    ``.method``, ``.rpc_message``). Also raised by server-request handlers to answer with an
    error. The message names the code, the peer's message and its ``data`` (often the real
    reason: an HTTP status, a traceback), the data cut to 2,000 characters."""

    default_message = "json-rpc error"

    def __init__(
        self,
        message: str = "",
        *,
        code: int = -32603,
        data: Any = None,
        method: str = "",
        **kw: Any,
    ) -> None:
        self.code = code
        self.data = data
        self.method = method
        self.rpc_message = message
        text = f"json-rpc error code={code}" + (f" message={message}" if message.strip() else "")
        if data is not None:
            try:
                shown = json.dumps(data, ensure_ascii=False, default=repr)
            except (TypeError, ValueError, RecursionError):
                shown = repr(data)
            if len(shown) > 2000:
                shown = shown[:2000] + "…"
            text += f" data={shown}"
        if method:
            text = f"{method}: {text}"
        super().__init__(text, **kw)


class RunInterruptedError(AliceError):
    default_message = "turn interrupted"


class CallbackError(AliceError):
    default_message = "a progress callback raised"


class SessionError(AliceError):
    default_message = "session error"


class ConversationLimitError(SessionError):
    """A new conversation found ``max_conversations`` reached by conversations the backend may
    not close: the agent cannot resume them (closing one would lose it; see docs/scaling.md)."""

    default_message = "no room for another conversation"


class SessionClosedError(SessionError):
    default_message = "interactive session is closed"


class NoActiveTurnError(SessionError):
    default_message = "no active turn to steer"


class SteerUnsupportedError(SessionError):
    default_message = "provider does not support native steer"


class SessionStateError(SessionError):
    """The session core was sent a command its current state does not allow (a bug in the
    layer executing it, never the caller's misuse); ``state`` and ``command`` name both."""

    default_message = "illegal session state transition"

    def __init__(self, message: str = "", *, state: str = "", command: str = "", **kw: Any):
        self.state = state
        self.command = command
        super().__init__(message, **kw)
