"""e2e: Kimi Code 2.x (`kimi -p`) one-shot runs through the library against the fake server."""

from __future__ import annotations

import pytest
from oneshot_cases import OneShotCases

from alice_trio.errors import AgentError, ProcessFailedError

pytestmark = pytest.mark.e2e


class TestKimiOneShot(OneShotCases):
    CLI = "kimi"
    PROVIDER = "kimi"
    WRITE_TOOL = ("Write", {"path": "{path}", "content": "made by the tool\n"})
    PLAIN_USAGE = None  # stream-json carries no token usage
    # 5xx/429 are retried 10 times over ~140 s (real-clis.md); a 400 is not retried.
    ERROR_CASES = (("[[ERR400]]", 400),)
    # Kimi Code prints the final API failure only on stderr ("error: failed to run prompt:
    # provider.api_error: 400 …") and exits 1: the engine raises ProcessFailedError with it.
    ERROR_TYPES = (AgentError, ProcessFailedError)
