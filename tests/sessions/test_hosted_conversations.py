"""Many conversations on one agent process (sessions/host.py, sessions/pool.py) through
SessionBackend, against fake_shared_agent.py speaking codex app-server or ACP."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from alice_trio.errors import AgentError, RunTimeoutError, TransportClosedError
from alice_trio.models import ExecPolicy, RunRequest
from alice_trio.providers.base import CLIConfig, RunLimits
from alice_trio.providers.codex import CodexConfig
from alice_trio.providers.gemini import GeminiConfig
from alice_trio.providers.kimi import KimiConfig
from alice_trio.sessions.approval import ApprovalDecision, ApprovalRequest
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.pool import ScalingConfig
from alice_trio.sessions.session import open_session

AGENT = str(Path(__file__).with_name("fake_shared_agent.py"))
FAST = RunLimits(kill_grace=0.2, drain_timeout=0.5, max_line_bytes=1024 * 1024)
MODES = ["codex", "acp"]


def make_config(tmp_path: Path, mode: str, **kw: Any) -> tuple[CLIConfig, Path]:
    log = tmp_path / f"{mode}.log"
    cmd = tmp_path / f"fake-{mode}"
    cmd.write_text(f"#!/bin/sh\nexec {sys.executable} {AGENT} {mode} {log}\n")
    cmd.chmod(0o755)
    common: dict[str, Any] = {"command": str(cmd), "limits": FAST, "workspace_dir": str(tmp_path)}
    common.update(kw)
    if mode == "codex":
        return CodexConfig(**common), log
    return GeminiConfig(**common), log


def provider_of(mode: str) -> str:
    return "codex" if mode == "codex" else "gemini"


def req(key: str, text: str, **kw: Any) -> RunRequest:
    return RunRequest(user_text=text, env={SESSION_KEY_ENV: key}, **kw)


def logged(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def methods(log: Path, name: str) -> list[dict[str, Any]]:
    return [r["msg"] for r in logged(log) if "msg" in r and r["msg"].get("method") == name]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def wait_for(predicate: Any, what: str, limit: float = 30.0) -> Any:
    with trio.fail_after(limit):
        while True:
            value = predicate()
            if value:
                return value
            await trio.sleep(0.02)


def tool_pids(log: Path) -> list[int]:
    return [r["tool"] for r in logged(log) if "tool" in r]


@pytest.mark.parametrize("mode", MODES)
async def test_three_conversations_share_one_process_and_get_their_own_replies(
    tmp_path: Path, mode: str
) -> None:
    config, log = make_config(tmp_path, mode)
    async with SessionBackend(provider_of(mode), config, scaling=ScalingConfig(warm=0)) as b:
        results: dict[str, Any] = {}

        async def one(key: str) -> None:
            results[key] = await b.run(req(key, f"hello from {key}"))

        async with trio.open_nursery() as n:
            for key in ("a", "b", "c"):
                n.start_soon(one, key)
        assert len(b.pool.hosts) == 1
        threads = {k: r.next_thread_id for k, r in results.items()}
        assert len(set(threads.values())) == 3
        for key, result in results.items():
            assert result.reply == f"reply to {threads[key]}: hello from {key}"
        # a second turn of each conversation stays on its own thread
        again = await b.run(req("b", "second", thread_id=threads["b"]))
        assert again.reply == f"reply to {threads['b']}: second"
    assert len(methods(log, "initialize")) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_one_turn_mid_tool_kills_only_its_tool(tmp_path: Path, mode: str) -> None:
    config, log = make_config(tmp_path, mode)
    marker = tmp_path / "others"
    marker.mkdir()
    async with SessionBackend(provider_of(mode), config, scaling=ScalingConfig(warm=0)) as b:
        results: dict[str, Any] = {}
        cancel = trio.CancelScope()

        async def victim() -> None:
            with cancel:
                await b.run(req("victim", "TOOL:sleep 60"))
            results["victim"] = "cancelled" if cancel.cancelled_caught else "finished"

        async def other(key: str) -> None:
            # waits for a file the test creates after the cancel: its tool outlives it
            cmd = f"TOOL:while [ ! -e {marker}/go ]; do sleep 0.05; done; echo {key}-done"
            results[key] = await b.run(req(key, cmd))

        async with trio.open_nursery() as n:
            n.start_soon(victim)
            n.start_soon(other, "b")
            n.start_soon(other, "c")
            pids = await wait_for(lambda: len(tool_pids(log)) == 3 and tool_pids(log), "tools")
            by_conv = {r["conv"]: r["tool"] for r in logged(log) if "tool" in r}
            await trio.sleep(0.2)
            cancel.cancel()
            await wait_for(lambda: "victim" in results, "the cancel to return")
            victim_pid = next(p for p in pids if p == by_conv[_victim_conv(log, by_conv)])
            await wait_for(lambda: not alive(victim_pid), "the victim's tool to die")
            others = [p for p in pids if p != victim_pid]
            assert all(alive(p) for p in others), "another conversation's tool died"
            (marker / "go").write_text("")
        assert results["victim"] == "cancelled"
        assert results["b"].reply == "tool said: b-done"
        assert results["c"].reply == "tool said: c-done"
        assert len(b.pool.hosts) == 1
    if mode == "codex":
        assert len(methods(log, "turn/interrupt")) == 1
    else:
        assert len(methods(log, "session/cancel")) >= 1


def _victim_conv(log: Path, by_conv: dict[str, int]) -> str:
    for rec in logged(log):
        msg = rec.get("msg") or {}
        params = msg.get("params") or {}
        texts = params.get("input") or params.get("prompt") or []
        if any("sleep 60" in (t.get("text") or "") for t in texts):
            return params.get("threadId") or params.get("sessionId")
    raise AssertionError("no victim turn")


@pytest.mark.parametrize("mode", MODES)
async def test_a_timeout_in_one_conversation_leaves_the_others_running(
    tmp_path: Path, mode: str
) -> None:
    config, _log = make_config(tmp_path, mode, timeout=4.0)
    async with SessionBackend(
        provider_of(mode), config, scaling=ScalingConfig(warm=0), interrupt_deadline=2.0
    ) as b:
        results: dict[str, Any] = {}

        async def run(key: str, text: str) -> None:
            try:
                results[key] = await b.run(req(key, text))
            except RunTimeoutError as exc:
                results[key] = exc

        async with trio.open_nursery() as n:
            n.start_soon(run, "slow", "SLOW")
            n.start_soon(run, "b", "TOOL:sleep 1; echo b")
            n.start_soon(run, "c", "TOOL:sleep 1; echo c")
        assert isinstance(results["slow"], RunTimeoutError)
        assert results["b"].reply == "tool said: b"
        assert results["c"].reply == "tool said: c"
        host = b.pool.hosts[0]
        assert host.alive
        # the process lives on: the timed-out conversation runs again on it
        after = await b.run(req("slow", "after"))
        assert after.reply.endswith(": after")
        assert b.pool.hosts == [host]


@pytest.mark.parametrize("mode", MODES)
async def test_host_death_fails_only_in_flight_turns_and_idle_ones_resume(
    tmp_path: Path, mode: str
) -> None:
    config, log = make_config(tmp_path, mode)
    async with SessionBackend(provider_of(mode), config, scaling=ScalingConfig(warm=0)) as b:
        idle = await b.run(req("idle", "first"))
        first_host = b.pool.hosts[0]
        results: dict[str, Any] = {}

        async def run(key: str, text: str) -> None:
            try:
                results[key] = await b.run(req(key, text))
            except (AgentError, TransportClosedError) as exc:
                results[key] = exc

        async with trio.open_nursery() as n:
            n.start_soon(run, "busy", "SLOW")
            await wait_for(lambda: len(_prompts(log)) >= 2, "the busy turn to start")
            n.start_soon(run, "crasher", "CRASH")
        for key in ("busy", "crasher"):
            err = results[key]
            # typed, with the process's exit and stderr, and the partial result
            assert isinstance(err, TransportClosedError), (mode, key, err)  # one type on every CLI
            assert "crashing on purpose" in err.stderr_tail
            assert "exit status 3" in str(err)
            assert err.partial is not None
        assert not first_host.alive
        # the idle conversation resumes its thread on a fresh process at its next run (the
        # bot passes no thread id: the backend remembers it)
        again = await b.run(req("idle", "second"))
        assert again.reply == f"reply to {idle.next_thread_id}: second"
        assert b.pool.hosts and b.pool.hosts[0] is not first_host
    resumes = methods(log, "thread/resume" if mode == "codex" else "session/load")
    assert [m["params"].get("threadId") or m["params"].get("sessionId") for m in resumes] == [
        idle.next_thread_id
    ]


def _prompts(log: Path) -> list[dict[str, Any]]:
    return methods(log, "turn/start") + methods(log, "session/prompt")


@pytest.mark.parametrize("mode", MODES)
async def test_an_oversized_line_of_one_conversation_does_not_kill_the_shared_process(
    tmp_path: Path, mode: str
) -> None:
    config, _log = make_config(tmp_path, mode)
    async with SessionBackend(provider_of(mode), config, scaling=ScalingConfig(warm=0)) as b:
        first = await b.run(req("a", "warm up"))
        host = b.pool.hosts[0]
        results: dict[str, Any] = {}

        async def run(key: str, text: str) -> None:
            results[key] = await b.run(req(key, text))

        async with trio.open_nursery() as n:
            n.start_soon(run, "huge", "HUGE")
            n.start_soon(run, "a", "TOOL:sleep 0.5; echo fine")
        assert results["a"].reply == "tool said: fine"
        assert results["huge"].reply.endswith(": HUGE")
        assert host.alive and b.pool.hosts == [host]
        assert first.reply


# -- warm pool ------------------------------------------------------------------------------------


def pids_of(log: Path) -> int:
    return len(methods(log, "initialize"))


@pytest.mark.parametrize("mode", MODES)
async def test_warm_spare_serves_the_first_conversation_and_is_replaced(
    tmp_path: Path, mode: str
) -> None:
    config, _log = make_config(tmp_path, mode)
    async with SessionBackend(provider_of(mode), config) as b:
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        spare_host = b.pool.hosts[0]
        other = tmp_path / "other"
        other.mkdir()
        result = await b.run(req("a", "hi", workspace_dir=str(other)))
        assert b.pool.spares_used == 0  # another workspace than the spare's: not used
        assert result.reply
        await wait_for(lambda: len(b.pool.spares) == 1, "a spare for the new request")
        result = await b.run(req("b", "hi", workspace_dir=str(other)))
        assert b.pool.spares_used == 1
        assert result.reply.endswith(": hi")
        await wait_for(lambda: len(b.pool.spares) == 1, "the replacement")
        assert b.pool.hosts == [spare_host]  # spares are conversations in the same process
        pid = spare_host.pid
    assert pid is not None and not alive(pid)
    assert b.pool.spares == [] and b.pool.hosts == []


@pytest.mark.parametrize(
    "spelled",
    [
        {"workspace_dir": "{tmp}/"},
        {"workspace_dir": "{tmp}/sub/.."},
        {"model": "m1"},
        {"env": {"A": "1"}},
        {"exec_policy": ExecPolicy()},
    ],
    ids=["dir-slash", "dir-dotdot", "model", "env", "policy"],
)
@pytest.mark.parametrize("mode", MODES)
async def test_a_request_spelling_out_the_configs_defaults_is_served_by_the_spare(
    tmp_path: Path, mode: str, spelled: dict[str, Any]
) -> None:
    # every driver falls back to the config's workspace, model and env (`request.x or
    # config.x`), so a request that spells them out — another spelling of the directory
    # included — asks for what the spare made at open is. It used to miss the spare, close
    # it and open another for its own spelling (then every other request missed that one)
    (tmp_path / "sub").mkdir()
    config, log = make_config(tmp_path, mode, model="m1", env={"A": "1"})
    kw = {k: (v.format(tmp=tmp_path) if isinstance(v, str) else v) for k, v in spelled.items()}
    env = {**kw.pop("env", {}), SESSION_KEY_ENV: "a"}
    async with SessionBackend(provider_of(mode), config) as b:
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        result = await b.run(RunRequest(user_text="hi", env=env, **kw))
        assert result.reply.endswith(": hi")
        await wait_for(lambda: len(b.pool.spares) == 1, "the replacement")
        plain = await b.run(req("b", "hi"))  # the defaults: served by the replacement
        assert plain.reply.endswith(": hi")
        assert b.pool.spares_used == 2
        closes = methods(log, "thread/unsubscribe") + methods(log, "session/close")
        assert closes == []


@pytest.mark.parametrize("mode", MODES)
async def test_the_spare_made_at_open_serves_a_request_naming_the_configs_own_workspace(
    tmp_path: Path, mode: str
) -> None:
    # the spare at open is made with the config's defaults; a bot that spells out the
    # config's workspace asks for the same thing (before: the spare was closed and another
    # opened — on Kimi Code that close overlapped the new conversation's open and failed it)
    config, log = make_config(tmp_path, mode)
    async with SessionBackend(provider_of(mode), config) as b:
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        result = await b.run(req("a", "hi", workspace_dir=str(tmp_path)))
        assert result.reply.endswith(": hi")
        assert b.pool.spares_used == 1
        closes = methods(log, "thread/unsubscribe") + methods(log, "session/close")
        assert closes == []


async def test_warm_zero_starts_nothing_ahead(tmp_path: Path) -> None:
    config, log = make_config(tmp_path, "codex")
    async with SessionBackend("codex", config, scaling=ScalingConfig(warm=0)) as b:
        await trio.sleep(0.3)
        assert b.pool.spares == [] and b.pool.hosts == []
        assert pids_of(log) == 0


async def test_a_dead_spare_is_replaced_lazily_with_backoff(tmp_path: Path) -> None:
    config, log = make_config(tmp_path, "codex")
    async with SessionBackend(
        "codex", config, scaling=ScalingConfig(spare_retry=30.0, share=False)
    ) as b:
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        spare = b.pool.spares[0]
        proc = spare.driver.driver.process
        assert proc is not None
        os.kill(proc.pid, 9)
        await wait_for(lambda: spare.done.is_set(), "the spare to die")
        await trio.sleep(0.2)
        assert len(methods(log, "initialize")) == 1  # not restarted by itself
        result = await b.run(req("a", "hello"))
        assert result.reply.endswith(": hello")
        assert b.pool.spare_failures == 1
        await trio.sleep(0.3)
        # within spare_retry no new spare is started for the dead one
        assert b.pool.spares == []
        assert len(methods(log, "initialize")) == 2


# -- admission ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_lru_idle_conversation_is_closed_and_resumes_on_its_next_run(
    tmp_path: Path, mode: str
) -> None:
    config, log = make_config(tmp_path, mode)
    scaling = ScalingConfig(warm=0, max_conversations=2)
    async with SessionBackend(provider_of(mode), config, scaling=scaling) as b:
        await b.run(req("k1", "one"))
        k2 = await b.run(req("k2", "two"))
        await b.run(req("k1", "one again"))  # k1 is now the most recent
        await b.run(req("k3", "three"))  # k2 is closed
        assert b.open_sessions() == ["k1", "k3"]
        assert b.admission.evicted == 1
        again = await b.run(req("k2", "two again"))  # no thread id: resumed by the remembered one
        assert again.reply == f"reply to {k2.next_thread_id}: two again"
        assert sorted(b.open_sessions()) == ["k2", "k3"]
    k2_thread = [m for m in methods(log, "turn/start") + methods(log, "session/prompt")]
    assert k2_thread
    released = methods(log, "thread/unsubscribe") if mode == "codex" else []
    if mode == "codex":
        assert released, "a closed conversation is released in the shared process"
        resumed = methods(log, "thread/resume")
        assert [m["params"]["threadId"] for m in resumed] == [k2.next_thread_id]
    else:
        # ACP agents without session/close keep the session: it is reopened on the process
        # that holds it, without a session/load the agent would refuse
        assert methods(log, "session/load") == []
    assert again.next_thread_id == k2.next_thread_id


@pytest.mark.parametrize("mode", MODES)
async def test_approval_requests_reach_the_conversation_they_belong_to(
    tmp_path: Path, mode: str
) -> None:
    config, _log = make_config(tmp_path, mode)
    asked: list[str] = []
    threads: dict[str, str] = {}

    def approver(request: ApprovalRequest) -> ApprovalDecision:
        asked.append(request.thread_id)
        if request.thread_id == threads.get("yes"):
            return ApprovalDecision.ACCEPT
        return ApprovalDecision.DECLINE

    async with SessionBackend(
        provider_of(mode), config, scaling=ScalingConfig(warm=0), approver=approver
    ) as b:
        for key in ("yes", "no"):
            threads[key] = (await b.run(req(key, "hello"))).next_thread_id
        results: dict[str, Any] = {}

        async def run(key: str) -> None:
            results[key] = await b.run(req(key, "ASK", thread_id=threads[key]))

        async with trio.open_nursery() as n:
            n.start_soon(run, "yes")
            n.start_soon(run, "no")
        assert len(b.pool.hosts) == 1
    assert sorted(asked) == sorted(threads.values())
    accept, decline = ("accept", "decline") if mode == "codex" else ("yes", "no")
    assert results["yes"].reply == f"answer: {accept}"
    assert results["no"].reply == f"answer: {decline}"


async def test_a_full_host_retires_and_the_process_bound_packs_conversations(
    tmp_path: Path,
) -> None:
    # neither agent frees a closed conversation (ACP without session/close; codex keeps a
    # thread loaded after thread/unsubscribe): capacity counts every one a process opened
    scaling = ScalingConfig(warm=0, host_capacity=2, max_conversations=2)
    for mode in MODES:
        config, _log = make_config(tmp_path, mode)
        async with SessionBackend(provider_of(mode), config, scaling=scaling, idle_ttl=600) as b:
            await b.run(req("a", "1"))
            await b.run(req("b", "2"))
            first = b.pool.hosts[0]
            assert first.full
            await b.run(req("c", "3"))  # a full host takes no new conversation: a second one
            assert len(b.pool.hosts) == 2 and b.pool.hosts[0] is first
            await b.run(req("d", "4"))  # closes a and b (LRU): the retired host closes
            await wait_for(
                lambda first=first: not first.alive and first not in b.pool.hosts, "retirement"
            )
            assert len(b.pool.hosts) == 1
            again = await b.run(req("a", "back"))  # resumes its thread on a new process
            assert again.reply.endswith(": back")
    config, _log = make_config(tmp_path, "codex")
    bounded = ScalingConfig(warm=0, host_capacity=1, max_processes=1)
    async with SessionBackend("codex", config, scaling=bounded, idle_ttl=600) as b:
        for key in "xyz":
            result = await b.run(req(key, key))
            assert result.reply.endswith(f": {key}")
        assert len(b.pool.hosts) == 1 and b.pool.hosts[0].load == 3  # packed past capacity
        assert b.pool.processes() == 1


@pytest.mark.parametrize("mode", MODES)
async def test_interrupting_one_of_three_sessions_on_a_host_ends_only_its_turn(
    tmp_path: Path, mode: str
) -> None:
    from alice_trio.models import EventKind
    from alice_trio.providers.registry import get_provider
    from alice_trio.sessions.pool import HostPool
    from alice_trio.sessions.session import open_session

    config, log = make_config(tmp_path, mode)
    provider = get_provider(provider_of(mode))
    ends: dict[str, Any] = {}
    async with HostPool(provider, config, scaling=ScalingConfig(warm=0)) as pool:

        async def conversation(key: str, text: str, ready: trio.Event, stop: bool) -> None:
            initial = RunRequest(user_text="", env={SESSION_KEY_ENV: key})
            driver = await pool.driver(initial)
            async with open_session(provider, config, initial=initial, driver=driver) as s:
                await s.submit(RunRequest(user_text=text))
                ready.set()
                if stop:
                    await wait_for(lambda: len(tool_pids(log)) == 3, "all three tools")
                    await s.interrupt()
                async for event in s.events():
                    if event.kind is EventKind.ASSISTANT_TEXT:
                        ends[f"{key}-text"] = event.text
                    if event.kind.terminal:
                        ends[key] = event.kind
                        break

        gate = tmp_path / "gate"
        async with trio.open_nursery() as n:
            for key, stop in (("victim", True), ("b", False), ("c", False)):
                text = (
                    "TOOL:sleep 60"
                    if stop
                    else f"TOOL:until test -e {gate}; do sleep 0.05; done; echo {key}"
                )
                ready = trio.Event()
                n.start_soon(conversation, key, text, ready, stop)
                await ready.wait()
            await wait_for(lambda: "victim" in ends, "the interrupted turn")
            by_conv = {r["conv"]: r["tool"] for r in logged(log) if "tool" in r}
            victim_tool = by_conv.pop(_victim_conv(log, by_conv))
            await wait_for(lambda: not alive(victim_tool), "the interrupted turn's tool to die")
            assert all(alive(p) for p in by_conv.values()), "another conversation's tool died"
            assert "b" not in ends and "c" not in ends
            gate.write_text("")
        assert len(pool.hosts) == 1
    assert ends["victim"] is EventKind.TURN_INTERRUPTED
    assert ends["b"] is EventKind.TURN_COMPLETED and ends["b-text"] == "tool said: b"
    assert ends["c"] is EventKind.TURN_COMPLETED and ends["c-text"] == "tool said: c"
    assert all(not alive(p) for p in tool_pids(log)), "a tool outlived the pool"


@pytest.mark.parametrize("mode", MODES)
async def test_a_taken_spare_is_replaced_after_its_first_turn_not_during_it(
    tmp_path: Path, mode: str
) -> None:
    """The replacement of a spare on a shared process would run on the agent's event loop
    during the taking conversation's first turn (gemini: a first turn 2-3x a warm one): it
    waits for that turn's end, unless a new conversation finds no spare meanwhile."""
    config, log = make_config(tmp_path, mode)
    opened = "session/new" if mode == "acp" else "thread/start"
    go = tmp_path / "go"
    wait_cmd = f"TOOL:while [ ! -e {go} ]; do sleep 0.02; done; echo finished"
    async with SessionBackend(provider_of(mode), config) as b, trio.open_nursery() as nursery:
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        results: dict[str, Any] = {}

        async def run(key: str, text: str) -> None:
            results[key] = await b.run(req(key, text))

        nursery.start_soon(run, "a", wait_cmd)
        await wait_for(lambda: tool_pids(log), "the first turn's tool")
        await trio.sleep(0.3)  # room for a replacement started too early to show up
        assert b.pool.spares_used == 1
        assert len(methods(log, opened)) == 1 and b.pool.spares == []
        # a new conversation that finds no spare starts the replacement at once
        await run("b", "hi")
        assert results["b"].reply.endswith(": hi") and "a" not in results
        await wait_for(lambda: len(b.pool.spares) == 1, "the replacement")
        assert len(methods(log, opened)) == 3  # the spare, b's own, the replacement
        go.touch()
        await wait_for(lambda: "a" in results, "the first turn")
        assert "finished" in results["a"].reply
        assert b.pool.spares_used == 1 and len(b.pool.spares) == 1
        assert len(methods(log, opened)) == 3


