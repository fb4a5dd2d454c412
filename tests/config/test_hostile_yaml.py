"""Hostile config input: huge files, deep nesting, huge integers, merge keys, ``1e300``.
Every parse failure is one ConfigError (a line and column, or the key path), never a
RecursionError, ValueError or an unbounded read."""

from __future__ import annotations

from pathlib import Path

import pytest

from alice_trio import config_yaml
from alice_trio.config import (
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    build_profile,
    load_config,
    override_profile,
    parse_config,
    parse_yaml_value,
)
from alice_trio.errors import ConfigError


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both loaders: libyaml's events (the default when PyYAML has it)
    and PyYAML's pure-Python parser — the same documents, the same errors."""
    if request.param == "libyaml":
        if getattr(config_yaml, "_CParser", None) is None:
            pytest.skip("PyYAML without libyaml")
    else:
        monkeypatch.setattr(config_yaml, "_CParser", None)
    return str(request.param)


def test_the_loader_in_use_is_the_one_asked_for(loader: str) -> None:
    used: list[type] = []
    real = config_yaml.yaml.load

    def spy(text: str, Loader: type) -> object:
        used.append(Loader)
        return real(text, Loader=Loader)

    config_yaml.yaml.load = spy  # type: ignore[assignment]
    try:
        assert parse_yaml_value("{a: 1}", path="-o x") == {"a": 1}
    finally:
        config_yaml.yaml.load = real
    assert (used[0].__name__ == "_FastLoader") == (loader == "libyaml")


def test_a_document_of_too_many_values_is_refused_early(tmp_path: Path) -> None:
    """Hostile-user finding (round 10): a 3.9 MB config of 1.3 million flow values (under the
    4 MiB bound) took about 70 s and 1 GB to build before its error. Now a document of more
    than MAX_YAML_NODES values is refused at the first one over, with its line and column."""
    text = "x: [" + ",".join(["{}"] * (MAX_YAML_NODES + 10)) + "]\nllm_profiles: {}\n"
    message = _load_error(tmp_path, text)
    assert f"more than {MAX_YAML_NODES} values" in message and "(line 1, column " in message
    fine = "x: [" + ",".join(["1"] * (MAX_YAML_NODES - 10)) + "]\n"
    assert len(parse_yaml_value(fine, path="-o x")["x"]) == MAX_YAML_NODES - 10


def _load_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_a_file_larger_than_the_bound_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * MAX_CONFIG_BYTES)
    with pytest.raises(ConfigError, match=r"larger than 4 MiB"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"cannot read config file /dev/zero: larger than"):
        load_config("/dev/zero")  # endless: only the bound is read


@pytest.mark.parametrize(
    "doc",
    [
        "llm_profiles:\n  r: {provider: replay, env: " + "[" * 5000 + "]" * 5000 + "}\n",
        "llm_profiles:\n  r: {provider: replay, env: " + "{a: " * 3000 + "1" + "}" * 3001 + "\n",
        "env:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
        "env: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1) + "\n",
    ],
    ids=["flow-lists-5000", "flow-maps-3000", "block-lists-200", "bound+1"],
)
def test_deep_nesting_is_a_yaml_error_with_its_place(tmp_path: Path, doc: str) -> None:
    message = _load_error(tmp_path, doc)
    assert "invalid YAML (line" in message
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in message


def test_nesting_within_the_bound_is_read(tmp_path: Path) -> None:
    depth = MAX_YAML_DEPTH - 3
    doc = "env: " + "[" * depth + "]" * depth + "\nllm_profiles: {r: {provider: replay}}\n"
    message = _load_error(tmp_path, doc)
    assert "env:" in message and "nested" not in message  # a value error, not a parse error


@pytest.mark.parametrize("where", ["speed: %s", "env: {A: %s}", "timeout_secs: %s"])
def test_an_integer_too_long_for_int_is_a_yaml_error(tmp_path: Path, where: str) -> None:
    doc = "llm_profiles:\n  r: {provider: replay, " + where % ("1" * 5000) + "}\n"
    message = _load_error(tmp_path, doc)
    assert "invalid YAML (line 2" in message and "integer too long" in message


def test_parse_config_of_data_nested_too_deeply_is_a_config_error() -> None:
    data: object = "x"
    for _ in range(5000):
        data = {"a": data}
    with pytest.raises(ConfigError):
        parse_config({"llm_profiles": data})


def test_merge_keys_are_supported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "default_profile: b\n"
        "llm_profiles:\n"
        "  a: &base {provider: replay, speed: 0, timeout_secs: 30}\n"
        "  b:\n"
        "    <<: *base\n"
        "    timeout_secs: 60\n"  # a merged key may be overridden
        "  c:\n"
        "    <<: [*base, {description: two}]\n"
    )
    app = load_config(path)
    assert app.profiles["a"].config.timeout == 30
    assert app.profiles["b"].config.timeout == 60
    assert app.profiles["b"].provider == "replay"
    assert app.profiles["c"].description == "two"
    assert app.profiles["c"].config.timeout == 30


