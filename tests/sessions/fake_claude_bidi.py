#!/usr/bin/env python3
"""A fake ``claude -p --input-format stream-json`` replaying a recorded timeline.

    fake_claude_bidi.py TIMELINE [ignored claude flags...]

For each ``in`` entry it reads one stdin line (and remembers the request_id of a
control_request, so the recorded control_response answers the id the driver really used);
``out``/``err`` entries are printed in order. After the last entry it waits for stdin EOF and
exits with the recorded ``exit N`` status. ``FAKE_CLAUDE_CRASH_AFTER=N``: after N stdout lines,
write ``boom: fake crash`` to stderr and exit 3. ``FAKE_CLAUDE_ARGV_FILE``: write argv there.
``FAKE_CLAUDE_STDIN_LOG``: append every stdin line read there. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    path = sys.argv[1]
    argv_file = os.environ.get("FAKE_CLAUDE_ARGV_FILE")
    if argv_file:
        with open(argv_file, "w") as f:
            json.dump(sys.argv[1:], f)
    crash_after = int(os.environ.get("FAKE_CLAUDE_CRASH_AFTER", "-1"))
    stdin_log = os.environ.get("FAKE_CLAUDE_STDIN_LOG")
    with open(path) as f:
        timeline = [json.loads(line) for line in f if line.strip()]
    ids: dict[str, str] = {}
    exit_code = 0
    printed = 0
    for entry in timeline:
        d, text = entry["dir"], entry["line"]
        if d == "in":
            got = sys.stdin.readline()
            if not got:
                return exit_code
            if stdin_log:
                with open(stdin_log, "a") as f:
                    f.write(got)
            try:
                want, have = json.loads(text), json.loads(got)
            except ValueError:
                continue
            if want.get("type") == "control_request" and have.get("type") == "control_request":
                ids[want.get("request_id", "")] = have.get("request_id", "")
        elif d == "out":
            try:
                obj = json.loads(text)
                resp = obj.get("response") if obj.get("type") == "control_response" else None
                if isinstance(resp, dict) and resp.get("request_id") in ids:
                    resp["request_id"] = ids[resp["request_id"]]
                    text = json.dumps(obj, separators=(",", ":"))
            except ValueError:
                pass
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            printed += 1
            if printed == crash_after:
                sys.stderr.write("boom: fake crash\n")
                sys.stderr.flush()
                return 3
        elif d == "err":
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        elif d == "harness" and text.startswith("exit "):
            exit_code = int(text.split()[1])
    while sys.stdin.readline():
        pass
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
