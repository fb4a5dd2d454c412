"""Frames on a session process's stdin are written whole (issue 12.1): a caller's cancellation
at any point cannot leave half a JSON line for the next message to be glued onto; a frame that
cannot be written whole fails the transport loudly and kills the process."""

from __future__ import annotations

import json
import random
import signal
import sys
import textwrap

import pytest
import trio

from alice_trio.errors import TransportClosedError
from alice_trio.protocols.jsonrpc import encode_request
from alice_trio.providers.base import Invocation
from alice_trio.transports.jsonrpc import JsonRpcClient
from alice_trio.transports.process import open_agent_process

from fake_provider import FAST

#: a CLI that reads its stdin slowly (a few MB/s) and reports every line it got: its size and
#: whether it was one whole JSON object
SLOW_READER = textwrap.dedent(
    r"""
    import json, os, sys, time
    buf = b""
    while True:
        chunk = os.read(0, 16384)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                obj = json.loads(line)
                ok, tag = True, obj.get("tag")
            except ValueError:
                ok, tag = False, None
            sys.stdout.write(json.dumps({"ok": ok, "size": len(line), "tag": tag}) + "\n")
            sys.stdout.flush()
        time.sleep(0.002)
    """
)

NEVER_READS = "import time; print('{\"ready\": 1}', flush=True); time.sleep(600)"


def frame(tag: str, size: int = 0) -> bytes:
    return (json.dumps({"tag": tag, "pad": "p" * size}) + "\n").encode()


@pytest.mark.parametrize("seed", range(4))
async def test_cancelled_big_writes_never_leave_half_a_frame(seed: int):
    rng = random.Random(seed)
    inv = Invocation(argv=(sys.executable, "-c", SLOW_READER), limits=FAST)
    sent_whole: list[str] = []
    async with open_agent_process(inv, name="slow", graceful=False) as proc:
        for i in range(6):
            with trio.move_on_after(rng.uniform(0.0, 0.15)):
                await proc.send(frame(f"big-{i}", 1 << 20))  # ≈1 MB, ≈0.3 s to be read
            sent_whole.append(f"big-{i}")
            await proc.send(frame(f"ping-{i}"))
            sent_whole.append(f"ping-{i}")
        reports = []
        with trio.fail_after(30):
            async for line in proc.lines:
                reports.append(json.loads(line))
                if reports[-1]["tag"] == "ping-5" or not reports[-1]["ok"]:
                    break
    assert all(r["ok"] for r in reports), [r for r in reports if not r["ok"]]
    # a big frame whose caller was cancelled is still written whole (it was queued)
    assert [r["tag"] for r in reports] == sent_whole


async def test_a_frame_cancelled_before_it_is_queued_leaves_no_trace():
    inv = Invocation(argv=(sys.executable, "-c", SLOW_READER), limits=FAST)
    async with open_agent_process(inv, name="slow", graceful=False) as proc:
        with trio.CancelScope() as scope:
            scope.cancel()
            await proc.send(frame("never"))
        await proc.send(frame("first"))
        with trio.fail_after(10):
            assert json.loads(await proc.lines.receive())["tag"] == "first"


async def test_abort_kills_the_process_and_fails_every_later_send():
    inv = Invocation(argv=(sys.executable, "-c", NEVER_READS), limits=FAST)
    async with open_agent_process(inv, name="stuck", graceful=False) as proc:
        await proc.lines.receive()

        async def fill() -> None:
            with pytest.raises(TransportClosedError, match="gave up"):
                await proc.send(frame("big", 4 << 20))  # more than any pipe buffer

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fill)
            await trio.sleep(0.2)
            proc.abort(TransportClosedError("stuck: gave up", provider="stuck"))
        with trio.fail_after(10):
            await proc.exited.wait()
        assert proc.returncode == -signal.SIGKILL
        with pytest.raises(TransportClosedError, match="gave up"):
            await proc.send(frame("later"))
        with pytest.raises(TransportClosedError, match="gave up"):
            proc.enqueue(frame("later"))


