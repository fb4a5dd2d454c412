"""One thread, two session keys (sessions/threads.py): a run of key B that resumes the thread
key A's conversation holds (open, or being opened) never opens a second copy of it — on
another process (gemini loads one, codex refuses: "already has an active writer") or on the
same one (refused: the thread is open there). B waits while A's conversation is busy, closes
it once idle, and resumes the thread where the agent still holds it; A's next run takes it
back the same way. On every shared provider (codex app-server, gemini ACP, Kimi Code ACP —
which closes sessions —, opencode serve), against the fake agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from test_hosted_conversations import FAST, make_config, req, wait_for
from test_shared_opencode import make_config as opencode_config
from test_unresumable_conversations import no_load_config

from alice_trio.errors import ConfigError, ResumeUnsupportedError
from alice_trio.providers.kimi import KimiConfig
from alice_trio.sessions.approval import ApprovalDecision
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig

#: the shared providers, and gemini with a process per conversation (the rule is the backend's)
PROVIDERS = ["codex", "gemini", "kimi", "opencode", "gemini-one-process"]


def backend(tmp_path: Path, provider: str, **kw: Any) -> SessionBackend:
    config: Any
    scaling = ScalingConfig(warm=0)
    if provider == "gemini-one-process":
        provider, scaling = "gemini", ScalingConfig(warm=0, share=False)
        config, _ = make_config(tmp_path, "acp")
    elif provider == "opencode":
        config, _ = opencode_config(tmp_path)
    elif provider == "kimi":  # Kimi Code offers session/close: a closed session is released
        acp, _ = make_config(tmp_path, "acp")
        config = KimiConfig(command=acp.command, limits=FAST, workspace_dir=str(tmp_path),
                            env={"FAKE_ACP_CLOSE": "1"})  # fmt: skip
    else:
        config, _ = make_config(tmp_path, "codex" if provider == "codex" else "acp")
    return SessionBackend(provider, config, scaling=scaling, idle_ttl=600, **kw)


def holding(b: SessionBackend, thread: str) -> int:
    """How many conversations of ``b`` are on ``thread`` now."""
    return sum(1 for e in b._sessions.values() if e.session.thread_id == thread)


def on_thread(b: SessionBackend, thread: str) -> int:
    """How many conversations on ``thread`` the pool's processes route to now."""
    count = 0
    for host in b.pool.hosts:
        for link in host.links:
            keys = getattr(link, "keys", None)
            if keys is None:  # an opencode conversation on a serve host
                # one that closed is detached by its run task a few checkpoints after its
                # close returned (it watches nothing by then): not on the thread any more
                count += link.driver.mapper.session_id == thread and not link.driver._closing
            else:
                count += thread in keys
    return count


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_another_key_resuming_an_idle_live_thread_takes_it_over(
    tmp_path: Path, provider: str
) -> None:
    async with backend(tmp_path, provider) as b:
        a = await b.run(req("a", "one"))
        thread = a.next_thread_id
        taken = await b.run(req("b", "from b", thread_id=thread))
        assert taken.reply == f"reply to {thread}: from b"
        assert taken.next_thread_id == thread
        assert b.open_sessions() == ["b"] and b.pool.processes() == 1
        assert on_thread(b, thread) == (1 if b.pool.shared else 0)
        back = await b.run(req("a", "a again"))  # no thread id: a resumes its own
        assert back.reply == f"reply to {thread}: a again"
        assert b.open_sessions() == ["a"] and b.pool.processes() == 1
        assert on_thread(b, thread) == (1 if b.pool.shared else 0)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_keys_resuming_one_thread_at_once_take_turns_on_one_copy(
    tmp_path: Path, provider: str
) -> None:
    async with backend(tmp_path, provider) as b:
        a = await b.run(req("a", "one"))
        thread = a.next_thread_id
        most = 0
        over: list[tuple[int, int, list[str]]] = []  # what was seen when more than one held it

        async def watch() -> None:
            nonlocal most
            while True:
                now = holding(b, thread), on_thread(b, thread)
                most = max(most, *now)
                if max(now) > 1 and len(over) < 5:
                    over.append((*now, sorted(b.open_sessions())))
                await trio.lowlevel.checkpoint()

        results: dict[str, Any] = {}

        async def run(key: str) -> None:
            results[key] = await b.run(req(key, f"from {key}", thread_id=thread))

        async with trio.open_nursery() as n:
            n.start_soon(watch)
            for key in ("c", "d", "e"):
                n.start_soon(run, key)
            await wait_for(lambda: len(results) == 3, "the three runs")
            n.cancel_scope.cancel()
        for key in ("c", "d", "e"):
            assert results[key].reply == f"reply to {thread}: from {key}"
        assert most == 1, over
        assert len(b.open_sessions()) == 1 and b.pool.processes() == 1


