"""One router for every kind of backend: send each request to the backend of its profile or
provider (spec §5.4, with the one set of rules and texts below; Alice had two routers that
disagreed, §13 item 23).

Resolution of a request, first match wins:

1. ``request.profile`` names a configured profile → that profile's backend. The outer profile
   name is then cleared from the request (it is ours, not the CLI's: it must never reach
   ``codex -p``); a ``request.provider`` that contradicts the profile's is a
   :class:`~alice_trio.errors.ConfigError`.
2. ``request.provider`` (trimmed, lower-cased) → that provider's backend, else
   ``llm backend for provider "<p>" is unavailable; configured providers: <a, b>``. A profile
   name that is not a configured profile is passed on unchanged (the provider may know it:
   codex ``profile_overrides`` / ``-p``, opencode agents).
3. Neither → the default route.

The default route, fixed at construction: ``default_profile`` if given (it must be a profile);
else ``default_provider`` if given (it must be registered, else ``multi backend: defaultProvider
"<p>" is not in the registered backends``); else the only backend when there is exactly one;
else ``codex`` when it is registered; else ``multi backend: defaultProvider must be set when
multiple backends are configured and "codex" is not one of them``. No backends at all:
``multi backend requires at least one backend``. The resolved provider is written into
``request.provider``; backend errors pass through unwrapped, and an exception group (from a
caller's own backend, or from entering/leaving several backends) is collapsed to the one
exception it stands for (the contract in :mod:`alice_trio.errors`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import trio

from .backend import OneShotBackend
from .config import AppConfig
from .errors import ConfigError, SteerUnsupportedError
from .models import RunRequest, RunResult
from .providers.base import CLIConfig, Provider
from .providers.registry import normalize_name
from .sessions._groups import single_exception
from .sessions.arguments import request_arg
from .validation import show

__all__ = ["Backend", "MultiBackend", "backend_from_config"]


@runtime_checkable
class Backend(Protocol):
    """Anything with a provider ``name`` and ``run(request)``: :class:`OneShotBackend`, an
    interactive session backend, or a caller's own. ``steer(request)`` and ``aclose()`` are
    optional."""

    @property
    def name(self) -> str: ...

    async def run(self, request: RunRequest) -> RunResult: ...


class MultiBackend:
    """Routes each request to one of several backends (see the module docstring).

    ``backends`` maps provider names to backends (``None`` values are skipped; an empty name is
    a :class:`ConfigError`: there is no implicit provider). ``profiles`` maps profile names to
    backends; a profile backend's provider is its ``name``.
    """

    def __init__(
        self,
        backends: Mapping[str, Backend | None] | None = None,
        *,
        default_provider: str = "",
        profiles: Mapping[str, Backend] | None = None,
        default_profile: str = "",
    ) -> None:
        self._providers: dict[str, Backend] = {}
        for key, backend in _entries("backends", backends, optional=True):
            if backend is None:
                continue
            name = normalize_name(key)
            if not name:
                raise ConfigError("multi backend: a backend is registered under an empty name")
            self._providers[name] = backend
        self._profiles: dict[str, Backend] = {
            normalize_name(k): b for k, b in _entries("profiles", profiles, optional=False)
        }
        if not self._providers and not self._profiles:
            raise ConfigError("multi backend requires at least one backend")
        self._stack: AsyncExitStack | None = None
        self._owner: trio.lowlevel.Task | None = None  # the task that entered (open/opening)
        self._default = self._choose_default(
            normalize_name(default_provider), normalize_name(default_profile)
        )

    def _choose_default(self, provider: str, profile: str) -> tuple[str, Backend]:
        if profile:
            if profile not in self._profiles:
                raise ConfigError(
                    f'multi backend: defaultProfile "{profile}" is not in the configured profiles'
                )
            backend = self._profiles[profile]
            return normalize_name(backend.name), backend
        if provider:
            if provider not in self._providers:
                raise ConfigError(
                    f'multi backend: defaultProvider "{provider}" is not in the registered backends'
                )
            return provider, self._providers[provider]
        distinct = {id(b): b for b in [*self._providers.values(), *self._profiles.values()]}
        if len(distinct) == 1:
            (only,) = distinct.values()
            return normalize_name(only.name), only
        if "codex" in self._providers:
            return "codex", self._providers["codex"]
        raise ConfigError(
            "multi backend: defaultProvider must be set when multiple backends are configured "
            'and "codex" is not one of them'
        )

    # -- introspection ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return "multi"

    @property
    def default_provider(self) -> str:
        return self._default[0]

    def providers(self) -> list[str]:
        """The provider names that can be routed to (registered and via profiles), sorted."""
        names = set(self._providers)
        names.update(normalize_name(b.name) for b in self._profiles.values())
        return sorted(names)

    def profiles(self) -> list[str]:
        return list(self._profiles)

    def profile_backends(self) -> dict[str, Backend]:
        """Profile name → its backend (a copy)."""
        return dict(self._profiles)

    # -- routing ------------------------------------------------------------------------------
    def route(self, request: RunRequest) -> tuple[Backend, RunRequest]:
        """The backend for ``request`` and the request as that backend receives it."""
        request = request_arg("MultiBackend", request)
        provider = normalize_name(request.provider)
        profile = normalize_name(request.profile)
        if profile and profile in self._profiles:
            backend = self._profiles[profile]
            resolved = normalize_name(backend.name)
            if provider and provider != resolved:
                raise ConfigError(
                    f'profile "{profile}" uses provider "{resolved}", but the request asks for '
                    f'provider "{provider}"'
                )
            return backend, request.evolve(provider=resolved, profile="")
        if provider:
            found = self._providers.get(provider)
            if found is None:
                found = self._provider_via_profile(provider)
            if found is None:
                raise ConfigError(
                    f'llm backend for provider "{provider}" is unavailable; configured '
                    f"providers: {', '.join(self.providers())}",
                    provider=provider,
                )
            return found, request.evolve(provider=provider)
        name, backend = self._default
        return backend, request.evolve(provider=name)

    def _provider_via_profile(self, provider: str) -> Backend | None:
        """A provider with no backend of its own: the default profile when it uses that
        provider, else the first profile (in configuration order) that does."""
        default = self._default[1]
        if normalize_name(default.name) == provider and any(
            b is default for b in self._profiles.values()
        ):
            return default
        for backend in self._profiles.values():
            if normalize_name(backend.name) == provider:
                return backend
        return None

    async def run(self, request: RunRequest) -> RunResult:
        """Run ``request`` on its backend; the backend's errors pass through unchanged."""
        backend, routed = self.route(request)
        with single_exception():
            return await backend.run(routed)

    async def steer(self, request: RunRequest) -> Any:
        """Steer the active turn of ``request``'s backend; a backend without ``steer`` raises
        :class:`SteerUnsupportedError`."""
        backend, routed = self.route(request)
        steer = getattr(backend, "steer", None)
        if steer is None:
            raise SteerUnsupportedError(provider=routed.provider)
        with single_exception():
            return await steer(routed)

    def _distinct(self) -> list[Backend]:
        seen: dict[int, Backend] = {}
        for backend in [*self._providers.values(), *self._profiles.values()]:
            seen.setdefault(id(backend), backend)
        return list(seen.values())

    async def __aenter__(self) -> MultiBackend:
        """Enter every backend that is an async context manager (e.g. a session backend,
        which owns a nursery); leaving exits them in reverse order. An open (or opening) router
        refuses a second entry with :class:`ConfigError` before entering anything; after a full
        exit it can be entered again."""
        if self._owner is not None:
            raise ConfigError("MultiBackend is already open: enter it once at a time")
        self._owner = trio.lowlevel.current_task()
        try:
            stack = AsyncExitStack()
            with single_exception():
                async with stack:
                    for backend in self._distinct():
                        if hasattr(backend, "__aenter__") and hasattr(backend, "__aexit__"):
                            await stack.enter_async_context(backend)  # type: ignore[arg-type]
                    self._stack = stack.pop_all()
        except BaseException:
            self._owner = None
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._stack is None:
            raise ConfigError("MultiBackend.__aexit__ without a matching __aenter__")
        if self._owner is not trio.lowlevel.current_task():
            raise ConfigError(
                "MultiBackend.__aexit__ from another task than the one that entered it (its "
                "nursery must be exited by the task that opened it)"
            )
        stack, self._stack = self._stack, None
        try:
            with single_exception():
                return bool(await stack.__aexit__(exc_type, exc, tb))
        finally:
            self._owner = None

    async def aclose(self) -> None:
        """Close every backend that has ``aclose`` (each once)."""
        for backend in self._distinct():
            close = getattr(backend, "aclose", None)
            if close is not None:
                with single_exception():
                    await close()


