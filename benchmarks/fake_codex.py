"""A fake ``codex exec --json`` for the CLI rendering benchmark (stdlib only, ignores argv).

Reads its prompt from stdin to EOF, then prints ``thread.started``, ``turn.started``,
``$FAKE_EVENTS`` progress items (nine command executions for each short agent message), a final
agent message — ``$FAKE_BIG`` characters long when set, written in 1 MB pieces so the fake itself
stays small; it ends in a space when ``$FAKE_TRAILING_SPACE`` is set — and ``turn.completed``.
"""

import os
import sys

events = int(os.environ.get("FAKE_EVENTS", "0") or 0)
big = int(os.environ.get("FAKE_BIG", "0") or 0)
trailing_space = bool(os.environ.get("FAKE_TRAILING_SPACE"))
if not sys.stdin.isatty():
    sys.stdin.buffer.read()
w = sys.stdout.buffer.write
w(b'{"type":"thread.started","thread_id":"01a21857-8d93-7d61-8bab-f9ca2ca653ae"}\n')
w(b'{"type":"turn.started"}\n')
for i in range(events):
    if i % 10 == 9:
        w(
            b'{"type":"item.completed","item":{"id":"item_%d","type":"agent_message",'
            b'"text":"step %d: read the file, running the next command now"}}\n' % (i, i)
        )
    else:
        w(
            b'{"type":"item.completed","item":{"id":"item_%d","type":"command_execution",'
            b'"command":"/bin/bash -lc \'ls -la src/%d\'","aggregated_output":"total 0\\n",'
            b'"exit_code":0,"status":"completed"}}\n' % (i, i)
        )
if big:
    w(b'{"type":"item.completed","item":{"id":"last","type":"agent_message","text":"')
    piece = b"abcdefghi " * 100_000
    left = big - 1
    while left > 0:
        w(piece[: min(left, len(piece))])
        left -= len(piece)
    w(b" " if trailing_space else b".")
    w(b'"}}\n')
else:
    w(b'{"type":"item.completed","item":{"id":"last","type":"agent_message","text":"All done."}}\n')
w(
    b'{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,'
    b'"output_tokens":5}}\n'
)
sys.stdout.buffer.flush()
