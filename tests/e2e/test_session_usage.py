"""e2e: every CLI's interactive session reports each turn's token usage in its result (the
one-shot lane checks the same per run in ``oneshot_cases.py``). The fake model reports 1234
input tokens (1000 of them cached) and 56 output tokens per reply; what each CLI makes of
that is below. Kimi Code reports only its context in use (input + output), in a
``usage_update`` just after the prompt's response (before the driver waited for it: 0)."""

from __future__ import annotations

import pytest
import trio
from cli_env import PROVIDERS, provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.models import RunRequest, Usage
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend

pytestmark = pytest.mark.e2e
TURN_LIMIT = 180.0
PER_TURN = {
    "codex": Usage(input_tokens=1234, cached_input_tokens=1000, output_tokens=56),
    # claude and opencode count the cached tokens apart from the input
    "claude": Usage(input_tokens=234, cached_input_tokens=1000, output_tokens=56),
    "opencode": Usage(input_tokens=234, cached_input_tokens=1000, output_tokens=49),
    "gemini": Usage(input_tokens=1234, cached_input_tokens=0, output_tokens=56),
    "kimi": Usage(input_tokens=1234 + 56),
    "kimi_legacy": Usage(input_tokens=1234, cached_input_tokens=1000, output_tokens=56),
}


@pytest.mark.parametrize("cli", list(PROVIDERS))
async def test_session_turns_report_usage(
    cli_setup: SetupFactory, fake_server: FakeServer, cli: str
) -> None:
    setup = cli_setup(cli)
    name, config = provider_config(setup)
    usages = []
    async with SessionBackend(name, config) as backend:
        for text in ("first turn", "second turn"):
            with trio.fail_after(TURN_LIMIT):
                result = await backend.run(
                    RunRequest(user_text=text, workspace_dir=setup.workspace,
                               env={SESSION_KEY_ENV: "chat"})
                )  # fmt: skip
            assert f"You said: {text}" in result.reply, result
            usages.append(result.usage)
    assert usages == [PER_TURN[cli]] * 2, usages
    await assert_nothing_left(setup)
