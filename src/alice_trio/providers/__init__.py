"""Sans-I/O providers: one module per agent CLI (argv builder + pure decoder)."""

from .base import (
    CLIConfig,
    DecodeOutcome,
    Decoder,
    Invocation,
    JsonLineDecoder,
    Provider,
    RunLimits,
)
from .registry import get_provider, provider_names, register_provider

__all__ = [
    "CLIConfig",
    "DecodeOutcome",
    "Decoder",
    "Invocation",
    "JsonLineDecoder",
    "Provider",
    "RunLimits",
    "get_provider",
    "provider_names",
    "register_provider",
]
