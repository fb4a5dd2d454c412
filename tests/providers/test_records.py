"""The provider record is the one truth about what a provider can do: the drivers the registry
creates, ``alice-trio providers --json``, docs/providers.md, the README row and the e2e pins
all agree with it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from alice_trio.errors import ConfigError, UnknownProviderError
from alice_trio.models import RunRequest
from alice_trio.provider_docs import BEGIN, END, provider_info, render
from alice_trio.providers.base import CLIConfig, Invocation, Provider
from alice_trio.providers.record import (
    STEER_MODES,
    Capabilities,
    Flavor,
    SessionSpec,
    VersionCheck,
)
from alice_trio.providers.registry import BUILTIN_MODULES, get_provider
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.sessions.driver import SteerMode
from alice_trio.sessions.oneshot_driver import OneShotDriver
from alice_trio.sessions.registry import create_driver, resolve_factory
from alice_trio.validation import options_of
from import_graph import direct_imports, module_file

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "alice_trio"
CLIS = ROOT / "tests" / "e2e" / "clis"

FLAVORS = [
    (name, flavor.name)
    for name in BUILTIN_MODULES
    for flavor in get_provider(name).flavors
]  # fmt: skip


def _config(provider: Provider, flavor: str) -> CLIConfig:
    kw: dict[str, Any] = {}
    if provider.flavor_field:
        kw[provider.flavor_field] = flavor
    return provider.config_class(**kw)


def _approver(request: Any) -> Any:  # never called: the drivers are not started
    raise AssertionError("not called")


@pytest.mark.parametrize(("name", "flavor"), FLAVORS)
def test_the_created_driver_is_what_the_record_says(name: str, flavor: str) -> None:
    provider = get_provider(name)
    config = _config(provider, flavor)
    spec = provider.flavor_of(config).session
    assert provider.flavor_of(config).name == flavor
    driver = create_driver(provider, config, RunRequest(user_text=""))
    assert driver.steer_mode.value == spec.steer_mode, f"{name}/{flavor}"
    assert isinstance(driver, OneShotDriver) is (not spec.long_lived), f"{name}/{flavor}"
    # approvals: an approver is taken exactly when the record says the driver asks one
    if spec.capabilities.approvals:
        assert create_driver(provider, config, RunRequest(user_text=""), approver=_approver)
    else:
        with pytest.raises(ConfigError, match="takes no approver"):
            create_driver(provider, config, RunRequest(user_text=""), approver=_approver)
    # questions reach the caller through an approver or a reply method of the driver
    if spec.capabilities.questions:
        assert spec.capabilities.approvals or hasattr(driver, "reply_question")


def _session_invocation(driver: Any) -> Invocation | None:
    """The invocation a long-lived driver starts its process with (None: one-shot wrapper)."""
    serve = getattr(driver, "serve_invocation", None)
    if callable(serve):
        return serve()  # type: ignore[no-any-return]
    return getattr(driver, "invocation", None)


@pytest.mark.parametrize(("name", "flavor"), FLAVORS)
def test_every_process_of_a_flavor_names_the_state_dirs_of_its_record(
    name: str, flavor: str
) -> None:
    """The engine serialises first starts by ``Invocation.state`` (engine/first_start.py): the
    one-shot builder and the session driver both carry the record's ``state``, so no path
    starts the CLI unserialised and a new declaration cannot be forgotten at a builder."""
    provider = get_provider(name)
    config = _config(provider, flavor)
    state = provider.flavor_of(config).state
    request = RunRequest(user_text="hello")
    assert provider.build_invocation(request, config).state == state, f"{name}/{flavor}"
    session = _session_invocation(create_driver(provider, config, request))
    if session is not None:
        assert session.state == state, f"{name}/{flavor}"


def test_opencode_declares_its_database_dir() -> None:
    (state,) = get_provider("opencode").flavor("").state
    assert state.resolve({"HOME": "/h"}) == "/h/.local/share/opencode"
    assert state.resolve({"HOME": "/h", "XDG_DATA_HOME": "/d"}) == "/d/opencode"


def _sources(name: str, flavor: str, *, decoder: bool) -> str:
    """The source of the driver factory's module and the session/protocol modules it imports
    (transitively); for a one-shot wrapper also the provider module that builds each turn's
    argv (``decoder=False``) or decodes its output (``decoder=True``: replay's ``decode_as``)."""
    provider = get_provider(name)
    spec = provider.flavor(flavor).session
    assert isinstance(spec.factory, str)
    todo = [spec.factory.partition(":")[0]]
    if not spec.long_lived:
        config = _config(provider, flavor)
        todo.append(
            f"alice_trio.providers.{getattr(config, 'decode_as', name) if decoder else name}"
        )
    seen: set[str] = set()
    texts = []
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module)
        if path is None:
            continue
        texts.append(path.read_text())
        todo += [m for m in direct_imports(path) if m.startswith(("alice_trio.sessions.",
                                                             "alice_trio.protocols."))]  # fmt: skip
    return "\n".join(texts)


