"""Issue 12.10 for the drivers without message ids on every event (ACP, legacy kimi wire,
claude stream-json): an update of a finished turn that arrives late is never credited to the
next turn."""

from __future__ import annotations

import json

from alice_trio.models import EventKind, TurnEvent
from alice_trio.protocols.acp import AcpUpdateMapper
from alice_trio.protocols.claude_stream import ClaudeBidiMapper
from alice_trio.protocols.kimi_wire import KimiWireMapper


def upd(update_kind: str, **fields) -> dict:
    return {"sessionId": "s", "update": {"sessionUpdate": update_kind, **fields}}


def chunk(text: str, msg: str | None = None) -> dict:
    extra = {"messageId": msg} if msg else {}
    return upd("agent_message_chunk", content={"type": "text", "text": text}, **extra)


def test_acp_late_updates_of_a_cancelled_turn_stay_out_of_the_next():
    m = AcpUpdateMapper(provider="kimi", session_id="s")
    m.begin("t1")
    out = m.feed(upd("tool_call", toolCallId="c1", title="sleep", status="pending"))
    out += m.feed(chunk("partial ", "m1"))
    out += m.finish({"stopReason": "cancelled"})
    assert [e.kind for e in out if e.kind.terminal] == [EventKind.TURN_INTERRUPTED]
    # after the response, before the next prompt: the tool's end, text, kimi's usage_update
    late = m.feed(upd("tool_call_update", toolCallId="c1", status="failed"))
    late += m.feed(chunk("more of turn one", "m1"))
    late += m.feed(upd("usage_update", used=123, size=1000))
    assert [(e.kind, e.turn_id) for e in late] == [(EventKind.USAGE, "t1")]
    m.begin("t2")
    out = m.feed(upd("tool_call_update", toolCallId="c1", status="completed"))
    out += m.feed(chunk("still turn one", "m1"))
    out += m.feed(chunk("fresh", "m2"))
    out += m.finish({"stopReason": "end_turn"})
    assert [e.text for e in out if e.kind is EventKind.ASSISTANT_TEXT] == ["fresh"]
    assert not [e for e in out if e.kind is EventKind.TOOL_USE]
    # the usage_update after turn one's response taught it: turn two's end waits for its own
    assert m.trailing_usage and m.holding and not [e for e in out if e.kind.terminal]
    out = m.release()
    done = out[-1]
    assert done.kind is EventKind.TURN_COMPLETED and done.turn_id == "t2"
    assert done.usage.input_tokens != 123  # turn one's late usage is not turn two's
    assert m.dropped == 4 and m.release() == []


def test_acp_trailing_usage_is_the_finished_turns_and_releases_its_end():
    """Kimi Code 2.1 sends a turn's only usage_update just after the prompt's response."""
    m = AcpUpdateMapper(provider="kimi", session_id="s", trailing_usage=True)
    m.begin("t1")
    out = m.feed(chunk("hello", "m1"))
    out += m.finish({"stopReason": "end_turn"})
    assert [e.kind for e in out] == [EventKind.ASSISTANT_TEXT] and m.holding
    out = m.feed(upd("usage_update", used=22268, size=262144))
    assert [(e.kind, e.turn_id) for e in out] == [
        (EventKind.USAGE, "t1"), (EventKind.TURN_COMPLETED, "t1")
    ]  # fmt: skip
    assert out[-1].usage.input_tokens == 22268 and not m.holding and m.release() == []
    # a cancelled or refused turn, or a result with usage, ends at once
    with_usage = {"stopReason": "end_turn", "usage": {"inputTokens": 5, "outputTokens": 1}}
    for result in ({"stopReason": "cancelled"}, {"stopReason": "refusal"}, with_usage):
        m.begin(f"t{id(result)}")
        out = m.finish(result)
        assert [e.kind.terminal for e in out] == [True] and not m.holding


def test_acp_agent_without_trailing_usage_ends_turns_at_the_response():
    m = AcpUpdateMapper(provider="gemini", session_id="s")
    m.begin("t1")
    m.feed(upd("usage_update", used=5, size=10))  # during the turn: not after the response
    out = m.finish({"stopReason": "end_turn"})
    assert [e.kind for e in out] == [EventKind.TURN_COMPLETED] and not m.trailing_usage
    assert out[0].usage.input_tokens == 5


