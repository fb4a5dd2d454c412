"""e2e: gemini one-shot runs through the library against the fake model server."""

from __future__ import annotations

import pytest
from e2e_support import FakeServer
from oneshot_cases import OneShotCases, SetupFactory

from alice_trio.models import Usage

pytestmark = pytest.mark.e2e


class TestGeminiOneShot(OneShotCases):
    CLI = "gemini"
    PROVIDER = "gemini"
    WRITE_TOOL = ("write_file", {"file_path": "{path}", "content": "made by the tool\n"})
    PLAIN_USAGE = Usage(input_tokens=1234, cached_input_tokens=1000, output_tokens=56)
    # 5xx/429 are retried 10 times over ~4 minutes (real-clis.md): fail fast with a 400 only,
    # and check the retry path with fail-then-succeed below.
    ERROR_CASES = (("[[ERR400]]", 400),)

    async def test_server_error_then_success_is_retried(
        self, cli_setup: SetupFactory, fake_server: FakeServer
    ) -> None:
        """gemini retries a 500 itself (a few seconds of backoff) and the turn succeeds."""
        setup = cli_setup(self.CLI)
        result = await self.run(setup, "[[FAILN:500:1]] flaky")
        assert "You said: [[FAILN:500:1]] flaky" in result.reply
        decisions = [(r["decision"], r.get("status")) for r in fake_server.model_requests()]
        assert decisions[:2] == [("error", 500), ("text", None)]
