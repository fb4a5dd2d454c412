"""A profile's ``scaling:`` mapping (sessions/scaling.py) in the config file."""

from __future__ import annotations

import pytest

from alice_trio.config import parse_config
from alice_trio.errors import ConfigError
from alice_trio.sessions.scaling import ScalingConfig


def profile(scaling: object) -> dict[str, object]:
    return {"llm_profiles": {"bot": {"provider": "codex", "scaling": scaling}}}


def test_scaling_is_read_per_profile_and_defaults_to_one_spare() -> None:
    cfg = parse_config(profile({"warm": 0, "max_turns": 4, "max_conversations": 100}))
    assert cfg.get("bot").scaling == ScalingConfig(warm=0, max_turns=4, max_conversations=100)
    plain = parse_config({"llm_profiles": {"p": {"provider": "claude"}}})
    assert plain.get("p").scaling == ScalingConfig()
    assert plain.get("p").scaling.warm == 1


@pytest.mark.parametrize(
    ("scaling", "message"),
    [
        ({"warm": -1}, "llm_profiles.bot.scaling.warm: must be >= 0, got -1"),
        ({"wram": 1}, 'llm_profiles.bot.scaling.wram: unknown key; did you mean "warm"?'),
        ({"max_turns": "x"}, "llm_profiles.bot.scaling.max_turns: expected an integer"),
        ("many", "llm_profiles.bot.scaling: expected a mapping"),
    ],
)
def test_bad_scaling_names_the_key(scaling: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(profile(scaling))
    assert message in str(info.value)
