#!/usr/bin/env python3
"""A fake agent CLI with knobs, for engine tests. Stdlib only; runs as its own process.

It prints JSON lines of the tiny "fake" protocol decoded by ``tests/fake_provider.py``:
``{"type":"thread","id":…}``, ``{"type":"text","text":…}``, ``{"type":"done","input":…,
"output":…}``, ``{"type":"fail","message":…}``. Knobs (argv flags) make it misbehave.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def out(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def spawn_grandchild(mode: str, ignore_term: bool, pidfile: str | None) -> None:
    """Fork a long-lived grandchild: 'own' (own stdio, same group), 'inherit' (holds our
    stdout), 'chatty' (holds our stdout and never goes quiet: a line every 0.1 s, like a
    ``(while true; do echo log; sleep .1; done) &`` left behind), 'setsid' (own session, escapes
    the group), 'setsid-fork' (own session, then forks again below it), 'setsid-exit' (own
    session, exits at once and is never waited for: a zombie the host adopts), 'setsid-envless'
    (own session, and runs a command with an empty environment — no run marker — that it
    waits for).

    Returns only once the grandchild (the last process of the chain) is running and has
    recorded its pid: a pipe handshake, so a CLI that exits right away never races its tool.
    """
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_w)
        while True:  # one byte from the tool process (EOF only if it died before recording)
            try:
                os.read(ready_r, 1)
                break
            except InterruptedError:
                continue
        os.close(ready_r)
        return  # the setsid-fork intermediate is left un-waited, as careless CLIs do
    os.close(ready_r)
    if mode.startswith("setsid"):
        os.setsid()
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if mode not in ("inherit", "chatty"):
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    if mode == "setsid-fork" and os.fork():
        # the intermediate exits: its child is orphaned below our subreaper / init
        os._exit(0)
    if mode == "setsid-envless":
        child = os.fork()
        if child:  # the tool shell waits for its command, like `bash -c 'env -i CMD'`
            os.close(ready_w)
            os.waitpid(child, 0)
            os._exit(0)
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
    os.write(ready_w, b"1")
    os.close(ready_w)
    if mode == "setsid-exit":
        os._exit(0)
    if mode == "setsid-envless":  # the command runs with an empty environment: no marker
        code = "import time; time.sleep(600)"
        os.execve(sys.executable, [sys.executable, "-c", code], {})
    if mode == "chatty":
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                os.write(1, b"log\n")
            except OSError:
                break
            time.sleep(0.1)
        os._exit(0)
    time.sleep(600)
    os._exit(0)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--thread", default="thread-1")
    p.add_argument("--text", action="append", default=[])
    p.add_argument("--lines", type=int, default=0, help="emit N filler text events")
    p.add_argument("--read-stdin", action="store_true", help="echo stdin (read to EOF) as text")
    p.add_argument("--sleep", type=float, default=0.0, help="sleep before the final event")
    p.add_argument("--sleep-after", type=float, default=0.0, help="sleep after the final event")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument(
        "--grandchild", default="", help="own|inherit|chatty|setsid|setsid-fork|setsid-exit"
    )
    p.add_argument("--grandchild-ignore-term", action="store_true")
    p.add_argument("--pidfile")
    p.add_argument("--crash", type=int, default=None, help="exit with this code before 'done'")
    p.add_argument("--stderr", default="", help="write this to stderr")
    p.add_argument("--stderr-flood", type=int, default=0, help="bytes of stderr to write")
    p.add_argument("--giant-line", type=int, default=0, help="bytes of one text line")
    p.add_argument("--garbage", action="store_true", help="non-UTF-8 bytes on stdout and stderr")
    p.add_argument("--fail", default="", help="emit a fail event with this message")
    p.add_argument("--no-done", action="store_true")
    p.add_argument("--exit", type=int, default=0)
    # knobs for tests/reliability (additive)
    p.add_argument("--raw", action="append", default=[], help="print this stdout line verbatim")
    p.add_argument("--unknown-lines", type=int, default=0, help="N events of an unknown type")
    p.add_argument("--burst", type=int, default=0, help="N unknown events in one write")
    p.add_argument("--count-stdin", action="store_true", help="read stdin to EOF, print its size")
    p.add_argument("--die-signal", type=int, default=0, help="kill itself with this signal")
    p.add_argument("--flush-file", help="after the final event: wait --flush-delay, write here")
    p.add_argument("--flush-delay", type=float, default=0.0)
    p.add_argument(
        "--close-stdout", action="store_true", help="close stdout after the texts, then --sleep"
    )
    p.add_argument("--split-utf8", action="store_true", help="a text event written byte by byte")
    p.add_argument(
        "--interactive",
        action="store_true",
        help="answer every stdin line with text+done; on stdin EOF flush (see --flush-file)",
    )
    a = p.parse_args()

    if a.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if a.pidfile:
        with open(a.pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
    if a.grandchild:
        spawn_grandchild(a.grandchild, a.grandchild_ignore_term, a.pidfile)
    out({"type": "thread", "id": a.thread})
    if a.interactive:
        return interactive(a)
    if a.count_stdin:
        out({"type": "text", "text": f"stdin bytes: {len(sys.stdin.buffer.read())}"})
    if a.read_stdin:
        out({"type": "text", "text": "stdin:" + sys.stdin.read()})
    if a.stderr:
        sys.stderr.write(a.stderr + "\n")
        sys.stderr.flush()
    if a.stderr_flood:
        chunk = b"e" * 1023 + b"\n"
        for _ in range(a.stderr_flood // 1024):
            os.write(2, chunk)
    if a.garbage:
        sys.stdout.buffer.write(b"\xff\xfe not utf8 \x80\n")
        sys.stdout.flush()
        sys.stderr.buffer.write(b"\xff bad stderr \x80\n")
        sys.stderr.flush()
    for i in range(a.lines):
        out({"type": "text", "text": f"line {i} " + "x" * 250})
    if a.giant_line:
        sys.stdout.write(json.dumps({"type": "text", "text": "g" * a.giant_line}) + "\n")
        sys.stdout.flush()
    for raw in a.raw:
        sys.stdout.write(raw + "\n")
        sys.stdout.flush()
    for i in range(a.unknown_lines):
        out({"type": "x_future_event", "seq": i, "pad": "u" * 200})
    if a.burst:  # what the reader gets as 256 KB chunks of ≈1,000 events each
        burst = "".join(json.dumps({"type": "x_burst", "seq": i}) + "\n" for i in range(a.burst))
        sys.stdout.write(burst)
        sys.stdout.flush()
    if a.split_utf8:
        data = (
            json.dumps(
                {"type": "text", "text": "h\u00e9llo \u6f22\u5b57 \U0001f600"}, ensure_ascii=False
            )
            + "\n"
        ).encode()
        for i in range(len(data)):
            os.write(1, data[i : i + 1])
            time.sleep(0.001)
    for t in a.text:
        out({"type": "text", "text": t})
    if a.close_stdout:  # nothing more can be said, but the process lingers (--sleep)
        sys.stdout.flush()
        os.close(1)
        time.sleep(a.sleep)
        return a.exit
    if a.sleep:
        time.sleep(a.sleep)
    if a.crash is not None:
        sys.stderr.write("fatal: the fake CLI crashed\n")
        sys.stderr.flush()
        return a.crash
    if a.die_signal:
        sys.stderr.write(f"fatal: the fake CLI dies by signal {a.die_signal}\n")
        sys.stderr.flush()
        if a.die_signal not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(a.die_signal, signal.SIG_DFL)
        os.kill(os.getpid(), a.die_signal)
        time.sleep(5)
    if a.fail:
        out({"type": "fail", "message": a.fail, "status": 529})
    elif not a.no_done:
        out({"type": "done", "input": 10, "cached": 4, "output": 5})
    if a.sleep_after:
        time.sleep(a.sleep_after)
    flush(a)
    return a.exit


def flush(a: argparse.Namespace) -> None:
    """Simulate a CLI writing its session file after the turn (C7)."""
    if a.flush_file:
        time.sleep(a.flush_delay)
        with open(a.flush_file, "w") as f:
            f.write("flushed\n")


def interactive(a: argparse.Namespace) -> int:
    """A long-lived agent: one turn per stdin line; stdin EOF means 'finish and exit'."""
    for n, line in enumerate(sys.stdin, 1):
        text = line.rstrip("\n")
        if text == "crash":
            sys.stderr.write("fatal: the fake CLI crashed mid-session\n")
            sys.stderr.flush()
            os._exit(3)
        if text == "hang":
            time.sleep(600)
        out({"type": "text", "text": f"echo {n}: {text}"})
        out({"type": "done", "input": n, "cached": 0, "output": n})
    flush(a)
    return a.exit


if __name__ == "__main__":
    sys.exit(main())