def test_acp_updates_before_the_first_turn_still_flow():
    m = AcpUpdateMapper(provider="gemini", session_id="s")
    out = m.feed(upd("usage_update", used=5, size=10))
    assert [e.kind for e in out] == [EventKind.USAGE]


def test_kimi_wire_late_events_of_a_cancelled_turn_stay_out_of_the_next():
    m = KimiWireMapper(session_id="s")
    m.begin("w1")
    out = m.feed({"type": "ToolCall", "payload": {"id": "c1", "function": {"name": "Shell"}}})
    out += m.finish({"status": "cancelled"})
    assert [e.kind for e in out if e.kind.terminal] == [EventKind.TURN_INTERRUPTED]
    late = m.feed({"type": "ToolResult", "payload": {"tool_call_id": "c1", "return_value": {}}})
    late += m.feed({"type": "ContentPart", "payload": {"type": "text", "text": "late"}})
    assert late == []
    m.begin("w2")
    out = m.feed({"type": "ToolResult", "payload": {"tool_call_id": "c1", "return_value": {}}})
    out += m.feed({"type": "ContentPart", "payload": {"type": "text", "text": "fresh"}})
    out += m.finish({"status": "finished"})
    assert [(e.kind, e.text) for e in out if e.kind is not EventKind.TURN_COMPLETED] == [
        (EventKind.ASSISTANT_TEXT, "fresh")
    ]
    assert out[-1].turn_id == "w2" and m.dropped == 3


def test_acp_edit_tool_calls_are_file_changes_once_completed():
    """An ACP tool call of kind ``edit`` names its files in ``locations``: reported when it
    completed (gemini ``write_file`` and Kimi Code ``Write`` both come this way), not when it
    failed."""
    from alice_trio.file_changes import FileChange, FileChangeKind

    m = AcpUpdateMapper(provider="gemini", session_id="s")
    m.begin("t1")
    out = m.feed(upd("tool_call", toolCallId="w1", title="write", kind="edit", status="pending",
                     locations=[{"path": "/ws/new.py"}]))  # fmt: skip
    out += m.feed(upd("tool_call_update", toolCallId="w1", status="completed"))
    out += m.feed(upd("tool_call", toolCallId="w2", title="write", kind="edit",
                      locations=[{"path": "/ws/x.py"}]))  # fmt: skip
    out += m.feed(upd("tool_call_update", toolCallId="w2", status="failed"))
    out += m.feed(upd("tool_call", toolCallId="r1", title="read", kind="read",
                      locations=[{"path": "/ws/r.py"}], status="completed"))  # fmt: skip
    changes = [e.files for e in out if e.kind is EventKind.FILE_CHANGE]
    assert changes == [(FileChange(path="/ws/new.py", kind=FileChangeKind.WRITTEN),)]


# -- claude stream-json: output that belongs to no submission ------------------------------------
def _claude(obj: dict) -> str:
    return json.dumps(obj)


def _claude_turn(mapper: ClaudeBidiMapper, turn_id: str, text: str, reply: str) -> list[TurnEvent]:
    mapper.submit(turn_id, text)
    out: list[TurnEvent] = []
    for obj in (
        {"type": "system", "subtype": "init", "session_id": "S", "tools": []},
        {"type": "user", "isReplay": True, "session_id": "S",
         "message": {"role": "user", "content": [{"type": "text", "text": text}]}},
        {"type": "result", "subtype": "success", "is_error": False, "result": reply,
         "session_id": "S", "usage": {"input_tokens": 1, "output_tokens": 1}},
    ):  # fmt: skip
        out += mapper.feed(_claude(obj))
    return out


def test_claude_output_between_turns_does_not_take_the_next_turns_reply():
    """Hostile-use finding (round 4): a line claude printed while no submission was pending (an
    assistant message after a turn's ``result``) went into the decoder that then decoded the
    next turn, whose reply — given only in its ``result`` — was lost (the stale text counted as
    already replied, yet it had been credited to no turn)."""
    mapper = ClaudeBidiMapper()
    first = _claude_turn(mapper, "t1", "one", "r1")
    assert [e.text for e in first if e.kind is EventKind.ASSISTANT_TEXT] == ["r1"]
    stray = mapper.feed(_claude({"type": "assistant", "session_id": "S", "message": {
        "role": "assistant", "content": [{"type": "text", "text": "LATE"}]}}))  # fmt: skip
    assert all(e.turn_id == "" for e in stray)  # nobody's
    second = _claude_turn(mapper, "t2", "two", "r2")
    texts = [e.text for e in second if e.kind is EventKind.ASSISTANT_TEXT and e.turn_id == "t2"]
    assert texts == ["r2"]
    assert [e.kind for e in second if e.kind.terminal] == [EventKind.TURN_COMPLETED]


