"""C11: requests pending when the agent dies fail at once (TransportClosedError with the exit
status and stderr tail), later requests fail without writing, and a grandchild holding stdout
cannot keep them pending past the exit (the process's exit ends the wait). JSON-RPC frames over
the byte limit are refused with a typed error.

Peers: ACP python-sdk#85 (fixed in #86), MCP python-sdk#332, claude-agent-acp#825: EOF broke the
loop but pending futures were never rejected."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest
import trio

from alice_trio.errors import LineTooLongError, TransportClosedError
from alice_trio.providers.base import Invocation
from alice_trio.transports.jsonrpc import JsonRpcClient
from alice_trio.transports.process import open_agent_process

from reliability_support import FAST, assert_nothing_left, elapsed, new_mark

AGENT = str(Path(__file__).with_name("rpc_agent.py"))


def invocation(mark: str = "", **limits) -> Invocation:
    return Invocation(
        argv=(sys.executable, AGENT),
        env={"TEST_MARK": mark} if mark else {},
        limits=attrs.evolve(FAST, **limits),
    )


async def test_pending_requests_fail_at_once_when_the_agent_dies():
    mark = new_mark()
    errors: list[BaseException] = []
    with trio.fail_after(10):
        async with open_agent_process(invocation(mark), name="rpc") as proc:
            client = JsonRpcClient(proc, jsonrpc=True)
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)
                assert await client.request("echo", {"x": 1}) == {"x": 1}

                async def hang() -> None:
                    try:
                        await client.request("hang")
                    except TransportClosedError as exc:
                        errors.append(exc)

                nursery.start_soon(hang)
                await trio.sleep(0.05)
                assert client.pending == 1
                with elapsed() as took, pytest.raises(TransportClosedError) as info:
                    await client.request("die")
            assert took[0] < 2.0
            assert "fatal error while serving die" in info.value.stderr_tail
            assert len(errors) == 1 and isinstance(errors[0], TransportClosedError)
            with pytest.raises(TransportClosedError):  # later requests: at once, no write
                await client.request("echo", {})
    assert_nothing_left(mark)


async def test_dead_agent_with_a_grandchild_holding_stdout_still_fails_pending():
    """The agent exits but its grandchild keeps stdout open: EOF never comes on its own. The
    pending request must still fail: after the exit, stdout silent for drain_timeout is EOF
    (regression: the request waited until the grandchild died)."""
    mark = new_mark()
    with trio.fail_after(10), elapsed() as took:
        async with open_agent_process(invocation(mark), name="rpc") as proc:
            client = JsonRpcClient(proc, jsonrpc=True)
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)

                with pytest.raises(TransportClosedError):
                    await client.request("spawn")
    assert took[0] < 5.0
    assert_nothing_left(mark)


async def test_oversized_frame_is_refused_with_a_typed_error():
    mark = new_mark()
    with trio.fail_after(10), pytest.raises(LineTooLongError):
        async with open_agent_process(invocation(mark, max_line_bytes=4096), name="rpc") as proc:
            client = JsonRpcClient(proc, jsonrpc=True)
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)
                await client.request("big", {"n": 1_000_000})
    assert_nothing_left(mark)


async def test_frame_under_the_limit_is_delivered():
    async with open_agent_process(invocation(max_line_bytes=4 << 20), name="rpc") as proc:
        client = JsonRpcClient(proc, jsonrpc=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            assert len(await client.request("big", {"n": 2_000_000})) == 2_000_000
            nursery.cancel_scope.cancel()
