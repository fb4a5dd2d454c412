"""YAML data into the config classes, through cattrs, for :mod:`alice_trio.config`.

Imported on first use, not with :mod:`alice_trio.config`: a profile whose keys all name checked
fields is built by its class's constructor (see ``config._structure``), so
``alice-trio run --provider NAME`` starts without cattrs. Here every problem of a mapping is
found at once (cattrs' detailed validation) and becomes one ``(key path, message)`` line.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from . import config_fields as cf
from . import validation as v
from .errors import ConfigError

__all__ = ["converter", "flatten", "structure"]


def structure(data: Any, cl: type, path: str, errors: list[tuple[str, str]]) -> Any:
    """``data`` structured into ``cl``; None with every problem, by key path, added to
    ``errors`` when it cannot be."""
    try:
        return converter().structure(data, cl)
    except (ClassValidationError, ForbiddenExtraKeysError, v.InvalidValue) as exc:
        errors.extend(flatten(exc, path, cl))
    except ConfigError as exc:  # a check across fields, at construction
        errors.extend(cf.config_error_lines(exc, path, cl) or [(path, exc.message)])
    except (ValueError, TypeError) as exc:  # the config class's own validators
        errors.append(cf.attrs_validator_message(exc, path, cl))
    return None


def flatten(exc: BaseException, path: str, cl: type | None = None) -> list[tuple[str, str]]:
    """Turn a (nested) cattrs validation error into ``(path, message)`` lines."""
    out: list[tuple[str, str]] = []
    if isinstance(exc, ClassValidationError):
        keys = cf.class_keys(exc.cl) if attrs.has(exc.cl) else {}
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                sub_path = cf.join(path, keys.get(note.name, note.name))
                sub_cl = note.type if isinstance(note.type, type) else None
                out += flatten(sub, sub_path, sub_cl)
            else:
                out += flatten(sub, path)
        for sub in without:
            out += flatten(sub, path, exc.cl)
    elif isinstance(exc, IterableValidationError):
        item_notes, without = exc.group_exceptions()
        for sub, item_note in item_notes:
            key = item_note.index if isinstance(item_note, IterableValidationNote) else None
            sub_path = cf.join(path, key) if isinstance(key, (int, str)) else path
            out += flatten(sub, sub_path)
        for sub in without:
            out += flatten(sub, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = sorted(cf.class_keys(exc.cl).values())
        for key in sorted(exc.extra_fields):
            out.append((cf.join(path, key), "unknown key" + cf.did_you_mean(key, known)))
    elif isinstance(exc, v.InvalidValue):
        out.append((path, exc.message))
    elif isinstance(exc, ConfigError) and exc.errors:
        out += cf.config_error_lines(exc, path, cl)
    elif isinstance(exc, KeyError):
        out.append((cf.join(path, str(exc.args[0])), "required key is missing"))
    elif isinstance(exc, (ValueError, TypeError)):
        out.append(cf.attrs_validator_message(exc, path, cl))
    else:  # pragma: no cover - cattrs raises only the above
        out.append((path, str(exc)))
    return out


def _is_str_tuple(t: Any) -> bool:
    return typing.get_origin(t) is tuple and typing.get_args(t) == (str, Ellipsis)


def _is_str_map(t: Any) -> bool:
    return typing.get_origin(t) in (Mapping, dict, typing.Mapping) and typing.get_args(t) == (
        str,
        str,
    )


def _attrs_hook_factory(conv: cattrs.Converter) -> Callable[[type], Callable[[Any, Any], Any]]:
    def factory(cl: type) -> Callable[[Any, Any], Any]:
        overrides: dict[str, Any] = {}
        for a in cf.fields(cl):
            key = cf.yaml_key(cl, a)
            kw: dict[str, Any] = {}
            if key != a.name:
                kw["rename"] = key
            check = v.yaml_check_of(a)
            if check is not None:  # the class's own check: the same one as in Python
                kw["struct_hook"] = cf.hook(check)
            if kw:
                overrides[a.name] = override(**kw)
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cl, conv, _cattrs_forbid_extra_keys=True, **overrides
        )

        def hook(value: Any, t: Any) -> Any:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise v.InvalidValue(f"expected a mapping, got {v.show(value)}")
            return inner(value, t)

        return hook

    return factory


@functools.cache
def converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    # fields of third-party config classes that are not checked (not a ``config_class``)
    conv.register_structure_hook(str, cf.text)
    conv.register_structure_hook(bool, cf.hook(v.boolean))
    conv.register_structure_hook(int, cf.hook(v.integer(-(2**63))))
    conv.register_structure_hook(float, cf.hook(v.number(-float("inf"))))
    conv.register_structure_hook_func(_is_str_tuple, cf.hook(v.str_tuple))
    conv.register_structure_hook_func(_is_str_map, cf.hook(v.str_map))
    conv.register_structure_hook_factory(attrs.has, _attrs_hook_factory(conv))
    return conv