@pytest.mark.parametrize("provider", ["codex", "gemini", "gemini-one-process"])
async def test_a_resume_of_a_thread_in_a_running_turn_waits_for_that_turn(
    tmp_path: Path, provider: str
) -> None:
    async with backend(tmp_path, provider) as b:
        a = await b.run(req("a", "one"))
        thread = a.next_thread_id
        results: dict[str, Any] = {}

        async def run(key: str, text: str) -> None:
            results[key] = await b.run(req(key, text, thread_id=thread))

        async with trio.open_nursery() as n:
            n.start_soon(run, "a", "TOOL:sleep 0.5; echo done")
            await wait_for(lambda: b._sessions["a"].current is not None, "a's turn")
            n.start_soon(run, "b", "from b")
            await wait_for(lambda: len(results) == 2, "both runs")
        assert results["a"].reply == "tool said: done"  # not cut short by b
        assert results["b"].reply == f"reply to {thread}: from b"
        assert b.open_sessions() == ["b"] and b.pool.processes() == 1


async def test_a_thread_the_agent_cannot_resume_is_not_taken_from_its_key(
    tmp_path: Path,
) -> None:
    config, _log = no_load_config(tmp_path)
    async with SessionBackend("gemini", config, scaling=ScalingConfig(warm=0)) as b:
        a = await b.run(req("a", "one"))
        with pytest.raises(ResumeUnsupportedError, match="open in conversation 'a'"):
            await b.run(req("b", "from b", thread_id=a.next_thread_id))
        again = await b.run(req("a", "two"))  # a's conversation is untouched
        assert again.reply == f"reply to {a.next_thread_id}: two"
        assert b.open_sessions() == ["a"]


async def test_a_run_cancelled_while_it_waits_for_the_thread_leaves_nothing_held(
    tmp_path: Path,
) -> None:
    async with backend(tmp_path, "codex") as b:
        a = await b.run(req("a", "one"))
        thread = a.next_thread_id
        results: dict[str, Any] = {}
        waiter = trio.CancelScope()

        async def run_a() -> None:
            results["a"] = await b.run(req("a", "TOOL:sleep 0.5; echo done"))

        async def run_b() -> None:
            with waiter:
                results["b"] = await b.run(req("b", "from b", thread_id=thread))

        async with trio.open_nursery() as n:
            n.start_soon(run_a)
            await wait_for(lambda: b._sessions["a"].current is not None, "a's turn")
            n.start_soon(run_b)
            await wait_for(lambda: "b" in b._in_use, "b waiting for the thread")
            waiter.cancel()
        assert waiter.cancelled_caught and "b" not in results
        assert results["a"].reply == "tool said: done"
        assert b._threads.holder(thread) is b._sessions["a"]  # no mark of b's left
        c = await b.run(req("c", "from c", thread_id=thread))
        assert c.reply == f"reply to {thread}: from c" and b.open_sessions() == ["c"]


