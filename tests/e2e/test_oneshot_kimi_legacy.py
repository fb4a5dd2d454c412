"""e2e: legacy kimi-cli 1.50 (`kimi --print`) one-shot runs against the fake model server."""

from __future__ import annotations

import pytest
from oneshot_cases import OneShotCases

pytestmark = pytest.mark.e2e


class TestKimiLegacyOneShot(OneShotCases):
    CLI = "kimi_legacy"
    PROVIDER = "kimi"
    WRITE_TOOL = ("WriteFile", {"path": "{path}", "content": "made by the tool\n"})
    PLAIN_USAGE = None  # --print stream-json carries no token usage
    ERROR_CASES = (("[[ERR400]]", 400),)
