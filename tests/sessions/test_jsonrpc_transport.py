"""The JSON-RPC codec (pure, with Hypothesis) and the line client over a fake peer process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from rpc_scripts import peer_argv, peer_problems, sent, write_script

from alice_trio.errors import LineTooLongError, TransportClosedError
from alice_trio.protocols.jsonrpc import (
    ErrorResponse,
    Invalid,
    JsonRpcError,
    Notification,
    Request,
    Response,
    encode_error,
    encode_notification,
    encode_request,
    encode_result,
    parse_line,
)
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.transports.jsonrpc import Barrier, JsonRpcClient
from alice_trio.transports.process import open_agent_process

FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)

ids = st.one_of(st.integers(min_value=-(2**53), max_value=2**53), st.text(max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
methods = st.text(min_size=1, max_size=20)


@given(ids, methods, json_values, st.booleans())
def test_request_round_trip_keeps_the_id_type(rid: Any, method: str, params: Any, jr: bool):
    line = encode_request(rid, method, params, jsonrpc=jr).decode()
    assert line.endswith("\n") and line.count("\n") == 1  # one message, one line
    msg = parse_line(line)
    assert isinstance(msg, Request)
    assert msg.id == rid and type(msg.id) is type(rid)
    assert msg.method == method and msg.params == params
    assert ("jsonrpc" in json.loads(line)) is jr


@given(ids, json_values, st.booleans())
def test_result_and_error_round_trip(rid: Any, result: Any, jr: bool):
    msg = parse_line(encode_result(rid, result, jsonrpc=jr).decode())
    assert isinstance(msg, Response) and msg.id == rid and type(msg.id) is type(rid)
    assert msg.result == result
    err = parse_line(encode_error(rid, -32601, "nope", jsonrpc=jr).decode())
    assert isinstance(err, ErrorResponse) and err.id == rid and err.code == -32601
    assert str(err.to_error("m")) == "m: json-rpc error code=-32601 message=nope"


@given(methods, json_values)
def test_notification_round_trip(method: str, params: Any):
    msg = parse_line(encode_notification(method, params, jsonrpc=False).decode())
    assert isinstance(msg, Notification) and msg.method == method and msg.params == params


@given(st.text(max_size=200))
def test_parse_line_never_raises(text: str):
    msg = parse_line(text)
    assert msg is None or isinstance(
        msg, Request | Notification | Response | ErrorResponse | Invalid
    )


def test_parse_edge_cases():
    assert parse_line("   ") is None
    assert isinstance(parse_line("not json"), Invalid)
    assert isinstance(parse_line("[1,2]"), Invalid)
    assert isinstance(parse_line('{"id": 1.5, "method": "x"}'), Invalid)
    assert isinstance(parse_line('{"id": true, "result": 1}'), Invalid)
    assert parse_line('{"id": 0, "method": "x"}') == Request(
        id=0, method="x", raw='{"id": 0, "method": "x"}'
    )
    orphan = parse_line('{"id": null, "error": {"code": -32700, "message": "parse"}}')
    assert isinstance(orphan, ErrorResponse) and orphan.id is None
    assert str(JsonRpcError("", code=7)) == "json-rpc error code=7"


def test_json_rpc_error_is_in_the_error_tree_and_shows_its_data():
    """Issue 12.12: the peer's ``data`` (often the real reason) was hidden, and the class sat
    outside ``alice_trio.errors``."""
    from alice_trio import errors

    assert errors.JsonRpcError is JsonRpcError and issubclass(JsonRpcError, errors.AliceError)
    err = parse_line(
        '{"id": 3, "error": {"code": -32603, "message": "Internal error", '
        '"data": {"status": 500, "detail": "model overloaded"}}}'
    )
    assert isinstance(err, ErrorResponse)
    exc = err.to_error("session/prompt", provider="gemini")
    text = str(exc)
    assert text.startswith("session/prompt: json-rpc error code=-32603 message=Internal error")
    assert '"detail": "model overloaded"' in text and '"status": 500' in text
    assert exc.data == {"status": 500, "detail": "model overloaded"} and exc.provider == "gemini"
    huge = str(JsonRpcError("x", code=1, data="d" * 100_000))
    assert len(huge) < 2200  # cut, not dumped whole


# -- the client over a real process -----------------------------------------------------------


def notif(n: int) -> dict[str, Any]:
    return {"method": "tick", "params": {"n": n}}


async def with_client(tmp_path: Path, steps: list[dict[str, Any]], body: Any, **kw: Any):
    script, log = write_script(tmp_path, steps)
    limits = kw.pop("limits", FAST)
    inv = Invocation(argv=peer_argv(script, log), limits=limits)
    async with open_agent_process(inv, name="peer", close_grace=1.0) as proc:
        client = JsonRpcClient(proc, jsonrpc=False, **kw)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await body(client, nursery)
            nursery.cancel_scope.cancel()
    return log


async def test_c11_every_pending_request_fails_at_once_when_the_peer_dies(tmp_path: Path):
    steps = [
        {"expect": "a", "id": 1},
        {"expect": "b", "id": 2},
        {"action": "crash", "stderr": "segfault in peer\n", "code": 139},
    ]
    errors: list[BaseException] = []

    async def body(client: JsonRpcClient, nursery: trio.Nursery) -> None:
        async def call(method: str) -> None:
            try:
                await client.request(method)
            except TransportClosedError as exc:
                errors.append(exc)

        async with trio.open_nursery() as inner:
            inner.start_soon(call, "a")
            await trio.sleep(0.05)
            inner.start_soon(call, "b")
        with pytest.raises(TransportClosedError):
            await client.request("c")  # after the close: fails without writing
        with pytest.raises(TransportClosedError):
            await client.notify("d")

    with trio.fail_after(10):
        await with_client(tmp_path, steps, body)
    assert len(errors) == 2
    assert all("segfault in peer" in str(e) and "139" in str(e) for e in errors)


async def test_defect_09_a_slow_server_request_handler_never_blocks_the_reader(tmp_path: Path):
    """Go answered server requests synchronously on the reader goroutine."""
    steps = [
        {
            "expect": "go",
            "id": 1,
            "reply": [
                {"id": "srv-7", "method": "approve?", "params": {}},
                notif(1),
                {"id": 1, "result": "done"},
            ],
        },
        {"expect_response": "srv-7"},
    ]
    got_notification = trio.Event()

    async def handler(req: Request) -> Any:
        await got_notification.wait()  # only possible if the reader went on reading
        return {"ok": req.id}

    async def body(client: JsonRpcClient, nursery: trio.Nursery) -> None:
        async def consume() -> None:
            async for msg in client.incoming:
                if isinstance(msg, Notification):
                    got_notification.set()

        nursery.start_soon(consume)
        assert await client.request("go") == "done"
        await trio.sleep(0.1)

    with trio.fail_after(10):
        log = await with_client(tmp_path, steps, body, on_request=handler)
    assert peer_problems(log) == []
    assert sent(log)[-1] == {"id": "srv-7", "result": {"ok": "srv-7"}}


async def test_defect_01_no_notification_is_dropped_under_backpressure(tmp_path: Path):
    """Go dropped events once its buffers were full; here the reader waits instead."""
    steps = [
        {
            "expect": "go",
            "id": 1,
            "reply": [notif(i) for i in range(500)] + [{"id": 1, "result": "end"}],
        }
    ]

    async def body(client: JsonRpcClient, nursery: trio.Nursery) -> None:
        seen: list[int] = []

        async def slow() -> None:
            async for msg in client.incoming:
                if isinstance(msg, Barrier):
                    msg.release()
                    continue
                seen.append(msg.params["n"])
                if len(seen) % 50 == 0:
                    await trio.sleep(0.01)

        nursery.start_soon(slow)
        assert await client.request("go", ordered=True) == "end"
        assert seen == list(range(500))  # all of them, in order, before the response

    with trio.fail_after(20):
        await with_client(tmp_path, steps, body, incoming_buffer=4)


async def test_defect_04_run_returns_and_incoming_closes_at_eof(tmp_path: Path):
    """Go's forwarders could block forever and the kimi channel was never closed."""
    steps = [{"expect": "go", "id": 1, "reply": [notif(1), {"id": 1, "result": 1}]}]
    script, log = write_script(tmp_path, steps)
    inv = Invocation(argv=peer_argv(script, log), limits=FAST)
    with trio.fail_after(10):
        async with open_agent_process(inv, name="peer", close_grace=1.0) as proc:
            client = JsonRpcClient(proc, jsonrpc=True)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.run)
                assert await client.request("go") == 1
                await proc.close_stdin()  # the peer exits on EOF
                got = [msg async for msg in client.incoming]  # ends: the channel closes
            assert client.closed.is_set()
    assert [m.method for m in got if isinstance(m, Notification)] == ["tick"]
    assert sent(log)[0]["jsonrpc"] == "2.0"


