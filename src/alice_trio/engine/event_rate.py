"""``RunRequest.informational_rate``: at most so many informational events a second.

A flood of tool calls is unreadable and costs the consumer as much as the run; a chat bot or a
terminal wants a few events a second and to know how many it did not get. :class:`EventRate`
passes the first ``rate`` informational events of each one-second window (the window starts at
the first event after the previous one ended) and counts the others by kind. The count goes out
as one ``skipped`` :class:`~alice_trio.models.TurnEvent` (how many, of which kinds) right before
the first event let through in a later window, or before a terminal event, whichever comes
first; what is counted after the last of those is for the caller to say at the end
(:meth:`EventRate.notice`). Every other event — progress, terminal, ``thread_started``,
questions, file changes — passes, in order.

The one-shot engine asks :meth:`EventRate.open` before decoding a read chunk; while the window
has no room left, a decoder with a ``quiet`` flag does not build the informational events of
that chunk at all (it keeps the run's state from every line and counts what it did not build in
its ``skipped``, which :meth:`EventRate.count` adds here). Pure (no trio): the caller passes
the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..models import EventKind, RawEvent, TurnEvent

__all__ = ["INFORMATIONAL", "EventRate", "skipped_notice"]

#: the kinds (``kind`` values, and the ``stdout_line`` raw events of ``raw_lines``) a consumer
#: may not get: they carry no part of the run's result
INFORMATIONAL = frozenset(
    {
        EventKind.REASONING._value_,
        EventKind.TOOL_USE._value_,
        EventKind.TOOL_RESULT._value_,
        EventKind.UNKNOWN._value_,
        EventKind.USAGE._value_,
        EventKind.USER_TEXT._value_,
        "stdout_line",
    }
)
#: the kinds a notice goes out before, whatever the window (``EventKind.terminal``)
_TERMINAL = frozenset(kind._value_ for kind in EventKind if kind.terminal)
#: the length of a window, in seconds
WINDOW = 1.0


def skipped_notice(counts: Mapping[str, int], why: str, provider: str = "") -> TurnEvent:
    """The ``skipped`` event for ``counts`` (kind → events not delivered): ``"12,345 events
    skipped: <why> (tool_use 12,340, reasoning 5)"``, the four commonest kinds named."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in ranked[:4])
    more = ", …" if len(ranked) > 4 else ""
    text = f"{total:,} events skipped: {why} ({kinds}{more})"
    return TurnEvent(kind=EventKind.SKIPPED, text=text, provider=provider)


class EventRate:
    """At most ``rate`` (an int > 0) informational events per one-second window (module
    docstring); anything else raises ``ValueError``."""

    def __init__(self, rate: int, *, provider: str = "", why: str = "") -> None:
        if type(rate) is not int or rate <= 0:  # a float rate would pass one event too many
            raise ValueError(f"rate must be an int > 0, got {rate!r}")
        self.rate = rate
        self.provider = provider
        #: the reason the notices give ("over N a second" unless given)
        self.why = why or f"over {rate:,} a second"
        self._window_end = -math.inf
        self._left = 0
        #: kind → informational events counted since the last notice
        self.skipped: dict[str, int] = {}
        #: every event not delivered, over the whole run
        self.total_skipped = 0
        self._skip_window = -math.inf  # the window of the newest event counted

    def open(self, now: float) -> bool:
        """Whether an informational event may pass at ``now`` (starts a new window when the
        last one is over)."""
        if now >= self._window_end:
            self._window_end = now + WINDOW
            self._left = self.rate
        return self._left > 0

    def count(self, kinds: dict[str, int]) -> None:
        """Add what a quiet decoder did not build (``kinds`` is emptied)."""
        skipped = self.skipped
        for kind, n in kinds.items():
            skipped[kind] = skipped.get(kind, 0) + n
            self.total_skipped += n
        if kinds:
            self._skip_window = self._window_end
        kinds.clear()

    def filter(self, events: list[TurnEvent | RawEvent], now: float) -> list[TurnEvent | RawEvent]:
        """``events`` less the informational ones over the rate (counted). The count goes out
        as one ``skipped`` notice before the first event let through in a later window, or
        before a terminal event: at most one a window but for those before terminal events;
        what is counted after the last one waits in :attr:`skipped` (:meth:`notice`)."""
        self.open(now)
        informational, terminal = INFORMATIONAL, _TERMINAL
        skipped = self.skipped
        out: list[TurnEvent | RawEvent] = []
        append = out.append
        for event in events:
            kind = event.kind if type(event) is RawEvent else event.kind._value_  # type: ignore[union-attr]
            if kind in informational:
                if self._left <= 0:
                    skipped[kind] = skipped.get(kind, 0) + 1
                    self.total_skipped += 1
                    self._skip_window = self._window_end
                    continue
                self._left -= 1
            if skipped and (self._skip_window != self._window_end or kind in terminal):
                append(self.notice())
            append(event)
        return out

    def notice(self) -> TurnEvent:
        """The ``skipped`` event for what was counted since the last one (then forgotten)."""
        event = skipped_notice(self.skipped, self.why, self.provider)
        self.skipped.clear()  # in place: ``filter`` holds it
        return event
