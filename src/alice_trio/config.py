"""The YAML configuration: profiles that name a provider and its settings.

File shape (a deliberately simpler shape than Alice's multi-bot one; see docs/configuration.md)::

    default_profile: chat            # required when there are several profiles
    env: {HTTPS_PROXY: "..."}        # passed to every CLI (a profile's env wins)
    workspace_dir: ""                # default cwd of every CLI (a profile's wins)
    auth_status_timeout_secs: 15     # `alice-trio doctor` checks
    llm_profiles:
      chat:
        provider: codex              # required: there is no implicit default provider
        model: gpt-5.4-mini
        timeout_secs: 600
        ...                          # any key of the provider's config class

Loading is YAML (safe loader, duplicate keys rejected) → normalization (spec §10.2) → cattrs into
the provider's config class, found through the registry (``Provider.config_class``), with unknown
keys forbidden. Every problem becomes one line ``<key path>: <what was expected>, got <value>``
(with a did-you-mean for unknown keys, and the known providers for an unknown one); all lines of
one file are raised together as one :class:`~alice_trio.errors.ConfigError` whose ``errors``
holds ``(path, message)`` pairs. Env *values* never appear in messages.

YAML keys are the config classes' field names, except that ``exec_policy`` is ``permissions``
and a duration field (``timeout``, ``idle_timeout``, ``kill_grace``, …) is ``<name>_secs``.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from . import config_fields as cf
from . import validation as v
from .boundedio import read_bounded
from .config_fields import config_keys, yaml_key
from .errors import ConfigError, UnknownProviderError
from .providers.base import CLIConfig, Provider
from .providers.registry import get_provider, normalize_name, provider_names
from .sessions.scaling import ScalingConfig

# PyYAML and cattrs are not imported here but on first use, from the two modules that hold
# what needs them: :mod:`.config_yaml` (a file or a ``-o`` value to read) and
# :mod:`.config_structure` (a profile with settings the config class's constructor does not
# structure alone, see :func:`_structure`, and every error message). ``alice-trio run
# --provider NAME`` starts without either (~40 ms).

__all__ = [
    "DEFAULT_AUTH_STATUS_TIMEOUT",
    "AppConfig",
    "ProfileConfig",
    "build_profile",
    "config_keys",
    "load_config",
    "override_profile",
    "parse_config",
    "parse_yaml_value",
    "yaml_key",
]

DEFAULT_AUTH_STATUS_TIMEOUT = 15.0
#: profile keys that are not fields of the provider's config class
PROFILE_META_KEYS = ("provider", "description", "scaling")
TOP_LEVEL_KEYS = ("default_profile", "env", "workspace_dir", "auth_status_timeout_secs",
                  "llm_profiles")  # fmt: skip


# -- errors -------------------------------------------------------------------------------------


_Invalid = v.InvalidValue
_show = v.show


def _raise(errors: list[tuple[str, str]], source: str = "") -> typing.NoReturn:
    lines = [f"{p}: {m}" if p else m for p, m in errors]
    err = ConfigError("\n".join(lines))
    err.errors = tuple(errors)
    err.source = source  # type: ignore[attr-defined]
    raise err


# -- the model ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProfileConfig:
    """One resolved profile: its provider and a complete provider config (env and workspace
    dir already merged with the file's top-level ones)."""

    name: str
    provider: str
    config: CLIConfig
    description: str = ""
    #: the profile's ``scaling:`` mapping (shared processes, warm pool, admission bounds)
    scaling: ScalingConfig = ScalingConfig()

    def resolve(self) -> tuple[Provider, CLIConfig]:
        return get_provider(self.provider), self.config


@attrs.frozen(kw_only=True)
class AppConfig:
    """A loaded configuration: named profiles and the default one.

    ``default_profile`` is "" only when there is no profile at all. ``source`` is the file it
    came from ("" when built in code).
    """

    profiles: Mapping[str, ProfileConfig] = attrs.field(factory=dict)
    default_profile: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict)
    workspace_dir: str = ""
    auth_status_timeout: float = DEFAULT_AUTH_STATUS_TIMEOUT
    source: str = ""

    def get(self, name: str = "") -> ProfileConfig:
        """The profile called ``name`` (trimmed, case-insensitive; "" = the default). Raises
        :class:`ConfigError` naming the configured profiles when there is none such."""
        key = normalize_name(name) or self.default_profile
        if not key:
            raise ConfigError("no profile is configured (llm_profiles is empty)")
        if key not in self.profiles:
            known = list(self.profiles)
            raise ConfigError(
                f'unknown profile "{key}"; configured profiles: {", ".join(known)}'
                + cf.did_you_mean(key, known)
            )
        return self.profiles[key]

    def profile(self, name: str = "") -> tuple[Provider, CLIConfig]:
        """``(provider, config)`` of profile ``name`` ("" = the default profile)."""
        return self.get(name).resolve()


