"""Side by side with claude-agent-sdk (the ``bench`` extra), in one process, on one fake CLI.

    python -m benchmarks.peer [--quick]

Both libraries run the same executable (``benchmarks/fake_claude.py`` behind a shebang):
alice_trio in one-shot mode (prompt on stdin, then EOF), claude-agent-sdk in its
``--input-format stream-json`` mode (initialize handshake, then the user message). Both under
trio (the SDK through anyio's trio backend), cancelled with a trio cancel scope.

* cancel latency (``term``: the CLI exits on SIGTERM and on stdin EOF; ``busy``: it ignores EOF;
  ``noterm``: it ignores SIGTERM), each with a grandchild in the CLI's process group;
* throughput: N assistant lines of ~300 B → typed messages (SDK ``query()``) vs typed events
  through ``OneShotBackend.run`` with a progress callback.

Prints ``{"skipped": reason}`` when claude-agent-sdk is not installed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import trio

from .cancel import Subject, oneshot, scenario
from .common import Observer, fake_launcher, median, quick_main, tmpdir
from .throughput import _backend

#: the SDK's teardown: EOF, 5 s, SIGTERM, 5 s, SIGKILL — plus a margin
SDK_WATCH = {"term": 1.5, "busy": 7.0, "noterm": 12.5}


def sdk_available() -> str:
    """'' when claude-agent-sdk can be imported, else the reason it cannot."""
    try:
        import claude_agent_sdk  # noqa: F401
    except Exception as exc:
        return f"claude-agent-sdk is not installed ({exc!r}); pip install -e '.[bench]'"
    return ""


def _options(launcher: str, args: list[str]) -> Any:
    from claude_agent_sdk import ClaudeAgentOptions

    extra: dict[str, str | None] = {}
    it = iter(args)
    for flag in it:
        extra[flag.lstrip("-")] = next(it)
    return ClaudeAgentOptions(cli_path=launcher, extra_args=extra, max_buffer_size=8 << 20)


def sdk_subject(launcher: str) -> Subject:
    from claude_agent_sdk import AssistantMessage, query

    async def run(args: list[str], ready: trio.Event) -> None:
        async for msg in query(prompt="bench", options=_options(launcher, args)):
            if isinstance(msg, AssistantMessage):
                ready.set()

    return run


async def sdk_throughput(launcher: str, n: int) -> tuple[float, float, int]:
    from claude_agent_sdk import AssistantMessage, ResultMessage, query

    count = 0
    first = 0.0
    got_result = False
    t0 = time.perf_counter()
    async for msg in query(prompt="bench", options=_options(launcher, ["--lines", str(n)])):
        if isinstance(msg, AssistantMessage):
            count += 1
            if count == 1:
                first = time.perf_counter()
        elif isinstance(msg, ResultMessage):
            got_result = True
    t1 = time.perf_counter()
    if count < n or not got_result:
        raise RuntimeError(f"sdk: got {count} of {n} messages")
    return t1 - t0, t1 - first, count


async def main_async(quick: bool) -> dict[str, Any]:
    reason = sdk_available()
    if reason:
        return {"skipped": reason}
    from importlib.metadata import version

    out: dict[str, Any] = {"claude_agent_sdk": version("claude-agent-sdk"), "cancel": []}
    holds = [("term", 3 if quick else 9)]
    if not quick:
        holds += [("busy", 3), ("noterm", 3)]
    else:
        out["note"] = "quick: busy/noterm skipped (the SDK takes 5 s / 10 s per run)"
    n_events = 20_000 if quick else 100_000
    repeats = 1 if quick else 5
    with tmpdir("peer") as d:
        launcher = fake_launcher(d)
        observer = await Observer.start()
        try:
            ours, theirs = oneshot(launcher), sdk_subject(launcher)
            for hold, n in holds:
                a = await scenario(f"alice_trio/{hold}", ours, observer, hold, "own", n)
                # the SDK never kills the grandchild: wait for its own teardown, not forever
                b = await scenario(
                    f"claude_agent_sdk/{hold}",
                    theirs,
                    observer,
                    hold,
                    "own",
                    n,
                    watch_timeout=SDK_WATCH[hold],
                )
                ratio = {
                    key: round(b[key]["p50"] / a[key]["p50"], 2)
                    for key in ("control_ms", "exited_ms", "reaped_ms")
                    if a[key].get("p50") and b[key].get("p50")
                }
                out["cancel"].append(
                    {
                        "hold": hold,
                        "alice_trio": a,
                        "claude_agent_sdk": b,
                        "sdk_over_alice_p50": ratio,
                    }
                )
        finally:
            await observer.aclose()
        ours_w, ours_s, theirs_w, theirs_s = [], [], [], []
        for _ in range(repeats):
            w, s, _c = await _backend(launcher, n_events)
            ours_w.append(w)
            ours_s.append(s)
            w, s, _c = await sdk_throughput(launcher, n_events)
            theirs_w.append(w)
            theirs_s.append(s)
    a_rate, b_rate = n_events / median(ours_w), n_events / median(theirs_w)
    out["throughput"] = {
        "events": n_events,
        "repeats": repeats,
        "alice_trio_events_per_s": round(a_rate),
        "alice_trio_stream_events_per_s": round(n_events / median(ours_s)),
        "claude_agent_sdk_events_per_s": round(b_rate),
        "claude_agent_sdk_stream_events_per_s": round(n_events / median(theirs_s)),
        "alice_over_sdk": round(a_rate / b_rate, 2),
    }
    return out


def main() -> int:
    return quick_main(main_async)


if __name__ == "__main__":
    sys.exit(main())
