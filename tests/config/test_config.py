"""Config loading: the example file, every error text with its key path, normalization."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from alice_trio.config import (
    AppConfig,
    build_profile,
    config_keys,
    load_config,
    override_profile,
    parse_config,
)
from alice_trio.errors import ConfigError
from alice_trio.providers.base import DEFAULT_TIMEOUT
from alice_trio.providers.codex import CodexConfig
from alice_trio.providers.registry import provider_names

ROOT = Path(__file__).resolve().parents[2]
KNOWN = ", ".join(provider_names())


def errors_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    lines = str(info.value).split("\n")
    assert [f"{p}: {m}" if p else m for p, m in info.value.errors] == lines
    return lines


def one(provider: str = "codex", **keys: object) -> dict[str, object]:
    return {"llm_profiles": {"chat": {"provider": provider, **keys}}}


def test_example_config_loads_with_one_profile_per_provider() -> None:
    app = load_config(ROOT / "config.example.yaml")
    assert app.default_profile == "replay"
    providers = {p.provider for p in app.profiles.values()}
    assert providers == {"codex", "claude", "gemini", "kimi", "opencode", "replay"}
    assert app.profiles["kimi_legacy"].config.flavor == "legacy"  # type: ignore[attr-defined]
    provider, config = app.profile()
    assert provider.name == "replay"
    assert config.env["ALICE_TRIO_EXAMPLE"] == "1"
    codex = app.profiles["codex"].config
    assert isinstance(codex, CodexConfig)
    assert codex.reasoning_effort == "low" and codex.exec_policy.sandbox == "workspace-write"
    assert "KIMI_SHARE_DIR" not in app.profiles["kimi_legacy"].config.env  # empty value dropped


def test_example_config_comments_every_key() -> None:
    lines = (ROOT / "config.example.yaml").read_text().splitlines()
    for n, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and ":" in stripped:
            above = lines[n - 1].strip() if n else ""
            assert "#" in stripped or above.startswith("#"), f"line {n + 1}: {line!r}"


def test_timeout_text_names_the_path() -> None:
    assert errors_of(one(timeout_secs="abc")) == [
        'llm_profiles.chat.timeout_secs: expected a number of seconds, got "abc"'
    ]


def test_unknown_key_did_you_mean() -> None:
    assert errors_of(one(modle="x")) == [
        'llm_profiles.chat.modle: unknown key for provider "codex"; did you mean "model"?'
    ]
    assert errors_of(one(exec_policy={})) == [
        'llm_profiles.chat.exec_policy: unknown key for provider "codex"; did you mean permissions?'
    ]


def test_key_of_another_provider_is_named() -> None:
    assert errors_of(one("claude", reasoning_effort="high")) == [
        'llm_profiles.chat.reasoning_effort: unknown key for provider "claude" '
        "(it is a key of codex)"
    ]


def test_unknown_provider_lists_known_ones() -> None:
    assert errors_of(one("codx")) == [
        f'llm_profiles.chat.provider: unsupported provider "codx"; known providers: {KNOWN}; '
        'did you mean "codex"?'
    ]


def test_missing_provider_is_an_error_not_codex() -> None:
    assert errors_of({"llm_profiles": {"chat": {"model": "x"}}}) == [
        f"llm_profiles.chat.provider: required; known providers: {KNOWN}"
    ]
    assert errors_of(one("  ")) == [
        f"llm_profiles.chat.provider: required; known providers: {KNOWN}"
    ]


def test_permissions_values_and_nested_unknown_keys() -> None:
    lines = errors_of(one(permissions={"sandbox": "Full", "ask_for_approval": "x", "dirs": []}))
    assert lines == [
        'llm_profiles.chat.permissions.sandbox: "full" is unsupported; expected one of: '
        "read-only, workspace-write, danger-full-access",
        'llm_profiles.chat.permissions.ask_for_approval: "x" is unsupported; expected one of: '
        "untrusted, on-request, on-failure, never",
        'llm_profiles.chat.permissions.dirs: unknown key; did you mean "add_dirs"?',
    ]


def test_env_checks_and_secrets_never_shown() -> None:
    lines = errors_of(one(env={"A=B": "v", "": "x", "KEY": ["sk-secret-value"]}))
    assert "llm_profiles.chat.env: env key \"A=B\" must not contain '='" in lines
    assert "llm_profiles.chat.env: env key must not be empty" in lines
    assert "llm_profiles.chat.env.KEY: expected a string, got a list" in lines
    assert all("sk-secret" not in line for line in lines)
    assert errors_of({"env": "x", **one("replay")}) == [
        'env: expected a mapping of variable names to values, got "x"'
    ]


def test_type_errors_of_every_kind() -> None:
    lines = errors_of(
        one(
            "gemini",
            yolo="yes",
            model=4,
            extra_args="--x",
            idle_timeout_secs=-1,
            limits={"max_line_bytes": 1.5, "sweep": 1, "nope": 0},
        )
    )
    assert lines == [
        "llm_profiles.chat.idle_timeout_secs: expected a number of seconds >= 0, got -1",
        "llm_profiles.chat.model: expected a string, got 4",
        'llm_profiles.chat.extra_args: expected a list of strings, got "--x"',
        "llm_profiles.chat.limits.max_line_bytes: expected an integer, got 1.5",
        "llm_profiles.chat.limits.sweep: expected true or false, got 1",
        "llm_profiles.chat.limits.nope: unknown key",
        'llm_profiles.chat.yolo: expected true or false, got "yes"',
    ]


def test_provider_validators_get_paths() -> None:
    assert errors_of(one("kimi", flavor="old")) == [
        'llm_profiles.chat.flavor: "old" is unsupported; expected one of: code, legacy'
    ]
    assert errors_of(one("replay", speed=-1)) == ["llm_profiles.chat.speed: must be >= 0, got -1"]
    assert errors_of(one("codex", profile_overrides={"rev": {"timeout_secs": "x"}})) == [
        "llm_profiles.chat.profile_overrides.rev.timeout_secs: "
        'expected a number of seconds, got "x"'
    ]


def test_top_level_errors() -> None:
    assert errors_of([1]) == ["expected a mapping at the top level, got a list"]
    assert errors_of({"bots": {}, **one("replay")}) == [
        "bots: unknown key; did you mean llm_profiles (alice-trio has no bots: one file is one "
        "set of profiles)?"
    ]
    assert errors_of({"auth_status_timeout_secs": 0, **one("replay")}) == [
        "auth_status_timeout_secs: auth_status_timeout_secs must be > 0"
    ]
    two = {"llm_profiles": {"a": {"provider": "codex"}, "b": {"provider": "claude"}}}
    assert errors_of(two) == ["default_profile: required when several profiles are configured "
                              "(profiles: a, b)"]  # fmt: skip
    assert errors_of({**two, "default_profile": "c"}) == [
        'default_profile: "c" is not a profile; profiles: a, b'
    ]
    assert errors_of(
        {"llm_profiles": {"Chat": {"provider": "codex"}, "chat": {"provider": "codex"}}}
    ) == ['llm_profiles.chat: duplicate profile: "Chat" and "chat" are both "chat"']


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm_profiles:\n  a: [\n")
    with pytest.raises(ConfigError, match=r"invalid YAML \(line \d+, column \d+\)"):
        load_config(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("llm_profiles:\n  a: {provider: codex}\n  a: {provider: claude}\n")
    with pytest.raises(ConfigError, match="found duplicate key 'a' \\(first at line 2\\)"):
        load_config(dup)
    typo = tmp_path / "typo.yaml"
    typo.write_text("llm_profiles:\n  a: {provider: codex, timeout_secs: abc}\n")
    with pytest.raises(ConfigError) as info:
        load_config(typo)
    assert info.value.source == str(typo)  # type: ignore[attr-defined]


def test_normalization_and_defaults() -> None:
    app = parse_config(
        {
            "env": {" TOP ": " 1 ", "SHARED": "top", "EMPTY": ""},
            "workspace_dir": " /srv ",
            "llm_profiles": {
                " Chat ": {
                    "provider": " CODEX ",
                    "reasoning_effort": " HIGH ",
                    "personality": "Friendly",
                    "model": " gpt-x ",
                    "timeout_secs": 0,
                    "env": {"SHARED": "profile", "http_proxy": "p"},
                    "permissions": {"sandbox": " Read-Only ", "add_dirs": [" /a ", "", "/a", "/B"]},
                }
            },
        }
    )
    assert app.default_profile == "chat"
    cfg = app.profiles["chat"].config
    assert isinstance(cfg, CodexConfig)
    assert (cfg.reasoning_effort, cfg.personality, cfg.model) == ("high", "friendly", "gpt-x")
    assert cfg.timeout == DEFAULT_TIMEOUT
    assert cfg.env == {"TOP": "1", "SHARED": "profile", "http_proxy": "p"}
    assert cfg.workspace_dir == "/srv"
    assert cfg.exec_policy.sandbox == "read-only" and cfg.exec_policy.add_dirs == ("/a", "/B")
    assert app.profiles["chat"].provider == "codex"


def test_profile_lookup_and_overrides() -> None:
    app = parse_config(one("replay", speed=2))
    assert app.profile("CHAT")[0].name == "replay"
    with pytest.raises(ConfigError, match='unknown profile "chta"; configured profiles: chat; '
                       'did you mean "chat"'):  # fmt: skip
        app.profile("chta")
    changed = override_profile(app.get(), {"speed": 0, "env": {"X": 1}}, path="-o")
    assert changed.config.speed == 0.0  # type: ignore[attr-defined]
    assert changed.config.env["X"] == "1"
    with pytest.raises(ConfigError, match=r'-o.sped: unknown key for provider "replay"; did you '
                       r'mean "speed"'):  # fmt: skip
        override_profile(app.get(), {"sped": 0}, path="-o")
    assert AppConfig().profiles == {}
    with pytest.raises(ConfigError, match="no profile is configured"):
        AppConfig().profile()


def test_build_profile_and_keys() -> None:
    p = build_profile("x", {"provider": "opencode", "variant": "MAX", "server_url": "http://h"})
    assert p.config.variant == "max"  # type: ignore[attr-defined]
    assert "timeout_secs" in config_keys(CodexConfig)
    assert "permissions" in config_keys(CodexConfig)
    assert "xhigh_idle_timeout_secs" in config_keys(CodexConfig)


@given(st.one_of(st.text(), st.booleans(), st.lists(st.integers()), st.floats(allow_nan=False),
                 st.integers(), st.none()))  # fmt: skip
def test_any_value_gives_a_config_or_a_config_error(value: object) -> None:
    for key in ("timeout_secs", "model", "permissions", "env", "limits", "yolo"):
        try:
            parse_config(one("gemini", **{key: value}))
        except ConfigError as exc:
            assert str(exc).startswith(f"llm_profiles.chat.{key}")


def test_yaml_roundtrip_of_example_is_safe_loader_only(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("llm_profiles:\n  a: !!python/object:os.system {provider: codex}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(f)
    assert yaml.safe_load("a: 1") == {"a": 1}
