"""e2e: a gemini ``--acp`` conversation closed by the idle TTL and resumed by thread id within
the same wall-clock minute keeps its history (issue 14 item 5), in its own process and on a
shared host (closed too before each resume, so every resume is a ``session/load`` in a new
gemini process).

gemini-cli 0.61 names a conversation's file ``session-<YYYY-MM-DDTHH-MM>-<id[:8]>.jsonl``: a
``session/load`` within the minute the session was created wiped it ("No previous sessions
found for this project."), and a later one left an empty recording whose clean-up at the next
gemini start deleted the history (see :mod:`alice_trio.sessions.acp`). The case starts early
in a minute (so the first resume falls in the creation minute) and resumes twice (so the
second gemini start's clean-up runs over the first resume's files).
"""

from __future__ import annotations

import json
import time

import pytest
import trio
from cli_env import CliSetup, provider_config
from e2e_support import FakeServer, assert_nothing_left, wait_until
from oneshot_cases import SetupFactory

from alice_trio.models import RunRequest
from alice_trio.providers.gemini import GeminiConfig
from alice_trio.sessions.backend import SessionBackend
from alice_trio.sessions.pool import ScalingConfig

pytestmark = pytest.mark.e2e


def _config(setup: CliSetup) -> GeminiConfig:
    config: GeminiConfig = provider_config(setup)[1]
    return config


def _streamed_bodies(fake_server: FakeServer) -> list[str]:
    return [
        json.dumps(r.get("body"))
        for r in fake_server.model_requests()
        if ":streamGenerateContent" in str(r.get("path", ""))
    ]


@pytest.mark.parametrize("share", [False, True], ids=["own-process", "shared-host"])
async def test_resume_within_the_minute_keeps_the_history(
    cli_setup: SetupFactory, fake_server: FakeServer, share: bool
) -> None:
    setup = cli_setup("gemini")
    if time.time() % 60 > 10:  # the conversation and its first resume in one minute
        await trio.sleep(60 - time.time() % 60 + 0.5)
    created = time.gmtime().tm_min
    scaling = ScalingConfig(warm=0, share=share)
    words = ("PARROT", "FALCON", "HERON")
    async with SessionBackend("gemini", _config(setup), idle_ttl=0.2, scaling=scaling) as backend:
        thread = ""
        for n, word in enumerate(words):
            request = RunRequest(
                user_text=f"turn {n}: remember the word {word}",
                workspace_dir=setup.workspace, thread_id=thread,
            )  # fmt: skip
            result = await backend.run(request)
            assert f"You said: turn {n}" in result.reply, result
            assert not thread or result.next_thread_id == thread
            thread = result.next_thread_id
            # the idle TTL closes the conversation (and, shared, its host) before the resume
            await wait_until(lambda: not backend.open_sessions(), 30, "the idle close")
            await wait_until(lambda: not backend.pool.hosts, 30, "the host to close")
            if n == 1:
                assert time.gmtime().tm_min == created, "the first resume left the minute"
            bodies = _streamed_bodies(fake_server)
            assert len(bodies) == n + 1, bodies
            for earlier in words[:n]:  # the resumed turn's request carries the history
                assert earlier in bodies[-1], (earlier, bodies[-1])
    await assert_nothing_left(setup)
