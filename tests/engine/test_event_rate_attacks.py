"""``RunRequest.informational_rate`` under attack: the one-shot engine on trio's MockClock
through a fake process (no real waiting; what is checked holds however slow the machine)."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mock_clock import FakeChild, spawner_of

from alice_trio.engine.callbacks import CallbackDispatcher
from alice_trio.engine.event_rate import INFORMATIONAL
from alice_trio.engine.oneshot import run_invocation
from alice_trio.errors import AliceError
from alice_trio.models import EventKind, RawEvent, RunRequest, RunResult, TurnEvent
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.codex import CodexExecDecoder
from alice_trio.providers.registry import get_provider
from alice_trio.sessions._groups import single_exception

_NOTICE = re.compile(r"([\d,]+) events skipped: over \d+ a second \((.*)\)$")


def _line(**obj: object) -> bytes:
    return (json.dumps(obj) + "\n").encode()


def _tool(command: str) -> bytes:
    item = {"type": "command_execution", "command": command, "exit_code": 0}
    return _line(type="item.completed", item=item)


def _message(text: str) -> bytes:
    return _line(type="item.completed", item={"type": "agent_message", "text": text})


async def test_quiet_is_decided_again_after_the_reader_waited_for_the_callbacks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A read chunk whose lines wait for the callbacks part way (an over-long line's notice
    behind a full buffer) spans windows: the lines after the wait are decoded for the window
    they are offered in, not left unbuilt by the full window the chunk started in. Here the
    tool call after the wait is the first of a new second: it must reach the callback."""
    limits = RunLimits(
        kill_grace=0.5, drain_timeout=1.0, max_line_bytes=512, line_policy="skip",
        callback_buffer=2,
    )  # fmt: skip
    got: list[TurnEvent] = []

    async def slow(events: list[TurnEvent]) -> None:
        first = not got
        got.extend(events)
        if first:
            await trio.sleep(5)  # the first batch takes five seconds (virtual time)

    child = FakeChild()

    async def cli() -> None:
        await child.say(_tool("first") + _tool("second"))  # the window's two
        await trio.sleep(0.1)  # the callback holds those two: the buffer is full
        await child.say(
            _tool("counted")  # the window is full: counted, not built
            + _message("hello")  # waits for room (never shed): five seconds pass
            + b"x" * 2000 + b"\n"  # an over-long line: its notice (a new window)
            + _tool("after") + _tool("over")  # in that new window: shown, then counted
            + _message("done")
            + _line(type="turn.completed", usage={"input_tokens": 1, "output_tokens": 1})
        )  # fmt: skip
        await trio.sleep(60)  # exits when the engine is done with it (after the terminal)
        child.exit(0)

    inv = Invocation(argv=("fake",), limits=limits)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cli)
        result = await run_invocation(
            inv, CodexExecDecoder(), provider="codex", on_events=slow,
            informational_rate=2, spawner=spawner_of(child),
        )  # fmt: skip
    assert result.reply == "done"
    shown = [e.text for e in got if e.kind is EventKind.TOOL_USE]
    assert any("`first`" in t for t in shown) and any("`second`" in t for t in shown)
    assert any("`after`" in t for t in shown), "\n".join(f"{e.kind.value} {e.text}" for e in got)
    assert not any("`counted`" in t or "`over`" in t for t in shown)
    notices = [e.text for e in got if e.kind is EventKind.SKIPPED]
    assert sum(int(t.split()[0]) for t in notices) == 2, notices


# -- the result and the events with and without a rate, on every recorded transcript ---------

_TRANSCRIPTS = Path(__file__).parent.parent / "transcripts"