# -- loading ------------------------------------------------------------------------------------


#: the largest config file read (a bigger one, or ``/dev/zero``, is a ConfigError)
MAX_CONFIG_BYTES = 4 << 20
#: the deepest nesting of mappings and sequences a config document (or ``-o`` value) may have
MAX_YAML_DEPTH = 64
#: the most values (scalars, lists, mappings) a config document (or ``-o`` value) may hold: a
#: real config holds hundreds; a 4 MiB file of ``[{},{},…]`` holds a million and cost a minute
#: and a gigabyte to build before its error
MAX_YAML_NODES = 100_000


def parse_yaml_value(text: str, *, path: str) -> Any:
    """A YAML value given on the command line (``-o KEY=VALUE``), read as a config file is
    (:mod:`.config_yaml`). Text that is not YAML at all stays a string; a value that is YAML
    but cannot be built (nested too deeply, an integer too long, a duplicate key) raises
    :class:`ConfigError` naming ``path``."""
    from . import config_yaml  # on first use (see the top of this module)

    try:
        return config_yaml.load(text)
    except config_yaml.UNBUILDABLE as exc:
        _raise([(path, config_yaml.problem(exc))])
    except config_yaml.YAMLError:
        return text
    except (RecursionError, MemoryError):
        _raise([(path, "the value is too large or nested too deeply")])