@pytest.mark.parametrize("mode", MODES)
async def test_the_replacement_starts_once_the_first_turn_ended(tmp_path: Path, mode: str) -> None:
    config, log = make_config(tmp_path, mode)
    opened = "session/new" if mode == "acp" else "thread/start"
    go = tmp_path / "go"
    async with SessionBackend(provider_of(mode), config) as b, trio.open_nursery() as nursery:
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        done = trio.Event()

        async def run() -> None:
            await b.run(req("a", f"TOOL:while [ ! -e {go} ]; do sleep 0.02; done"))
            done.set()

        nursery.start_soon(run)
        await wait_for(lambda: tool_pids(log), "the first turn's tool")
        await trio.sleep(0.3)
        assert len(methods(log, opened)) == 1 and b.pool.spares == []
        go.touch()
        await done.wait()
        await wait_for(lambda: len(b.pool.spares) == 1, "the replacement")
        assert len(methods(log, opened)) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_closed_conversation_resumes_on_the_process_that_still_holds_it(
    tmp_path: Path, mode: str
) -> None:
    # codex 0.171 keeps a thread loaded after thread/unsubscribe (and refuses its resume on
    # another process: "already has an active writer"); an ACP agent without session/close
    # keeps its session. Either way the conversation must come back on the same process, even
    # when another compatible process has more room.
    config, _log = make_config(tmp_path, mode)
    scaling = ScalingConfig(warm=0, host_capacity=2)
    async with SessionBackend(provider_of(mode), config, scaling=scaling, idle_ttl=600) as b:
        a = await b.run(req("a", "one"))
        await b.run(req("b", "two"))
        await b.run(req("c", "three"))  # the first process is full: a second one
        assert len(b.pool.hosts) == 2
        first, second = b.pool.hosts
        for key in ("a", "c"):  # a closes on the first process, c empties the second
            b._drop(b._sessions[key], graceful=True)
        await wait_for(lambda: first.load == 1 and second.load == 0, "both closed")
        assert second.alive
        again = await b.run(req("a", "back", thread_id=a.next_thread_id))
        assert again.reply == f"reply to {a.next_thread_id}: back"
        assert a.next_thread_id in {
            k for link in first.links for k in link.keys
        }  # on the process that held it
        assert second.load == 0


