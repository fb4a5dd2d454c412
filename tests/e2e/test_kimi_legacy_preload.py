"""e2e: legacy kimi's preloading on the real kimi-cli 1.50 — the ``openai_chat`` warm-up script
fills the OpenAI SDK's first-call caches in kimi's own interpreter, and a conversation on a
warmed process sends the model byte for byte what one on an unwarmed process sends."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from cli_env import provider_config
from e2e_support import FakeServer, assert_nothing_left
from oneshot_cases import SetupFactory

from alice_trio.engine.spawn import build_env
from alice_trio.models import RunRequest
from alice_trio.providers.base import Invocation
from alice_trio.providers.kimi import PROVIDER
from alice_trio.sessions.backend import SESSION_KEY_ENV, SessionBackend
from alice_trio.sessions.preload import with_preload
from alice_trio.sessions.scaling import ScalingConfig

pytestmark = pytest.mark.e2e

CACHES = r"""
import json, platform
from openai._utils import _transform
from openai.types.chat import ChatCompletionChunk
print(json.dumps({
    "chunk_schema_built": bool(ChatCompletionChunk.__pydantic_complete__),
    "type_hints_cached": _transform.get_type_hints.cache_info().currsize,
    # `uname -p` ran: the cached uname result has its processor (a cached_property)
    "uname_cached": "processor" in vars(platform._uname_cache or platform.uname_result(*"abcde")),
}))
"""


def _kimi_python(setup: Any) -> str:
    """The interpreter of kimi-cli's venv (its ``kimi`` script's neighbour)."""
    python = Path(setup.binary).resolve().parent / "python"
    if not python.exists():
        pytest.skip(f"no python next to {setup.binary}")
    return str(python)


async def _caches(python: str, scripts: tuple[str, ...]) -> dict[str, Any]:
    spec = PROVIDER.flavor("legacy").session
    inv = with_preload(Invocation(argv=(python, "-c", CACHES)), spec.preload, scripts=scripts)
    proc = await trio.run_process(
        list(inv.argv), env=build_env(inv, "e2e"), capture_stdout=True, capture_stderr=True
    )
    assert proc.stderr == b"", proc.stderr  # the warm-up prints nothing, fails nothing
    return json.loads(proc.stdout)


async def test_the_openai_chat_script_fills_the_sdks_first_call_caches(
    cli_setup: SetupFactory,
) -> None:
    python = _kimi_python(cli_setup("kimi_legacy"))
    scripts = PROVIDER.flavor("legacy").session.preload_scripts
    cold = await _caches(python, ())
    warm = await _caches(python, scripts)
    # imports alone leave all of it to the first model request ...
    assert cold == {"chunk_schema_built": False, "type_hints_cached": 0, "uname_cached": False}
    # ... the script does it at start
    assert warm["chunk_schema_built"] and warm["uname_cached"], warm
    assert warm["type_hints_cached"] > 10, warm


# the process's start time, in kimi's system prompt
_STARTED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")


def _normalized(records: list[dict[str, Any]], session_id: str) -> list[str]:
    """Each model request as one JSON text (path, headers, body); what differs between any two
    conversations replaced: the session id and the process's start time."""
    out = []
    for r in records:
        seen = {"path": r.get("path"), "headers": r.get("headers"), "body": r.get("body")}
        text = json.dumps(seen, sort_keys=True).replace(session_id, "<session>")
        out.append(_STARTED.sub("<start time>", text))
    return out


async def test_a_warmed_up_process_sends_the_model_exactly_what_an_unwarmed_one_sends(
    cli_setup: SetupFactory, fake_server: FakeServer
) -> None:
    setup = cli_setup("kimi_legacy")
    _, config = provider_config(setup)
    flavor = PROVIDER.flavor("legacy")
    assert flavor.session.preload_scripts, "nothing to compare"
    bare = attrs.evolve(flavor, session=attrs.evolve(flavor.session, preload_scripts=()))
    unwarmed = attrs.evolve(
        PROVIDER, flavors=tuple(bare if f is flavor else f for f in PROVIDER.flavors)
    )
    seen: list[list[str]] = []
    for record in (unwarmed, PROVIDER):
        before = len(fake_server.model_requests())
        scaling = ScalingConfig(warm=0, share=False)
        async with SessionBackend(record, config, scaling=scaling) as backend:
            with trio.fail_after(240):
                first = await backend.run(RunRequest(user_text="hello", env={SESSION_KEY_ENV: "a"}))
                again = await backend.run(
                    RunRequest(
                        user_text="again", env={SESSION_KEY_ENV: "a"},
                        thread_id=first.next_thread_id,
                    )
                )  # fmt: skip
        assert "hello" in first.reply and "again" in again.reply
        records = fake_server.model_requests()[before:]
        assert len(records) == 2, records
        seen.append(_normalized(records, first.next_thread_id))
    assert seen[0] == seen[1]
    await assert_nothing_left(setup)
