"""e2e: codex exec one-shot runs through the library against the fake model server."""

from __future__ import annotations

import pytest
from oneshot_cases import OneShotCases

from alice_trio.models import Usage

pytestmark = pytest.mark.e2e


class TestCodexOneShot(OneShotCases):
    CLI = "codex"
    PROVIDER = "codex"
    PLAIN_USAGE = Usage(input_tokens=1234, cached_input_tokens=1000, output_tokens=56)
    # request_max_retries = 0 makes 5xx fail fast. `turn.failed` carries only a message (the
    # raw body for a 400, "We're currently experiencing high demand" for a 500), no status.
    ERROR_CASES = (("[[ERR400]]", None), ("[[ERR500]]", None))
