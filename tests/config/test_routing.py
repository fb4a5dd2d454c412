"""MultiBackend: one set of routing rules and error texts (spec §5.4)."""

from __future__ import annotations

import re
import warnings
from typing import Any

import attrs
import pytest

from alice_trio.backend import OneShotBackend
from alice_trio.config import parse_config
from alice_trio.errors import AgentError, ConfigError, SteerUnsupportedError
from alice_trio.models import RunRequest, RunResult
from alice_trio.routing import MultiBackend, backend_from_config


@attrs.define
class Fake:
    name: str
    seen: list[RunRequest] = attrs.Factory(list)
    fail: Exception | None = None

    async def run(self, request: RunRequest) -> RunResult:
        self.seen.append(request)
        if self.fail is not None:
            raise self.fail
        return RunResult(reply=f"{self.name}:{request.provider}")


@attrs.define
class Steerable(Fake):
    steered: list[RunRequest] = attrs.Factory(list)

    async def steer(self, request: RunRequest) -> str:
        self.steered.append(request)
        return "steered"


def exact(text: str) -> str:
    return f"^{re.escape(text)}$"


def req(**kw: str) -> RunRequest:
    return RunRequest(user_text="hi", **kw)


def test_construction_errors() -> None:
    with pytest.raises(ConfigError, match=exact("multi backend requires at least one backend")):
        MultiBackend({})
    with pytest.raises(ConfigError, match=exact("multi backend requires at least one backend")):
        MultiBackend({"codex": None})
    with pytest.raises(
        ConfigError,
        match=exact('multi backend: defaultProvider "kimi" is not in the registered backends'),
    ):
        MultiBackend({"codex": Fake("codex")}, default_provider="kimi")
    with pytest.raises(
        ConfigError,
        match=exact(
            "multi backend: defaultProvider must be set when multiple backends are configured "
            'and "codex" is not one of them'
        ),
    ):
        MultiBackend({"claude": Fake("claude"), "kimi": Fake("kimi")})
    with pytest.raises(ConfigError, match="empty name"):
        MultiBackend({" ": Fake("codex")})
    with pytest.raises(ConfigError, match='defaultProfile "x" is not in the configured profiles'):
        MultiBackend(profiles={"a": Fake("codex")}, default_profile="x")


async def test_default_rules() -> None:
    only = MultiBackend({"Claude ": Fake("claude")})
    assert only.default_provider == "claude"
    assert (await only.run(req())).reply == "claude:claude"
    multi = MultiBackend({"claude": Fake("claude"), "codex": Fake("codex")})
    assert multi.default_provider == "codex"
    explicit = MultiBackend({"claude": Fake("claude"), "codex": Fake("codex")},
                            default_provider=" CLAUDE")  # fmt: skip
    assert (await explicit.run(req())).reply == "claude:claude"


async def test_provider_routing_normalizes_and_writes_provider() -> None:
    claude, codex = Fake("claude"), Fake("codex")
    multi = MultiBackend({"claude": claude, "codex": codex})
    assert (await multi.run(req(provider="  Claude "))).reply == "claude:claude"
    assert claude.seen[-1].provider == "claude"
    with pytest.raises(
        ConfigError,
        match=exact(
            'llm backend for provider "gemini" is unavailable; configured providers: claude, codex'
        ),
    ):
        await multi.run(req(provider="gemini"))


async def test_backend_errors_pass_through_unwrapped() -> None:
    boom = AgentError("rate limited", status=429)
    multi = MultiBackend({"codex": Fake("codex", fail=boom)})
    with pytest.raises(AgentError) as info:
        await multi.run(req())
    assert info.value is boom


async def test_profile_routing() -> None:
    chat, work = Fake("codex"), Fake("claude")
    multi = MultiBackend(profiles={"chat": chat, "work": work}, default_profile="chat")
    assert multi.providers() == ["claude", "codex"]
    result = await multi.run(req(profile="WORK"))
    assert result.reply == "claude:claude"
    assert work.seen[-1].profile == ""  # the outer name never reaches the CLI
    await multi.run(req())
    assert chat.seen[-1].provider == "codex"
    await multi.run(req(provider="claude"))  # a provider with a profile of its own
    assert len(work.seen) == 2
    await multi.run(req(profile="review"))  # not ours: passed on to the default's provider
    assert chat.seen[-1].profile == "review"
    with pytest.raises(ConfigError, match='profile "work" uses provider "claude", but the '
                       'request asks for provider "codex"'):  # fmt: skip
        await multi.run(req(profile="work", provider="codex"))


