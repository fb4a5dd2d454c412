"""Where the CLI's per-line CPU goes: instructions per line of each stage, counted, not timed.

    python -m benchmarks.cli_stages [--events N] [--json PATH]

Each stage runs the CLI's per-line path on the rendering benchmark's flood (``fake_codex.py``'s
output, read from memory: no pipe, no trio) in its own process under
``valgrind --tool=callgrind``, once with ``N`` events and once with none; the difference over
``N`` is the stage's instructions per line. The stages are cumulative (each includes the ones
above it) except ``bare`` and ``floor``, which start again from the framed lines:

* ``frame``: the 64 KiB chunks through :class:`~alice_trio.framing.LineFramer`;
* ``utf8``: each line decoded to ``str`` (an event keeps its line as ``raw``);
* ``parse``: ``orjson.loads`` of each line (the parse the bare reader does too);
* ``decode``: the codex decoder's ``feed`` instead of the bare parse (``safejson``, the
  mapping, one typed :class:`~alice_trio.models.TurnEvent` per line);
* ``print``: the CLI's printer on the events (lines mode, to memory);
* ``bare``: the bare reader's per-line work (``benchmarks/cli_subjects.py``): parse, three
  lookups, one f-string into a buffer;
* ``floor``: the least any typed path can do: ``utf8``, the parse, the three fields a tool line
  shows, its text as the codex decoder writes it, one ``TurnEvent`` and the printed line — no
  checks, no dispatch;
* ``quiet``: ``utf8`` and the codex decoder's ``feed`` while ``quiet`` (the CLI's path for a
  line over ``RunRequest.informational_rate``: parsed and checked, its state kept, no event).

``floor`` over ``bare`` bounds how close a CLI that builds a typed event per line can come to
the bare reader (issue 16's 1.6× goal): the rendering benchmark's ``--instructions`` measures
the whole commands, start-up and trio included.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .common import HERE, callgrind_instructions, tmpdir

STAGES = ("frame", "utf8", "parse", "decode", "print", "bare", "floor", "quiet")


def _stage(stage: str, path: str) -> None:
    """Run one stage on the flood in ``path`` (the measured child process)."""
    from orjson import loads

    from alice_trio.cli.progress import ProgressPrinter
    from alice_trio.framing import LineFramer
    from alice_trio.models import EventKind, plain_event
    from alice_trio.providers.codex import CodexExecDecoder

    data = Path(path).read_bytes()
    chunks = [data[i : i + (1 << 16)] for i in range(0, len(data), 1 << 16)]
    framer = LineFramer()
    decoder = CodexExecDecoder()
    printer = ProgressPrinter(io.StringIO(), live=False, plain=True)
    printer._ticking = True  # lines mode, as under the CLI's frame task
    out = io.StringIO()
    write = out.write
    tool = EventKind.TOOL_USE
    level = STAGES.index(stage)
    for chunk in chunks:
        lines = framer.feed(chunk)
        if stage == "frame":
            continue
        if stage == "bare":
            for line in lines:
                event = loads(line)  # type: ignore[arg-type]
                item = event.get("item") or {}
                text = str(item.get("text") or item.get("command") or "")
                write(f"{event['type']} {item.get('type', '')} {text[:200]}\n")
            continue
        texts = [line.decode("utf-8", "replace") for line in lines]  # type: ignore[union-attr]
        if stage == "utf8":
            continue
        if stage == "parse":
            for text in texts:
                loads(text)
            continue
        if stage == "floor":
            for text in texts:
                item = loads(text).get("item") or {}
                detail = (
                    f"command=`{item.get('command')}` status=`{item.get('status')}` "
                    f"exit_code=`{item.get('exit_code')}`"
                )  # the codex decoder's text
                event = plain_event(tool, text, "codex", "", detail)
                write(f"[tool_use] {event.text}\n")
            continue
        if stage == "quiet":
            decoder.quiet = True
            for text in texts:
                decoder.feed(text)
            continue
        events = []
        for text in texts:
            events += decoder.feed(text)
        if level > STAGES.index("decode"):
            printer.on_events(events)
    printer.close()


def _count(stage: str, path: str, env: dict[str, str]) -> int:
    argv = [sys.executable, "-m", "benchmarks.cli_stages", "--run", stage, path]
    return callgrind_instructions(stage, argv, env)


def stages(events: int) -> dict[str, Any]:
    """Instructions per line of every stage (see the module docstring)."""
    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed (apt install valgrind)"}
    with tmpdir("cli-stages") as d:
        floods = {}
        for n in (0, events):
            floods[n] = str(Path(d) / f"flood{n}.jsonl")
            with open(floods[n], "wb") as f:
                subprocess.run(
                    [sys.executable, str(HERE / "fake_codex.py")],
                    stdin=subprocess.DEVNULL, stdout=f, check=True,
                    env={**os.environ, "FAKE_EVENTS": str(n), "FAKE_BIG": "0"},
                )  # fmt: skip
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(d) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _count("print", floods[0], env)  # writes the bytecode caches, not measured
        per_line = {
            s: round((_count(s, floods[events], env) - _count(s, floods[0], env)) / events)
            for s in STAGES
        }
    rows = {}
    previous = 0
    for s in STAGES[:5]:
        rows[s] = {"cumulative": per_line[s], "own": per_line[s] - previous}
        previous = per_line[s] if s != "parse" else per_line["utf8"]  # decode replaces parse
    return {
        "events": events,
        "per_line": per_line,
        "stages": rows,
        "floor_over_bare": round(per_line["floor"] / per_line["bare"], 2),
        "quiet_over_bare": round(per_line["quiet"] / per_line["bare"], 2),
        "cli_path_over_bare": round(per_line["print"] / per_line["bare"], 2),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--json", default="")
    p.add_argument("--run", nargs=2, metavar=("STAGE", "FILE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.run:
        _stage(*a.run)
        return 0
    result = stages(a.events)
    for name, row in result.get("stages", {}).items():
        print(f"{name:8s} {row['own']:>8,} own {row['cumulative']:>8,} cumulative per line")
    for name in ("bare", "floor", "quiet") if "per_line" in result else ():
        print(f"{name:8s} {result['per_line'][name]:>8,} per line")
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