async def test_a_resume_waits_for_the_retiring_process_that_still_holds_its_thread(
    tmp_path: Path,
) -> None:
    # host_capacity=1: the process retires as soon as its conversation closed; it takes a
    # while to exit and holds the thread until then (codex: "already has an active writer")
    config, _log = make_config(tmp_path, "codex", env={"FAKE_EXIT_DELAY": "1.0"})
    scaling = ScalingConfig(warm=0, host_capacity=1)
    async with SessionBackend("codex", config, scaling=scaling, idle_ttl=600) as b:
        a = await b.run(req("a", "one"))
        first = b.pool.hosts[0]
        b._drop(b._sessions["a"], graceful=True)
        await wait_for(lambda: first.closing, "retiring")
        again = await b.run(req("a", "back", thread_id=a.next_thread_id))
        assert again.reply == f"reply to {a.next_thread_id}: back"
        assert first.done.is_set() and b.pool.hosts[0] is not first


async def test_at_the_process_bound_a_resume_joins_a_full_process_instead_of_waiting_forever(
    tmp_path: Path,
) -> None:
    # the only process is full (two conversations and the spare) and is the bound: a resume of
    # a thread no process holds joins it (the documented rule). It used to close the spare,
    # count that as a freed process slot, evict one conversation and wait for a slot forever.
    config, _log = make_config(tmp_path, "codex")
    scaling = ScalingConfig(warm=1, max_processes=1, host_capacity=3)
    async with SessionBackend("codex", config, scaling=scaling, idle_ttl=600) as b:
        await b.run(req("a", "one"))
        await b.run(req("b", "two"))
        await wait_for(lambda: len(b.pool.spares) == 1, "the spare")
        (host,) = b.pool.hosts
        assert host.full and host.load == 3
        with trio.fail_after(20):
            again = await b.run(req("x", "back", thread_id="thr-elsewhere"))
        assert again.reply == "reply to thr-elsewhere: back"
        assert b.pool.hosts == [host] and b.pool.processes() == 1