def test_acp_usage_of_the_previous_turn_after_the_next_prompt_is_not_the_new_turns():
    """Real Kimi Code (shared process, turns back to back): its ``usage_update`` comes after
    the prompt's response, and when the next prompt is sent before it arrives, it reached the
    mapper after ``begin`` of the next turn — which then reported the previous turn's usage as
    its own. An agent reports a step's context use after that step's output, so a
    ``usage_update`` before any update of the new turn is the previous turn's."""
    m = AcpUpdateMapper(provider="kimi", session_id="s")
    m.begin("t1")
    m.feed(chunk("one", "m1"))
    m.finish({"stopReason": "end_turn"})
    m.begin("t2")  # the next prompt went out before turn one's usage_update came in
    late = m.feed(upd("usage_update", used=111, size=1000))
    assert [(e.kind, e.turn_id, e.usage.input_tokens) for e in late] == [
        (EventKind.USAGE, "t1", 111)
    ]
    m.feed(upd("available_commands_update", availableCommands=[]))  # quiet: not turn output
    late = m.feed(upd("usage_update", used=112, size=1000))
    assert [e.turn_id for e in late] == ["t1"]
    out = m.feed(chunk("two", "m2"))
    out += m.feed(upd("usage_update", used=222, size=1000))  # turn two's own, before its end
    out += m.finish({"stopReason": "end_turn"})
    out += m.release()  # it learned that usage trails the response: none came this time
    assert [e.turn_id for e in out if e.kind is EventKind.USAGE] == ["t2"]
    assert out[-1].kind is EventKind.TURN_COMPLETED
    assert out[-1].usage.input_tokens == 222


def test_acp_a_turn_with_only_the_previous_turns_usage_reports_none():
    m = AcpUpdateMapper(provider="kimi", session_id="s")
    m.begin("t1")
    m.feed(chunk("one", "m1"))
    m.finish({"stopReason": "end_turn"})
    m.begin("t2")
    m.feed(upd("usage_update", used=111, size=1000))
    out = m.feed(chunk("two", "m2"))
    out += m.finish({"stopReason": "end_turn"})
    out += m.release()
    assert out[-1].kind is EventKind.TURN_COMPLETED
    assert out[-1].usage.input_tokens == 0  # not turn one's 111


def test_acp_trailing_usage_later_than_the_wait_is_not_the_next_turns():
    """Kimi Code's usage_update of turn one comes after the driver stopped waiting for it
    (released) and after turn two's response: it used to become turn two's usage."""
    m = AcpUpdateMapper(provider="kimi", session_id="s", trailing_usage=True)
    m.begin("t1")
    m.feed(chunk("one", "m1"))
    m.finish({"stopReason": "end_turn"})
    (first,) = m.release()  # usage_wait passed: turn one ends without usage
    assert first.turn_id == "t1" and first.usage.input_tokens == 0
    m.begin("t2")
    m.feed(chunk("two", "m2"))
    ended = m.finish({"stopReason": "end_turn"})
    # no usage_update for a whole turn: taken for an agent that sends none, turn two ends
    assert [e.kind for e in ended] == [EventKind.ASSISTANT_TEXT, EventKind.TURN_COMPLETED]
    assert ended[-1].usage.input_tokens == 0 and not m.holding
    out = m.feed(upd("usage_update", used=1002, size=262144))  # turn one's, late
    assert [(e.kind, e.turn_id, e.usage.input_tokens) for e in out] == [
        (EventKind.USAGE, "t1", 1002)
    ]  # fmt: skip
    out = m.feed(upd("usage_update", used=1013, size=262144))  # turn two's, after its end
    assert [(e.kind, e.turn_id, e.usage.input_tokens) for e in out] == [
        (EventKind.USAGE, "t2", 1013)
    ]  # fmt: skip
    assert m.trailing_usage  # it does send them: the next turn waits for its own again
    # owed once only: the next turn's usage is its own again
    m.begin("t3")
    m.feed(chunk("three", "m3"))
    m.finish({"stopReason": "end_turn"})
    out = m.feed(upd("usage_update", used=1020, size=262144))
    assert [(e.kind, e.turn_id) for e in out][-1] == (EventKind.TURN_COMPLETED, "t3")
    assert out[-1].usage.input_tokens == 1020