async def test_jsonrpc_write_timeout_kills_a_peer_that_stopped_reading():
    """Before: the timed-out write was simply abandoned half-way, the process lived on and the
    next request was glued onto the cut message."""
    inv = Invocation(argv=(sys.executable, "-c", NEVER_READS), limits=FAST)
    async with open_agent_process(inv, name="stuck", graceful=False) as proc:
        client = JsonRpcClient(proc, jsonrpc=True, write_timeout=0.3)
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            with pytest.raises(TransportClosedError, match="did not read its input"):
                await client.request("big", {"pad": "p" * (4 << 20)})
            with trio.fail_after(10):
                await proc.exited.wait()
            assert proc.returncode == -signal.SIGKILL
            with pytest.raises(TransportClosedError, match="did not read its input"):
                await client.request("next")
            nursery.cancel_scope.cancel()


async def test_stdin_closed_by_the_cli_fails_the_frame_and_all_later_ones():
    code = "import os, sys, time; os.close(0); print('{}', flush=True); time.sleep(600)"
    inv = Invocation(argv=(sys.executable, "-c", code), limits=FAST)
    async with open_agent_process(inv, name="deaf", graceful=False) as proc:
        await proc.lines.receive()
        with pytest.raises(TransportClosedError, match="closed its input"):
            await proc.send(encode_request(1, "x", {}, jsonrpc=True))
        with pytest.raises(TransportClosedError):
            await proc.send(b"{}\n")
        with trio.fail_after(10):
            await proc.exited.wait()  # a transport that failed does not leave its process
        assert proc.returncode == -signal.SIGKILL


#: prints a line, closes stdout, says why on stderr and exits 5 once a write is under way
#: (it never reads: the frame fills the pipe and then finds it closed by the exit)
DIES_WHILE_WRITTEN_TO = textwrap.dedent(
    r"""
    import os, select, sys, time
    print("{}", flush=True)
    select.select([0], [], [])  # our frame began to arrive
    sys.stderr.write("fatal: lost the model\n"); sys.stderr.flush()
    os.close(1)
    time.sleep(0.05)  # the rest of the frame is blocked on the full pipe
    os._exit(5)
    """
)


@pytest.mark.parametrize("size", [100, 4 << 20])
async def test_a_cli_that_died_is_reported_as_exited_not_as_closing_its_input(size):
    """Before: ``dying process closed its input (still running)`` (or ``(exit status 5)``) —
    the CLI exited; a broken stdin is how its death looked from the writer."""
    inv = Invocation(argv=(sys.executable, "-c", DIES_WHILE_WRITTEN_TO), limits=FAST)
    async with open_agent_process(inv, name="dying", graceful=False) as proc:
        await proc.lines.receive()
        with pytest.raises(TransportClosedError) as info:
            await proc.send(frame("x", size))
            with trio.fail_after(10):
                await proc.exited.wait()
            await proc.send(frame("y", size))  # a small frame fits the pipe: the next one
    err = info.value
    assert err.message.startswith("dying exited (exit status 5)"), err.message
    assert "closed its input" not in err.message
    assert "fatal: lost the model" in err.stderr_tail


async def test_frames_cut_by_our_own_close_say_the_cli_is_being_stopped():
    """Before: a frame still queued when the process context ended said the CLI ``closed its
    input`` — we were stopping it."""
    inv = Invocation(argv=(sys.executable, "-c", SLOW_READER), limits=FAST)
    queued = []
    async with open_agent_process(inv, name="slow", graceful=False) as proc:
        queued = [proc.enqueue(frame(f"q-{i}", 4 << 20)) for i in range(4)]
    errors = [f.error for f in queued if f.error is not None]
    assert errors, "every frame was written before the close"
    for error in errors:
        assert "closed its input" not in error.message, error.message
        assert error.message.startswith("slow is being stopped") or (
            error.message.startswith("slow was stopped")
        ), error.message


async def test_close_stdin_comes_after_the_queued_frames():
    inv = Invocation(argv=(sys.executable, "-c", SLOW_READER), limits=FAST)
    async with open_agent_process(inv, name="slow", graceful=False) as proc:
        for i in range(3):
            proc.enqueue(frame(f"q-{i}", 100_000))
        await proc.close_stdin()
        with trio.fail_after(20):
            tags = [json.loads(line)["tag"] async for line in proc.lines]
    assert tags == ["q-0", "q-1", "q-2"]