async def test_a_new_process_at_the_bound_closes_idle_conversations_until_one_is_free(
    tmp_path: Path,
) -> None:
    # a request whose environment differs needs its own process; the only slot is taken by a
    # process hosting two idle conversations: both are closed (least recently used first) and
    # the emptied process goes. Closing one of them used to be all: it freed no slot, and the
    # run waited until the idle timers closed the rest.
    config, _log = make_config(tmp_path, "codex")
    scaling = ScalingConfig(warm=0, max_processes=1)
    async with SessionBackend("codex", config, scaling=scaling, idle_ttl=600) as b:
        await b.run(req("a", "one"))
        await b.run(req("b", "two"))
        (first,) = b.pool.hosts
        with trio.fail_after(20):
            other = await b.run(
                RunRequest(user_text="three", env={SESSION_KEY_ENV: "c", "OTHER": "1"})
            )
        assert other.reply.endswith(": three")
        assert b.open_sessions() == ["c"] and b.admission.evicted == 2
        assert first.done.is_set() and b.pool.processes() == 1


async def test_an_acp_process_retires_after_capacity_even_when_the_agent_closes_sessions(
    tmp_path: Path,
) -> None:
    # Kimi Code 2.1 offers session/close, yet its memory kept growing with every new session
    # after closing as many (benchmarks/capacity.py): capacity counts every session the
    # process opened, so the process retires and its memory comes back
    config, log = make_config(tmp_path, "acp", env={"FAKE_ACP_CLOSE": "1"})
    scaling = ScalingConfig(warm=0, host_capacity=2)
    async with SessionBackend("gemini", config, scaling=scaling, idle_ttl=600) as b:
        await b.run(req("a", "one"))
        await b.run(req("b", "two"))
        (first,) = b.pool.hosts
        assert first.full
        for key in ("a", "b"):
            b._drop(b._sessions[key], graceful=True)
        await wait_for(lambda: first.done.is_set() and first not in b.pool.hosts, "retired")
        assert len(methods(log, "session/close")) == 2  # released in the agent all the same
        assert first.parked == set()
        await b.run(req("c", "three"))
        assert len(b.pool.hosts) == 1 and b.pool.hosts[0] is not first


