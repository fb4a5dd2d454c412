"""The fake model server's ``[[CALL:tool:{json}]]`` marker (questions and other named tools).

Not marked ``e2e``: pure, no agent CLI.
"""

from __future__ import annotations

import json

import fake_model_server as fms

ARGS = {"questions": [{"question": "Which color?", "options": [{"label": "red"}]}]}


def chat(text: str, *tools: str) -> dict:
    return {
        "messages": [{"role": "user", "content": text}],
        "tools": [{"type": "function", "function": {"name": t}} for t in tools],
    }


def test_call_marker_calls_the_named_tool_when_offered() -> None:
    text = f"[[CALL:question:{json.dumps(ARGS)}]] ask me"
    dec = fms.Script().decide("chat", chat(text, "bash", "question"))
    assert dec.kind == "tool" and dec.data == {"name": "question", "args": ARGS}


def test_call_marker_takes_the_first_offered_of_several() -> None:
    text = '[[CALL:AskUserQuestion:{"a": 1}]] [[CALL:question:{"b": {"c": 2}}]]'
    dec = fms.Script().decide("chat", chat(text, "question"))
    assert dec.data == {"name": "question", "args": {"b": {"c": 2}}}  # nested braces survive


def test_call_marker_for_a_tool_not_offered_is_plain_text() -> None:
    dec = fms.Script().decide("chat", chat('[[CALL:question:{"a": 1}]]', "bash"))
    assert dec.kind == "text" and dec.data["text"] == "None of the called tools was offered."


def test_after_the_tool_result_comes_the_final_text() -> None:
    body = chat('[[CALL:question:{"a": 1}]]', "question")
    body["messages"].append({"role": "tool", "content": "blue"})
    dec = fms.Script().decide("chat", body)
    assert dec.kind == "text" and dec.data["text"] == "The tool returned: blue. Done."
