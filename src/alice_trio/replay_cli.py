"""A fake agent CLI that re-emits a recorded transcript: ``python -m alice_trio.replay_cli``.

Usage: ``python -m alice_trio.replay_cli [--speed F] [--] TRANSCRIPT``

Like codex, it first reads stdin to EOF (unless stdin is a terminal) and discards it. Then it
writes the recorded lines with their recorded timing divided by ``--speed`` (``0``: no delays),
flushing after every line, and exits the way the recording did. Accepted inputs:

* a timeline JSONL: ``{"t_ms", "stream": "stdout"|"stderr", "line"}`` records (other records
  are ignored; a ``line`` that is not a string — the event object itself, written by hand — is
  written as its JSON) and an optional ``{"exit": N}`` record; without one, the ``rc`` of a
  ``meta.json`` beside the file is used, else 0;
* a capture ``.json``: ``{"events": [{"t" (seconds), "kind", "text"}], "exit_code"}``;
* anything else: raw stdout bytes, written as they are, no delays, exit 0.

A negative exit code (the recorded process was killed by a signal) is reproduced by killing
itself with that signal. SIGTERM and SIGINT keep their default action: the process dies at once.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time
from pathlib import Path

import attrs

from . import safejson
from .boundedio import read_bounded

__all__ = ["MAX_TRANSCRIPT_BYTES", "Transcript", "load_transcript", "main"]

#: the largest transcript read (a bigger file, or ``/dev/zero``, is a ``FileTooLargeError``)
MAX_TRANSCRIPT_BYTES = 64 << 20
_MAX_META_BYTES = 1 << 20


@attrs.frozen
class Transcript:
    """``lines``: ``(seconds, stream, data)`` with data ending in a newline (a raw file is one
    piece: its bytes as they are); ``timed``: whether the recording has timing."""

    lines: tuple[tuple[float, str, bytes], ...]
    exit_code: int = 0
    timed: bool = True


#: a line's text from its first character that is not white space (the lines of a timeline
#: that count): found by the regex engine, so a run of blank lines costs no Python loop step
#: per line, and nothing follows the repetition that could make it backtrack
_CONTENT_LINE = re.compile(r"\S[^\n]*")


def _timeline(text: str) -> tuple[list[tuple[float, str, bytes]], int | None] | None:
    """The ``(seconds, stream, data)`` lines and the ``exit`` record of a timeline; None when
    ``text`` is not one (a line that is not JSON, or no ``t_ms``/``stream`` record at all).

    One pass, one record at a time: what is kept is the output lines, never a parsed record
    per line of the file (a raw stdout of millions of JSON lines, or of blank lines, would
    cost a dict or a tuple per line: 10 GB for 60 MB of newlines)."""
    out: list[tuple[float, str, bytes]] = []
    exit_code: int | None = None
    timeline = False
    for match in _CONTENT_LINE.finditer(text):
        try:
            r = safejson.loads(match.group().strip())
        except ValueError:
            return None
        if not isinstance(r, dict):
            continue
        timeline = timeline or ("t_ms" in r and "stream" in r)
        if isinstance(r.get("exit"), int) and not isinstance(r.get("exit"), bool):
            exit_code = r["exit"]
        elif r.get("stream") in ("stdout", "stderr") and "line" in r:
            t = _seconds(r.get("t_ms")) / 1000.0
            out.append((t, str(r["stream"]), _line_bytes(r["line"])))
    return (out, exit_code) if timeline else None


def _line_bytes(value: object) -> bytes:
    """A recorded line as the bytes to write: a string as it is; anything else — a hand-edited
    ``"line": {"type": …}`` holding the event itself rather than its text — as its JSON, not
    as Python's ``repr`` (``{'type': …}``, which no decoder reads); ``null`` as an empty line."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    else:
        text = json.dumps(value, ensure_ascii=False)
    return (text + "\n").encode()


