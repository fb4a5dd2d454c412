"""A session driver of another package (docs/add-backend.md §5), or a test's ScriptedDriver,
that gets the driver contract's types wrong.

* ``steer_mode`` spelled as the string a ``SessionSpec`` uses (``"native"``): the session took
  it, and the first input sent while a turn ran raised ``AttributeError: 'str' object has no
  attribute 'native'`` out of ``submit`` (garbage the same, however late). Now the value
  string is the mode, and anything else is a ``ConfigError`` when the session opens.
* an event whose fields have the wrong types (``text=42``, ``thread_id=b"x"``, ``usage="x"``,
  a dict instead of a ``TurnEvent``): ``SessionBackend.run`` raised ``AttributeError`` from
  deep inside, or returned a ``RunResult`` whose ``reply`` was bytes. Now the session's
  ``emit`` refuses it: a ``ProtocolError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from alice_trio import EventKind, RunRequest, SessionBackend, SubmitMode, open_session
from alice_trio.errors import ConfigError, ProtocolError
from alice_trio.event_check import malformed
from alice_trio.file_changes import FileChange, FileChangeKind
from alice_trio.models import TurnEvent, Usage
from alice_trio.sessions.driver import SteerMode, TurnRef
from alice_trio.testing import ScriptedDriver


class _StringModeDriver(ScriptedDriver):
    """A driver whose class attribute is the record's string, as a third party writes it."""

    def __init__(self, mode: object) -> None:
        super().__init__()
        self.steer_mode = mode  # type: ignore[assignment]


#: steer mode → what a submit while the first turn runs does
_WHILE_BUSY = {
    "native": SubmitMode.STEERED,
    "native_enqueue": SubmitMode.STEERED,
    "queue_when_busy": SubmitMode.QUEUED,
    "interrupt_only": SubmitMode.QUEUED,
}


@pytest.mark.parametrize("mode", list(_WHILE_BUSY))
async def test_a_steer_mode_spelled_as_its_value_is_that_mode(mode: str) -> None:
    driver = _StringModeDriver(mode)
    async with open_session("codex", initial=RunRequest(user_text=""), driver=driver) as session:
        assert session.steer_mode is SteerMode(mode)
        first = await session.submit(RunRequest(user_text="one"))
        second = await session.submit(RunRequest(user_text="two"))
        assert (first.mode, second.mode) == (SubmitMode.STARTED, _WHILE_BUSY[mode])
        await driver.finish(driver.started[0][0], text="done")
        async for event in session.events():
            if event.kind.terminal:
                break


@pytest.mark.parametrize("mode", ["bogus", None, 3, "NATIVE", SubmitMode.STARTED])
async def test_a_steer_mode_that_is_none_is_refused_when_the_session_opens(mode: object) -> None:
    driver = _StringModeDriver(mode)
    with pytest.raises(ConfigError, match="steer_mode"):
        async with open_session("codex", initial=RunRequest(user_text=""), driver=driver):
            pytest.fail("opened")  # pragma: no cover


def test_scripted_driver_checks_its_arguments() -> None:
    assert ScriptedDriver(steer_mode="native").steer_mode is SteerMode.NATIVE
    for kwargs in ({"steer_mode": "bogus"}, {"thread_id": 5}, {"reply": "text"}):
        with pytest.raises(ValueError):
            ScriptedDriver(**kwargs)  # type: ignore[arg-type]


def _ev(ref: TurnRef, **fields: Any) -> TurnEvent:
    base: dict[str, Any] = {
        "kind": EventKind.ASSISTANT_TEXT, "text": "t", "thread_id": ref.thread_id,
        "turn_id": ref.turn_id,
    }  # fmt: skip
    return TurnEvent(**{**base, **fields})


#: a malformed event the driver emits during the turn, and the field the error names
MALFORMED: dict[str, tuple[Callable[[TurnRef], Any], str]] = {
    "int text": (lambda ref: _ev(ref, text=42), "text"),
    "bytes text": (lambda ref: _ev(ref, text=b"hi"), "text"),
    "int thread id": (lambda ref: _ev(ref, thread_id=5), "thread_id"),
    "None turn id": (lambda ref: _ev(ref, turn_id=None), "turn_id"),
    "str kind": (lambda ref: _ev(ref, kind="assistant_text"), "kind"),
    "dict usage": (lambda ref: _ev(ref, kind=EventKind.USAGE, usage={"input": 1}), "usage"),
    "bool status": (lambda ref: _ev(ref, kind=EventKind.ERROR, status=True), "status"),
    "str status": (lambda ref: _ev(ref, kind=EventKind.ERROR, status="429"), "status"),
    "list files": (
        lambda ref: _ev(ref, kind=EventKind.FILE_CHANGE, files=["a.txt"]),
        "files",
    ),
    "str question": (lambda ref: _ev(ref, kind=EventKind.QUESTION, question="why?"), "question"),
    "a dict": (lambda ref: {"kind": "assistant_text", "text": "hi"}, "not a TurnEvent"),
    "None": (lambda ref: None, "not a TurnEvent"),
}


