"""YAML key names of the config classes' fields, and problems worded by key path: what
:mod:`alice_trio.config` (loading) and :mod:`alice_trio.config_structure` (cattrs) share.

Pure functions over attrs classes; nothing here raises but the checks ``hook`` wraps
(:class:`~alice_trio.validation.InvalidValue`). No cattrs, no PyYAML: importing this module
keeps ``alice-trio run --provider NAME`` without either.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable
from typing import Any

import attrs

from . import validation as v
from .errors import ConfigError

__all__ = [
    "KEY_HINTS",
    "attrs_validator_message",
    "class_keys",
    "config_error_lines",
    "config_keys",
    "did_you_mean",
    "fields",
    "hook",
    "join",
    "text",
    "yaml_key",
]

#: a key people are likely to write → the key we use
KEY_HINTS = {
    "exec_policy": "permissions",
    "timeout": "timeout_secs",
    "idle_timeout": "idle_timeout_secs",
    "profile": "provider_profile (codex) or agent (opencode)",
    "llm_provider": "provider",
    "cwd": "workspace_dir",
    "workdir": "workspace_dir",
    "args": "extra_args",
    "codex_idle_timeout_secs": "default_idle_timeout_secs",
    "codex_high_idle_timeout_secs": "high_idle_timeout_secs",
    "codex_xhigh_idle_timeout_secs": "xhigh_idle_timeout_secs",
    "bots": "llm_profiles (alice-trio has no bots: one file is one set of profiles)",
    "default_provider": "default_profile",
}


# -- key names ----------------------------------------------------------------------------------

_DURATION_SUFFIXES = ("timeout", "grace")


def _is_float_type(t: Any) -> bool:
    return t is float or set(typing.get_args(t)) == {float, type(None)}


def _is_duration(attribute: attrs.Attribute[Any]) -> bool:
    return attribute.name.endswith(_DURATION_SUFFIXES) and _is_float_type(attribute.type)


def yaml_key(cl: type | None, attribute: attrs.Attribute[Any]) -> str:
    """The YAML key of a config class field (``exec_policy`` → ``permissions``, durations get
    ``_secs``)."""
    if attribute.name == "exec_policy":
        return "permissions"
    if cl is not None and isinstance(attribute.type, str):  # an annotation not resolved yet
        attribute = attrs.fields_dict(attrs.resolve_types(cl)).get(attribute.name, attribute)
    if _is_duration(attribute):
        return attribute.name + "_secs"
    return attribute.name


def fields(cl: type) -> tuple[attrs.Attribute[Any], ...]:
    """The fields of attrs class ``cl``, their annotations resolved."""
    resolved: tuple[attrs.Attribute[Any], ...] = attrs.fields(attrs.resolve_types(cl))
    return resolved


def config_keys(cl: type) -> list[str]:
    """Every YAML key of config class ``cl``, in field order."""
    return [yaml_key(cl, a) for a in fields(cl)]


def class_keys(cl: type) -> dict[str, str]:
    """attribute name → YAML key of an attrs class."""
    return {a.name: yaml_key(cl, a) for a in attrs.fields(cl)}


# -- problems by key path -----------------------------------------------------------------------


def join(path: str, key: str | int) -> str:
    """The key path of ``key`` under ``path`` (``a.b``, ``a[0]``; ``key`` alone at the top)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def did_you_mean(key: str, known: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean …?"`` for an unknown ``key`` (a :data:`KEY_HINTS` entry or a close
    match among ``known``), or ``""``."""
    hint = KEY_HINTS.get(key)
    if hint and hint.split(" ")[0] in known:
        return f"; did you mean {hint}?"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    if hint:
        return f"; did you mean {hint}?"
    return ""


def config_error_lines(exc: ConfigError, path: str, cl: type | None) -> list[tuple[str, str]]:
    """A config class refused a value at construction: its attribute names → YAML keys."""
    keys = class_keys(cl) if cl is not None and attrs.has(cl) else {}
    return [(join(path, keys.get(name, name)), message) for name, message in exc.errors]


def attrs_validator_message(
    exc: ValueError | TypeError, path: str, cl: type | None
) -> tuple[str, str]:
    """A config class's own attrs validator failed (``in_``, ``ge``, …)."""
    args = exc.args
    if len(args) >= 4 and isinstance(args[1], attrs.Attribute):
        attr, options, value = args[1], args[2], args[3]
        key = yaml_key(cl, attr) if cl is not None and attrs.has(cl) else attr.name
        choices = ", ".join(str(o) if o != "" else '""' for o in options)
        return join(path, key), f"{v.show(value)} is unsupported; expected one of: {choices}"
    message = str(exc)
    if message.startswith("'") and "' " in message and cl is not None and attrs.has(cl):
        name, rest = message[1:].split("' ", 1)
        keys = class_keys(cl)
        if name in keys:
            if rest.startswith("must be ") and ": " in rest:
                rest = rest.replace(": ", ", got ", 1)
            return join(path, keys[name]), rest
    return path, message


# -- structure hooks ----------------------------------------------------------------------------


def hook(check: v.Check) -> Callable[..., Any]:
    """A cattrs structure hook running a field check (see :mod:`alice_trio.validation`)."""

    def structure_hook(value: Any, _: Any = None) -> Any:
        return check(value)

    return structure_hook


#: a string value: :func:`alice_trio.validation.text` as a structure hook
text = hook(v.text)
