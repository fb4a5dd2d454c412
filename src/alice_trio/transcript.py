"""Decode a recorded stdout with a provider's decoder, without running anything.

Used by ``alice-trio replay`` and by tests: the same decoder the engine uses, fed line by line.
"""

from __future__ import annotations

from typing import Any

from .models import RunRequest
from .providers.base import DecodeOutcome
from .providers.registry import get_provider

__all__ = ["decode_transcript", "outcome_summary"]


def decode_transcript(
    provider_name: str, stdout_text: str, *, thread_id: str = ""
) -> DecodeOutcome:
    """Feed every line of ``stdout_text`` (``\\n``-separated, a trailing ``\\r`` dropped)
    through a new decoder of ``provider_name`` and return its outcome. Never raises on bad
    input; raises ``UnknownProviderError`` for an unknown provider."""
    provider = get_provider(provider_name)
    request = RunRequest(user_text="(replayed)", thread_id=thread_id)
    decoder = provider.new_decoder(request, provider.config_class())
    for line in stdout_text.split("\n"):
        decoder.feed(line.removesuffix("\r"))
    return decoder.finish()


def outcome_summary(outcome: DecodeOutcome) -> dict[str, Any]:
    """``{"reply", "next_thread_id", "usage": {...}, "error": None | message}``; a missing reply
    counts as an error when the provider says so (``missing_reply``)."""
    error = outcome.error or None
    if error is None and not outcome.result.reply and outcome.missing_reply:
        error = outcome.missing_reply
    return {
        "reply": outcome.result.reply,
        "next_thread_id": outcome.result.next_thread_id,
        "usage": outcome.result.usage.to_dict(),
        "error": error,
    }