def _env(raw: Any, path: str, errors: list[tuple[str, str]]) -> dict[str, str]:
    """Validate and normalize an ``env`` mapping (keys trimmed, case kept; values trimmed;
    empty values dropped). Values are never shown in messages."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append((path, f"expected a mapping of variable names to values, got {_show(raw)}"))
        return {}
    out: dict[str, str] = {}
    for k, value in raw.items():
        try:
            key = v.env_key(k)
        except _Invalid as exc:
            errors.append((path, exc.message))
            continue
        try:
            text = v.env_value(value)
        except _Invalid as exc:
            errors.append((cf.join(path, key), exc.message))
            continue
        if text:
            out[key] = text
    return out


def build_profile(
    name: str,
    raw: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    workspace_dir: str = "",
    path: str = "",
) -> ProfileConfig:
    """Structure one profile mapping (``provider`` + the provider's config keys) into a
    :class:`ProfileConfig`. ``env``/``workspace_dir`` are the file-level defaults under the
    profile's own. Raises :class:`ConfigError` listing every problem with its key path."""
    errors: list[tuple[str, str]] = []
    profile = _build_profile(name, raw, env or {}, workspace_dir, path or name, errors)
    if errors or profile is None:
        _raise(errors)
    return profile


def _build_profile(
    name: str,
    raw: Any,
    top_env: Mapping[str, str],
    top_workspace: str,
    path: str,
    errors: list[tuple[str, str]],
) -> ProfileConfig | None:
    if not isinstance(raw, dict):
        errors.append((path, f"expected a mapping of profile settings, got {_show(raw)}"))
        return None
    data = dict(raw)
    provider_raw = data.pop("provider", None)
    description = data.pop("description", "")
    scaling = _scaling(data.pop("scaling", None), cf.join(path, "scaling"), errors)
    if provider_raw is None or (isinstance(provider_raw, str) and not provider_raw.strip()):
        known = provider_names()
        errors.append((cf.join(path, "provider"), f"required; known providers: {', '.join(known)}"))
        return None
    if not isinstance(provider_raw, str):
        errors.append((cf.join(path, "provider"), f"expected a string, got {_show(provider_raw)}"))
        return None
    provider_name = normalize_name(provider_raw)
    try:
        provider = get_provider(provider_name)
    except UnknownProviderError:
        known = provider_names()
        close = difflib.get_close_matches(provider_name, known, n=1, cutoff=0.6)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        errors.append(
            (
                cf.join(path, "provider"),
                f'unsupported provider "{provider_name}"; known providers: '
                f"{', '.join(known)}{hint}",
            )
        )
        return None
    if not isinstance(description, str):
        what = f"expected a string, got {_show(description)}"
        errors.append((cf.join(path, "description"), what))
        description = ""
    cl = provider.config_class
    keys = config_keys(cl)
    n_errors = len(errors)
    # unknown keys first, with a provider-aware hint
    for key in list(data):
        if key not in keys:
            errors.append((cf.join(path, str(key)), _unknown_profile_key(str(key), provider, keys)))
            del data[key]
    profile_env = _env(data.pop("env", None), cf.join(path, "env"), errors)
    data["env"] = {**top_env, **profile_env}
    if "workspace_dir" not in data and top_workspace:
        data["workspace_dir"] = top_workspace
    config = _structure(data, cl, path, errors)
    if config is None or len(errors) > n_errors:
        return None
    return ProfileConfig(
        name=name, provider=provider.name, config=config, description=description.strip(),
        scaling=scaling,
    )  # fmt: skip


def _scaling(raw: Any, path: str, errors: list[tuple[str, str]]) -> ScalingConfig:
    """A profile's ``scaling:`` mapping (absent: the defaults)."""
    scaling = _structure(raw or {}, ScalingConfig, path, errors)
    return ScalingConfig() if scaling is None else scaling


_T = TypeVar("_T")


def _structure(data: Any, cl: type[_T], path: str, errors: list[tuple[str, str]]) -> _T | None:
    """``data`` (a mapping of YAML keys) structured into ``cl``, or None with every problem,
    by key path, added to ``errors``.

    When every key names a field that ``cl`` checks at construction (the fields
    :func:`~alice_trio.validation.checked_fields` gave their check), ``cl``'s constructor alone
    builds the object cattrs would: the same checks run, as its converters (they are
    idempotent), and the other fields keep their defaults — without importing cattrs. Other
    data, and any data the constructor refuses, goes through cattrs
    (:mod:`.config_structure`), which says what is wrong, every problem with its key path."""
    kwargs = _constructor_kwargs(data, cl)
    if kwargs is not None:
        try:
            return cl(**kwargs)
        except (ConfigError, ValueError, TypeError):
            pass  # cattrs words the problems
    from . import config_structure  # on first use (see the top of this module)

    structured: _T | None = config_structure.structure(data, cl, path, errors)
    return structured


def _constructor_kwargs(data: Any, cl: type) -> dict[str, Any] | None:
    """``data``'s keys as ``cl``'s attribute names, or None unless each names a field that
    ``cl`` checks at construction (see :func:`_structure`)."""
    if type(data) is not dict or not attrs.has(cl):
        return None
    field_of = {yaml_key(cl, a): a for a in cf.fields(cl)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        a = field_of.get(key)
        if a is None or not v.checked_at_construction(a):
            return None
        kwargs[a.name] = value
    return kwargs


def override_profile(
    profile: ProfileConfig, raw: Mapping[str, Any], *, path: str = ""
) -> ProfileConfig:
    """``profile`` with the keys of ``raw`` (YAML keys of its provider's config class, validated
    like a file) replaced; ``env`` is merged over the profile's env. Used for command-line
    overrides (``alice-trio run -o KEY=VALUE``). Raises :class:`ConfigError`."""
    provider = get_provider(profile.provider)
    cl = provider.config_class
    keys = config_keys(cl)
    errors: list[tuple[str, str]] = []
    data = dict(raw)
    for key in list(data):
        if key in PROFILE_META_KEYS and key not in keys:
            # not a setting of the provider: it picks the provider or scales its sessions
            what = f"{key} cannot be set here, only in a profile of the config file"
            errors.append((cf.join(path, str(key)), what))
            del data[key]
        elif key not in keys:
            errors.append((cf.join(path, str(key)), _unknown_profile_key(str(key), provider, keys)))
            del data[key]
    if "env" in data:
        data["env"] = {**profile.config.env, **_env(data["env"], cf.join(path, "env"), errors)}
    partial = _structure(data, cl, path, errors)
    if errors or partial is None:
        _raise(errors)
    by_key = {yaml_key(cl, a): a.name for a in cf.fields(cl)}
    changes = {by_key[k]: getattr(partial, by_key[k]) for k in data}
    return attrs.evolve(profile, config=attrs.evolve(profile.config, **changes))


def _unknown_profile_key(key: str, provider: Provider, keys: list[str]) -> str:
    owners = []
    for other in provider_names():
        if other == provider.name:
            continue
        try:
            other_keys = config_keys(get_provider(other).config_class)
        except Exception:  # a broken third-party provider must not hide this error
            continue
        if key in other_keys:
            owners.append(other)
    msg = f'unknown key for provider "{provider.name}"'
    if owners:
        return msg + f" (it is a key of {', '.join(owners)})"
    return msg + cf.did_you_mean(key, [*PROFILE_META_KEYS, *keys])


def parse_config(data: Any, *, source: str = "") -> AppConfig:
    """Validate an already-parsed YAML document and build the :class:`AppConfig`. Raises
    :class:`ConfigError` (also for data nested too deeply to walk)."""
    try:
        return _parse_config(data, source)
    except RecursionError:
        _raise([("", "the configuration is nested too deeply")], source)


def _parse_config(data: Any, source: str) -> AppConfig:
    errors: list[tuple[str, str]] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _raise([("", f"expected a mapping at the top level, got {_show(data)}")], source)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            errors.append((str(key), "unknown key" + cf.did_you_mean(str(key), TOP_LEVEL_KEYS)))
    env = _env(data.get("env"), "env", errors)
    workspace_dir = ""
    try:
        workspace_dir = v.path_text(data.get("workspace_dir"))
    except _Invalid as exc:
        errors.append(("workspace_dir", exc.message))
    auth_timeout = DEFAULT_AUTH_STATUS_TIMEOUT
    raw_auth = data.get("auth_status_timeout_secs")
    if raw_auth is not None:
        try:
            auth_timeout = float(v.seconds()(raw_auth) or 0.0)
            if auth_timeout <= 0:
                errors.append(("auth_status_timeout_secs", "auth_status_timeout_secs must be > 0"))
        except _Invalid as exc:
            errors.append(("auth_status_timeout_secs", exc.message))

    profiles: dict[str, ProfileConfig] = {}
    raw_profiles = data.get("llm_profiles")
    if raw_profiles is None or raw_profiles == {}:
        errors.append(("llm_profiles", "required: define at least one profile, e.g. "
                       "llm_profiles: {chat: {provider: codex}}"))  # fmt: skip
        raw_profiles = {}
    if not isinstance(raw_profiles, dict):
        what = _show(raw_profiles)
        errors.append(("llm_profiles", f"expected a mapping of profile names, got {what}"))
        raw_profiles = {}
    seen: dict[str, str] = {}
    for raw_name, raw_profile in raw_profiles.items():
        name = normalize_name(str(raw_name)) if raw_name is not None else ""
        if not name:
            errors.append(("llm_profiles", "a profile name must not be empty"))
            continue
        if name in seen:
            errors.append(
                (f"llm_profiles.{raw_name}",
                 f'duplicate profile: "{seen[name]}" and "{raw_name}" are both "{name}"')
            )  # fmt: skip
            continue
        seen[name] = str(raw_name)
        profile = _build_profile(
            name, raw_profile, env, workspace_dir, f"llm_profiles.{raw_name}", errors
        )
        if profile is not None:
            profiles[name] = profile

    default = ""
    raw_default = data.get("default_profile")
    try:
        default = normalize_name(cf.text(raw_default))
    except _Invalid as exc:
        errors.append(("default_profile", exc.message))
    names = list(seen)
    if default and default not in seen:
        errors.append(
            ("default_profile",
             f'"{default}" is not a profile; profiles: {", ".join(names) or "(none)"}'
             + cf.did_you_mean(default, names))
        )  # fmt: skip
    elif not default and len(seen) > 1:
        errors.append(
            ("default_profile",
             f"required when several profiles are configured (profiles: {', '.join(names)})")
        )  # fmt: skip
    elif not default and len(seen) == 1:
        default = names[0]
    if errors:
        _raise(errors, source)
    return AppConfig(
        profiles=profiles,
        default_profile=default,
        env=env,
        workspace_dir=workspace_dir,
        auth_status_timeout=auth_timeout,
        source=source,
    )


def load_config(path: str | os.PathLike[str]) -> AppConfig:
    """Read, validate and resolve the YAML file at ``path``.

    Raises :class:`ConfigError`: the file is unreadable, is not valid YAML (line and column
    given), or has invalid settings (every problem listed, one ``<key path>: ...`` per line).
    """
    source = os.fspath(path)
    try:
        text = read_bounded(source, MAX_CONFIG_BYTES).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {source} is not UTF-8 text") from exc
    if not text.strip():
        err = ConfigError(
            "empty config file: it must define llm_profiles (see docs/configuration.md)"
        )
        err.source = source  # type: ignore[attr-defined]
        raise err
    from . import config_yaml  # on first use (see the top of this module)

    try:
        data = config_yaml.load(text)
    except config_yaml.YAMLError as exc:
        err = ConfigError(f"{source}: {config_yaml.problem(exc)}")
        err.source = source  # type: ignore[attr-defined]
        raise err from exc
    except (RecursionError, MemoryError) as exc:
        err = ConfigError(f"{source}: invalid YAML: too large or nested too deeply")
        err.source = source  # type: ignore[attr-defined]
        raise err from exc
    return parse_config(data, source=source)