def _claude_writes() -> bytes:
    """A claude stream no recording has: write and edit tools that succeed (file changes), one
    that fails, thinking and a sub-agent's text before each result, usage at the end."""
    lines = [_line(type="system", subtype="init", session_id="s-1")]
    for i in range(12):
        tool = {
            "type": "tool_use", "id": f"t{i}", "name": "Write" if i % 2 else "Edit",
            "input": {"file_path": f"/w/f{i}.txt", "content": "x", "old_string": "a",
                      "new_string": "b"},
        }  # fmt: skip
        thinking = {"type": "thinking", "thinking": f"plan {i}"}
        sub = {"id": f"s{i}", "content": [{"type": "text", "text": f"sub-agent {i}"}]}
        result = {"type": "tool_result", "tool_use_id": f"t{i}", "is_error": i == 5}
        lines += [
            _line(type="assistant", message={"id": f"m{i}", "content": [thinking, tool]}),
            _line(type="assistant", parent_tool_use_id=f"t{i}", message=sub),
            _line(type="user", message={"content": [result]}),
        ]
    final = {"id": "final", "content": [{"type": "text", "text": "All written."}]}
    lines += [
        _line(type="assistant", message=final),
        _line(type="result", subtype="success", is_error=False, result="All written.",
              session_id="s-1", usage={"input_tokens": 5, "output_tokens": 7}),
    ]  # fmt: skip
    return b"".join(lines)


_RECORDED: list[tuple[str, Path | None]] = [
    *(("claude", p) for p in sorted((_TRANSCRIPTS / "claude").rglob("*.stdout*"))),
    *(("codex", p) for p in sorted((_TRANSCRIPTS / "codex").rglob("stdout.raw"))),
    ("claude", None),  # _claude_writes
]


def _kind(event: TurnEvent) -> str:
    return event.kind._value_


async def _replayed(
    provider: str, data: bytes, seed: int, rate: int
) -> tuple[RunResult | AliceError, list[TurnEvent]]:
    """``data`` through the engine in random chunks, random virtual seconds apart."""
    rnd = random.Random(seed)
    child = FakeChild()

    async def cli() -> None:
        await child.say(_line(type="x_prefill") * 3)  # informational: fills a window of 1-3
        i = 0
        while i < len(data):
            n = rnd.choice([1, 7, 100, 4096, 1 << 20])
            await child.say(data[i : i + n])
            i += n
            await trio.sleep(rnd.choice([0, 0, 0.01, 0.4, 1.5]))
        await child._out.aclose()
        await trio.sleep(rnd.choice([0, 0.2]))
        child.exit(0)

    got: list[TurnEvent] = []
    p = get_provider(provider)
    decoder = p.new_decoder(RunRequest(user_text="x"), p.config_class())
    limits = RunLimits(kill_grace=0.5, drain_timeout=1.0, callback_buffer=rnd.choice([1, 3, 4096]))
    outcome: RunResult | AliceError
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cli)
        try:
            outcome = await run_invocation(
                Invocation(argv=("fake",), limits=limits), decoder, provider=provider,
                on_events=got.extend, informational_rate=rate, spawner=spawner_of(child),
            )  # fmt: skip
        except AliceError as exc:
            outcome = exc
    return outcome, got


@pytest.mark.parametrize(
    ("provider", "path"),
    _RECORDED,
    ids=lambda x: x if isinstance(x, str) else getattr(x, "name", "claude_writes"),
)
async def test_a_rate_changes_no_result_and_loses_no_count(
    autojump_clock: trio.testing.MockClock, provider: str, path: Path | None
) -> None:
    """Every recorded claude and codex stdout (and claude's write tools, which no recording
    has), in random chunks at random times, after three unknown lines that fill a window of a
    rate of 1-3 (quiet decoders while it lasts): the same result or error (reply, thread id,
    usage, file changes) as without a rate; the same other events in the same order; every
    informational event of the full run shown or counted in a notice, before the end."""
    data = path.read_bytes() if path is not None else _claude_writes()
    for seed in range(4):
        full, every = await _replayed(provider, data, seed, 0)
        rated, got = await _replayed(provider, data, seed, 1 + seed % 3)
        if isinstance(full, AliceError):
            assert type(rated) is type(full) and rated.partial == full.partial  # type: ignore[union-attr]
        else:
            assert rated == full
            if path is None:
                assert len(full.file_changes) == 11 and full.usage.output_tokens == 7
        assert [
            e for e in got if _kind(e) not in INFORMATIONAL and e.kind is not EventKind.SKIPPED
        ] == [e for e in every if _kind(e) not in INFORMATIONAL]
        informational = Counter(_kind(e) for e in every if _kind(e) in INFORMATIONAL)
        shown = Counter(_kind(e) for e in got if _kind(e) in INFORMATIONAL)
        counted = sum((_counted(e) for e in got), Counter[str]())
        other = counted.pop("other", 0)
        missing = informational - shown - counted
        assert not (shown + counted) - informational and missing.total() == other, path
        # what was not shown before the end is counted before it (a notice, then the end)
        end = next((i for i, e in enumerate(got) if e.kind.terminal), None)
        if end is not None:
            end_of_full = every.index(got[end])
            before = Counter(_kind(e) for e in every[:end_of_full] if _kind(e) in INFORMATIONAL)
            said = sum((_counted(e) for e in got[:end]), Counter[str]())
            said += Counter(_kind(e) for e in got[:end] if _kind(e) in INFORMATIONAL)
            other = said.pop("other", 0)
            assert (before - said).total() <= other, (path, before, said)