async def test_conversations_open_one_at_a_time_on_an_acp_process(tmp_path: Path) -> None:
    """Real gemini 0.61 (``--acp``) takes twice as long for each ``session/new`` that overlaps
    another (eight at once: the last one 13 s; thirty conversations at once on a shared
    process failed their 60 s start). One at a time, each takes its own ~0.15 s: a shared ACP
    process opens its conversations one after another."""
    config, log = make_config(tmp_path, "acp", env={"FAKE_OPEN_DELAY": "0.1"})
    async with SessionBackend("gemini", config, scaling=ScalingConfig(warm=0)) as b:
        results: dict[str, Any] = {}

        async def one(key: str) -> None:
            results[key] = await b.run(req(key, f"hello from {key}"))

        async with trio.open_nursery() as n:
            for key in "abcde":
                n.start_soon(one, key)
        assert len(b.pool.hosts) == 1
    for key, result in results.items():
        assert result.reply.endswith(f": hello from {key}")
    opens = sorted(r["open"] for r in logged(log) if "open" in r)
    assert len(opens) == 5
    overlaps = [(a, b) for a, b in itertools.pairwise(opens) if b[0] < a[1]]
    assert not overlaps, f"conversation opens overlapped on one process: {overlaps}"


async def test_conversations_close_and_open_one_at_a_time_on_an_acp_process(
    tmp_path: Path,
) -> None:
    """Real Kimi Code 2.1.0 answered a ``session/new`` with -32603 "session not found" when a
    ``session/close`` of another session in the same directory ran meanwhile — a warm pool's
    spare replaced by a conversation's own open (a request unlike the spare's) failed that
    conversation 1 time in 2-3. On an ACP process a release waits for the open in progress,
    and an open for the release: conversations opened and closed at once all start."""
    config, log = make_config(
        tmp_path, "acp", env={"FAKE_ACP_CLOSE": "1", "FAKE_OPEN_DELAY": "0.1"}
    )
    async with SessionBackend("gemini", config, scaling=ScalingConfig(warm=0)) as b:
        for key in "abc":
            await b.run(req(key, f"first {key}"))
        results: dict[str, Any] = {}

        async def one(key: str) -> None:
            results[key] = await b.run(req(key, f"hello from {key}"))

        async with trio.open_nursery() as n:
            for key in "def":
                n.start_soon(one, key)
            await wait_for(lambda: len(methods(log, "session/new")) > 3, "an open in progress")
            for key in "abc":  # released while d, e, f open
                b._drop(b._sessions[key], graceful=True)
        assert len(b.pool.hosts) == 1
    for key in "def":
        assert results[key].reply.endswith(f": hello from {key}")
    assert len(methods(log, "session/close")) == 6


