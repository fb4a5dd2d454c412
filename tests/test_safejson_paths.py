"""safejson's fast paths give the same answers as its slow ones."""

from __future__ import annotations

import json

import pytest

from alice_trio import safejson


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a":"\\ud800"}', {"a": "\ufffd"}),  # lone escape: orjson refuses, stdlib + scrub
        ('{"a":"\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a pair is its character
        ('{"a":"caf\u00e9 \ud800"}', {"a": "caf\u00e9 \ufffd"}),  # raw surrogate, non-ASCII
        ('{"\\udc00":1}', {"\ufffd": 1}),
        ('{"a":"plain ascii"}', {"a": "plain ascii"}),
    ],
)
def test_surrogates_are_scrubbed_whichever_parser_ran(text: str, expected: object) -> None:
    assert safejson.loads(text) == expected


def test_depth_limit_is_exact_around_the_short_line_shortcut() -> None:
    ok = "[" * safejson.MAX_DEPTH + "]" * safejson.MAX_DEPTH  # 200 levels: accepted
    assert safejson.loads(ok) == json.loads(ok)
    deep = "[" * (safejson.MAX_DEPTH + 1) + "]" * (safejson.MAX_DEPTH + 1)
    with pytest.raises(safejson.NotJSON):
        safejson.loads(deep)
    # brackets inside strings do not make a line deep
    wide = json.dumps({"s": "[" * 5000})
    assert safejson.loads(wide) == {"s": "[" * 5000}
