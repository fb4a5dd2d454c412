"""A minimal provider for engine tests: runs tests/fake_cli.py and decodes its protocol."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs

from alice_trio.models import EventKind, RunRequest, TurnEvent, Usage
from alice_trio.providers.base import CLIConfig, Invocation, JsonLineDecoder, Provider, RunLimits

FAKE_CLI = str(Path(__file__).with_name("fake_cli.py"))


@attrs.frozen(kw_only=True)
class FakeConfig(CLIConfig):
    args: tuple[str, ...] = ()
    stdin: bytes | None = None


class FakeDecoder(JsonLineDecoder):
    provider = "fake"
    no_reply_message = "fake returned no final message"

    def _decode(self, obj: dict[str, Any], line: str) -> list[TurnEvent]:
        t = obj.get("type")
        if t == "thread":
            self.thread_id = obj["id"]
            return [self._event(EventKind.THREAD_STARTED, line)]
        if t == "text":
            return self._assistant(obj["text"], line)
        if t == "done":
            usage = Usage(
                input_tokens=obj["input"],
                cached_input_tokens=obj["cached"],
                output_tokens=obj["output"],
            )
            return [self._complete(line, usage)]
        if t == "fail":
            return [self._fail(obj["message"], line, obj.get("status"))]
        return [self._unknown(line, f"unknown type {t!r}")]


def build(request: RunRequest, config: FakeConfig) -> Invocation:
    return Invocation(
        argv=(sys.executable, FAKE_CLI, *config.args),
        env={**config.env, **request.env},
        cwd=request.workspace_dir or config.workspace_dir or None,
        stdin=config.stdin,
        timeout=config.timeout,
        idle_timeout=config.idle_timeout,
        limits=config.limits,
    )


PROVIDER = Provider(
    name="fake",
    default_command=sys.executable,
    config_class=FakeConfig,
    build_invocation=build,
    new_decoder=lambda request, config: FakeDecoder(thread_id=request.thread_id),
)

FAST = RunLimits(kill_grace=0.25, drain_timeout=0.5)