async def _one_turn(b: SessionBackend, driver: Any, request: RunRequest) -> str:
    """One turn on ``driver`` as the backend would run it (opened as the backend opens one)."""
    async with open_session(b.provider, b.config, initial=request, driver=driver) as session:
        submitted = await session.submit(request)
        reply = ""
        async for event in session.events():
            if (
                event.turn_id == submitted.turn_id
                and event.text
                and event.kind.name == ("ASSISTANT_TEXT")
            ):
                reply = event.text
            if event.turn_id == submitted.turn_id and event.kind.terminal:
                return reply
    raise AssertionError("the session ended before the turn")


@pytest.mark.parametrize("mode", [*MODES, "opencode"])
async def test_a_conversation_whose_process_closed_before_it_attached_opens_on_another(
    tmp_path: Path, mode: str
) -> None:
    # the pool hands out a conversation on an idle process (nothing attached to it yet); before
    # its session runs it, another conversation needs a process slot at the bound and the pool
    # closes that idle process. The first one's open used to fail with SessionClosedError
    # ("host is not running"); it now opens on a process chosen again (here: it closes the
    # other idle one, which again has nothing attached).
    if mode == "opencode":
        from test_shared_opencode import make_config as opencode_config

        config, _log = opencode_config(tmp_path)
    else:
        config, _log = make_config(tmp_path, mode)
    scaling = ScalingConfig(warm=0, max_processes=1)
    name = "opencode" if mode == "opencode" else provider_of(mode)
    async with SessionBackend(name, config, scaling=scaling, idle_ttl=600) as b:
        await b.run(req("a", "one"))
        b._drop(b._sessions["a"], graceful=True)
        (first,) = b.pool.hosts
        await wait_for(lambda: first.load == 0, "the conversation detached")
        x_request = req("x", "hello x")
        y_request = RunRequest(user_text="hello y", env={SESSION_KEY_ENV: "y", "OTHER": "1"})
        with trio.fail_after(20):
            x = await b.pool.driver(x_request)
            assert x.host is first
            y = await b.pool.driver(y_request)  # closes `first`: nothing is attached to it
            assert first.done.is_set()
            x_reply = await _one_turn(b, x, x_request)
            y_reply = await _one_turn(b, y, y_request)
        assert "hello x" in x_reply and x.host is not first
        assert "hello y" in y_reply
        assert b.pool.processes() <= 1


