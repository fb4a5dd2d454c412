"""Hostile but valid JSON never crashes a decoder or a protocol mapper (issue 12 item 4).

Every recorded message of every transcript (one-shot stdout of the five providers, claude
bidirectional stream-json, codex app-server, ACP of gemini and kimi, the legacy kimi wire,
opencode serve events) is taken as a template; at every key path (the whole message included)
a hostile value is put in: huge and non-finite numbers written as JSON text (``1e999``,
``-1e999``, ``1e400``, a 400-digit integer, ``NaN``), deep nesting (up to 100,000 levels), lone
surrogate escapes and values of the wrong type. The line then goes the way a real one goes
(:func:`alice_trio.safejson.loads` / :func:`alice_trio.protocols.jsonrpc.parse_line`, then the
decoder or mapper, primed with the recorded messages before it). Nothing may raise: hostile
input is drift (an ``unknown`` event), and every string the library hands on encodes as UTF-8.

Two sweeps: an exhaustive deterministic one (every path × a fixed list of hostile values) and a
Hypothesis one (arbitrary JSON values at random paths, several mutations per transcript, the
whole transcript fed). Protocol messages generated from the JSON schemas of
``protocol-schemas/`` are not used: the recorded messages already cover every method we map,
and a wrong type at each of their keys is what the schemas would add.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alice_trio import safejson
from alice_trio.models import RunRequest, TurnEvent, Usage
from alice_trio.protocols import acp, codex_app_server, kimi_wire
from alice_trio.protocols.claude_stream import ClaudeBidiMapper
from alice_trio.protocols.jsonrpc import (
    ErrorResponse,
    Invalid,
    Notification,
    Request,
    Response,
    parse_line,
)
from alice_trio.protocols.opencode_events import OpenCodeMapper
from alice_trio.providers.base import MAX_COUNT, DecodeOutcome
from alice_trio.providers.registry import get_provider
from alice_trio.sessions.approval import ApprovalDecision

from transcripts_index import PROVIDERS, lines_of, stdout_files

ROOT = Path(__file__).parents[1] / "transcripts"
SRC = Path(__file__).parents[2] / "src"
MARK = "\x00HOSTILE\x00"
MARK_JSON = json.dumps(MARK)

#: hostile JSON texts put in place of a value (raw, so that 1e999 is really in the line)
RAW_VALUES = [
    "1e999", "-1e999", "1e400", "-0.0", "NaN", "Infinity", "-Infinity", "1" + "0" * 400,
    "1" * 5000, "9223372036854775808", "-9223372036854775809", "1.7976931348623157e308",
    "null", "true", "false", "0", "-1", "1.5", '""', '"x"', '"\\ud800"', '"\\udfff\\ud800x"',
    "[]", "{}", '[null, 1e999, "x"]', '{"type": 1e999, "id": [], "text": {}}',
    "[" * 300 + "]" * 300, '{"a":' * 150 + "1e999" + "}" * 150, "[" * 100_000,
]  # fmt: skip


# -- corpus: recorded messages, in order, per target -------------------------------------------


@attrs.frozen
class Target:
    """``messages``: ``(channel, line)``; only ``out`` lines (what the CLI sends) are mutated.
    ``new()`` makes the decoder/mapper state, ``feed(state, channel, line)`` passes one message
    the way the driver would, ``finish(state)`` ends the run."""

    name: str
    messages: tuple[tuple[str, str], ...]
    new: Callable[[], Any]
    feed: Callable[[Any, str, str], list[Any]]
    finish: Callable[[Any], list[Any]]


def _decoder_target(provider: str, path: Path) -> Target:
    p = get_provider(provider)

    def new() -> Any:
        return p.new_decoder(RunRequest(user_text="x"), p.config_class())

    def feed(decoder: Any, channel: str, line: str) -> list[Any]:
        return decoder.feed(line)

    def finish(decoder: Any) -> list[Any]:
        return [decoder.finish()]

    lines = tuple(("out", line) for line in lines_of(path) if line.strip())
    return Target(f"{provider}:{path.name}", lines, new, feed, finish)


def _claude_bidi_target(path: Path) -> Target:
    messages = []
    for raw in path.read_text().splitlines():
        rec = json.loads(raw)
        if rec.get("dir") == "in":
            messages.append(("in", rec["line"]))
        elif rec.get("dir") == "out":
            messages.append(("out", rec["line"]))

    def feed(mapper: ClaudeBidiMapper, channel: str, line: str) -> list[Any]:
        if channel == "in":
            obj = json.loads(line)
            if obj.get("type") == "user":
                content = obj["message"]["content"]
                text = content if isinstance(content, str) else content[0].get("text", "")
                mapper.submit(f"t{len(mapper.pending)}", text)
            return []
        events = mapper.feed(line)
        events += [("outgoing", b) for b in mapper.outgoing]
        mapper.outgoing.clear()
        return events

    return Target(f"claude_bidi:{path.name}", tuple(messages), ClaudeBidiMapper, feed,
                  lambda m: [])  # fmt: skip


def _rpc_feed(
    on_notification: Callable[[Any, Notification], list[Any]],
    on_request: Callable[[Any, Request], list[Any]],
    on_response: Callable[[Any, Response], list[Any]],
) -> Callable[[Any, str, str], list[Any]]:
    def feed(mapper: Any, channel: str, line: str) -> list[Any]:
        msg = parse_line(line)
        if isinstance(msg, Notification):
            return on_notification(mapper, msg)
        if isinstance(msg, Request):
            return on_request(mapper, msg)
        if isinstance(msg, Response):
            return on_response(mapper, msg)
        if isinstance(msg, ErrorResponse):
            return [msg.to_error(method="x")]
        assert msg is None or isinstance(msg, Invalid)
        return []

    return feed


def _answers(request: Any, result: Callable[[Any, Any], Any]) -> list[Any]:
    if request is None:
        return []
    out = [request]
    for answer in (*ApprovalDecision, None, {"q": "a"}, "junk"):
        out.append(result(request, answer))
    return out


def _codex_target(path: Path) -> Target:
    messages = []
    for raw in path.read_text().splitlines():
        rec = json.loads(raw)
        if rec.get("dir") == "<-" and isinstance(rec.get("msg"), dict):
            messages.append(("out", json.dumps(rec["msg"])))

    def request(m: Any, req: Request) -> list[Any]:
        ar = codex_app_server.approval_request(req.method, req.params, str(req.id))
        return _answers(ar, codex_app_server.approval_result)

    feed = _rpc_feed(lambda m, n: m.feed(n), request, lambda m, r: [])
    return Target(
        f"codex_app_server:{path.name}", tuple(messages),
        lambda: codex_app_server.CodexNotificationMapper(workspace="/w"), feed, lambda m: [],
    )  # fmt: skip


def _capture_stdout(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".jsonl":
        return [("out", line) for line in path.read_text().splitlines() if line.strip()]
    events = json.loads(path.read_text())["events"]
    return [("out", e["text"]) for e in events if e.get("kind") == "stdout"]


def _acp_target(path: Path) -> Target:
    def new() -> acp.AcpUpdateMapper:
        mapper = acp.AcpUpdateMapper(provider="gemini", session_id="s")
        mapper.begin("t1")
        return mapper

    def request(m: acp.AcpUpdateMapper, req: Request) -> list[Any]:
        pr = acp.permission_request(req.params, provider="gemini", turn_id=m.turn_id)
        return _answers(pr, acp.permission_result)

    def response(m: acp.AcpUpdateMapper, r: Response) -> list[Any]:
        out: list[Any] = [acp.result_usage(r.result)]
        if isinstance(r.result, dict) and "stopReason" in r.result:
            out += m.finish(r.result, r.raw)
        return out

    feed = _rpc_feed(lambda m, n: m.feed(n.params, n.raw), request, response)
    return Target(f"acp:{path.name}", tuple(_capture_stdout(path)), new, feed,
                  lambda m: m.flush())  # fmt: skip


def _kimi_wire_target(path: Path) -> Target:
    def new() -> kimi_wire.KimiWireMapper:
        mapper = kimi_wire.KimiWireMapper(session_id="s")
        mapper.begin("t1")
        return mapper

    def request(m: kimi_wire.KimiWireMapper, req: Request) -> list[Any]:
        ar = kimi_wire.approval_request(req.params, session_id="s", turn_id=m.turn_id)
        return _answers(ar, kimi_wire.approval_result)

    def response(m: kimi_wire.KimiWireMapper, r: Response) -> list[Any]:
        if isinstance(r.result, dict) and "status" in r.result:
            return m.finish(r.result, r.raw)
        return []

    feed = _rpc_feed(lambda m, n: m.feed(n.params, n.raw), request, response)
    return Target(f"kimi_wire:{path.name}", tuple(_capture_stdout(path)), new, feed,
                  lambda m: m.flush())  # fmt: skip


def _opencode_target(path: Path) -> Target:
    messages = []
    session = ""
    for raw in path.read_text().splitlines():
        rec = json.loads(raw)
        event = rec.get("event", rec)
        if not isinstance(event, dict) or "type" not in event:
            continue
        props = event.get("properties") or {}
        session = session or props.get("sessionID") or ""
        messages.append(("out", json.dumps(event)))

    def new() -> OpenCodeMapper:
        mapper = OpenCodeMapper(session_id=session)
        for i in range(3):
            mapper.submit(f"t{i}", "prompt")
        return mapper

    def feed(mapper: OpenCodeMapper, channel: str, line: str) -> list[Any]:
        try:  # what sessions/opencode_serve.py does with one SSE payload
            obj = safejson.loads(line)
        except safejson.NotJSON:
            return []
        return mapper.feed(obj, line) if isinstance(obj, dict) else []

    return Target(f"opencode_serve:{path.name}", tuple(messages), new, feed, lambda m: [])


def _targets() -> list[Target]:
    out = [_decoder_target(p, f) for p in PROVIDERS for f in stdout_files(p)]
    out += [_claude_bidi_target(f) for f in sorted((ROOT / "claude_bidi").glob("*.jsonl"))]
    out += [_codex_target(f) for f in sorted((ROOT / "codex_app_server").glob("*.wire.jsonl"))]
    out += [_acp_target(f) for f in sorted((ROOT / "acp").glob("*.json"))]
    kimi = sorted((ROOT / "kimi_wire").glob("*.json*"))
    out += [_kimi_wire_target(f) for f in kimi]
    oc = sorted((ROOT / "opencode_serve").glob("*.jsonl"))
    out += [_opencode_target(f) for f in oc if "http" not in f.name]
    return [t for t in out if any(ch == "out" for ch, _ in t.messages)]


TARGETS = _targets()
KINDS = sorted({t.name.split(":")[0] for t in TARGETS})


# -- mutation ------------------------------------------------------------------------------------


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of ``obj`` (the root ``()`` first); in a list the first two items and the
    last one (the items of one list share their shape)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i in sorted({0, 1, len(obj) - 1} & set(range(len(obj)))):
            yield from _paths(obj[i], (*prefix, i))


def _with_raw(obj: Any, path: tuple[Any, ...], raw: str) -> str:
    """``obj`` as a JSON line with the value at ``path`` replaced by the JSON text ``raw``."""
    if not path:
        return raw
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    old, parent[path[-1]] = parent[path[-1]], MARK
    try:
        return json.dumps(obj, ensure_ascii=False).replace(MARK_JSON, raw, 1)
    finally:
        parent[path[-1]] = old


def _check(produced: list[Any]) -> None:
    """What the library hands on is well-formed: text that encodes as UTF-8, sane counts."""
    for item in produced:
        if isinstance(item, TurnEvent):
            for text in (item.text, item.error, item.thread_id, item.turn_id):
                text.encode("utf-8")
            if item.usage is not None:
                _check_usage(item.usage)
        elif isinstance(item, DecodeOutcome):
            item.result.reply.encode("utf-8")
            item.error.encode("utf-8")
            _check_usage(item.result.usage)
        elif isinstance(item, Usage):
            _check_usage(item)


def _check_usage(usage: Usage) -> None:
    for n in usage.to_dict().values():
        assert isinstance(n, int) and -MAX_COUNT <= n <= MAX_COUNT


def _replay(target: Target, mutations: dict[int, str]) -> None:
    """Feed the whole transcript with the ``out`` messages at the given indexes replaced."""
    state = target.new()
    for i, (channel, line) in enumerate(target.messages):
        _check(target.feed(state, channel, mutations.get(i, line)))
    _check(target.finish(state))


# -- the exhaustive sweep --------------------------------------------------------------------------

#: tried at every key path: a wrong type of each kind, a non-finite number, a negative one
SWEEP_CORE = ["1e999", "-1", "null", '"x"', "[]", "{}"]
#: the other hostile values take turns over the paths (each is tried at many of them)
SWEEP_ROTATING = [v for v in RAW_VALUES if v not in SWEEP_CORE and not v.startswith("[" * 1000)]


def _sweep(target: Target) -> int:
    """Every path of every distinct ``out`` message × every hostile value, each fed to a copy of
    the state primed with the messages before it. Returns the number of lines tried."""
    state = target.new()
    seen: set[str] = set()
    tried = 0
    for channel, line in target.messages:
        if channel == "out" and line not in seen:
            seen.add(line)
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if obj is not None:
                frozen = pickle.dumps(state)  # a copy of the primed state per try
                for path in _paths(obj):
                    tried += 1
                    extra = SWEEP_ROTATING[tried % len(SWEEP_ROTATING)]
                    for raw in (*SWEEP_CORE, extra):
                        clone = pickle.loads(frozen)
                        _check(target.feed(clone, "out", _with_raw(obj, path, raw)))
                        _check(target.finish(clone))
        _check(target.feed(state, channel, line))
    return tried


@pytest.mark.parametrize("kind", KINDS)
def test_every_key_path_takes_every_hostile_value(kind: str) -> None:
    tried = sum(_sweep(t) for t in TARGETS if t.name.split(":")[0] == kind)
    assert tried > 100


def test_the_sweep_covers_every_decoder_and_mapper() -> None:
    assert set(KINDS) == {*PROVIDERS, "acp", "claude_bidi", "codex_app_server", "kimi_wire",
                          "opencode_serve"}  # fmt: skip


@pytest.mark.parametrize("raw", ["[" * 100_000, "[" * 200_000 + "]" * 200_000, "{" * 50_000])
@pytest.mark.parametrize("kind", KINDS)
def test_very_deep_nesting_in_the_first_message(kind: str, raw: str) -> None:
    target = next(t for t in TARGETS if t.name.split(":")[0] == kind)
    index = next(i for i, (ch, _) in enumerate(target.messages) if ch == "out")
    obj = json.loads(target.messages[index][1])
    path = max(_paths(obj), key=len)  # the deepest key path
    _replay(target, {index: _with_raw(obj, path, raw)})
    _replay(target, {index: raw})


# -- the Hypothesis sweep --------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20,
)  # fmt: skip
_HOSTILE = st.one_of(
    st.sampled_from(RAW_VALUES),
    _JSON.map(lambda v: json.dumps(v, allow_nan=True)),
    st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitrary_json_anywhere_in_any_transcript(data: st.DataObject) -> None:
    target = data.draw(st.sampled_from(TARGETS), label="target")
    outs = [i for i, (ch, _) in enumerate(target.messages) if ch == "out"]
    picked = data.draw(st.lists(st.sampled_from(outs), min_size=1, max_size=4, unique=True))
    mutations = {}
    for index in picked:
        line = target.messages[index][1]
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        path = data.draw(st.sampled_from(list(_paths(obj))), label="path")
        mutations[index] = _with_raw(obj, path, data.draw(_HOSTILE, label="value"))
    _replay(target, mutations)


# -- the parser itself -------------------------------------------------------------------------


@pytest.mark.parametrize("text", RAW_VALUES)
def test_safejson_either_parses_or_says_not_json(text: str) -> None:
    try:
        value = safejson.loads(text)
    except safejson.NotJSON:
        return
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # walkable, encodable
    repr(value)


def test_safejson_limits() -> None:
    deep_ok = "[" * safejson.MAX_DEPTH + "]" * safejson.MAX_DEPTH
    assert safejson.loads(deep_ok) is not None
    with pytest.raises(safejson.NotJSON, match="nested deeper"):
        safejson.loads("[" * (safejson.MAX_DEPTH + 1) + "]" * (safejson.MAX_DEPTH + 1))
    # a line with many brackets inside strings is not deep
    assert safejson.loads(json.dumps({"text": "[" * 10_000})) == {"text": "[" * 10_000}
    assert safejson.loads('{"a": 1e999}') == {"a": float("inf")}
    assert safejson.loads('["\\ud800", "\\ud83d\\ude00", {"\\udc00": "x"}]') == [
        "\ufffd", "\U0001f600", {"\ufffd": "x"}
    ]  # fmt: skip


def test_orjson_never_sees_a_deep_line() -> None:
    """orjson 3.8 overflows the C stack on ~200,000 nested arrays: the host process dies of
    SIGSEGV. Run in a child so a regression fails this test instead of the suite."""
    code = (
        "from alice_trio import safejson\n"
        "try:\n safejson.loads('[' * 400_000 + ']' * 400_000)\n"
        "except safejson.NotJSON:\n print('not json')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC)}, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "not json"


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cli_replay_of_hostile_lines_prints_no_traceback(tmp_path: Path, provider: str) -> None:
    lines = [
        '{"type":"turn.completed","usage":{"input_tokens":1e999,"output_tokens":-1e999}}',
        '{"type":"result","subtype":"success","result":"ok","usage":{"input_tokens":1e400}}',
        '{"type":"result","stats":{"input_tokens":NaN},"status":1e999}',
        "[" * 100_000,
        "[" * 200_000 + "]" * 200_000,
        '{"role":"assistant","content":"\\ud800"}',
    ]
    path = tmp_path / "hostile.stdout"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "alice_trio.cli.main", "replay", "--provider", provider,
         str(path)],
        capture_output=True, text=True, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 1), proc.stderr[-3000:]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cli_run_of_a_cli_printing_hostile_lines(tmp_path: Path, provider: str) -> None:
    """``alice-trio run`` (the replay provider re-emits the lines as a real CLI's stdout):
    the verdict is a reply or a typed error (exit 1), never a traceback."""
    lines = [
        '{"type":"thread.started","thread_id":"t1"}',
        "[" * 100_000,
        "[" * 200_000 + "]" * 200_000,
        '{"type":"item.completed","item":{"type":"agent_message","text":"ok \\ud800"}}',
        '{"type":"turn.completed","usage":{"input_tokens":1e999,"output_tokens":-1e999}}',
    ]
    path = tmp_path / "hostile.stdout"
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "alice_trio.cli.main", "run", "--provider", "replay",
         "--set", f"transcript={path}", "--set", f"decode_as={provider}", "--json", "hi"],
        capture_output=True, text=True, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    if provider == "codex":
        result = json.loads(proc.stdout)
        assert result["reply"] == "ok \ufffd"
        assert result["usage"]["input_tokens"] == 0
