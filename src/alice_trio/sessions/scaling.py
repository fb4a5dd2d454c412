"""How a :class:`~alice_trio.sessions.backend.SessionBackend` scales: :class:`ScalingConfig`
(plain data, no I/O; read by the config loader for a profile's ``scaling:`` mapping).

Validated at construction by the project's one set of checks
(:func:`alice_trio.validation.checked_fields`): a bad value raises
:class:`~alice_trio.errors.ConfigError` naming the field, with the same message from Python and
from a YAML ``scaling:`` mapping."""

from __future__ import annotations

from typing import Any

import attrs

from ..validation import InvalidValue, boolean, checked_fields, integer, meta, seconds

__all__ = ["ScalingConfig"]


def _positive_seconds(value: Any) -> float:
    """A finite number of seconds ``> 0``."""
    result: float = seconds()(value)
    if result <= 0:
        raise InvalidValue(f"expected a number of seconds > 0, got {value!r}")
    return result


@attrs.frozen(kw_only=True, field_transformer=checked_fields)
class ScalingConfig:
    """How a :class:`SessionBackend` scales (YAML: a profile's ``scaling:`` mapping).

    * ``share``: put conversations on shared agent processes where the protocol allows.
    * ``warm``: spare conversations kept ready (0: none).
    * ``max_processes``: agent processes per backend (0: no bound).
    * ``max_conversations``: live conversations per backend; beyond it the least recently used
      idle one is closed (it resumes by thread id on its next run). 0: no bound.
    * ``max_turns``: turns running at once; the rest wait in FIFO order (0: no bound).
    * ``host_capacity``: conversations per shared process (live ones; for an agent that cannot
      free a session, every one it opened — it then retires). ``> 0``.
    * ``spare_retry``: seconds before a failed spare is tried again (doubling, max 300 s);
      finite, ``> 0``.
    * ``close_unresumable``: let ``idle_ttl`` and ``max_conversations`` close a conversation
      the agent cannot resume (its context is lost then). Off (default): the backend never
      closes one by itself (docs/scaling.md, "Conversations an agent cannot resume").
    """

    share: bool = attrs.field(default=True, metadata=meta(boolean))
    warm: int = attrs.field(default=1, metadata=meta(integer(0)))
    max_processes: int = attrs.field(default=0, metadata=meta(integer(0)))
    max_conversations: int = attrs.field(default=0, metadata=meta(integer(0)))
    max_turns: int = attrs.field(default=0, metadata=meta(integer(0)))
    host_capacity: int = attrs.field(default=32, metadata=meta(integer(0, strict=True)))
    spare_retry: float = attrs.field(default=5.0, metadata=meta(_positive_seconds))
    close_unresumable: bool = attrs.field(default=False, metadata=meta(boolean))