def _seconds(value: object) -> float:
    """A recorded time stamp; anything but a finite number >= 0 is 0 (a hostile transcript
    cannot make the replay sleep forever)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond float range
        return 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0


def _meta_rc(path: Path) -> int:
    try:
        meta = read_bounded(path.parent / "meta.json", _MAX_META_BYTES)
        rc = safejson.loads(meta.decode("utf-8", "replace")).get("rc")
    except (OSError, ValueError, AttributeError):
        return 0
    return rc if isinstance(rc, int) else 0


def load_transcript(path: str | os.PathLike[str]) -> Transcript:
    """Parse a transcript file in any of the accepted formats (see the module docstring).
    Raises ``OSError``: unreadable, or larger than :data:`MAX_TRANSCRIPT_BYTES`
    (:class:`~alice_trio.boundedio.FileTooLargeError`)."""
    path = Path(path)
    data = read_bounded(path, MAX_TRANSCRIPT_BYTES)
    text = data.decode("utf-8", errors="replace")
    try:
        whole = safejson.loads(text)
    except safejson.NotJSON:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("events"), list):
        lines = tuple(
            (_seconds(e.get("t")), e["kind"], _line_bytes(e.get("text", "")))
            for e in whole["events"]
            if isinstance(e, dict) and e.get("kind") in ("stdout", "stderr")
        )
        rc = whole.get("exit_code")
        return Transcript(lines, rc if isinstance(rc, int) else 0)
    timeline = _timeline(text)
    if timeline is not None:
        out, exit_code = timeline
        return Transcript(tuple(out), _meta_rc(path) if exit_code is None else exit_code)
    # raw stdout: written as it is, in one piece (no delays to place between its lines)
    return Transcript(((0.0, "stdout", data),) if data else (), 0, timed=False)


#: the longest single ``time.sleep`` of a replay: a recorded time further away (``t_ms`` of
#: ``1e300``, or a tiny ``--speed``) is slept in steps of this — ``time.sleep`` of more than
#: the platform's ``time_t`` raises ``OverflowError`` (the replay died with a traceback)
_SLEEP_STEP = 86400.0


def _sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` is ``deadline`` (which may be ``inf``: forever, until a
    signal ends the process — as the recording says)."""
    while (delay := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, _SLEEP_STEP))


def replay(transcript: Transcript, speed: float) -> None:
    """Write the lines with their timing (``speed`` 0: none), flushing each one."""
    start = time.monotonic()
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for t, stream, data in transcript.lines:
        if transcript.timed and speed > 0:
            _sleep_until(start + t / speed)
        out = streams[stream]
        out.write(data)
        out.flush()


#: the signals a recorded exit ``-N`` can name: those whose default action ends a process
#: (a stop signal would leave the replay stopped, not ended; SIGCHLD, SIGWINCH, … are ignored)
_NOT_ENDING = (
    signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCONT,
    signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH,
)  # fmt: skip
KILLING_SIGNALS = frozenset(int(sig) for sig in signal.Signals if sig not in _NOT_ENDING)


def _exit(code: int) -> None:
    """Exit with ``code``; minus a killing signal: killed by it. Any other code (out of 0..255,
    minus a number that is no such signal, from a hostile transcript) exits 1."""
    if code < 0 and -code in KILLING_SIGNALS:
        if -code != signal.SIGKILL:  # SIGKILL cannot have a handler
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1.0)  # the signal is delivered before this returns
    sys.exit(code if 0 <= code <= 255 else 1)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    parser = argparse.ArgumentParser(
        prog="python -m alice_trio.replay_cli", description="Replay a recorded agent CLI run."
    )
    parser.add_argument("--speed", type=float, default=1.0, help="time factor; 0 = no delays")
    parser.add_argument("transcript", help="timeline .jsonl, capture .json or raw stdout file")
    args = parser.parse_args(argv)
    try:
        transcript = load_transcript(args.transcript)
    except OSError as exc:
        parser.exit(2, f"replay_cli: cannot read {args.transcript}: {exc.strerror}\n")
    if sys.stdin is not None and not sys.stdin.closed and not sys.stdin.isatty():
        while sys.stdin.buffer.read(65536):
            pass
    try:
        replay(transcript, args.speed)
    except BrokenPipeError:
        os._exit(1)
    _exit(transcript.exit_code)


if __name__ == "__main__":
    main()