def test_an_agent_that_sends_no_trailing_usage_stops_being_waited_for():
    """Kimi Code 2.1 skips its usage_update for a model outside its catalog: the first turn's
    end waits (and is released without usage), the second turn — still no usage_update for
    the first — ends at its response, and so do the ones after it; a usage_update after a
    response later turns the wait on again."""
    m = AcpUpdateMapper(provider="kimi", session_id="s", trailing_usage=True)
    m.begin("t1")
    assert m.finish({"stopReason": "end_turn"}) == [] and m.holding
    assert [e.turn_id for e in m.release()] == ["t1"]
    m.begin("t2")
    m.feed(chunk("two", "m2"))
    out = m.finish({"stopReason": "end_turn"})
    assert [e.kind for e in out] == [EventKind.ASSISTANT_TEXT, EventKind.TURN_COMPLETED]
    assert not m.trailing_usage and not m.holding
    m.begin("t3")
    assert [e.kind for e in m.finish({"stopReason": "end_turn"})] == [EventKind.TURN_COMPLETED]
    late = m.feed(upd("usage_update", used=7, size=10))  # after t3's response: learned again
    assert [(e.kind, e.turn_id) for e in late] == [(EventKind.USAGE, "t3")] and m.trailing_usage
    m.begin("t4")
    assert m.finish({"stopReason": "end_turn"}) == [] and m.holding


def test_acp_a_usage_after_the_next_turns_output_is_that_turns_even_when_one_is_owed():
    """Turn one was released without its usage (it is owed one), but a usage_update that comes
    after turn two's own output, before its end, is turn two's context use — not turn one's."""
    m = AcpUpdateMapper(provider="kimi", session_id="s", trailing_usage=True)
    m.begin("t1")
    m.feed(chunk("one", "m1"))
    m.finish({"stopReason": "end_turn"})
    assert [e.turn_id for e in m.release()] == ["t1"]
    m.begin("t2")
    m.feed(chunk("two", "m2"))
    out = m.feed(upd("usage_update", used=40, size=100))
    usage = [e for e in out if e.kind is EventKind.USAGE]
    assert [(e.turn_id, e.usage.input_tokens) for e in usage] == [("t2", 40)]
    assert m.finish({"stopReason": "end_turn"}) == [] and m.holding  # waits for its usage
    out = m.feed(upd("usage_update", used=52, size=100))
    assert [(e.kind, e.turn_id) for e in out] == [
        (EventKind.USAGE, "t2"), (EventKind.TURN_COMPLETED, "t2")
    ]  # fmt: skip
    assert out[-1].usage.input_tokens == 52


KIMI_MODELS = [
    {"type": "select", "id": "model", "name": "Model", "currentValue": "__kimi_env_model__",
     "options": [{"value": "__kimi_env_model__", "name": "fake-kimi-model"}]},
]  # fmt: skip


def _ruled(catalog: list[dict] | None = KIMI_MODELS) -> AcpUpdateMapper:
    m = AcpUpdateMapper(provider="kimi", session_id="s", trailing_usage=True, usage_rule=True)
    m.note_config(catalog)
    return m


def test_acp_usage_rule_promises_the_usage_of_a_turn_on_a_catalog_model():
    """Kimi Code 2.1 (its source, ``emitUsageUpdate``): one usage_update after every prompt
    that ran a turn while the session's model is in its catalog — the turn's end is held for
    it as a promise (the driver waits with no timer), every turn, also after one released
    early."""
    m = _ruled()
    assert m.catalog_model is True
    for n in range(1, 4):
        m.begin(f"t{n}", "say hello")
        m.feed(chunk(f"reply {n}", f"m{n}"))
        assert [e.kind for e in m.finish({"stopReason": "end_turn"})] == [EventKind.ASSISTANT_TEXT]
        assert m.holding and m.promised
        if n == 2:  # interrupted while waiting: ends without it, and it is owed
            assert [e.turn_id for e in m.release()] == ["t2"] and not m.holding
            late = m.feed(upd("usage_update", used=2000, size=9))
            assert [(e.kind, e.turn_id) for e in late] == [(EventKind.USAGE, "t2")]
            continue
        out = m.feed(upd("usage_update", used=1000 + n, size=9))
        assert out[-1].kind is EventKind.TURN_COMPLETED and out[-1].turn_id == f"t{n}"
        assert out[-1].usage.input_tokens == 1000 + n and not m.holding


