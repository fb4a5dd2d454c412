"""The replay provider: a recorded transcript plays the agent, so the whole engine runs for real
with no agent CLI installed (the README's default, and a deterministic fake for bot tests).

The "CLI" is ``python -m alice_trio.replay_cli`` (see :mod:`alice_trio.replay_cli`): it reads the
prompt from stdin, discards it, re-emits the transcript with its recorded timing scaled by
``speed`` (0: no delays) and exits with the recorded exit code. Its stdout is decoded by the
decoder of the provider named ``decode_as`` (default ``codex``), looked up in the registry.
"""

from __future__ import annotations

import sys
from importlib import resources

import attrs

from .. import validation as v
from ..errors import ConfigError, EmptyPromptError
from ..models import RunRequest
from .base import CLIConfig, Decoder, Invocation, Provider
from .registry import get_provider, normalize_name

__all__ = ["DEFAULT_TRANSCRIPT", "PROVIDER", "ReplayConfig", "build_invocation", "new_decoder"]

DEFAULT_TRANSCRIPT = "codex_exec_tool.timeline.jsonl"


def default_transcript_path() -> str:
    """Path of the packaged transcript (a real ``codex exec --json`` run with one tool call)."""
    return str(resources.files("alice_trio") / "data" / "transcripts" / DEFAULT_TRANSCRIPT)


@attrs.frozen(kw_only=True, field_transformer=v.checked_fields)
class ReplayConfig(CLIConfig):
    """``transcript``: file to replay ("" = the packaged one); ``decode_as``: provider whose
    decoder reads it; ``speed``: time factor (2.0 = twice as fast, 0 = no delays)."""

    transcript: str = attrs.field(default="", metadata=v.meta(v.path_text))
    decode_as: str = "codex"
    speed: float = 1.0


def build_invocation(request: RunRequest, config: ReplayConfig) -> Invocation:
    """``[python, -m, alice_trio.replay_cli, --speed, S, --, PATH]`` with the prompt on stdin.
    Raises :class:`EmptyPromptError` for a blank prompt."""
    if not request.prompt:
        raise EmptyPromptError()
    command = config.command.strip() or sys.executable
    path = config.transcript.strip() or default_transcript_path()
    argv = (command, "-m", "alice_trio.replay_cli", "--speed", repr(float(config.speed)))
    return Invocation(
        argv=(*argv, *config.extra_args, "--", path),
        env={**config.env, **request.env},
        cwd=request.workspace_dir or config.workspace_dir.strip() or None,
        stdin=request.prompt.encode("utf-8"),
        timeout=config.effective_timeout(),
        idle_timeout=config.effective_idle_timeout(),
        limits=config.limits,
        inputs={"transcript": path},
    )


def new_decoder(request: RunRequest, config: ReplayConfig) -> Decoder:
    """The ``decode_as`` provider's decoder, with that provider's default config. Raises
    :class:`ConfigError` for ``decode_as: replay`` — or a provider that is a replay under
    another name (registered as a copy of this one), which would delegate to itself until a
    ``RecursionError`` — and ``UnknownProviderError`` for an unknown name."""
    delegate = get_provider(config.decode_as)
    if normalize_name(config.decode_as) == "replay" or delegate.new_decoder is new_decoder:
        raise ConfigError(
            f"replay decode_as must name a provider that decodes a CLI's output, not "
            f"{config.decode_as!r} (a replay)"
        )
    return delegate.new_decoder(request, delegate.config_class())


# -- registration ---------------------------------------------------------------------------------

from .record import AuthCheck, Capabilities, Flavor, SessionSpec, VersionCheck  # noqa: E402

PROVIDER = Provider(
    name="replay",
    default_command=sys.executable,
    config_class=ReplayConfig,
    build_invocation=build_invocation,
    new_decoder=new_decoder,
    description="replays a recorded transcript (no agent CLI needed)",
    flavors=(
        Flavor(
            label="recorded transcript",
            # the recorded events, decoded by `decode_as` (codex by default: file changes)
            session=SessionSpec(
                protocol="one replayed run per turn",
                capabilities=Capabilities(file_changes=True),
            ),
            versions=VersionCheck(pattern=r"Python (?P<v>\d+\.\d+\.\d+)"),
            auth=AuthCheck(otherwise="not needed"),
        ),
    ),
)