def _entries(
    what: str, mapping: Mapping[str, Any] | None, *, optional: bool
) -> list[tuple[str, Any]]:
    """``mapping``'s items after checking each is ``name -> backend`` (``None`` allowed as a
    value when ``optional``); anything else is a :class:`ConfigError` naming the key."""
    if mapping is None:
        return []
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"MultiBackend: {what}: expected a mapping, got {show(mapping)}")
    for key, backend in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(f"MultiBackend: {what}: expected string keys, got {show(key)}")
        if backend is None and optional:
            continue
        if not (callable(getattr(backend, "run", None))
                and isinstance(getattr(backend, "name", None), str)):  # fmt: skip
            hint = ""
            if inspect.iscoroutine(backend):  # an ``async def`` factory: close them all, so
                hint = " (the factory must be a plain function, not async def)"
                for value in mapping.values():  # no "never awaited" warning follows the error
                    if inspect.iscoroutine(value):
                        value.close()
            raise ConfigError(
                f"MultiBackend: {what}.{key}: expected a backend (with .name and .run), "
                f"got {show(backend)}{hint}"
            )
    return list(mapping.items())


BackendFactory = Callable[[Provider, CLIConfig], Backend]


def backend_from_config(app: AppConfig, factory: BackendFactory | None = None) -> MultiBackend:
    """A :class:`MultiBackend` with one backend per profile of ``app`` (built by ``factory``,
    default :class:`OneShotBackend`; e.g. ``SessionBackend`` for interactive sessions, then use
    the router as ``async with``) and ``app.default_profile`` as the default route.
    A request naming only a provider goes to the default profile when it uses that provider,
    else to the first profile of the file that does."""
    make = factory or OneShotBackend
    profiles: dict[str, Backend] = {}
    for name, profile in app.profiles.items():
        provider, config = profile.resolve()
        profiles[name] = make(provider, config)
    return MultiBackend(profiles=profiles, default_profile=app.default_profile)
