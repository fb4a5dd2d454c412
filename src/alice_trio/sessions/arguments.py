"""Up-front checks of the public constructors' and functions' own arguments
(:class:`SessionBackend`, :func:`open_session`, :class:`OneShotBackend`, :class:`MultiBackend`).

Pure (no I/O, no trio). Each check reuses :mod:`alice_trio.validation` and raises
:class:`~alice_trio.errors.ConfigError` ``<what>: <parameter>: <message>`` (its ``errors`` holds
the ``(parameter, message)`` pair) before anything is spawned or entered."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError
from ..models import RunRequest
from ..providers.base import CLIConfig, Provider
from ..providers.registry import get_provider
from ..validation import Check, InvalidValue, instance, integer, seconds, show

__all__ = [
    "buffer_size",
    "checked",
    "finite_seconds",
    "positive_int",
    "request_arg",
    "resolve_provider",
]

#: a finite, non-negative number of seconds
finite_seconds: Check = seconds()
#: an integer > 0
positive_int: Check = integer(0, strict=True)


def buffer_size(value: Any) -> int | float:
    """A memory channel's buffer: an integer ``>= 0`` or ``math.inf`` (unbounded)."""
    if value == math.inf and isinstance(value, float):
        return value
    result: int = integer(0)(value)
    return result


def checked(what: str, name: str, check: Check, value: Any) -> Any:
    """``check(value)``, or :class:`ConfigError` naming ``what`` and the parameter."""
    try:
        return check(value)
    except InvalidValue as exc:
        raise ConfigError(f"{what}: {name}: {exc.message}", errors=((name, exc.message),)) from None


def request_arg(what: str, request: Any) -> RunRequest:
    """``request`` when it is a :class:`RunRequest` (the ``request`` of every ``run``, ``steer``
    and ``submit``), else :class:`ConfigError` ``<what>: request: expected a RunRequest, got …``
    — not an ``AttributeError`` from inside the call."""
    result: RunRequest = checked(what, "request", _REQUEST, request)
    return result


_REQUEST: Check = instance(RunRequest, "a RunRequest")


def resolve_provider(what: str, provider: Any, config: Any) -> tuple[Provider, CLIConfig]:
    """The provider (a registered name or a :class:`Provider`) and its config (default: the
    provider's config class); a config of another provider's class is a :class:`ConfigError`."""
    if isinstance(provider, str):
        prov = get_provider(provider)
    elif isinstance(provider, Provider) or (
        isinstance(getattr(provider, "name", None), str)
        and isinstance(getattr(provider, "config_class", None), type)
    ):  # a Provider, or an object shaped like one (tests' fakes)
        prov = provider
    else:
        msg = f"expected a provider name or a Provider, got {show(provider)}"
        raise ConfigError(f"{what}: provider: {msg}", errors=(("provider", msg),))
    if config is None:
        return prov, prov.config_class()
    if not isinstance(config, prov.config_class):
        msg = f"{prov.name} needs a {prov.config_class.__name__}, got {type(config).__name__}"
        raise ConfigError(f"{what}: config: {msg}", errors=(("config", msg),))
    return prov, config
