"""Hostile-use finding (round 5): every error pickles and copies as itself.

A bot that hands a failure to another process (a worker pool, a result cache, a queue) pickles
it. ``UnknownProviderError`` did not unpickle at all (``TypeError: missing 1 required positional
argument: 'known'``: pickling re-called ``__init__`` with ``args``), and ``JsonRpcError`` came
back with another ``args`` (its message wrapped a second time)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import alice_trio.errors as errors_module
from alice_trio.errors import (
    AliceError,
    JsonRpcError,
    LineTooLongError,
    ProcessFailedError,
    SessionStateError,
    UnknownProviderError,
)
from alice_trio.models import RunResult, Usage

PARTIAL = RunResult(reply="so far", next_thread_id="t-1", usage=Usage(input_tokens=3))

SPECIAL: list[AliceError] = [
    UnknownProviderError("codx", ["codex", "claude"]),
    JsonRpcError(
        "bad params",
        code=-32602,
        data={"why": [1, 2]},
        method="turn/start",
        partial=PARTIAL,
        stderr_tail="boom",
    ),
    ProcessFailedError("died", returncode=-9, partial=PARTIAL, provider="codex"),
    LineTooLongError("too long", limit=1024),
    SessionStateError("no", state="closed", command="submit"),
]


def every_error() -> list[AliceError]:
    plain = [
        cls("a message", partial=PARTIAL, provider="p", stderr_tail="tail")
        for cls in vars(errors_module).values()
        if isinstance(cls, type) and issubclass(cls, AliceError) and cls is not UnknownProviderError
    ]
    return plain + SPECIAL


def same(a: Any, b: Any) -> None:
    assert type(b) is type(a)
    assert b.args == a.args
    assert str(b) == str(a)
    assert b.__dict__ == a.__dict__


@pytest.mark.parametrize("error", every_error(), ids=lambda e: type(e).__name__)
def test_an_error_pickles_and_copies_as_itself(error: AliceError) -> None:
    same(error, pickle.loads(pickle.dumps(error)))
    same(error, copy.copy(error))
    same(error, copy.deepcopy(error))


def test_its_notes_travel_with_it() -> None:
    error = JsonRpcError("x", code=1)
    error.add_note("also: y")
    try:
        raise error from KeyError("k")
    except JsonRpcError as caught:
        back = pickle.loads(pickle.dumps(caught))
    assert back.__notes__ == ["also: y"]
    assert str(back) == str(error)