def _counted(event: TurnEvent) -> Counter[str]:
    """kind → count of a ``skipped`` notice (empty for any other event); the kinds it does not
    name (more than four: ``, …``) as ``"other"``."""
    if event.kind is not EventKind.SKIPPED:
        return Counter()
    m = _NOTICE.match(event.text)
    assert m, event.text
    total, named = int(m[1].replace(",", "")), m[2].removesuffix(", …")
    kinds = Counter(
        {k: int(n.replace(",", "")) for k, n in (p.rsplit(" ", 1) for p in named.split(", "))}
    )
    assert 0 < kinds.total() <= total
    if kinds.total() < total:
        assert m[2].endswith(", …"), event.text
        kinds["other"] = total - kinds.total()
    return kinds


# -- the dispatcher: a rate, a tiny buffer and a lagging callback together ------------------

_MIXED = [
    EventKind.TOOL_USE, EventKind.REASONING, EventKind.USAGE, EventKind.ASSISTANT_TEXT,
    EventKind.FILE_CHANGE, EventKind.QUESTION, EventKind.ERROR,
]  # fmt: skip
_DROPPED = re.compile(r"(\d+) informational events dropped: callback too slow$")


@settings(max_examples=150, deadline=None)
@given(
    buffer=st.sampled_from([1, 2, 3, 5, 64]),
    rate=st.integers(1, 3),
    lag=st.booleans(),
    plan=st.lists(
        st.tuples(
            st.lists(st.sampled_from(_MIXED), max_size=12),
            st.integers(0, 5),  # what a quiet decoder counted before the batch
            st.booleans(),  # offer_batch_nowait first
            st.sampled_from([0.0, 0.3, 1.1]),  # virtual seconds after it
        ),
        max_size=25,
    ),
    tail=st.lists(st.sampled_from([EventKind.TOOL_USE, EventKind.REASONING]), max_size=4),
    seed=st.integers(0, 2**16),
)
def test_a_rate_a_tiny_buffer_and_a_lagging_callback_lose_no_event_and_no_count(
    buffer: int,
    rate: int,
    lag: bool,
    plan: list[tuple[list[EventKind], int, bool, float]],
    tail: list[EventKind],
    seed: int,
) -> None:
    """Batches larger than the buffer, the +1 of a notice, shedding for a lagging callback and
    the rate at once: every other event delivered in order, the terminal one last; every
    informational event delivered, or counted in a notice (the last at close, for what came
    after the terminal event) or in the lag's ``dropped`` notice."""
    rnd = random.Random(seed)
    got: list[TurnEvent] = []

    async def on_events(events: list[TurnEvent]) -> None:
        got.extend(events)
        if lag and rnd.random() < 0.3:
            await trio.sleep(rnd.choice([0.01, 0.5, 2.0]))
        else:
            await trio.lowlevel.checkpoint()

    offered: list[TurnEvent] = []
    quiet = 0

    async def main() -> None:
        nonlocal quiet
        d = CallbackDispatcher(None, None, buffer, on_events, rate=rate)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(d.run)
            end = ([EventKind.TURN_COMPLETED], 0, True, 0.0)
            for kinds, counted, nowait, pause in [*plan, end, (tail, 0, True, 0.0)]:
                batch: list[TurnEvent | RawEvent] = [
                    TurnEvent(kind=k, text=str(len(offered) + i)) for i, k in enumerate(kinds)
                ]
                offered.extend(batch)  # type: ignore[arg-type]
                if counted:
                    d.count_skipped({"tool_use": counted})
                    quiet += counted
                if not (nowait and d.offer_batch_nowait(batch)):
                    await d.offer_batch(batch)
                await trio.sleep(pause)
            d.close()
        assert d.pending == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert [
        e for e in got if _kind(e) not in INFORMATIONAL and e.kind is not EventKind.SKIPPED
    ] == [e for e in offered if _kind(e) not in INFORMATIONAL]
    ends = [i for i, e in enumerate(got) if e.kind is EventKind.TURN_COMPLETED]
    assert all(e.kind is EventKind.SKIPPED or e.kind in tail for e in got[ends[0] + 1 :])
    informational = sum(_kind(e) in INFORMATIONAL for e in offered) + quiet
    counted = dropped = 0
    for event in got:
        if event.kind is EventKind.SKIPPED:
            m = _DROPPED.match(event.text)
            if m:
                dropped += int(m[1])
            else:
                counted += sum(_counted(event).values())
    assert sum(_kind(e) in INFORMATIONAL for e in got) + counted + dropped == informational


