"""The profile split of ``benchmarks.claude_first_turn`` on a hand-made ``.cpuprofile``: samples
of the first window go to "ran again" or to their outermost frame that never ran in a later
window; samples outside every window are ignored."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.claude_first_turn import partition


def _node(nid: int, name: str, children: list[int]) -> dict[str, object]:
    frame = {"functionName": name, "url": "/$bunfs/root/chunk-x.js", "lineNumber": nid,
             "columnNumber": 0}  # fmt: skip
    return {"id": nid, "callFrame": frame, "children": children}


def test_first_window_is_split_by_outermost_new_frame() -> None:
    # root(1) -> turn(2) -> shared(3)
    #                    -> once(4) -> helper(5)
    #            other(6)
    nodes = [
        _node(1, "(root)", [2, 6]),
        _node(2, "turn", [3, 4]),
        _node(3, "shared", []),
        _node(4, "once", [5]),
        _node(5, "helper", []),
        _node(6, "other", []),
    ]
    # one sample per ms from t = 1000 s; the weight of sample i is the delta of sample i + 1
    samples = [3, 4, 5, 5, 6, 3, 3, 3]
    profile = {
        "nodes": nodes,
        "startTime": 1000.0 * 1e6,
        "samples": samples,
        "timeDeltas": [1000] * len(samples),
    }
    t = [1000.0 + 0.001 * (i + 1) for i in range(len(samples))]
    first = (t[0], t[3])  # shared, once, helper, helper
    later = [(t[5], t[7])]  # shared only ("other" at t[4] is in no window)
    out = partition(profile, first, later)
    assert out["first_ms"] == 4.0
    assert out["first_in_frames_that_ran_again_ms"] == 1.0
    assert out["first_only_ms"] == 3.0
    assert out["first_only_top"] == [[3.0, "once chunk-x.js:4:0"]]
    assert out["later_ms"] == [2.0]  # the last sample has no following delta: weight 0