@pytest.mark.parametrize("via", ["approver", "callback"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_callback_resuming_the_thread_its_own_run_holds_is_refused(
    tmp_path: Path, provider: str, via: str
) -> None:
    """A's approver or progress callback runs key B on A's thread: A's conversation is busy
    until the callback returned, so waiting for it never ends — B gets ConfigError at once
    (it hung), and A's turn goes on."""
    refused: list[BaseException] = []
    thread = ""

    async def take_thread(*_args: Any) -> Any:
        if refused:
            return ApprovalDecision.ACCEPT
        try:
            await b.run(req("b", "from the callback", thread_id=thread))
        except ConfigError as exc:
            refused.append(exc)
        return ApprovalDecision.ACCEPT

    b = backend(tmp_path, provider, approver=take_thread)
    with trio.fail_after(30):
        async with b:
            thread = (await b.run(req("a", "one"))).next_thread_id
            if via == "approver":
                result = await b.run(req("a", "ASK"))
            else:
                result = await b.run(req("a", "two", on_events=take_thread))
                assert result.reply == f"reply to {thread}: two"
            if via == "callback" or provider != "opencode":  # the opencode fake never asks
                assert len(refused) == 1, refused
                assert str(refused[0]) == (
                    f"SessionBackend.run of conversation 'b' from a callback or approver of 'a' "
                    f"would wait forever: thread {thread!r} is open in conversation 'a', whose "
                    "turn cannot end before the callback returned; run it after that run returned"
                )
                assert refused[0].provider == b.provider.name  # type: ignore[attr-defined]
            # nothing is left held: b takes the thread now, a takes it back
            taken = await b.run(req("b", "later", thread_id=thread))
            assert taken.reply == f"reply to {thread}: later"
            assert (await b.run(req("a", "again"))).reply == f"reply to {thread}: again"
            assert b.open_sessions() == ["a"]


async def test_a_take_over_cancelled_right_after_its_local_reopen_leaves_the_thread_parked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B takes A's thread over: A's conversation is parked on the process (the agent cannot
    release it), B's resume is answered locally — and B's run is cancelled right then, before
    its open ended. The agent still holds the thread: it stays parked, so C's resume is
    answered locally too (it was sent to gemini, which refused it: "Internal error")."""
    from alice_trio.sessions import host as host_module

    scope = trio.CancelScope()
    protocol = type(host_module.ACP_HOST)
    reopen = protocol.reopen

    def cancelling(self: Any, method: str, params: Any, parked: set[str]) -> Any:
        local = reopen(self, method, params, parked)
        if local is not None:
            scope.cancel()
        return local

    monkeypatch.setattr(protocol, "reopen", cancelling)
    with trio.fail_after(30):
        async with backend(tmp_path, "gemini") as b:
            thread = (await b.run(req("a", "one"))).next_thread_id
            with scope:
                await b.run(req("b", "from b", thread_id=thread))
            assert scope.cancelled_caught
            monkeypatch.setattr(protocol, "reopen", reopen)
            taken = await b.run(req("c", "from c", thread_id=thread))
            assert taken.reply == f"reply to {thread}: from c"
            assert (await b.run(req("a", "again"))).reply == f"reply to {thread}: again"
            assert b.pool.processes() == 1


@pytest.mark.parametrize(
    ("provider", "delay"), [("kimi", "0.3"), ("gemini", "0.3"), ("kimi", "2.5")]
)
async def test_a_resume_cancelled_while_its_load_is_in_flight_leaves_the_host_consistent(
    tmp_path: Path, provider: str, delay: str
) -> None:
    """Hostile round 9, open item: a run cancelled while its real ``session/load`` is in
    flight. The agent completes the load and holds the session; the host forgot it (the
    request was abandoned), so the next resume of the thread on that process was sent to the
    agent and refused (Kimi Code and gemini: -32603). Now the abandoned load is still awaited
    (bounded, shielded) and what the agent holds is released (Kimi: ``session/close``) or
    parked (gemini: the next resume is answered locally). A load answered only after the
    host's ``close_grace`` (2.5 s here) is taken over by the host: the next resume of that
    thread waits for its answer and release."""
    from test_hosted_conversations import methods

    env = {"FAKE_OPEN_DELAY": delay, **({"FAKE_ACP_CLOSE": "1"} if provider == "kimi" else {})}
    acp, log = make_config(tmp_path, "acp")
    config: Any = (KimiConfig if provider == "kimi" else type(acp))(
        command=acp.command, limits=FAST, workspace_dir=str(tmp_path), env=env
    )
    with trio.fail_after(90):
        async with SessionBackend(provider, config, scaling=ScalingConfig(warm=0)) as first:
            thread = (await first.run(req("a", "one"))).next_thread_id
        async with SessionBackend(provider, config, scaling=ScalingConfig(warm=0)) as b:
            loads = len(methods(log, "session/load"))
            async with trio.open_nursery() as nursery:
                scope = trio.CancelScope()

                async def cancelled_resume() -> None:
                    with scope:
                        await b.run(req("b", "from b", thread_id=thread))

                nursery.start_soon(cancelled_resume)
                await wait_for(lambda: len(methods(log, "session/load")) > loads, "the load")
                scope.cancel()
            assert scope.cancelled_caught
            taken = await b.run(req("c", "from c", thread_id=thread))
            assert taken.reply == f"reply to {thread}: from c"
            assert (await b.run(req("c", "again"))).reply == f"reply to {thread}: again"
            assert b.pool.processes() == 1
        if provider == "kimi":  # the abandoned load was closed before the next one was sent
            sent = [r["msg"]["method"] for r in _logged(log) if "msg" in r]
            tail = sent[sent.index("session/load") :]
            assert tail[:3] == ["session/load", "session/close", "session/load"], tail


def _logged(log: Path) -> list[dict[str, Any]]:
    from test_hosted_conversations import logged

    return logged(log)
