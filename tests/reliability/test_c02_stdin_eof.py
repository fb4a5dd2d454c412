"""C2: CLIs that read stdin until EOF (codex exec, opencode run, claude -p ≥2.1.50) never hang:
the engine writes the prompt and closes stdin at once, or gives /dev/null when there is none.

Peers: many codex/opencode wrappers hang at 0 % CPU with stdin left open; claude-agent-sdk keeps
stdin open by design (bidirectional mode)."""

from __future__ import annotations

import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.models import RunRequest
from alice_trio.providers.registry import get_provider

from fake_provider import PROVIDER
from reliability_support import assert_nothing_left, cfg, new_mark, req


async def test_prompt_is_written_then_stdin_is_closed():
    with trio.fail_after(10):
        result = await run_oneshot(PROVIDER, cfg("--read-stdin", stdin=b"the prompt"), req())
    assert result.reply == "stdin:the prompt"


async def test_no_stdin_bytes_means_dev_null_not_an_open_pipe():
    with trio.fail_after(10):
        result = await run_oneshot(PROVIDER, cfg("--read-stdin"), req())
    assert result.reply == "stdin:"


async def test_8mb_prompt_through_stdin_no_pipe_deadlock_no_arg_max():
    prompt = b"p" * 8_000_000  # far over a pipe buffer and over ARG_MAX's single-arg limit
    with trio.fail_after(20):
        result = await run_oneshot(PROVIDER, cfg("--count-stdin", stdin=prompt), req())
    assert result.reply == "stdin bytes: 8000000"


async def test_cli_that_never_reads_stdin_does_not_wedge_the_writer():
    mark = new_mark()
    with trio.fail_after(10):
        result = await run_oneshot(
            PROVIDER, cfg("--text", "ignored your stdin", stdin=b"x" * 8_000_000), req(mark)
        )
    assert result.reply == "ignored your stdin"
    assert_nothing_left(mark)


@pytest.mark.parametrize("name", ["codex", "claude", "gemini", "opencode"])
def test_stdin_providers_send_the_prompt_on_stdin(name: str):
    """Every provider whose CLI reads stdin gets the prompt there (so the engine closes it)."""
    provider = get_provider(name)
    inv = provider.build_invocation(RunRequest(user_text="hello there"), provider.config_class())
    assert inv.stdin is not None and b"hello there" in inv.stdin


def test_kimi_flavors_stdin():
    kimi = get_provider("kimi")
    code = kimi.build_invocation(RunRequest(user_text="hello"), kimi.config_class())
    assert code.stdin is None  # Kimi Code takes --prompt=; the engine gives /dev/null
    legacy = kimi.build_invocation(
        RunRequest(user_text="hello"), kimi.config_class(flavor="legacy")
    )
    assert legacy.stdin is not None and legacy.stdin.endswith(b"\n")
