"""Randomized cancellation: Hypothesis picks a recorded transcript of a provider, a timing for
its lines, an exit status and a moment; the replayed CLI (``python -m alice_trio.replay_cli``)
is cancelled — or times out — at that moment. Every time:

* the call returns within a bound after the cancel/timeout (kill grace + slack);
* no process carrying the run's env marker remains;
* no trio task leaked (the whole task tree has the size it had before);
* the partial result is consistent: it is exactly what the provider's decoder makes of some
  prefix of the transcript's lines (so the thread id is kept and usage is never invented).

The same for interactive sessions (the one-shot session driver, which also serves gemini and
every provider without an interactive protocol). ``ALICE_TRIO_RANDOM_EXAMPLES`` raises the
number of examples (default 8 per provider)."""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import AliceError, RunTimeoutError
from alice_trio.file_changes import merge_changes
from alice_trio.framing import LineFramer, decode_line
from alice_trio.models import EventKind, RunRequest, RunResult
from alice_trio.providers.registry import get_provider
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.providers.replay import ReplayConfig
from alice_trio.sessions.session import open_session

from reliability_support import FAST, assert_nothing_left, count_tasks, new_mark
from transcripts_index import PROVIDERS, stdout_files

EXAMPLES = int(os.environ.get("ALICE_TRIO_RANDOM_EXAMPLES", "8"))
SLACK = 1.5  # scheduling slack on a loaded 2-core CI machine
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@attrs.frozen
class Case:
    provider: str
    lines: tuple[str, ...]
    times: tuple[float, ...]
    exit_code: int
    delay: float
    thread_id: str


@st.composite
def cases(draw: st.DrawFn, provider: str) -> Case:
    path = draw(st.sampled_from(stdout_files(provider)), label="transcript")
    framer = LineFramer()
    items = framer.feed(path.read_bytes()) + framer.feed_eof()
    lines = tuple(decode_line(x) for x in items if isinstance(x, bytes))
    duration = draw(st.sampled_from([0.0, 0.05, 0.2, 0.4]), label="duration")
    rng = random.Random(draw(st.integers(0, 2**32 - 1), label="timing seed"))
    times = tuple(sorted(rng.uniform(0, duration) for _ in lines))
    exit_code = draw(st.sampled_from([0, 0, 1, -15]), label="exit")
    delay = draw(st.floats(0.0, duration + 0.35), label="cancel after")
    thread_id = draw(st.sampled_from(["", "resume-me"]), label="thread id")
    return Case(provider, lines, times, exit_code, delay, thread_id)


def _timeline(case: Case, directory: str) -> str:
    path = Path(directory) / "timeline.jsonl"
    records = [
        {"t_ms": t * 1000, "stream": "stdout", "line": line}
        for t, line in zip(case.times, case.lines, strict=True)
    ]
    records.append({"exit": case.exit_code})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def _prefix_results(case: Case, request: RunRequest) -> set[RunResult]:
    """What the decoder makes of every prefix of the lines (with the engine's thread-id
    fallback): the only results a consistent partial can be."""
    provider = get_provider(case.provider)
    out = set()
    for k in range(len(case.lines) + 1):
        decoder = provider.new_decoder(request, provider.config_class())
        files = []
        for line in case.lines[:k]:
            events = decoder.feed(line)
            files += [f for e in events if e.kind is EventKind.FILE_CHANGE for f in e.files]
        result = decoder.finish().result
        if not result.next_thread_id and request.thread_id:
            result = attrs.evolve(result, next_thread_id=request.thread_id)
        if files:  # the engine lists the file changes the events of the prefix named
            result = attrs.evolve(result, file_changes=tuple(merge_changes(files)))
        out.add(result)
    return out


def _request(case: Case, mark: str) -> RunRequest:
    return RunRequest(user_text="go", thread_id=case.thread_id, env={"TEST_MARK": mark})


async def _check_oneshot(case: Case, timeout_mode: bool) -> None:
    mark = new_mark()
    request = _request(case, mark)
    before = count_tasks()
    with tempfile.TemporaryDirectory() as tmp:
        config = ReplayConfig(
            transcript=_timeline(case, tmp),
            decode_as=case.provider,
            speed=1.0,
            limits=FAST,
            timeout=case.delay if timeout_mode and case.delay > 0 else ReplayConfig().timeout,
        )
        outcome: RunResult | AliceError | None = None
        start = time.monotonic()
        with trio.move_on_after(1e9 if timeout_mode else case.delay) as scope:
            try:
                outcome = await run_oneshot(REPLAY, config, request)
            except AliceError as exc:
                outcome = exc
        took = time.monotonic() - start
    assert took < case.delay + FAST.kill_grace + FAST.drain_timeout + SLACK or (
        not scope.cancelled_caught and not isinstance(outcome, RunTimeoutError)
    ), f"returned {took:.2f} s after a cancel at {case.delay:.2f} s"
    assert_nothing_left(mark)
    assert count_tasks() == before, "a task leaked"
    if scope.cancelled_caught:
        assert outcome is None  # trio.Cancelled propagated; nothing half-returned
        return
    partial = outcome.partial if isinstance(outcome, AliceError) else outcome
    assert partial in _prefix_results(case, request), f"inconsistent partial {partial!r}"
    if case.thread_id:
        assert partial.next_thread_id  # the thread id to resume with is never lost


@pytest.mark.parametrize("provider", PROVIDERS)
@SETTINGS
@given(data=st.data())
async def test_random_cancel_oneshot(provider: str, data: st.DataObject):
    case = data.draw(cases(provider))
    await _check_oneshot(case, timeout_mode=False)


@pytest.mark.parametrize("provider", PROVIDERS)
@SETTINGS
@given(data=st.data())
async def test_random_timeout_oneshot(provider: str, data: st.DataObject):
    case = data.draw(cases(provider))
    await _check_oneshot(case, timeout_mode=True)


@SETTINGS
@given(data=st.data())
async def test_random_cancel_session(data: st.DataObject):
    provider = data.draw(st.sampled_from(PROVIDERS), label="provider")
    case = data.draw(cases(provider))
    mark = new_mark()
    request = _request(case, mark)
    before = count_tasks()
    usages = {r.usage for r in _prefix_results(case, request)}
    seen: list = []
    with tempfile.TemporaryDirectory() as tmp:
        config = ReplayConfig(
            transcript=_timeline(case, tmp), decode_as=case.provider, speed=1.0, limits=FAST
        )
        start = time.monotonic()
        with trio.move_on_after(case.delay) as scope:
            async with open_session(REPLAY, config, initial=request) as session:
                submitted = await session.submit(request)
                async for event in session.events():
                    seen.append(event)
                    if event.kind.terminal and event.turn_id == submitted.turn_id:
                        break
        took = time.monotonic() - start
    if scope.cancelled_caught:
        assert took < case.delay + FAST.kill_grace + SLACK
    assert_nothing_left(mark)
    assert count_tasks() == before, "a task leaked"
    for event in seen:
        assert event.turn_id, "an event without a turn id"
        if event.kind is EventKind.TURN_COMPLETED:
            assert event.usage in usages, "usage invented"
