"""e2e: opencode run one-shot runs through the library against the fake model server."""

from __future__ import annotations

import pytest
from oneshot_cases import OneShotCases

from alice_trio.models import Usage

pytestmark = pytest.mark.e2e


class TestOpenCodeOneShot(OneShotCases):
    CLI = "opencode"
    PROVIDER = "opencode"
    WRITE_TOOL = ("write", {"filePath": "{path}", "content": "made by the tool\n"})
    # 5xx is retried for ~72 s (real-clis.md); a 400 is not retried.
    ERROR_CASES = (("[[ERR400]]", 400),)

    # opencode's step_finish tokens as reported: input without cache reads, output without
    # reasoning (Usage docstring)
    PLAIN_USAGE = Usage(input_tokens=234, cached_input_tokens=1000, output_tokens=49)
