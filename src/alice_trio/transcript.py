"""Decode a recorded stdout with a provider's decoder, without running anything.

Used by ``alice-trio replay`` and by tests: the same decoder the engine uses, fed line by line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from .file_changes import FileChange, merge_changes
from .models import EventKind, RunRequest, TurnEvent
from .providers.base import DecodeOutcome
from .providers.registry import get_provider

__all__ = ["decode_transcript", "outcome_error", "outcome_summary"]


def decode_transcript(
    provider_name: str,
    stdout_text: str | bytes,
    *,
    thread_id: str = "",
    on_events: Callable[[list[TurnEvent]], object] | None = None,
) -> DecodeOutcome:
    """Feed every line of ``stdout_text`` (``\\n``-separated, a trailing ``\\r`` dropped)
    through a new decoder of ``provider_name`` and return its outcome. Its result's
    ``file_changes`` are the files the recorded tools wrote, merged as a live run merges them
    (no workspace snapshot: a write tool's file stays ``written``). ``stdout_text`` may be the
    captured bytes (``Path.read_bytes()``): decoded as UTF-8 with U+FFFD for what is not, as
    the engine decodes a live CLI's stdout. ``on_events`` (sync) gets each line's events, in
    order (lines without any are not passed). Never raises on bad input (an exception of
    ``on_events`` propagates); raises ``UnknownProviderError`` for an unknown provider and
    ``TypeError`` for a ``stdout_text`` that is neither text nor bytes."""
    if isinstance(stdout_text, (bytes, bytearray, memoryview)):
        stdout_text = bytes(stdout_text).decode("utf-8", "replace")
    elif not isinstance(stdout_text, str):
        raise TypeError(
            f"decode_transcript: stdout_text must be str or bytes, got {type(stdout_text).__name__}"
        )
    provider = get_provider(provider_name)
    request = RunRequest(user_text="(replayed)", thread_id=thread_id)
    decoder = provider.new_decoder(request, provider.config_class())
    files: list[FileChange] = []
    for line in _lines(stdout_text):
        events = decoder.feed(line.removesuffix("\r"))
        for event in events:
            if event.kind is EventKind.FILE_CHANGE:
                files.extend(event.files)
        if on_events is not None and events:
            on_events(events)
    outcome = decoder.finish()
    if not files:
        return outcome
    result = attrs.evolve(outcome.result, file_changes=tuple(merge_changes(files)))
    return attrs.evolve(outcome, result=result)


#: characters of the text split at once by :func:`_lines`
_BLOCK = 1 << 16


def _lines(text: str) -> Iterator[str]:
    """``text.split("\\n")``, a block of about :data:`_BLOCK` characters at a time: 60 MB of
    newlines is not a list of 60 million entries (480 MB) before the first line is decoded,
    and each block is still split at C speed."""
    start, size = 0, len(text)
    while size - start > _BLOCK:
        cut = text.rfind("\n", start, start + _BLOCK)
        if cut < 0:  # a line longer than a block: it ends at the next newline
            cut = text.find("\n", start + _BLOCK)
            if cut < 0:
                break
        yield from text[start:cut].split("\n")
        start = cut + 1
    yield from text[start:].split("\n")


def outcome_error(outcome: DecodeOutcome) -> tuple[str | None, str | None]:
    """``(message, error class name)`` of the failure a live run of this outcome would raise
    (the engine's order: the agent's error, an interrupted turn, a missing reply when the
    provider says so), or ``(None, None)``."""
    if outcome.error:
        return outcome.error, "AgentError"
    if outcome.interrupted:
        return "turn interrupted", "RunInterruptedError"
    if not outcome.result.reply and outcome.missing_reply:
        return outcome.missing_reply_error(), "ProtocolError"
    return None, None


def outcome_summary(outcome: DecodeOutcome) -> dict[str, Any]:
    """``{"reply", "next_thread_id", "usage": {...}, "error": None | message, "error_type"}``
    (see :func:`outcome_error`)."""
    error, error_type = outcome_error(outcome)
    return {
        "reply": outcome.result.reply,
        "next_thread_id": outcome.result.next_thread_id,
        "usage": outcome.result.usage.to_dict(),
        "error": error,
        "error_type": error_type,
    }