class _Emits(ScriptedDriver):
    """Answers every prompt, sending ``bad(ref)`` before the turn's end."""

    def __init__(self, bad: Callable[[TurnRef], Any]) -> None:
        super().__init__(auto_reply=True)
        self.bad = bad

    async def finish(self, ref: TurnRef, *args: Any, **kwargs: Any) -> None:
        await self.push(self.bad(ref))
        await super().finish(ref, *args, **kwargs)


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_event_is_a_protocol_error_naming_the_field(name: str) -> None:
    bad, field = MALFORMED[name]
    backend = SessionBackend("codex", driver_factory=lambda cfg, req: _Emits(bad))
    async with backend:
        with trio.fail_after(30), pytest.raises(ProtocolError, match="malformed event") as caught:
            await backend.run(RunRequest(user_text="hi"))
    assert field in str(caught.value)


async def test_a_reply_function_that_returns_no_string_is_a_protocol_error() -> None:
    for reply in (lambda prompt: 42, lambda prompt: b"bytes"):
        backend = SessionBackend(
            "codex",
            driver_factory=lambda cfg, req, r=reply: ScriptedDriver(auto_reply=True, reply=r),
        )
        async with backend:
            with pytest.raises(ProtocolError, match="text is"):
                await backend.run(RunRequest(user_text="hi"))


def test_well_formed_events_pass() -> None:
    ref = TurnRef(thread_id="t", turn_id="1")
    change = FileChange(path="a", kind=FileChangeKind.ADDED)
    for event in (
        _ev(ref),
        _ev(ref, kind=EventKind.TURN_COMPLETED, usage=Usage(input_tokens=1)),
        _ev(ref, kind=EventKind.ERROR, status=429, error="rate"),
        _ev(ref, kind=EventKind.FILE_CHANGE, files=(change,)),
        TurnEvent(kind=EventKind.UNKNOWN),
    ):
        assert malformed(event) is None, event


# -- a driver factory (a SessionSpec's "module:factory", SessionBackend's driver_factory) ------


class FactoryBug(Exception):
    pass


def _raises(config: Any, initial: RunRequest) -> Any:
    raise FactoryBug("the factory's bug")


async def _async_factory(config: Any, initial: RunRequest) -> ScriptedDriver:
    return ScriptedDriver(auto_reply=True)  # pragma: no cover - never awaited


#: factory → the typed error and a word of its message
FACTORIES: dict[str, tuple[Callable[..., Any], type[Exception], str]] = {
    "raises": (_raises, ProtocolError, "FactoryBug"),
    "returns None": (lambda config, initial: None, ConfigError, "returned None"),
    "returns a string": (lambda config, initial: "codex", ConfigError, "returned 'codex'"),
    "returns an object": (lambda config, initial: object(), ConfigError, "not a session driver"),
    "async def": (_async_factory, ConfigError, "coroutine"),
}


def _provider_with(factory: Callable[..., Any]) -> Any:
    import attrs

    from alice_trio.providers import get_provider
    from alice_trio.providers.record import Capabilities, Flavor, SessionSpec

    spec = SessionSpec(
        factory=factory, protocol="scripted", long_lived=True, steer_mode="queue_when_busy",
        capabilities=Capabilities(),
    )  # fmt: skip
    return attrs.evolve(get_provider("replay"), name="factorytest", flavors=(Flavor(session=spec),))


@pytest.mark.parametrize("name", list(FACTORIES))
async def test_a_factory_that_fails_or_returns_no_driver_is_a_typed_error(name: str) -> None:
    import gc
    import warnings

    factory, error, word = FACTORIES[name]
    provider = _provider_with(factory)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(error, match=word):
            async with open_session(provider, initial=RunRequest(user_text="")):
                pytest.fail("opened")  # pragma: no cover
        async with SessionBackend(provider) as backend:
            with pytest.raises(error, match=word):
                await backend.run(RunRequest(user_text="hi"))
        async with SessionBackend("codex", driver_factory=factory) as backend:
            with pytest.raises(error, match=word):
                await backend.run(RunRequest(user_text="hi"))
        gc.collect()  # a coroutine not closed warns "never awaited" when collected
    assert not [w for w in caught if "never awaited" in str(w.message)]


