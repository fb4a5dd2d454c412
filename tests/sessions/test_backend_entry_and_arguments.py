"""Hostile-use findings: a backend entered twice (nested, from two tasks, through a router)
refuses the second entry with ConfigError before touching trio's nursery stack, and can be
entered again after a full exit; every public constructor/function checks its own arguments
up front with ConfigError (the project's one set of checks, alice_trio.validation)."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
import trio

from alice_trio import MultiBackend, OneShotBackend, ReplayConfig, RunRequest, SessionBackend
from alice_trio.config import parse_config
from alice_trio.errors import CallbackError, ConfigError
from alice_trio.providers.codex import CodexConfig
from alice_trio.routing import backend_from_config
from alice_trio.sessions.scaling import ScalingConfig
from alice_trio.sessions.session import open_session


def replay() -> SessionBackend:
    return SessionBackend("replay", ReplayConfig(speed=0))


async def ask(b: SessionBackend | MultiBackend) -> str:
    return (await b.run(RunRequest(user_text="hi"))).reply


# -- entering twice -------------------------------------------------------------------------------
async def test_nested_entry_is_refused_and_the_open_backend_is_unharmed():
    b = replay()
    async with b:
        with pytest.raises(ConfigError, match="already open"):
            async with b:
                pytest.fail("entered twice")  # pragma: no cover
        assert await ask(b)  # the open backend still runs
    # the outer exit was clean: trio's stacks are intact (trio.run would crash otherwise)


async def test_a_second_task_entering_an_open_backend_is_refused():
    b = replay()
    refused: list[BaseException] = []
    entered = trio.Event()

    async def owner() -> None:
        async with b:
            entered.set()
            await trio.sleep(0.2)
            assert await ask(b)

    async def intruder() -> None:
        await entered.wait()
        try:
            async with b:
                pytest.fail("entered twice")  # pragma: no cover
        except ConfigError as exc:
            refused.append(exc)

    async with trio.open_nursery() as n:
        n.start_soon(owner)
        n.start_soon(intruder)
    assert len(refused) == 1


async def test_a_router_entered_twice_refuses_and_stays_usable():
    app = parse_config({"llm_profiles": {"r": {"provider": "replay", "speed": 0}}})
    m = backend_from_config(app, factory=SessionBackend)
    async with m:
        with pytest.raises(ConfigError, match="MultiBackend is already open"):
            async with m:
                pytest.fail("entered twice")  # pragma: no cover
        assert await ask(m)
    async with m:  # and again after a full exit
        assert await ask(m)


async def test_a_router_over_an_open_session_backend_refuses_without_harm():
    b = replay()
    m = MultiBackend({"replay": b})
    async with b:
        with pytest.raises(ConfigError, match="SessionBackend is already open"):
            async with m:
                pytest.fail("entered twice")  # pragma: no cover
        assert await ask(b)
    async with m:  # the router was left closed: it enters now
        assert await ask(m)


async def test_exit_without_entry_is_a_config_error_and_touches_nothing():
    b = replay()
    with pytest.raises(ConfigError, match="without a matching __aenter__"):
        await b.__aexit__(None, None, None)
    m = MultiBackend({"replay": b})
    with pytest.raises(ConfigError, match="without a matching __aenter__"):
        await m.__aexit__(None, None, None)
    async with b:
        assert await ask(b)


async def test_exit_from_another_task_says_so_and_the_owner_still_exits():
    """Hostile-use finding (round 11): the exit of a backend entered by another task was
    refused as "without a matching __aenter__" — it had one."""
    b = replay()
    m = MultiBackend({"replay": replay()})
    for backend in (b, m):
        await backend.__aenter__()
        refused: list[ConfigError] = []

        async def intruder(backend: Any = backend, refused: list[ConfigError] = refused) -> None:
            with pytest.raises(ConfigError, match="from another task") as caught:
                await backend.__aexit__(None, None, None)
            refused.append(caught.value)

        async with trio.open_nursery() as n:
            n.start_soon(intruder)
        assert len(refused) == 1 and "matching __aenter__" not in str(refused[0])
        assert await ask(backend)
        await backend.__aexit__(None, None, None)


async def test_reentry_after_a_full_exit_reopens_the_pool():
    b = replay()
    async with b:
        assert await ask(b)
    async with b:  # used to be "the host pool is not open"
        assert await ask(b)
    async with b:
        pass


# -- argument checks ------------------------------------------------------------------------------
BAD_CALLS = {
    "SessionBackend(5)": lambda: SessionBackend(5),  # type: ignore[arg-type]
    "SessionBackend(replay, CodexConfig())": lambda: SessionBackend("replay", CodexConfig()),
    "SessionBackend(codex, ReplayConfig())": lambda: SessionBackend("codex", ReplayConfig()),
    "SessionBackend(idle_ttl=nan)": lambda: SessionBackend("replay", idle_ttl=math.nan),
    "SessionBackend(idle_ttl=-1)": lambda: SessionBackend("replay", idle_ttl=-1),
    "SessionBackend(idle_ttl=inf)": lambda: SessionBackend("replay", idle_ttl=math.inf),
    "SessionBackend(interrupt_deadline=-5)": lambda: SessionBackend(
        "replay", interrupt_deadline=-5
    ),
    "SessionBackend(start_timeout='x')": lambda: SessionBackend(
        "replay",
        start_timeout="x",  # type: ignore[arg-type]
    ),
    "SessionBackend(start_timeout=True)": lambda: SessionBackend("replay", start_timeout=True),
    "SessionBackend(scaling={})": lambda: SessionBackend(
        "replay",
        scaling={},  # type: ignore[arg-type]
    ),
    "SessionBackend(driver_factory=3)": lambda: SessionBackend("replay", driver_factory=3),
    "OneShotBackend(None)": lambda: OneShotBackend(None),  # type: ignore[arg-type]
    "OneShotBackend(replay, CodexConfig())": lambda: OneShotBackend("replay", CodexConfig()),
    "OneShotBackend(replay, {})": lambda: OneShotBackend("replay", {}),  # type: ignore[arg-type]
    "MultiBackend({codex: 5})": lambda: MultiBackend({"codex": 5}),  # type: ignore[dict-item]
    "MultiBackend(profiles={p: 'x'})": lambda: MultiBackend(
        profiles={"p": "x"}  # type: ignore[dict-item]
    ),
    "MultiBackend([1])": lambda: MultiBackend([1]),  # type: ignore[arg-type]
    "ScalingConfig(warm=-1)": lambda: ScalingConfig(warm=-1),
    "ScalingConfig(host_capacity=0)": lambda: ScalingConfig(host_capacity=0),
    "ScalingConfig(max_turns=1.5)": lambda: ScalingConfig(max_turns=1.5),  # type: ignore[arg-type]
    "ScalingConfig(max_processes='2')": lambda: ScalingConfig(
        max_processes="2"  # type: ignore[arg-type]
    ),
    "ScalingConfig(share='yes')": lambda: ScalingConfig(share="yes"),  # type: ignore[arg-type]
    "ScalingConfig(spare_retry=nan)": lambda: ScalingConfig(spare_retry=math.nan),
    "ScalingConfig(spare_retry=0)": lambda: ScalingConfig(spare_retry=0),
}


@pytest.mark.parametrize("call", BAD_CALLS.values(), ids=list(BAD_CALLS))
def test_bad_constructor_arguments_are_config_errors(call):
    with pytest.raises(ConfigError) as info:
        call()
    assert type(info.value) is ConfigError


def test_the_error_names_the_parameter():
    with pytest.raises(ConfigError, match=r"SessionBackend: idle_ttl: .*finite"):
        SessionBackend("replay", idle_ttl=math.nan)
    with pytest.raises(ConfigError, match="OneShotBackend: config: replay needs a ReplayConfig"):
        OneShotBackend("replay", CodexConfig())
    with pytest.raises(ConfigError, match="SessionBackend: config: replay needs a ReplayConfig"):
        SessionBackend("replay", CodexConfig())
    with pytest.raises(ConfigError) as info:
        ScalingConfig(warm=-1)
    assert info.value.errors == (("warm", "must be >= 0, got -1"),)


@pytest.mark.parametrize(
    "scaling",
    [{"warm": -1}, {"max_turns": 1.5}, {"host_capacity": 0}, {"spare_retry": "soon"}],
)
def test_scaling_messages_are_the_same_from_yaml_and_python(scaling):
    with pytest.raises(ConfigError) as py:
        ScalingConfig(**scaling)
    with pytest.raises(ConfigError) as yaml:
        parse_config({"llm_profiles": {"p": {"provider": "replay", "scaling": scaling}}})
    assert str(yaml.value) == f"llm_profiles.p.scaling.{py.value}"


@pytest.mark.parametrize(
    "kw",
    [{"buffer": -1}, {"buffer": 1.5}, {"start_timeout": math.nan}, {"start_timeout": -1},
     {"initial": "hi"}],
)  # fmt: skip
async def test_open_session_checks_its_arguments_before_spawning(kw):
    args = {"initial": RunRequest(user_text="hi"), **kw}
    with pytest.raises(ConfigError):
        async with open_session("replay", ReplayConfig(speed=0), **args):
            pytest.fail("opened")  # pragma: no cover


async def test_open_session_accepts_an_unbounded_buffer():
    async with open_session(
        "replay", ReplayConfig(speed=0), initial=RunRequest(user_text="hi"), buffer=math.inf
    ) as s:
        assert not s.closed


# -- the request of every run/steer/submit --------------------------------------------------------
@pytest.mark.parametrize("bad", [None, "hello", {"user_text": "hi"}], ids=["None", "str", "dict"])
@pytest.mark.parametrize(
    "entry",
    ["OneShotBackend.run", "run_once", "MultiBackend.run", "MultiBackend.steer",
     "SessionBackend.run", "SessionBackend.steer", "submit", "steer"],
)  # fmt: skip
async def test_a_request_that_is_not_a_run_request_is_a_config_error(entry, bad):
    """Was an AttributeError from inside the call (outside the exception contract)."""
    from alice_trio import run_once
    from alice_trio.testing import ScriptedDriver

    one = OneShotBackend("replay", ReplayConfig(speed=0))
    factory = lambda cfg, req: ScriptedDriver(auto_reply=True)  # noqa: E731
    with pytest.raises(ConfigError, match=r"request: expected a RunRequest, got"):
        if entry == "OneShotBackend.run":
            await one.run(bad)
        elif entry == "run_once":
            await run_once(bad, provider="replay")
        elif entry.startswith("MultiBackend"):
            await getattr(MultiBackend({"replay": one}), entry.split(".")[1])(bad)
        elif entry.startswith("SessionBackend"):
            async with SessionBackend("codex", driver_factory=factory) as b:
                await getattr(b, entry.split(".")[1])(bad)
        else:
            initial = RunRequest(user_text="")
            async with open_session("codex", initial=initial, driver=ScriptedDriver()) as s:
                await getattr(s, entry)(bad)


# -- a callback that runs its own conversation again ---------------------------------------------
def scripted() -> SessionBackend:
    from alice_trio.testing import ScriptedDriver

    return SessionBackend(
        "codex", driver_factory=lambda cfg, req: ScriptedDriver(auto_reply=True, reply=str.upper)
    )


def keyed(text: str, key: str, **kw: object) -> RunRequest:
    return RunRequest(user_text=text, env={"ALICE_SESSION_KEY": key}, **kw)  # type: ignore[arg-type]


async def test_a_callback_running_its_own_conversation_is_refused_not_a_hang():
    """Hostile-use finding (round 5): ``on_events`` (or ``on_progress``) calling
    ``backend.run`` for the conversation whose run delivers to it waited for that run, which
    waited for the callback: a hang until the overall timeout (48 h by default). The inner run
    is a ConfigError now, so the outer run fails at once with CallbackError."""
    backend = scripted()
    inner: list[BaseException] = []

    async def again(batch: list[object]) -> None:
        try:
            await backend.run(keyed("inner", "k1"))
        except ConfigError as exc:
            inner.append(exc)
            raise

    with trio.fail_after(30):
        async with backend:
            with pytest.raises(CallbackError) as info:
                await backend.run(keyed("outer", "k1", on_events=again))
            assert isinstance(info.value.__cause__, ConfigError)
            assert "would wait for itself" in str(inner[0])
            # the conversation is usable afterwards, from a task of the caller
            assert (await backend.run(keyed("later", "k1"))).reply == "LATER"


async def test_a_callback_may_run_other_conversations_but_not_one_waiting_on_it():
    backend = scripted()
    replies: list[str] = []

    refused: list[str] = []

    async def deeper(batch: list[object]) -> None:  # k2's callback: k1 waits for k2
        with pytest.raises(ConfigError, match="'k1'"):
            await backend.run(keyed("back to k1", "k1"))
        refused.append("k1")

    async def other(batch: list[object]) -> None:  # k1's callback: k2 is free
        if not replies:
            replies.append((await backend.run(keyed("to k2", "k2", on_events=deeper))).reply)

    with trio.fail_after(30):
        async with backend:
            result = await backend.run(keyed("outer", "k1", on_events=other))
    assert result.reply == "OUTER"
    assert replies == ["TO K2"]
    assert refused and set(refused) == {"k1"}


# -- callbacks that would never run ---------------------------------------------------------------
async def _async_gen(event: object) -> Any:
    yield event  # pragma: no cover - never run


def _gen(event: object) -> Any:
    yield event  # pragma: no cover - never run


@pytest.mark.parametrize("fn", [_async_gen, _gen, functools.partial(_async_gen)],
                         ids=["async-generator", "generator", "partial"])  # fmt: skip
def test_a_generator_function_is_no_callback(fn: Any) -> None:
    """Hostile-use finding (round 5): an ``on_progress``/``on_events``/``on_raw_event`` (or an
    approver) with a ``yield`` in its body was accepted and called: the call only made a
    generator, so the body never ran and every event (every approval: then declined) vanished
    without a word. Refused where it is given now."""
    for field in ("on_progress", "on_raw_event", "on_events"):
        with pytest.raises(ConfigError, match=f"^{field}: .*generator function"):
            RunRequest(user_text="x", **{field: fn})
    with pytest.raises(ConfigError, match=r"^SessionBackend: approver: .*generator function"):
        SessionBackend("codex", approver=fn)


async def test_an_approver_that_is_not_callable_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match=r"^SessionBackend: approver: expected a function"):
        SessionBackend("codex", approver="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^open_session: approver: .*generator function"):
        async with open_session("codex", initial=RunRequest(user_text=""), approver=_gen):
            pytest.fail("opened")  # pragma: no cover
