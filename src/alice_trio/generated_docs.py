"""The generated part of a docs page: splice it in, and the ``--write FILE`` command line that
:mod:`alice_trio.config_docs` and :mod:`alice_trio.provider_docs` both run.

A page holds one generated section between a ``BEGIN`` marker line (naming the command that
writes it) and an ``END`` marker; :func:`splice` replaces it and leaves the rest as written.
A page without the markers raises ``ValueError`` (nothing is written).

Internal: no stability promise (see :mod:`alice_trio`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "splice"]


def splice(document: str, generated: str, begin: str, end: str) -> str:
    """``document`` with the part from ``begin`` to ``end`` replaced by ``generated``."""
    start = document.index(begin)
    stop = document.index(end) + len(end)
    return document[:start] + generated.rstrip("\n") + document[stop:]


def main(
    prog: str, render: Callable[[], str], begin: str, end: str, argv: list[str] | None = None
) -> int:
    """Print ``render()``, or with ``--write FILE`` splice it into FILE."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--write", metavar="FILE", help="update the generated part of FILE")
    args = parser.parse_args(argv)
    generated = render()
    if args.write:
        path = Path(args.write)
        text = splice(path.read_text(encoding="utf-8"), generated, begin, end)
        path.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(generated)
    return 0
