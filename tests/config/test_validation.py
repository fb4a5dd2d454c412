"""One set of checks for YAML and Python (issue 12 item 6): a config that loads runs; a bad value
is a ConfigError at load or at construction, with the same message after the key path, and
never reaches a spawn."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alice_trio.config import load_config, parse_config, yaml_key
from alice_trio.errors import ConfigError
from alice_trio.models import ExecPolicy, RunRequest
from alice_trio.providers.base import CLIConfig, RunLimits
from alice_trio.providers.codex import CodexConfig
from alice_trio.providers.registry import get_provider
from alice_trio.validation import NESTED

PROVIDERS = ("codex", "claude", "gemini", "kimi", "opencode", "replay")


def _load(tmp_path: Path, body: str) -> ConfigError:
    path = tmp_path / "c.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


# -- YAML values that loaded and then crashed every run ------------------------------------------

BAD_LIMITS = [
    ("max_line_bytes", "0", "must be > 0, got 0"),
    ("max_line_bytes", "-5", "must be > 0, got -5"),
    ("stderr_tail_bytes", "-1", "must be >= 0, got -1"),
    ("callback_buffer", "-1", "must be >= 0, got -1"),
    ("kill_grace_secs", ".nan", "expected a finite number of seconds, got nan"),
    ("kill_grace_secs", "-0.5", "expected a number of seconds >= 0, got -0.5"),
    ("drain_timeout_secs", ".inf", "expected a finite number of seconds, got inf"),
    ("drain_timeout_secs", "-.inf", "expected a finite number of seconds, got -inf"),
    ("line_policy", "drop", '"drop" is unsupported; expected one of: error, skip'),
]


@pytest.mark.parametrize(("key", "raw", "message"), BAD_LIMITS)
def test_bad_limits_fail_at_load_with_the_key_path(
    tmp_path: Path, key: str, raw: str, message: str
) -> None:
    err = _load(tmp_path, f"llm_profiles:\n  chat:\n    provider: replay\n"
                          f"    limits: {{{key}: {raw}}}\n")  # fmt: skip
    assert str(err) == f"llm_profiles.chat.limits.{key}: {message}"
    assert err.errors == ((f"llm_profiles.chat.limits.{key}", message),)


BAD_PROFILE = [
    ("timeout_secs", ".nan", "expected a finite number of seconds, got nan"),
    ("timeout_secs", ".inf", "expected a finite number of seconds, got inf"),
    ("idle_timeout_secs", ".nan", "expected a finite number of seconds or null, got nan"),
    ("idle_timeout_secs", "-3", "expected a number of seconds >= 0, got -3"),
    ("speed", ".nan", "expected a finite number, got nan"),
    ("speed", "-1", "must be >= 0, got -1"),
    ("extra_args", "--verbose", 'expected a list of strings, got "--verbose"'),
    ("workspace_dir", "[a]", "expected a string, got a list"),
]


@pytest.mark.parametrize(("key", "raw", "message"), BAD_PROFILE)
def test_bad_profile_values_fail_at_load(tmp_path: Path, key: str, raw: str, message: str) -> None:
    err = _load(tmp_path, f"llm_profiles:\n  chat:\n    provider: replay\n    {key}: {raw}\n")
    assert str(err) == f"llm_profiles.chat.{key}: {message}"


def test_a_timeout_of_zero_or_less_still_means_48_hours() -> None:
    app = parse_config({"llm_profiles": {"c": {"provider": "replay", "timeout_secs": -1}}})
    assert app.get().config.timeout == 172800.0
    assert CLIConfig(timeout=0).timeout == 172800.0


@pytest.mark.parametrize("body", ["", "\n\n", "# only a comment\n", "---\n"])
def test_an_empty_file_fails_at_load(tmp_path: Path, body: str) -> None:
    err = _load(tmp_path, body)
    assert "llm_profiles" in str(err)


@pytest.mark.parametrize("body", ["llm_profiles: {}\n", "llm_profiles:\n", "env: {A: b}\n"])
def test_a_file_without_profiles_fails_at_load(tmp_path: Path, body: str) -> None:
    err = _load(tmp_path, body)
    assert err.errors[-1][0] == "llm_profiles"
    assert "required" in err.errors[-1][1]


# -- Python construction: the same checks, the same messages -----------------------------------


def test_python_classes_validate_like_yaml() -> None:
    with pytest.raises(ConfigError) as info:
        CodexConfig(extra_args="--verbose")  # type: ignore[arg-type]
    assert str(info.value) == 'extra_args: expected a list of strings, got "--verbose"'
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="read-only, workspace-write, danger-full-access"):
        ExecPolicy(sandbox="bogus")
    with pytest.raises(ConfigError, match="untrusted, on-request, on-failure, never"):
        ExecPolicy(ask_for_approval="sometimes")
    with pytest.raises(ConfigError, match=r"^max_line_bytes: must be > 0, got 0$"):
        RunLimits(max_line_bytes=0)
    with pytest.raises(ConfigError, match=r"^kill_grace: expected a finite number"):
        RunLimits(kill_grace=math.nan)
    with pytest.raises(ConfigError, match=r"^limits: expected a RunLimits, got a mapping"):
        CLIConfig(limits={"max_line_bytes": 0})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^env: env key \"A=B\" must not contain '='"):
        CLIConfig(env={"A=B": "x"})
    with pytest.raises(ConfigError, match=r"^user_text: expected a string, got 5"):
        RunRequest(user_text=5)  # type: ignore[arg-type]


def test_paths_are_accepted_where_a_path_is_expected(tmp_path: Path) -> None:
    request = RunRequest(user_text="x", workspace_dir=tmp_path)  # type: ignore[arg-type]
    assert request.workspace_dir == str(tmp_path)
    config = CLIConfig(workspace_dir=tmp_path / "w")  # type: ignore[arg-type]
    assert config.workspace_dir == str(tmp_path / "w")
    assert ExecPolicy(add_dirs=[tmp_path, str(tmp_path), ""]).add_dirs == (str(tmp_path),)
    for name in PROVIDERS:
        provider = get_provider(name)
        inv = provider.build_invocation(request, provider.config_class())
        assert inv.cwd is None or inv.cwd == str(tmp_path)


def test_a_bad_value_never_reaches_argv() -> None:
    """The old behaviour: extra_args="--verbose" became argv ``- - v e r b o s e``."""
    provider = get_provider("codex")
    with pytest.raises(ConfigError):
        provider.build_invocation(
            RunRequest(user_text="x"),
            CodexConfig(extra_args="--verbose"),  # type: ignore[arg-type]
        )


# -- one set of checks: every field, any value ---------------------------------------------

_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10), st.floats(), st.text(max_size=6),
    st.lists(st.text(max_size=3), max_size=2), st.dictionaries(st.text(max_size=3),
                                                               st.integers(), max_size=2),
)  # fmt: skip


def _fields() -> list[tuple[str, attrs.Attribute[Any]]]:
    out = []
    for name in PROVIDERS:
        cl = get_provider(name).config_class
        out += [(name, a) for a in attrs.fields(cl) if not a.metadata.get(NESTED)]
    out += [("replay", a) for a in attrs.fields(RunLimits)]
    return out


FIELDS = _fields()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_yaml_and_python_agree_on_every_field(data: st.DataObject) -> None:
    """The same value in YAML and in Python: both accepted with the same result, or both refused
    with the same message (YAML prefixed with its key path)."""
    provider, field = data.draw(st.sampled_from(FIELDS), label="field")
    value = data.draw(_VALUES, label="value")
    cl = get_provider(provider).config_class
    in_limits = field in attrs.fields(RunLimits)
    owner = RunLimits if in_limits else cl
    key = yaml_key(owner, field)
    if key == "env":  # the file-level env pass has its own path per key; covered elsewhere
        return
    profile: dict[str, Any] = {"provider": provider}
    if in_limits:
        profile["limits"] = {key: value}
    else:
        profile[key] = value
    try:
        python = owner(**{field.name: value})
    except ConfigError as exc:
        python_error = exc.errors[0][1]
    else:
        python_error = None
    try:
        loaded = parse_config({"llm_profiles": {"p": profile}}).get().config
    except ConfigError as exc:
        assert python_error is not None, f"YAML refused what Python took: {exc}"
        path = f"llm_profiles.p.{'limits.' if in_limits else ''}{key}"
        assert exc.errors == ((path, python_error),)
        return
    assert python_error is None, f"Python refused what YAML took: {python_error}"
    got = loaded.limits if in_limits else loaded
    assert getattr(got, field.name) == getattr(python, field.name) or (
        getattr(got, field.name) != getattr(got, field.name)  # nan is never accepted anyway
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kill_grace", 1e308, "must be at most 60 seconds"),
        ("drain_timeout", 4000.0, "must be at most 3600 seconds"),
        ("max_line_bytes", 2**70, "must be <= 1073741824"),
    ],
)
def test_limits_that_would_make_a_cancel_or_a_line_unbounded_are_refused(
    field: str, value: object, message: str
) -> None:
    """A kill grace of 1e308 s made a cancelled run never return (hostile trial, item 12)."""
    with pytest.raises(ConfigError, match=message):
        RunLimits(**{field: value})
    RunLimits(kill_grace=60.0, drain_timeout=3600.0, max_line_bytes=1 << 30)  # the bounds


def test_negative_token_counts_are_zero() -> None:
    from alice_trio.models import Usage
    from alice_trio.providers.claude import ClaudeStreamDecoder

    assert Usage(input_tokens=-7, cached_input_tokens=-1, output_tokens=-5) == Usage()
    decoder = ClaudeStreamDecoder()
    decoder.feed(
        '{"type":"result","subtype":"success","is_error":false,"result":"ok",'
        '"usage":{"input_tokens":-7,"output_tokens":-5}}'
    )
    assert decoder.finish().result.usage == Usage()
