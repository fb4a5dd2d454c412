"""opencode conversations sharing one ``opencode serve`` (sessions/shared_opencode.py) through
SessionBackend, against fake_opencode_serve.py (a real process, real HTTP and SSE)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import trio
from test_hosted_conversations import alive, wait_for

from alice_trio.errors import AgentError, TransportClosedError
from alice_trio.models import RunRequest
from alice_trio.providers.base import RunLimits
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.scaling import ScalingConfig

SERVE = str(Path(__file__).with_name("fake_opencode_serve.py"))
FAST = RunLimits(kill_grace=0.2, drain_timeout=0.5)


def make_config(tmp_path: Path) -> tuple[OpenCodeConfig, Path]:
    log = tmp_path / "serve.log"
    cmd = tmp_path / "opencode"
    cmd.write_text(f"#!/bin/sh\nexec {sys.executable} {SERVE} {log}\n")
    cmd.chmod(0o755)
    return OpenCodeConfig(command=str(cmd), workspace_dir=str(tmp_path), limits=FAST), log


def req(key: str, text: str, **kw: Any) -> RunRequest:
    return RunRequest(user_text=text, env={SESSION_KEY_ENV: key}, **kw)


def posts(log: Path, suffix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("POST", "").split("?")[0].endswith(suffix):
            out.append(rec)
    return out


async def test_three_conversations_on_one_server_and_an_abort_ends_only_its_turn(
    tmp_path: Path,
) -> None:
    config, log = make_config(tmp_path)
    async with SessionBackend("opencode", config, scaling=ScalingConfig(warm=0)) as b:
        results: dict[str, Any] = {}
        victim = trio.CancelScope()

        async def run(key: str, text: str) -> None:
            with victim if key == "victim" else trio.CancelScope():
                results[key] = await b.run(req(key, text))

        async with trio.open_nursery() as n:
            n.start_soon(run, "victim", "SLOW")
            await wait_for(lambda: posts(log, "/prompt_async"), "the slow prompt")
            n.start_soon(run, "b", "hello b")
            n.start_soon(run, "c", "hello c")
            await wait_for(lambda: "b" in results and "c" in results, "the other two")
            victim.cancel()
        assert victim.cancelled_caught and "victim" not in results
        sessions = {k: r.next_thread_id for k, r in results.items()}
        assert len(set(sessions.values())) == 2
        for key in ("b", "c"):
            assert results[key].reply == f"reply to {sessions[key]}: hello {key}"
        assert len(b.pool.hosts) == 1
        aborts = posts(log, "/abort")
        assert len(aborts) == 1 and sessions["b"] not in aborts[0]["POST"]
        # the cancelled conversation goes on, on the same server
        after = await b.run(req("victim", "after"))
        assert after.reply.endswith(": after")
        assert len(b.pool.hosts) == 1
        # the cancelled run's conversation was dropped (as with a process each): a new session
        assert len(posts(log, "/session")) == 4
        # one server, one password: every conversation attached to it sent that password
        assert "UNAUTHORIZED" not in log.read_text()
        assert b.pool.hosts[0].secret is not None


async def test_server_death_fails_the_in_flight_turns_typed_and_conversations_go_on(
    tmp_path: Path,
) -> None:
    config, log = make_config(tmp_path)
    async with SessionBackend("opencode", config, scaling=ScalingConfig(warm=0)) as b:
        idle = await b.run(req("idle", "first"))
        first = b.pool.hosts[0]
        results: dict[str, Any] = {}

        async def run(key: str, text: str) -> None:
            try:
                results[key] = await b.run(req(key, text))
            except (AgentError, TransportClosedError) as exc:
                results[key] = exc

        with trio.fail_after(30):  # never a hang on an event stream that reconnects forever
            async with trio.open_nursery() as n:
                n.start_soon(run, "busy", "SLOW")
                await wait_for(lambda: len(posts(log, "/prompt_async")) >= 2, "the busy turn")
                n.start_soon(run, "crasher", "CRASH")
        for key in ("busy", "crasher"):  # typed, never a group or a hang
            assert isinstance(results[key], AgentError | TransportClosedError), results[key]
        busy = results["busy"]  # in flight when the server died: told why, with its stderr
        assert "exit status 3" in str(busy) and "crashing on purpose" in busy.stderr_tail
        assert not first.alive
        again = await b.run(req("idle", "second"))  # same session id, on a new server
        assert again.next_thread_id == idle.next_thread_id
        assert again.reply == f"reply to {idle.next_thread_id}: second"
        assert b.pool.hosts and b.pool.hosts[0] is not first


async def test_spare_is_a_session_on_the_shared_server(tmp_path: Path) -> None:
    config, _ = make_config(tmp_path)
    async with SessionBackend("opencode", config) as b:
        await wait_for(lambda: len(b.pool.spares) >= 1, "the spare")
        host = b.pool.hosts[0]
        result = await b.run(req("a", "hi"))
        assert b.pool.spares_used == 1
        assert result.reply.endswith(": hi")
        await wait_for(lambda: len(b.pool.spares) >= 1, "the spare")
        assert b.pool.hosts == [host]
        pid = host.pid
    assert pid is not None and not alive(pid)


async def test_conversations_share_one_tls_context(tmp_path: Path, monkeypatch: Any) -> None:
    # httpx builds (and loads the CA bundle into) a new SSL context for every client it makes
    # by default: ~1 MB of C heap kept for good and up to 0.16 s of CPU, per conversation
    import ssl

    from alice_trio.transports.http_client import tls_context

    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kw: Any) -> ssl.SSLContext:
        built.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    tls_context.cache_clear()
    config, _log = make_config(tmp_path)
    async with SessionBackend("opencode", config, scaling=ScalingConfig(warm=1)) as b:
        for i in range(6):
            result = await b.run(req(f"k{i}", f"hello {i}"))
            assert result.reply
        assert len(b.open_sessions()) == 6 and len(b.pool.hosts) == 1
    assert len(built) == 1  # one for the process, not one per client (7: six and the spare)