# -- a rated run cancelled at any time ---------------------------------------------------------


@pytest.mark.parametrize("at", [0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.2, 1.4, 1.7, 2.0, 3.0, 99.0])
async def test_a_rated_run_cancelled_anywhere_is_bare_and_a_finished_one_whole(
    autojump_clock: trio.testing.MockClock, at: float
) -> None:
    """A flood at a rate of 2 behind a buffer of 2 and a callback that sleeps now and then,
    cancelled at a virtual time (during a burst, a wait for room, a sleep of the callback): a
    bare ``Cancelled`` (never a group, never another error), or, when it finished first, the
    whole result with every event said (shown or counted)."""
    child = FakeChild()
    got: list[TurnEvent] = []

    async def on_events(events: list[TurnEvent]) -> None:
        got.extend(events)
        await trio.sleep(0.4 if len(got) % 3 == 0 else 0)

    async def cli() -> None:
        for burst in range(5):
            await child.say(b"".join(_tool(f"{burst}-{i}") for i in range(40)))
            await trio.sleep(0.3)
        await child.say(_message("done") + _line(type="turn.completed", usage={}))
        await trio.sleep(60)
        child.exit(0)

    limits = RunLimits(kill_grace=0.5, drain_timeout=1.0, callback_buffer=2)

    async def run() -> RunResult:
        with single_exception():  # as OneShotBackend.run, the public surface
            return await run_invocation(
                Invocation(argv=("fake",), limits=limits), CodexExecDecoder(), provider="codex",
                on_events=on_events, informational_rate=2, spawner=spawner_of(child),
            )  # fmt: skip

    raised: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cli)
        value = None
        with trio.move_on_after(at) as scope:
            try:
                value = await run()
            except BaseException as exc:
                raised.append(exc)
                raise
        cancelled = scope.cancelled_caught
        nursery.cancel_scope.cancel()
    assert all(type(e) is trio.Cancelled for e in raised), raised
    if not cancelled:
        assert isinstance(value, RunResult) and value.reply == "done"
        tools = sum(e.kind is EventKind.TOOL_USE for e in got)
        said = sum(
            int(m[1]) if (m := _DROPPED.match(e.text)) else sum(_counted(e).values())
            for e in got
            if e.kind is EventKind.SKIPPED
        )
        assert tools + said == 200 and EventKind.TURN_COMPLETED in [e.kind for e in got]
