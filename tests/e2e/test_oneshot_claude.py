"""e2e: claude -p one-shot runs through the library against the fake model server."""

from __future__ import annotations

import pytest
from oneshot_cases import OneShotCases

from alice_trio.models import Usage

pytestmark = pytest.mark.e2e


class TestClaudeOneShot(OneShotCases):
    CLI = "claude"
    PROVIDER = "claude"
    WRITE_TOOL = ("Write", {"file_path": "{path}", "content": "made by the tool\n"})
    # Anthropic reports non-cached input and the cache reads apart (Usage docstring)
    PLAIN_USAGE = Usage(input_tokens=234, cached_input_tokens=1000, output_tokens=56)
    ERROR_CASES = (("[[ERR400]]", 400), ("[[ERR500]]", 500))  # CLAUDE_CODE_MAX_RETRIES=0