@pytest.mark.parametrize(("name", "flavor"), FLAVORS)
def test_event_capabilities_match_what_the_driver_code_emits(name: str, flavor: str) -> None:
    """``questions`` is true exactly when the session's event sources can produce ``question``
    events (flip the record with the code); ``file_changes`` holds for every session."""
    caps = get_provider(name).flavor(flavor).session.capabilities
    source = _sources(name, flavor, decoder=True)
    # every session snapshots its workspace around a turn (sessions/session.py, watch_turn)
    assert caps.file_changes, f"{name}/{flavor}"
    assert caps.questions == ("EventKind.QUESTION" in source), f"{name}/{flavor}"


@pytest.mark.parametrize(("name", "flavor"), FLAVORS)
def test_model_switch_matches_where_the_driver_reads_the_model(name: str, flavor: str) -> None:
    """A textual check: ``model_switch`` is true exactly when each turn's request model is read
    (``request.model``), not only the first request's (``initial.model``, process flags)."""
    caps = get_provider(name).flavor(flavor).session.capabilities
    assert caps.model_switch == ("request.model" in _sources(name, flavor, decoder=False))


@pytest.mark.parametrize("name", [n for n in BUILTIN_MODULES if get_provider(n).flavor_field])
def test_every_value_of_the_flavor_field_has_a_flavor(name: str) -> None:
    provider = get_provider(name)
    field = attrs.fields_dict(provider.config_class)[provider.flavor_field]
    allowed = set(options_of(field))
    assert allowed and allowed == {f.name for f in provider.flavors}


def test_kimi_default_session_queues_and_legacy_steers() -> None:
    """The defect: the record said ``native`` for kimi while its default driver (ACP) queues."""
    kimi = get_provider("kimi")
    assert kimi.flavor_of(kimi.config_class()).session.steer_mode == "queue_when_busy"
    assert kimi.flavor("legacy").session.steer_mode == "native"


def test_steer_modes_of_the_records_are_the_session_enum() -> None:
    assert list(STEER_MODES) == [m.value for m in SteerMode]


def test_registry_reads_the_flavor_from_the_config() -> None:
    gemini = get_provider("gemini")
    oneshot = resolve_factory(gemini, gemini.config_class(session_protocol="oneshot"))
    acp = resolve_factory(gemini, gemini.config_class())
    assert oneshot.__module__.endswith("oneshot_driver") and acp.__module__.endswith(".acp")


def test_third_party_provider_gets_the_same_fields_with_defaults() -> None:
    bare = attrs.evolve(REPLAY, name="thirdparty", flavors=(Flavor(),))
    flavor = bare.default_flavor
    assert flavor.session.steer_mode == "queue_when_busy" and not flavor.session.long_lived
    assert flavor.session.capabilities == Capabilities()
    assert flavor.versions.verified == () and flavor.auth.otherwise == "unknown"
    driver = create_driver(bare, REPLAY.config_class(), RunRequest(user_text=""))
    assert isinstance(driver, OneShotDriver) and driver.provider is bare
    assert provider_info(bare)["flavors"][0]["session"]["driver"].endswith(":open_oneshot_driver")


