"""A profile's settings are structured by the config class's constructor when every key names a
field it checks itself (no cattrs import: ``alice-trio run --provider`` starts faster), else by
cattrs. Both paths give the same object, and the same error lines, for any data."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alice_trio import config
from alice_trio.config_structure import structure as cattrs_structure
from alice_trio.providers.registry import get_provider
from alice_trio.sessions.scaling import ScalingConfig

PROVIDERS = ("codex", "claude", "gemini", "kimi", "opencode", "replay")
CLASSES = [get_provider(p).config_class for p in PROVIDERS] + [ScalingConfig]

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " x ", "a\x00b", "\ud800", "read-only", "never", "high", "5", "1e999"]),
    st.lists(st.text(max_size=6), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), st.integers()), max_size=3),
)


def _both(data: Any, cl: type) -> tuple[tuple[Any, list[tuple[str, str]]], ...]:
    fast_errors: list[tuple[str, str]] = []
    slow_errors: list[tuple[str, str]] = []
    fast = config._structure(_copy(data), cl, "p", fast_errors)
    slow = cattrs_structure(_copy(data), cl, "p", slow_errors)
    return (fast, fast_errors), (slow, slow_errors)


def _copy(data: Any) -> Any:
    return dict(data) if isinstance(data, dict) else data


@settings(max_examples=300, deadline=None)
@given(cl=st.sampled_from(CLASSES), data=st.data())
def test_the_constructor_path_builds_what_cattrs_builds(cl: type, data: st.DataObject) -> None:
    keys = config.config_keys(cl)
    raw = data.draw(
        st.dictionaries(st.sampled_from([*keys, "no_such_key"]), _values, max_size=4), "raw"
    )
    (fast, fast_errors), (slow, slow_errors) = _both(raw, cl)
    assert fast == slow
    assert fast_errors == slow_errors


@pytest.mark.parametrize("cl", CLASSES)
@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"command": " /usr/bin/x "},
        {"timeout_secs": 5},
        {"timeout_secs": float("nan")},
        {"env": {"A": " b "}, "workspace_dir": "/tmp"},
        {"extra_args": "--verbose"},
        {"permissions": {"sandbox": "read-only"}},
        {"warm": 2, "share": False},
        None,
        "not a mapping",
    ],
)
def test_the_same_result_on_typical_settings(cl: type, raw: Any) -> None:
    (fast, fast_errors), (slow, slow_errors) = _both(raw, cl)
    assert fast == slow and fast_errors == slow_errors


@attrs.frozen(kw_only=True)
class _Unchecked:
    """A third-party config class without alice_trio's field checks: its constructor converts
    nothing, so its YAML goes through cattrs' type hooks."""

    count: int = 0
    name: str = ""


def test_a_class_that_does_not_check_its_fields_goes_through_cattrs() -> None:
    errors: list[tuple[str, str]] = []
    built = config._structure({"count": 5, "name": " x "}, _Unchecked, "p", errors)
    assert built == _Unchecked(count=5, name="x") and errors == []  # cattrs' str hook trims
    config._structure({"count": "5"}, _Unchecked, "p", errors)
    assert errors == [("p.count", 'expected an integer, got "5"')]
