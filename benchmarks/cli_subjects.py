"""The baselines of the CLI rendering benchmark, each run as its own process like the CLI.

    python -m benchmarks.cli_subjects bare FAKE      # trio + orjson: read, parse, one line/event
    python -m benchmarks.cli_subjects library FAKE   # OneShotBackend.run, a no-op callback
    python -m benchmarks.cli_subjects library_events FAKE   # … a no-op on_events instead

``bare`` is the floor a progress printer can reach: it reads the fake's stdout, parses every
line with orjson (the stdlib parser when orjson is not installed) and writes one plain line
per event to stderr (buffered), then the reply to stdout. ``library`` is alice_trio without
the CLI: the codex provider, ``on_raw_event`` doing nothing, the reply to stdout;
``library_events`` the same with ``on_events`` (the typed events a batch per call) instead.
"""

from __future__ import annotations

import functools
import subprocess
import sys

import trio


async def bare(fake: str) -> None:
    try:
        from orjson import loads
    except ImportError:  # the smoke run in CI has only the test extra
        from json import loads

    out = open(sys.stderr.fileno(), "w", closefd=False, buffering=1 << 16)  # noqa: ASYNC230
    proc = await trio.lowlevel.open_process(
        [fake], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    reply = ""
    buf = b""
    while chunk := await proc.stdout.receive_some(1 << 16):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            event = loads(line)
            item = event.get("item") or {}
            text = str(item.get("text") or item.get("command") or "")
            if item.get("type") == "agent_message":
                reply = text
            out.write(f"{event['type']} {item.get('type', '')} {text[:200]}\n")
    await proc.wait()
    out.flush()
    sys.stdout.write(reply)
    sys.stdout.write("\n")


async def library(fake: str, *, batches: bool = False) -> None:
    from alice_trio.backend import OneShotBackend
    from alice_trio.models import RunRequest
    from alice_trio.providers.registry import get_provider

    provider = get_provider("codex")
    backend = OneShotBackend(provider, provider.config_class(command=fake))
    hook = "on_events" if batches else "on_raw_event"
    result = await backend.run(RunRequest(user_text="bench", **{hook: lambda _e: None}))
    reply = result.reply
    for i in range(0, len(reply), 1 << 20):  # no whole copy of a huge reply
        sys.stdout.buffer.write(reply[i : i + (1 << 20)].encode())
    sys.stdout.buffer.write(b"\n")


def main() -> int:
    mode, fake = sys.argv[1], sys.argv[2]
    if mode == "library_events":
        trio.run(functools.partial(library, batches=True), fake)
    else:
        trio.run({"bare": bare, "library": library}[mode], fake)
    return 0


if __name__ == "__main__":
    sys.exit(main())
