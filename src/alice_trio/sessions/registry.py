"""Which session driver speaks a provider's interactive protocol: read from the provider record.

The provider record (:class:`~alice_trio.providers.base.Provider`) names, per flavor, a
:class:`~alice_trio.providers.record.SessionSpec` whose ``factory`` is a ``"module:factory"``
string imported only when a session for that flavor opens (or a callable). The flavor comes
from the config (:meth:`Provider.flavor_of`): kimi's ``flavor: legacy`` selects the legacy wire
driver, gemini's ``session_protocol: oneshot`` one ``gemini -p`` run per turn. A provider that
names no driver gets :func:`open_oneshot_driver`, which wraps its one-shot runs as a session
(steer mode ``queue_when_busy``). This module holds no table of its own.

A factory has the signature ``factory(config, initial: RunRequest) -> SessionDriver`` and may
declare the keywords ``approver`` (also passed to ``**kwargs``) and ``provider`` (the
:class:`Provider` record; passed only when named); they are passed only to a factory that
takes them.

A factory that raises something outside the error tree (a third party's bug) is a
:class:`ProtocolError` with that exception as its ``__cause__`` (its own ``AliceError`` stays
itself); one that returns no driver — ``None``, a string, a coroutine (an ``async def``
factory) — is a :class:`ConfigError` naming what it returned, never an ``AttributeError`` of
the session that tried to use it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ..errors import AliceError, ConfigError, ProtocolError
from ..models import RunRequest
from ..providers.base import CLIConfig, Provider
from ..providers.record import SessionSpec
from .driver import SessionDriver

__all__ = [
    "DriverFactory",
    "build_driver",
    "checked_driver",
    "create_driver",
    "load_factory",
    "open_oneshot_driver",
    "resolve_factory",
    "session_spec",
]

DriverFactory = Callable[..., SessionDriver]


def load_factory(spec: str | Callable[..., Any]) -> DriverFactory:
    """Import ``"module:factory"`` (or return a callable unchanged). Raises ConfigError."""
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
    return obj  # type: ignore[no-any-return]


def checked_driver(driver: object, what: str) -> SessionDriver:
    """``driver`` when it is a :class:`SessionDriver` (it has the protocol's methods and a
    ``steer_mode``); else :class:`ConfigError` saying ``what`` (e.g. "open_session's driver
    is", "… factory returned") it is. A coroutine is closed first (no "never awaited"
    warning)."""
    if isinstance(driver, SessionDriver):
        return driver
    if inspect.iscoroutine(driver):
        driver.close()
        raise ConfigError(
            f"{what} a coroutine, not a session driver: a factory must be a plain function "
            "(not async def) returning the driver"
        )
    raise ConfigError(f"{what} {driver!r:.60}, not a session driver")


def build_driver(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> SessionDriver:
    """``factory(*args, **kwargs)``, checked: a bug in it is a :class:`ProtocolError`, what is
    no driver a :class:`ConfigError` (the module docstring)."""
    what = f"session driver factory {getattr(factory, '__qualname__', factory)!r:.80}"
    try:
        driver = factory(*args, **kwargs)
    except AliceError:
        raise
    except Exception as exc:
        raise ProtocolError(f"{what} failed: {exc!r}") from exc
    return checked_driver(driver, f"{what} returned")


def session_spec(provider: Provider, config: CLIConfig) -> SessionSpec:
    """The session part of the flavor ``config`` selects."""
    return provider.flavor_of(config).session


def resolve_factory(provider: Provider, config: CLIConfig) -> DriverFactory:
    """The driver factory for ``provider`` with ``config`` (see the module docstring)."""
    return load_factory(session_spec(provider, config).factory)


def _accepts(factory: Callable[..., Any], name: str, *, var_keyword: bool = True) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    if name in params:
        return True
    return var_keyword and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def create_driver(
    provider: Provider, config: CLIConfig, initial: RunRequest, *, approver: Any = None
) -> SessionDriver:
    """Build the session driver for ``provider``; ``approver`` goes to factories that take it.

    Raises :class:`ConfigError` when an approver is given for a driver that has no approval
    protocol (its record says ``approvals`` is false: the one-shot wrappers cannot ask)."""
    spec = session_spec(provider, config)
    factory = load_factory(spec.factory)
    kwargs: dict[str, Any] = {}
    if _accepts(factory, "provider", var_keyword=False):
        kwargs["provider"] = provider
    if approver is not None:
        if not spec.capabilities.approvals or not _accepts(factory, "approver"):
            raise ConfigError(f"the {provider.name} session driver takes no approver")
        kwargs["approver"] = approver
    return build_driver(factory, config, initial, **kwargs)


def open_oneshot_driver(config: Any, initial: RunRequest, *, provider: Provider) -> SessionDriver:
    """A session over one-shot runs of ``provider`` (one process per turn, input queued)."""
    from .oneshot_driver import OneShotDriver

    return OneShotDriver(provider, config)