def test_third_party_session_factory_is_used() -> None:
    made: list[Any] = []

    def factory(config: Any, initial: RunRequest) -> Any:
        made.append(initial)
        return OneShotDriver(REPLAY, config)

    spec = SessionSpec(factory=factory, steer_mode="queue_when_busy")
    custom = attrs.evolve(REPLAY, name="custom", flavors=(Flavor(session=spec),))
    create_driver(custom, REPLAY.config_class(), RunRequest(user_text="x"))
    assert len(made) == 1


def test_record_validation() -> None:
    with pytest.raises(ValueError):
        SessionSpec(factory="not a reference")
    with pytest.raises(ValueError):
        SessionSpec(steer_mode="sometimes")
    with pytest.raises(ValueError):
        VersionCheck(verified=("latest",))
    with pytest.raises(ValueError):  # two flavors, nothing to choose between them
        attrs.evolve(REPLAY, flavors=(Flavor(name="a"), Flavor(name="b")))
    with pytest.raises(ValueError, match="not a config field"):
        attrs.evolve(REPLAY, flavor_field="colour", flavors=(Flavor(name="a"),))
    with pytest.raises(ConfigError, match="no flavor"):
        get_provider("kimi").flavor("modern")


def test_version_compare() -> None:
    v = VersionCheck(verified=("2.1.332", "2.1.197"))
    assert v.verified == ("2.1.197", "2.1.332") and v.newest == "2.1.332"
    assert v.parse("2.1.400 (Claude Code)") == "2.1.400"
    assert [v.compare(x) for x in ("2.1.197", "2.1.400", "2.0.9", "2.1.200", "")] == [
        "verified", "newer", "older", "unverified", "unknown",
    ]  # fmt: skip
    assert VersionCheck(pattern=r"v(?P<v>\d+\.\d+)").parse("tool v3.4 build 5.6.7") == "3.4"


# -- the generated outputs ------------------------------------------------------------------------


def test_providers_page_matches_the_records() -> None:
    text = (ROOT / "docs" / "providers.md").read_text()
    current = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert current == render().rstrip("\n"), (
        "docs/providers.md drifted from the provider records: run "
        "`python -m alice_trio.provider_docs --write docs/providers.md`"
    )


def test_providers_json_is_the_records_as_a_person_runs_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "alice_trio.cli.main", "providers", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name in BUILTIN_MODULES:
        assert rows[name] == provider_info(get_provider(name))
    assert rows["kimi"]["steer_mode"] == "queue_when_busy"
    assert [f["session"]["steer_mode"] for f in rows["kimi"]["flavors"]] == [
        "queue_when_busy", "native",
    ]  # fmt: skip
    interactive = {n: r["interactive"] for n, r in rows.items() if n in BUILTIN_MODULES}
    assert interactive == {
        "codex": True, "claude": True, "gemini": True, "kimi": True, "opencode": True,
        "replay": False,
    }  # fmt: skip


def test_readme_has_a_row_per_builtin_provider() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Providers") :]
    section = section[: section.index("\n## ")]
    rows = re.findall(r"^\| `([\w-]+)` \|", section, re.M)
    assert rows == list(BUILTIN_MODULES)
    assert "docs/providers.md" in section


def test_config_example_has_a_profile_per_builtin_provider() -> None:
    import yaml

    profiles = yaml.safe_load((ROOT / "config.example.yaml").read_text())["llm_profiles"]
    assert {p["provider"] for p in profiles.values()} == set(BUILTIN_MODULES)


def _pins() -> dict[str, str]:
    """``"npm <package>"`` / ``"pypi <package>"`` → pinned version, from tests/e2e/clis/."""
    pins: dict[str, str] = {}
    for manifest in (CLIS / "package.json", CLIS / "kimi-code" / "package.json"):
        for pkg, version in json.loads(manifest.read_text())["dependencies"].items():
            pins[f"npm {pkg}"] = version
    for line in (CLIS / "requirements-kimi-legacy.txt").read_text().splitlines():
        pkg, sep, version = line.strip().partition("==")
        if sep:
            pins[f"pypi {pkg}"] = version
    return pins


def test_newest_verified_version_is_the_e2e_pin() -> None:
    """Bumping a pin in tests/e2e/clis/ means the record's verified versions follow."""
    sources = {
        f.versions.source: f.versions
        for name in BUILTIN_MODULES
        for f in get_provider(name).flavors
        if f.versions.source
    }
    pins = _pins()
    assert set(sources) == set(pins)
    for source, versions in sources.items():
        assert versions.newest == pins[source], source


