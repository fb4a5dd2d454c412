"""The hot path's event constructors build exactly the objects attrs' ``__init__`` builds."""

from __future__ import annotations

import pickle
import weakref

import attrs
import pytest

from alice_trio.models import EventKind, RawEvent, TurnEvent, _raw_event, plain_event


@pytest.mark.parametrize("kind", list(EventKind))
def test_plain_event_is_the_attrs_object(kind: EventKind) -> None:
    fast = plain_event(kind, '{"type":"x"}', "codex", "thread-1", "some text")
    slow = TurnEvent(kind=kind, raw='{"type":"x"}', provider="codex", thread_id="thread-1",
                     text="some text")  # fmt: skip
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert type(fast) is TurnEvent and list(vars(fast).items()) == list(vars(slow).items())
    assert pickle.loads(pickle.dumps(fast)) == slow
    assert weakref.ref(fast)() is fast
    # every other field holds the declared default
    for field in attrs.fields(TurnEvent):
        if field.name not in ("kind", "raw", "provider", "thread_id", "text"):
            assert getattr(fast, field.name) == field.default, field.name
    assert attrs.evolve(fast, text="y") == attrs.evolve(slow, text="y")


def test_fast_events_stay_frozen() -> None:
    event = plain_event(EventKind.TOOL_USE, "", "codex", "", "x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.text = "changed"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        del event.text
    raw = _raw_event("tool_use", "line", "detail")
    assert raw == RawEvent(kind="tool_use", line="line", detail="detail")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        raw.detail = "changed"  # type: ignore[misc]


def test_to_raw_event_matches_the_keyword_constructor() -> None:
    event = TurnEvent(kind=EventKind.ERROR, error="boom", raw=" {} \n", text="t")
    assert event.to_raw_event() == RawEvent(kind="error", line="{}", detail="boom")
