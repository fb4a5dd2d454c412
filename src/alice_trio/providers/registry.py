"""Provider lookup by name: the built-in providers plus third-party ones from entry points.

A third-party package registers a provider without touching this package, in its
``pyproject.toml``::

    [project.entry-points."alice_trio.providers"]
    mycli = "my_package.mycli:PROVIDER"

where ``PROVIDER`` is a :class:`~alice_trio.providers.base.Provider`. Names are trimmed and
lower-cased; an unknown name raises :class:`~alice_trio.errors.UnknownProviderError` listing the
known ones. An entry point that fails to import (an exception, or ``sys.exit`` at import time),
names something that is not a ``Provider``, or a provider of another name than its own, does not
break the others: its name is still listed and :func:`get_provider` raises
:class:`~alice_trio.errors.ConfigError` saying why it could not be loaded. A built-in name is
never taken by an entry point (which provider ``codex`` is must not depend on the order names
were first looked up in); :func:`register_provider` with ``replace=True`` can replace one.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError, UnknownProviderError
from .base import Provider

__all__ = ["ENTRY_POINT_GROUP", "get_provider", "provider_names", "register_provider"]

ENTRY_POINT_GROUP = "alice_trio.providers"

#: built-in provider name -> module holding ``PROVIDER``
BUILTIN_MODULES: dict[str, str] = {
    "codex": "alice_trio.providers.codex",
    "claude": "alice_trio.providers.claude",
    "gemini": "alice_trio.providers.gemini",
    "kimi": "alice_trio.providers.kimi",
    "opencode": "alice_trio.providers.opencode",
    "replay": "alice_trio.providers.replay",
}

_registry: dict[str, Provider] = {}
_broken: dict[str, str] = {}  # entry-point name -> why it could not be loaded
_entry_points_loaded = False


def normalize_name(name: str) -> str:
    return (name or "").strip().lower()


def register_provider(provider: Provider, *, replace: bool = False) -> None:
    """Register ``provider`` under its (normalized) name."""
    key = normalize_name(provider.name)
    if not key:
        raise ValueError("provider name must not be empty")
    if key in _registry and not replace and _registry[key] is not provider:
        raise ValueError(f"provider {key!r} is already registered")
    _registry[key] = provider


def entry_points(group: str) -> Iterable[Any]:
    """``importlib.metadata.entry_points(group=group)``. Imported here, on first use: reading
    the installed packages' metadata costs ~20 ms, paid only for a name that is not built in
    or for the list of every name (``alice-trio run --provider codex`` starts without it)."""
    from importlib.metadata import entry_points as installed_entry_points

    return installed_entry_points(group=group)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        name = normalize_name(ep.name)
        if name in BUILTIN_MODULES:  # loaded lazily: a plugin would win only if looked up first
            continue
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:  # a broken package must not break (or end) others
            _broken[name] = f"{type(exc).__name__}: {exc}"
            continue
        provider = getattr(obj, "PROVIDER", obj)
        if not isinstance(provider, Provider):
            _broken[name] = f"{ep.value} is not a Provider"
            continue
        if normalize_name(provider.name) != name:
            _broken[name] = (
                f"{ep.value} is the provider {provider.name!r}: an entry point's name must be "
                "its provider's name"
            )
            continue
        if name not in _registry:
            _registry[name] = provider


def _load_builtin(key: str) -> None:
    module = BUILTIN_MODULES.get(key)
    if module and key not in _registry:
        mod = importlib.import_module(module)
        register_provider(mod.PROVIDER)


def provider_names() -> list[str]:
    """Every known provider name (built-in and from entry points), sorted."""
    _load_entry_points()
    return sorted(set(BUILTIN_MODULES) | set(_registry) | set(_broken))


def get_provider(name: str) -> Provider:
    """The provider called ``name`` (trimmed, case-insensitive)."""
    key = normalize_name(name)
    if key in _registry:
        return _registry[key]
    if key in BUILTIN_MODULES:
        _load_builtin(key)
        return _registry[key]
    _load_entry_points()
    if key in _registry:
        return _registry[key]
    if key in _broken:
        raise ConfigError(
            f'provider "{key}" (entry point {ENTRY_POINT_GROUP}) could not be loaded: '
            f"{_broken[key]}"
        )
    raise UnknownProviderError(name, provider_names())
