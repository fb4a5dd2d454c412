"""The caller-facing one-shot backend: provider name + config in, ``run(request)`` out.

``run`` raises only :class:`~alice_trio.errors.AliceError` subclasses or a bare
``trio.Cancelled`` / ``KeyboardInterrupt`` — never an exception group (the contract in
:mod:`alice_trio.errors`). A provider's own code that raises (``build_invocation``, the
decoder's ``feed``/``finish``, ``new_decoder``, ``prepare_request``, ``explain_exit``: a
third-party provider's bug, or one that returns the wrong type) is a
:class:`~alice_trio.errors.ProtocolError` with that exception as its ``__cause__``, as a session
driver's bug is — raised after the CLI's process tree is gone."""

from __future__ import annotations

from .engine.oneshot import run_oneshot
from .errors import AliceError, ProtocolError
from .models import RunRequest, RunResult
from .providers.base import CLIConfig, Provider
from .sessions._groups import single_exception
from .sessions.arguments import request_arg, resolve_provider

__all__ = ["OneShotBackend", "run_once"]


class OneShotBackend:
    """Runs each request as one CLI process (``codex exec``, ``claude -p``, …).

    ``provider`` is a registered name (``"codex"``, ``"claude"``, …) or a
    :class:`~alice_trio.providers.base.Provider`; ``config`` defaults to the provider's config
    class with its defaults; a bad provider or a config of another provider's class is a
    :class:`~alice_trio.errors.ConfigError` at construction. :meth:`run` is safe to call
    concurrently: runs share nothing.
    """

    def __init__(self, provider: str | Provider, config: CLIConfig | None = None) -> None:
        self.provider, self.config = resolve_provider("OneShotBackend", provider, config)

    @property
    def name(self) -> str:
        return self.provider.name

    async def run(self, request: RunRequest) -> RunResult:
        """Run one turn. Cancelling the caller kills the CLI's whole process tree first, then
        ``trio.Cancelled`` propagates (bare)."""
        request = request_arg("OneShotBackend.run", request)
        try:
            with single_exception():
                return await run_oneshot(self.provider, self.config, request)
        except AliceError:
            raise
        except Exception as exc:  # the provider's code failed (a callback's is a CallbackError)
            name = self.provider.name
            raise ProtocolError(f"{name} provider failed: {exc!r}", provider=name) from exc


async def run_once(
    request: RunRequest, *, provider: str | Provider | None = None, config: CLIConfig | None = None
) -> RunResult:
    """Run one turn on ``provider`` (default: ``request.provider``) with ``config``."""
    request = request_arg("run_once", request)
    name = provider if provider is not None else request.provider
    return await OneShotBackend(name, config).run(request)