def test_acp_usage_rule_promises_nothing_where_kimi_sends_nothing():
    """No hold (so no wait, and nothing owed) for a slash command Kimi answers itself, a
    cancelled or refused turn, a model outside its catalog (config_option_update says so
    after a model switch), and a result that carries its usage."""
    m = _ruled()
    cases = [
        ("/help", {"stopReason": "end_turn"}),
        ("/nosuchcommand x", {"stopReason": "end_turn"}),
        ("slow", {"stopReason": "cancelled"}),
        ("bad", {"stopReason": "refusal"}),
        ("x", {"stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 1}}),
    ]
    for n, (text, result) in enumerate(cases):
        m.begin(f"c{n}", text)
        out = m.finish(result)
        assert [e.kind.terminal for e in out] == [True] and not m.holding, text
    outside = [{**KIMI_MODELS[0], "currentValue": "other-model"}]
    m.feed(upd("config_option_update", configOptions=outside))
    assert m.catalog_model is False
    m.begin("t9", "hello")
    assert [e.kind for e in m.finish({"stopReason": "end_turn"})] == [EventKind.TURN_COMPLETED]
    m.feed(upd("config_option_update", configOptions=KIMI_MODELS))
    m.begin("t10", "hello")
    assert m.finish({"stopReason": "end_turn"}) == [] and m.promised
    # a path is not a slash command (Kimi: a name containing "/" is plain text)
    m.feed(upd("usage_update", used=1, size=9))
    m.begin("t11", "/etc/hosts: what is in it?")
    assert m.finish({"stopReason": "end_turn"}) == [] and m.promised


def test_acp_usage_rule_unknown_without_a_model_option_falls_back_to_learning():
    """A session result without a model config option (another ACP agent, an older Kimi):
    the rule cannot decide, the learned wait (bounded by the driver) applies as before."""
    m = _ruled(None)
    assert m.catalog_model is None
    m.begin("t1", "hi")
    assert m.finish({"stopReason": "end_turn"}) == [] and m.holding and not m.promised


def test_acp_usage_rule_a_usage_just_before_the_response_ends_the_turn_at_it():
    """Real Kimi Code on a shared process (e2e, 2 of 5 runs): the usage_update is built
    asynchronously and sometimes comes just *before* the prompt's response — then the turn
    has it and ends at the response; it waited for a second one that never came."""
    m = _ruled()
    m.begin("t1", "hi")
    m.feed(chunk("one", "m1"))
    m.feed(upd("usage_update", used=1290, size=9))
    out = m.finish({"stopReason": "end_turn"})
    assert out[-1].kind is EventKind.TURN_COMPLETED and out[-1].usage.input_tokens == 1290
    assert not m.holding
    # a turn without output whose usage comes first: its own (turn one owes nothing)
    m.begin("t2", "again")
    out = m.feed(upd("usage_update", used=1300, size=9))
    assert [(e.kind, e.turn_id) for e in out] == [(EventKind.USAGE, "t2")]
    out = m.finish({"stopReason": "end_turn"})
    assert out[-1].usage.input_tokens == 1300 and not m.holding
    # a cancelled turn owes one: before the next turn's output it is the cancelled turn's
    m.begin("t3", "slow")
    m.feed(chunk("part", "m3"))
    m.finish({"stopReason": "cancelled"})
    m.begin("t4", "next")
    out = m.feed(upd("usage_update", used=1400, size=9))
    assert [(e.kind, e.turn_id) for e in out] == [(EventKind.USAGE, "t3")]
    m.feed(chunk("four", "m4"))
    assert [e.kind for e in m.finish({"stopReason": "end_turn"})] == [EventKind.ASSISTANT_TEXT]
    assert m.promised  # its own usage is still to come