@pytest.mark.parametrize("driver", ["codex", object(), 5])
async def test_open_session_with_a_driver_that_is_none_is_a_config_error(driver: Any) -> None:
    with pytest.raises(ConfigError, match="not a session driver"):
        async with open_session("codex", initial=RunRequest(user_text=""), driver=driver):
            pytest.fail("opened")  # pragma: no cover


# -- a driver's methods returning what the protocol does not allow ------------------------------


class _Returns(ScriptedDriver):
    """``start_turn``/``steer_turn`` return ``bad`` (after doing their work)."""

    def __init__(self, start: Any = None, steer: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bad_start, self.bad_steer = start, steer

    async def start_turn(self, request: RunRequest) -> TurnRef:
        ref = await super().start_turn(request)
        return self.bad_start if self.bad_start is not None else ref

    async def steer_turn(self, turn: TurnRef, request: RunRequest) -> TurnRef:
        ref = await super().steer_turn(turn, request)
        return self.bad_steer if self.bad_steer is not None else ref


WRONG_REFS = ["t1", ("thr", "t1"), 0, TurnRef(thread_id=5, turn_id=7)]  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", WRONG_REFS, ids=repr)
async def test_a_start_turn_that_returns_no_turn_ref_is_a_protocol_error(bad: Any) -> None:
    """It was an ``AttributeError`` out of ``submit``/``run`` — or, for a ref of numbers, a
    run that waited forever for events naming a turn id no event had."""
    driver = _Returns(start=bad)
    async with open_session("codex", initial=RunRequest(user_text=""), driver=driver) as session:
        with pytest.raises(ProtocolError, match="start_turn returned"):
            await session.submit(RunRequest(user_text="a"))
    backend = SessionBackend(
        "codex", driver_factory=lambda c, r: _Returns(start=bad, auto_reply=True)
    )
    async with backend:
        with trio.fail_after(30), pytest.raises(ProtocolError, match="start_turn returned"):
            await backend.run(RunRequest(user_text="hi"))


@pytest.mark.parametrize("bad", WRONG_REFS, ids=repr)
async def test_a_steer_turn_that_returns_no_turn_ref_is_a_protocol_error(bad: Any) -> None:
    driver = _Returns(steer=bad, steer_mode=SteerMode.NATIVE)
    async with open_session("codex", initial=RunRequest(user_text=""), driver=driver) as session:
        first = await session.submit(RunRequest(user_text="a"))
        with pytest.raises(ProtocolError, match="steer_turn returned"):
            await session.submit(RunRequest(user_text="b"))
        # the session goes on: the turn that runs still ends
        await driver.finish(TurnRef(thread_id=first.thread_id, turn_id=first.turn_id), text="x")
        async for event in session.events():
            if event.kind.terminal:
                assert event.kind is EventKind.TURN_COMPLETED
                break


class _BadTail(ScriptedDriver):
    def __init__(self, tail: Callable[[], Any]) -> None:
        super().__init__(auto_reply=True)
        self.tail = tail

    def stderr_tail(self) -> Any:
        return self.tail()


def _tail_raises() -> str:
    raise FactoryBug("the tail's bug")


@pytest.mark.parametrize(
    "tail", [_tail_raises, lambda: 5, lambda: b"bytes"], ids=["raises", "int", "bytes"]
)
async def test_a_stderr_tail_that_raises_or_is_no_text_does_not_replace_the_result(
    tail: Callable[[], Any],
) -> None:
    """``SessionBackend.run`` reads the tail at every turn's end: one that raised made every
    run raise it (a bare ``FactoryBug`` here)."""
    backend = SessionBackend("codex", driver_factory=lambda c, r: _BadTail(tail))
    async with backend:
        result = await backend.run(RunRequest(user_text="hi"))
    assert result.reply == "reply to hi"


@pytest.mark.parametrize("kind", [EventKind.ASSISTANT_TEXT, EventKind.TURN_STARTED, "error"])
async def test_scripted_finish_with_a_kind_that_ends_nothing_is_a_value_error(kind: Any) -> None:
    """``driver.finish(ref, EventKind.ASSISTANT_TEXT)`` sent an event that ends no turn: the
    bot under test waited for ever (until its own deadline)."""
    driver = ScriptedDriver()
    async with open_session("codex", initial=RunRequest(user_text=""), driver=driver) as session:
        submitted = await session.submit(RunRequest(user_text="a"))
        ref = TurnRef(thread_id=submitted.thread_id, turn_id=submitted.turn_id)
        with pytest.raises(ValueError, match="finish ends a turn"):
            await driver.finish(ref, kind)
        await driver.finish(ref, text="done")
        async for event in session.events():
            if event.kind.terminal:
                assert event.kind is EventKind.TURN_COMPLETED
                break