async def test_cancelled_request_is_forgotten_and_its_cancel_sent(tmp_path: Path):
    steps = [
        {"expect": "slow", "id": 1},
        {"expect": "stop", "id": None, "reply": [{"id": 1, "result": "late"}]},
        {"expect": "ping", "id": 2, "reply": [{"id": 2, "result": "pong"}]},
    ]
    cancels: list[str] = []

    async def body(client: JsonRpcClient, nursery: trio.Nursery) -> None:
        async def on_cancel() -> None:
            cancels.append("stop")
            await client.send_untracked("stop", None, request=False)

        with trio.move_on_after(0.2):
            await client.request("slow", on_cancel=on_cancel)
        assert client.pending == 0
        assert await client.request("ping") == "pong"
        assert client.late_responses == 1

    with trio.fail_after(10):
        log = await with_client(tmp_path, steps, body)
    assert cancels == ["stop"] and peer_problems(log) == []


async def test_defect_13_an_oversized_line_is_an_error_not_a_silent_stop(tmp_path: Path):
    """Go's scanner error on a >10 MiB line silently ended the reader."""
    steps = [
        {"expect": "go", "id": 1, "reply": [{"method": "big", "params": "x" * 5000}]},
        {"action": "hang"},
    ]
    clients: list[JsonRpcClient] = []
    limits = RunLimits(kill_grace=0.25, drain_timeout=0.5, max_line_bytes=1024)

    async def body(client: JsonRpcClient, nursery: trio.Nursery) -> None:
        clients.append(client)
        await client.request("go")

    with trio.fail_after(10), pytest.raises(LineTooLongError):
        await with_client(tmp_path, steps, body, limits=limits)
    # the client is closed: anyone else waiting (or asking later) gets TransportClosedError
    assert clients[0].closed.is_set()
    with pytest.raises(TransportClosedError):
        await clients[0].request("again")