def test_duplicate_keys_are_still_refused_beside_a_merge(tmp_path: Path) -> None:
    message = _load_error(
        tmp_path,
        "llm_profiles:\n  a: &base {provider: replay}\n"
        "  b:\n    <<: *base\n    speed: 0\n    speed: 1\n",
    )
    assert "found duplicate key 'speed'" in message


@pytest.mark.parametrize(("text", "seconds"), [("1e3", 1000.0), ("1.5e3", 1500.0),
                                               ("2E+2", 200.0), ("1e300", 1e300)])  # fmt: skip
def test_exponent_floats_are_numbers(tmp_path: Path, text: str, seconds: float) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"llm_profiles:\n  r: {{provider: replay, timeout_secs: {text}}}\n")
    assert load_config(path).profiles["r"].config.timeout == seconds


@pytest.mark.parametrize(
    ("value", "needle"),
    [("[" * 3000, "nested deeper than"), ("1" * 5000, "integer too long"),
     ("{a: " * 3000 + "}" * 3000, "nested deeper than"), ("{a: 1, a: 2}", "duplicate key")],
    ids=["lists", "int", "maps", "duplicate"],
)  # fmt: skip
def test_command_line_values_fail_with_their_key(value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_yaml_value(value, path="-o speed")
    assert str(info.value).startswith("-o speed: invalid YAML")
    assert needle in str(info.value)


def test_command_line_text_that_is_not_yaml_stays_text() -> None:
    assert parse_yaml_value("[[[", path="-o model") == "[[["
    assert parse_yaml_value("a: b: c", path="-o model") == "a: b: c"
    assert parse_yaml_value("1e3", path="-o speed") == 1000.0


@pytest.mark.parametrize(
    "text",
    [
        "? [a, b]\n: 1\nllm_profiles: {r: {provider: replay}}\n",
        "llm_profiles: {? [a] : {provider: replay}}\n",
        "llm_profiles: {r: {provider: replay, ? {k: v} : 2}}\n",
        "llm_profiles: {r: {provider: replay, env: {? [A] : x}}}\n",
        "llm_profiles: {r: {provider: replay, env: {A: 1, ? {B: 2} : x}}}\n",
    ],
    ids=["top", "profile-name", "profile-key", "env-key", "env-key-after-a-hashable-one"],
)
def test_a_list_or_mapping_used_as_a_key_is_a_yaml_error(tmp_path: Path, text: str) -> None:
    """Hostile-use finding (round 5): a complex key (``? [a, b]``, ``{[a]: 1}``) anywhere in the
    file was a ``TypeError: unhashable type`` traceback from the duplicate-key check."""
    message = _load_error(tmp_path, text)
    assert "invalid YAML" in message and "found unhashable key" in message


def test_a_complex_key_on_the_command_line_is_a_yaml_error() -> None:
    with pytest.raises(ConfigError, match=r"^-o env: invalid YAML .*unhashable key"):
        parse_yaml_value("{[a]: 1}", path="-o env")


def test_a_duplicate_key_on_one_line_is_still_found(tmp_path: Path) -> None:
    message = _load_error(tmp_path, "llm_profiles: {r: {provider: replay}, r: {provider: x}}\n")
    assert "found duplicate key 'r' (first at line 1)" in message


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_a_character_yaml_refuses_is_one_line_with_its_place(tmp_path: Path, char: str) -> None:
    """Every problem is one line (docs/configuration.md): PyYAML's reader error was two, the
    second naming ``<unicode string>`` instead of the file."""
    text = _load_error(tmp_path, "llm_profiles: {a: {provider: replay}}\n" + char + "\n")
    assert "\n" not in text and "<unicode string>" not in text, text
    assert text.endswith(f"invalid YAML (character 39): unacceptable character "
                         f"#x{ord(char):04X} (special characters are not allowed)")  # fmt: skip


@pytest.mark.parametrize("key", ["provider", "description", "scaling"])
def test_a_profile_key_of_the_file_only_is_refused_on_the_command_line(key: str) -> None:
    """``-o provider=codex`` said "unknown key …; did you mean "provider"?"."""
    profile = build_profile("p", {"provider": "replay"}, path="llm_profiles.p")
    with pytest.raises(ConfigError) as info:
        override_profile(profile, {key: "codex"}, path="-o")
    text = str(info.value)
    assert text == f"-o.{key}: {key} cannot be set here, only in a profile of the config file"


def test_a_value_with_a_non_utf8_byte_reads_as_with_the_python_loader() -> None:
    """An ``-o`` value from argv may hold a lone surrogate (a byte that is not UTF-8): libyaml
    cannot take it (UnicodeEncodeError, a traceback); it reads as PyYAML reads it."""
    assert parse_yaml_value("a\udcffb", path="-o x") == "a\udcffb"
    assert parse_yaml_value("{k: a\udcffb}", path="-o x") == "{k: a\udcffb}"  # not YAML
