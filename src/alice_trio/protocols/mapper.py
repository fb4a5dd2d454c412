"""The one interface of the session protocols' pure event mappers.

Each interactive protocol has a mapper that turns one inbound message into the
:class:`~alice_trio.models.TurnEvent` list it means, keeping whatever per-session state the
protocol needs (thread id, pending submissions, tool calls in flight). They all read
``feed(message)``; only the message differs:

* ``claude_stream.ClaudeBidiMapper``: a stdout line of stream-json;
* ``opencode_events.OpenCodeMapper``: an SSE event payload (a JSON object);
* ``acp.AcpUpdateMapper``: a ``session/update``'s params;
* ``kimi_wire.KimiWireMapper``: a wire ``event``'s params;
* ``codex_app_server.CodexNotificationMapper``: a JSON-RPC notification.

``feed`` never raises on hostile input (an unusable message becomes an ``unknown`` event) and
does no I/O. Those that take a decoded message take the raw text as an optional second argument,
carried into the events.

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..models import TurnEvent

__all__ = ["EventMapper"]

M_contra = TypeVar("M_contra", contravariant=True)


class EventMapper(Protocol[M_contra]):
    def feed(self, message: M_contra, /) -> list[TurnEvent]:
        """The events ``message`` means (possibly none); the mapper's state moves on."""
        ...


if TYPE_CHECKING:  # mypy --strict checks that every mapper has the interface
    from .acp import AcpUpdateMapper
    from .claude_stream import ClaudeBidiMapper
    from .codex_app_server import CodexNotificationMapper
    from .jsonrpc import Notification
    from .kimi_wire import KimiWireMapper
    from .opencode_events import OpenCodeMapper

    def _conform(
        claude: ClaudeBidiMapper,
        opencode: OpenCodeMapper,
        acp: AcpUpdateMapper,
        kimi: KimiWireMapper,
        codex: CodexNotificationMapper,
    ) -> None:
        _line: EventMapper[str] = claude
        _payload: EventMapper[Mapping[str, Any]] = opencode
        _acp: EventMapper[Any] = acp
        _kimi: EventMapper[Any] = kimi
        _rpc: EventMapper[Notification] = codex