@pytest.mark.parametrize("share", [True, False])
@pytest.mark.parametrize("mode", MODES)
async def test_a_start_waiting_at_the_process_bound_takes_a_conversation_that_went_idle(
    tmp_path: Path, mode: str, share: bool
) -> None:
    # the only process slot is held by a process whose conversation runs a turn: a request
    # that needs another process cannot close anything and waits. When that turn ends, the
    # conversation is idle and can be closed: the waiting start used to wait on in FIFO
    # order until the idle timers closed the conversation and then its process (here 600 s
    # each); it now looks again when a conversation goes idle.
    config, _log = make_config(tmp_path, mode)
    scaling = ScalingConfig(warm=0, max_processes=1, share=share)
    async with SessionBackend(provider_of(mode), config, scaling=scaling, idle_ttl=600) as b:
        busy = await b.run(req("busy", "warm"))
        done: dict[str, Any] = {}

        async def other() -> None:
            done["other"] = await b.run(
                RunRequest(user_text="other", env={SESSION_KEY_ENV: "o", "OTHER": "1"})
            )

        with trio.fail_after(30):
            async with trio.open_nursery() as n:
                n.start_soon(b.run, req("busy", "TOOL:sleep 0.5", thread_id=busy.next_thread_id))
                await wait_for(lambda: b._sessions["busy"].current is not None, "busy's turn")
                n.start_soon(other)
        assert done["other"].reply.endswith(": other")
        assert b.open_sessions() == ["o"] and b.pool.processes() == 1


