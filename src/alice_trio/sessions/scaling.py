"""How a :class:`~alice_trio.sessions.backend.SessionBackend` scales: :class:`ScalingConfig`
(plain data, no I/O; read by the config loader for a profile's ``scaling:`` mapping)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ScalingConfig"]


def _non_negative(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class ScalingConfig:
    """How a :class:`SessionBackend` scales (YAML: a profile's ``scaling:`` mapping).

    * ``share``: put conversations on shared agent processes where the protocol allows.
    * ``warm``: spare conversations kept ready (0: none).
    * ``max_processes``: agent processes per backend (0: no bound).
    * ``max_conversations``: live conversations per backend; beyond it the least recently used
      idle one is closed (it resumes by thread id on its next run). 0: no bound.
    * ``max_turns``: turns running at once; the rest wait in FIFO order (0: no bound).
    * ``host_capacity``: conversations per shared process (live ones; for an agent that cannot
      free a session, every one it opened — it then retires).
    * ``spare_retry``: seconds before a failed spare is tried again (doubling, max 300 s).
    """

    share: bool = True
    warm: int = attrs.field(default=1, validator=_non_negative)
    max_processes: int = attrs.field(default=0, validator=_non_negative)
    max_conversations: int = attrs.field(default=0, validator=_non_negative)
    max_turns: int = attrs.field(default=0, validator=_non_negative)
    host_capacity: int = attrs.field(default=32, validator=_positive)
    spare_retry: float = attrs.field(default=5.0, validator=_positive)