async def test_provider_with_several_profiles_prefers_default_then_file_order() -> None:
    a, b, c = Fake("codex"), Fake("codex"), Fake("claude")
    multi = MultiBackend(profiles={"a": a, "b": b, "c": c}, default_profile="b")
    await multi.run(req(provider="codex"))
    assert len(b.seen) == 1 and not a.seen
    multi = MultiBackend(profiles={"a": a, "b": b, "c": c}, default_profile="c")
    await multi.run(req(provider="codex"))
    assert len(a.seen) == 1


async def test_steer() -> None:
    plain, steer = Fake("codex"), Steerable("claude")
    multi = MultiBackend({"codex": plain, "claude": steer})
    with pytest.raises(SteerUnsupportedError):
        await multi.steer(req())
    assert await multi.steer(req(provider="claude")) == "steered"
    assert steer.steered[-1].provider == "claude"


async def test_aclose_closes_each_backend_once() -> None:
    closed: list[str] = []

    @attrs.define
    class Closable(Fake):
        async def aclose(self) -> None:
            closed.append(self.name)

    shared = Closable("codex")
    multi = MultiBackend({"codex": shared}, profiles={"a": shared, "b": Closable("claude")})
    await multi.aclose()
    assert sorted(closed) == ["claude", "codex"]


async def test_backend_from_config_runs_replay() -> None:
    app = parse_config(
        {
            "default_profile": "fast",
            "llm_profiles": {
                "fast": {"provider": "replay", "speed": 0},
                "codex": {"provider": "codex", "command": "/nonexistent/codex"},
            },
        }
    )
    multi = backend_from_config(app)
    backends = multi.profile_backends()
    assert isinstance(backends["fast"], OneShotBackend)
    result = await multi.run(RunRequest(user_text="hi"))
    assert result.reply.startswith("The command printed:")
    assert result.next_thread_id == "01a21857-8d93-7d61-8bab-f9ca2ca653ae"


async def test_async_with_enters_context_manager_backends() -> None:
    log: list[str] = []

    @attrs.define
    class Managed(Fake):
        async def __aenter__(self) -> Managed:
            log.append(f"enter {self.name}")
            return self

        async def __aexit__(self, *exc: object) -> None:
            log.append(f"exit {self.name}")

    shared = Managed("codex")
    multi = MultiBackend({"codex": shared}, profiles={"a": shared, "b": Managed("claude")})
    async with multi as entered:
        assert entered is multi
        await multi.run(req())
    assert log == ["enter codex", "enter claude", "exit claude", "exit codex"]


async def test_backend_from_config_with_session_backends() -> None:
    sessions = pytest.importorskip("alice_trio.sessions.backend")
    app = parse_config({"llm_profiles": {"fast": {"provider": "replay", "speed": 0}}})

    def factory(provider: Any, config: Any) -> Any:
        return sessions.SessionBackend(provider, config, idle_ttl=0.05)

    async with backend_from_config(app, factory=factory) as multi:
        result = await multi.run(RunRequest(user_text="hi", env={"ALICE_SESSION_KEY": "chat-1"}))
    assert result.reply.startswith("The command printed:")


def test_an_async_def_factory_is_a_config_error_without_a_never_awaited_warning() -> None:
    """Hostile-use finding (round 11): ``backend_from_config(app, factory=async_fn)`` was
    refused, but every profile's coroutine was left un-awaited: one ``RuntimeWarning`` per
    profile after the error."""
    import gc

    app = parse_config(
        {
            "default_profile": "a",
            "llm_profiles": {n: {"provider": "replay", "speed": 0} for n in ("a", "b", "c")},
        }
    )

    async def factory(provider: Any, config: Any) -> Any:  # pragma: no cover - never awaited
        return OneShotBackend(provider, config)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ConfigError, match="not async def"):
            backend_from_config(app, factory=factory)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]