async def test_a_kimi_usage_later_than_the_wait_is_never_the_next_turns(tmp_path: Path) -> None:
    # like Kimi Code 2.1 the agent sends each turn's usage after the prompt's answer, here
    # later than usage_wait: turn one ends without it, and when it comes turn two is waiting
    # for its own. It used to become turn two's usage (1002, the first prompt's)
    config, _log = make_config(tmp_path, "acp")
    kimi = KimiConfig(command=config.command, limits=FAST, workspace_dir=str(tmp_path),
                      env={"FAKE_TRAILING_USAGE": "1.3"})  # usage_wait is 1 s  # fmt: skip
    async with SessionBackend("kimi", kimi, scaling=ScalingConfig(warm=0)) as b:
        first = await b.run(req("a", "hi"))
        second = await b.run(req("a", "second prompt", thread_id=first.next_thread_id))
    assert first.usage.input_tokens in (0, 1002)
    assert second.usage.input_tokens in (0, 1000 + len("second prompt"))  # never 1002


async def test_a_kimi_usage_promised_by_its_catalog_model_is_each_turns_however_late(
    tmp_path: Path,
) -> None:
    """CI flake (e2e usage[kimi], turn two's usage 0): the agent's session/new names a model
    of its catalog, so by Kimi Code's rule every turn's usage_update comes — here 1.3 s after
    each answer, beyond the old 1 s wait — and every run's result carries its own."""
    config, _log = make_config(tmp_path, "acp")
    env = {"FAKE_TRAILING_USAGE": "1.3", "FAKE_ACP_CATALOG": "1"}
    kimi = KimiConfig(command=config.command, limits=FAST, workspace_dir=str(tmp_path), env=env)
    async with SessionBackend("kimi", kimi, scaling=ScalingConfig(warm=0)) as b:
        first = await b.run(req("a", "hi"))
        second = await b.run(req("a", "second prompt", thread_id=first.next_thread_id))
    assert first.usage.input_tokens == 1000 + len("hi")
    assert second.usage.input_tokens == 1000 + len("second prompt")
