"""The one JSON parser of everything a CLI sends us: hostile but valid JSON is "not JSON", never a
crash.

Pure (no I/O, no trio). Every JSON line or frame alice_trio reads from an agent CLI (decoders,
protocol mappers, JSON-RPC, SSE payloads, recorded transcripts) goes through :func:`loads`, which
either returns a value that the rest of the library can walk safely or raises :class:`NotJSON`
(a ``ValueError``), which callers treat as drift (an ``unknown`` event):

* a document nested deeper than :data:`MAX_DEPTH` is rejected, whichever parser ran (the stdlib
  parser raises ``RecursionError`` somewhere around the interpreter's recursion limit, orjson
  happily builds 100,000 levels that a later ``repr``/``json.dumps`` cannot walk);
* numbers keep the stdlib's meaning whatever the parser: ``1e999`` is ``inf``, a 5,000-digit
  integer is rejected (Python's int-string limit). Code that turns numbers into counts uses
  :func:`~alice_trio.providers.base.as_int`, which maps non-finite and absurd values to 0;
* a lone UTF-16 surrogate (``"\\ud800"``) becomes U+FFFD, so every string the library hands on
  encodes as UTF-8 (the same replacement as for undecodable input bytes).

orjson (when installed) is only an accelerator: when it refuses a line, the stdlib parser
decides, so both give the same answer; a line with more than :data:`MAX_DEPTH` brackets never
reaches orjson (3.8 overflows its stack on ~200,000 nested arrays: a segfault of the host).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_DEPTH", "NotJSON", "loads", "scrub_surrogates"]

#: deepest nesting accepted; real agent messages stay far below it (tens of levels)
MAX_DEPTH = 200

_fast_loads: Callable[[str], Any] | None
try:  # orjson is optional; it parses ~3x faster than json
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None

#: orjson copies its input: for a huge line the stdlib parser (no copy) keeps the peak memory at
#: the line + its parsed value
_BIG_LINE = 1 << 20
#: a surrogate escape (``\\udXXX``) or a raw surrogate: the parsed value may need scrubbing
_MAY_HOLD_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class NotJSON(ValueError):
    """The text is not JSON alice_trio accepts (syntax, depth or number limits)."""


def scrub_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (a well-formed pair becomes the
    character it encodes), so it always encodes as UTF-8."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _walk(obj: Any, *, depth_check: bool, scrub: bool) -> Any:
    """Check the nesting depth and/or scrub surrogates without recursion."""
    root: list[Any] = [obj]
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        container, depth = stack.pop()
        if depth_check and depth > MAX_DEPTH:
            raise NotJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
        if isinstance(container, list):
            for i, v in enumerate(container):
                if isinstance(v, (list, dict)):
                    stack.append((v, depth + 1))
                elif scrub and isinstance(v, str):
                    container[i] = scrub_surrogates(v)
        else:
            if scrub and any(isinstance(k, str) and _SURROGATE.search(k) for k in container):
                items = [(scrub_surrogates(k), v) for k, v in container.items()]
                container.clear()
                container.update(items)
            for k, v in container.items():
                if isinstance(v, (list, dict)):
                    stack.append((v, depth + 1))
                elif scrub and isinstance(v, str):
                    container[k] = scrub_surrogates(v)
    return root[0]


def _may_hold_surrogate(text: str) -> bool:
    """Whether ``text`` may hold a surrogate escape or a raw surrogate; cheap for ASCII text
    without a ``\\u`` escape (the common case: a substring test, no regex)."""
    if text.isascii() and "\\u" not in text:
        return False
    return _MAY_HOLD_SURROGATE.search(text) is not None


def loads(text: str | bytes) -> Any:
    """Parse one JSON document (see the module docstring). Raises :class:`NotJSON`."""
    fast = _fast_loads is not None
    if type(text) is str:
        # the common case first (the per-line hot path): a line short enough, or with few
        # enough brackets, to be shallow (the same test as ``_loads``) goes to orjson; only its
        # refusals go further
        if fast and (
            len(text) <= MAX_DEPTH
            or (len(text) < _BIG_LINE and text.count("[") + text.count("{") <= MAX_DEPTH)
        ):
            try:
                return _fast_loads(text)  # type: ignore[misc]
            except ValueError:
                fast = False  # refused: the stdlib parser decides (and gives the message)
    elif isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    return _loads(text, fast)


def _loads(text: str, fast: bool) -> Any:
    obj: Any
    # nesting deeper than MAX_DEPTH needs more than MAX_DEPTH brackets, hence a longer text:
    # ordinary short lines skip the count
    deep = len(text) > MAX_DEPTH and text.count("[") + text.count("{") > MAX_DEPTH
    try:
        # orjson (3.8) recurses without a limit: ~200,000 nested arrays crash the process
        # (SIGSEGV), so a line that may be deep goes to the stdlib parser, whose recursion is
        # bounded (RecursionError)
        if fast and _fast_loads is not None and not deep and len(text) < _BIG_LINE:
            try:
                obj = _fast_loads(text)
            except ValueError:
                obj = json.loads(text)
            else:
                # orjson refuses lone surrogates (escaped or raw) and builds its strings from
                # UTF-8, so what it accepted needs no scrubbing (and it only saw a shallow text)
                return obj
        else:
            obj = json.loads(text)
    except RecursionError:
        raise NotJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise NotJSON(str(exc)) from None
    if not isinstance(obj, (list, dict)):
        return scrub_surrogates(obj) if isinstance(obj, str) else obj
    scrub = _may_hold_surrogate(text)
    if deep or scrub:
        obj = _walk(obj, depth_check=deep, scrub=scrub)
    return obj