# -- third-party providers through entry points ---------------------------------------------------


class _EntryPoint:
    def __init__(self, name: str, value: str, load: Any) -> None:
        self.name, self.value, self._load = name, value, load

    def load(self) -> Any:
        return self._load()


def test_a_broken_entry_point_does_not_break_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from alice_trio.cli.doctor import default_targets
    from alice_trio.cli.main import main
    from alice_trio.providers import registry

    good = attrs.evolve(REPLAY, name="thirdgood", flavors=(Flavor(),))

    def fails() -> Any:
        raise ImportError("No module named 'missing_dep'")

    eps = [
        _EntryPoint("thirdbroken", "thirdbroken.mod:PROVIDER", fails),
        _EntryPoint("thirdwrong", "thirdwrong.mod:PROVIDER", lambda: object()),
        _EntryPoint("thirdgood", "thirdgood.mod:PROVIDER", lambda: good),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_broken", {})
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))
    names = registry.provider_names()
    assert {"thirdbroken", "thirdwrong", "thirdgood", "codex"} <= set(names)
    assert registry.get_provider("thirdgood") is good
    with pytest.raises(ConfigError, match="could not be loaded: ImportError: No module named"):
        registry.get_provider("thirdbroken")
    with pytest.raises(ConfigError, match="is not a Provider"):
        registry.get_provider("thirdwrong")
    assert main(["providers", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert "could not be loaded" in rows["thirdbroken"]["error"]
    assert rows["thirdgood"]["steer_mode"] == "queue_when_busy"
    assert rows["thirdgood"]["interactive"] is False
    assert "thirdgood" in {t.name for t in default_targets()}


def test_an_entry_point_cannot_end_the_process_rename_or_shadow_a_built_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hostile-use finding (round 11): a plugin calling ``sys.exit`` at import ended every
    lookup of a name that is not built in (``alice-trio run --provider nosuch`` printed the
    plugin's message, exit 1); an entry point ``foo`` whose provider is named ``bar`` was
    reachable only as ``bar``; and a plugin named ``codex`` replaced the built-in codex when
    a non-built-in name happened to be looked up first — a renamed replay then decoded as
    itself, a ``RecursionError``."""
    from alice_trio.providers import registry

    def exits() -> Any:
        raise SystemExit("a plugin that exits at import")

    impostor = attrs.evolve(REPLAY, name="codex", flavors=(Flavor(),))
    renamed = attrs.evolve(REPLAY, name="bar", flavors=(Flavor(),))
    good = attrs.evolve(REPLAY, name="thirdgood", flavors=(Flavor(),))
    eps = [
        _EntryPoint("thirdexit", "thirdexit.mod:PROVIDER", exits),
        _EntryPoint("codex", "evil.mod:PROVIDER", lambda: impostor),
        _EntryPoint("foo", "foo.mod:PROVIDER", lambda: renamed),
        _EntryPoint("sneaky", "sneaky.mod:PROVIDER", lambda: impostor),
        _EntryPoint("thirdgood", "thirdgood.mod:PROVIDER", lambda: good),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry, "_broken", {})
    builtins = {k: v for k, v in registry._registry.items() if k in registry.BUILTIN_MODULES}
    monkeypatch.setattr(registry, "_registry", {})  # nothing looked up yet: as a fresh process
    with pytest.raises(UnknownProviderError):
        registry.get_provider("nosuch")  # loads every entry point first
    assert registry.get_provider("thirdgood") is good
    with pytest.raises(ConfigError, match="SystemExit: a plugin that exits at import"):
        registry.get_provider("thirdexit")
    with pytest.raises(ConfigError, match="an entry point's name must be its provider's name"):
        registry.get_provider("foo")
    with pytest.raises(ConfigError, match="provider 'codex'"):
        registry.get_provider("sneaky")
    assert "bar" not in registry.provider_names()
    codex = registry.get_provider("codex")
    assert codex is not impostor and codex.description == builtins.get("codex", codex).description
    assert codex.build_invocation.__module__ == "alice_trio.providers.codex"
