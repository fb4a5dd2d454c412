"""Which session driver speaks which provider's interactive protocol.

The table maps a provider name to a ``"module:factory"`` string, imported only when a session
for that provider is opened. A factory has the signature
``factory(config, initial: RunRequest) -> SessionDriver``. A third-party provider names its own
factory in :attr:`Provider.session_factory <alice_trio.providers.base.Provider>` (a
``"module:factory"`` string or the callable itself); a provider with neither gets the one-shot
wrapping driver (:mod:`alice_trio.sessions.oneshot_driver`, steer mode ``queue_when_busy``).

Kimi is one provider with two interactive protocols: ``flavor: legacy`` (kimi-cli 1.50) speaks
the legacy wire protocol, Kimi Code 2.x speaks ACP. Gemini speaks ACP (``gemini --acp``) unless
``session_protocol: oneshot`` asks for one ``gemini -p`` run per turn.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ..models import RunRequest
from ..providers.base import CLIConfig, Provider
from .driver import SessionDriver

__all__ = [
    "SESSION_DRIVERS",
    "DriverFactory",
    "create_driver",
    "load_factory",
    "resolve_factory",
]

DriverFactory = Callable[[Any, RunRequest], SessionDriver]

#: session-driver name -> "module:factory"
SESSION_DRIVERS: dict[str, str] = {
    "codex": "alice_trio.sessions.codex_app_server:open_driver",
    "claude": "alice_trio.sessions.claude_stream:open_driver",
    "gemini": "alice_trio.sessions.oneshot_driver:open_gemini_driver",
    "gemini-acp": "alice_trio.sessions.acp:open_gemini_driver",
    "kimi": "alice_trio.sessions.acp:open_kimi_driver",
    "kimi-wire": "alice_trio.sessions.kimi_wire:open_driver",
    "opencode": "alice_trio.sessions.opencode_serve:open_driver",
    "acp": "alice_trio.sessions.acp:open_acp_driver",
}


def load_factory(spec: str | Callable[..., Any]) -> DriverFactory:
    """Import ``"module:factory"`` (or return a callable unchanged)."""
    if callable(spec):
        return spec
    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"session driver factory must be 'module:factory', got {spec!r}")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load session driver {spec!r}: {exc}") from exc
    if not callable(obj):
        raise ConfigError(f"session driver {spec!r} is not callable")
    return obj


def resolve_factory(provider: Provider, config: CLIConfig) -> DriverFactory:
    """The driver factory for ``provider`` (see the module docstring for the order)."""
    if provider.session_factory:
        return load_factory(provider.session_factory)
    name = provider.name.strip().lower()
    if name == "kimi" and getattr(config, "flavor", "") == "legacy":
        name = "kimi-wire"
    if name == "gemini" and getattr(config, "session_protocol", "acp") == "acp":
        name = "gemini-acp"
    spec = SESSION_DRIVERS.get(name)
    if spec is not None:
        return load_factory(spec)
    from .oneshot_driver import OneShotDriver

    def factory(cfg: Any, initial: RunRequest) -> SessionDriver:
        return OneShotDriver(provider, cfg)

    return factory


def create_driver(
    provider: Provider, config: CLIConfig, initial: RunRequest, *, approver: Any = None
) -> SessionDriver:
    """Build the session driver for ``provider``; ``approver`` goes to factories that take it.

    Every built-in interactive driver takes one (:mod:`alice_trio.sessions.approval`). Raises
    :class:`ConfigError` when an approver is given for a driver that has no approval protocol
    (the one-shot wrapping driver, a third-party factory without an ``approver`` parameter)."""
    factory = resolve_factory(provider, config)
    if approver is None:
        return factory(config, initial)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        params = {}
    takes = "approver" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if not takes:
        raise ConfigError(f"the {provider.name} session driver takes no approver")
    return factory(config, initial, approver=approver)
