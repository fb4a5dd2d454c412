"""The one set of field checks of the config and request classes, for YAML and Python alike.

Pure (no I/O, no trio). A *check* is a function ``value -> normalized value`` that raises
:class:`InvalidValue` (message without the key) for a bad value; checks are idempotent, so a
value they produced passes again unchanged. :func:`checked_fields` is an attrs
``field_transformer``: every field of a class decorated with
``@attrs.frozen(kw_only=True, field_transformer=checked_fields)`` gets the check of its declared
type (or the one given with ``metadata=meta(check)``) as an attrs converter, and keeps it in its
metadata, where :mod:`alice_trio.config` finds it to structure YAML. So

* ``CodexConfig(extra_args="--verbose")`` raises :class:`~alice_trio.errors.ConfigError`
  ``extra_args: expected a list of strings, got "--verbose"``;
* the same value in a YAML profile gives ``llm_profiles.chat.extra_args: expected a list of
  strings, got "--verbose"`` (the key path in YAML spelling, e.g. ``timeout_secs``).

An error raised from Python construction is a :class:`~alice_trio.errors.ConfigError` (also a
``ValueError``) whose ``errors`` holds one ``(attribute name, message)`` pair.

Numbers: ``nan`` and ``±inf`` are never accepted (a non-finite timeout or limit would crash or
hang every run); counts and durations are ``>= 0`` unless a field says more (``> 0``).
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .safejson import scrub_surrogates

__all__ = [
    "Check",
    "InvalidValue",
    "boolean",
    "callback",
    "checked_at_construction",
    "checked_fields",
    "choice",
    "env_key",
    "env_map",
    "env_value",
    "instance",
    "integer",
    "lower_text",
    "meta",
    "number",
    "path_text",
    "paths",
    "seconds",
    "show",
    "str_map",
    "str_tuple",
    "text",
    "unicode_text",
    "yaml_check_of",
]

Check = Callable[[Any], Any]
CHECK = "check"
#: the field holds a structured value (an attrs class): YAML goes through cattrs' class hooks,
#: the check only runs on Python construction
NESTED = "nested"
_DONE = "alice_checked"


def meta(check: Check | None, *, nested: bool = False) -> dict[str, Any]:
    """Field metadata giving a field ``check`` instead of the one of its type:
    ``attrs.field(default="", metadata=meta(choice(...)))``; ``nested``: see :data:`NESTED`."""
    return {CHECK: check, NESTED: nested}


class InvalidValue(ValueError):
    """A bad value: ``message`` is the text after ``<key path>: ``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def show(value: Any, *, secret: bool = False) -> str:
    """A short rendering of a bad value for an error message (``secret``: its type only)."""
    if secret:
        return f"a {type(value).__name__}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return json.dumps(shown, ensure_ascii=False)  # quoted, control characters escaped
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


# -- scalar checks ---------------------------------------------------------------------------


def unicode_text(value: Any) -> str:
    """A string as given, with lone surrogates replaced by U+FFFD (``None`` is ``""``): what
    reaches a CLI's stdin, argv or a JSON message always encodes as UTF-8."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"expected a string, got {show(value)}")
    return scrub_surrogates(value)


def text(value: Any) -> str:
    """A string, trimmed (``None`` is ``""``; lone surrogates become U+FFFD), without NUL bytes:
    every such setting ends up in an argv element, an env value or a path, which cannot carry
    one. (The prompt, :func:`unicode_text`, may: it goes to stdin or is checked where it goes
    into argv.)"""
    result = unicode_text(value).strip()
    if "\x00" in result:
        raise InvalidValue("must not contain a NUL byte")
    return result


def lower_text(value: Any) -> str:
    return text(value).lower()


def path_text(value: Any) -> str:
    """A path: a string or an ``os.PathLike`` (``pathlib.Path``), as a trimmed string. A name
    that is not valid UTF-8 (``--cwd`` of a directory named in Latin-1: argv's surrogate
    escapes) is refused as such — made U+FFFD it named another, missing, path."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes):
            raise InvalidValue("expected a path as text, got a bytes path")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a file name byte from argv (surrogateescape)
            code = ord(value[exc.start])
            what = (
                f"byte \\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "a lone surrogate"
            )
            raise InvalidValue(
                f"the name is not valid UTF-8 ({what} at character {exc.start + 1}), so it "
                "cannot be passed to the agent CLIs (their arguments and JSON protocols are text)"
            ) from None
    return text(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"expected true or false, got {show(value)}")
    return value


def integer(minimum: int = 0, *, strict: bool = False, maximum: int | None = None) -> Check:
    """An integer ``>= minimum`` (``> minimum`` when ``strict``), ``<= maximum`` when given."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"expected an integer, got {show(value)}")
        if value < minimum or (strict and value == minimum):
            raise InvalidValue(f"must be {'>' if strict else '>='} {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise InvalidValue(f"must be <= {maximum}, got {value}")
        return value

    return check


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"expected {what}, got {show(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidValue(f"expected a finite {what.removeprefix('a ')}, got {show(value)}")
    return number


def number(minimum: float = 0.0) -> Check:
    """A finite number ``>= minimum``, as a float."""

    def check(value: Any) -> float:
        result = _finite(value, "a number")
        if result < minimum:
            raise InvalidValue(f"must be >= {minimum:g}, got {show(value)}")
        return result

    return check


def seconds(
    *, optional: bool = False, negative: float | None = None, maximum: float | None = None
) -> Check:
    """A finite duration in seconds (``None`` allowed when ``optional``), at most ``maximum``
    when given. A negative value is an error, or stands for ``negative`` when one is given
    (``timeout`` <= 0 means 48 h)."""

    def check(value: Any) -> float | None:
        if value is None and optional:
            return None
        what = "a number of seconds" + (" or null" if optional else "")
        result = _finite(value, what)
        if negative is not None and result <= 0:
            return negative
        if result < 0:
            raise InvalidValue(f"expected a number of seconds >= 0, got {show(value)}")
        if maximum is not None and result > maximum:
            raise InvalidValue(f"must be at most {maximum:g} seconds, got {show(value)}")
        return result

    return check


def choice(values: Iterable[str], *, empty: bool = False, lower: bool = True) -> Check:
    """One of ``values`` (``""`` too when ``empty``), trimmed and lower-cased."""
    allowed = tuple(values)

    def check(value: Any) -> str:
        result = lower_text(value) if lower else text(value)
        if (result or not empty) and result not in allowed:
            shown = ", ".join(v or '""' for v in allowed)
            raise InvalidValue(f"{show(result)} is unsupported; expected one of: {shown}")
        return result

    check.options = allowed  # type: ignore[attr-defined]  # the choices, for docs and tests
    return check


def options_of(field: attrs.Attribute[Any]) -> tuple[str, ...]:
    """The values a :func:`choice` field accepts (``()`` for any other field)."""
    return tuple(getattr(field.metadata.get(CHECK), "options", ()))


# -- collections -----------------------------------------------------------------------------


def _items(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise InvalidValue(f"expected {what}, got {show(value)}")
    return list(value)


def str_tuple(value: Any) -> tuple[str, ...]:
    """A list of strings (a bare string is an error: ``"--verbose"`` is not
    ``("-", "-", "v", …)``), each trimmed."""
    out = []
    for i, item in enumerate(_items(value, "a list of strings")):
        if not isinstance(item, str):
            raise InvalidValue(f"expected a list of strings, item {i} is {show(item)}")
        out.append(item.strip())
    return tuple(out)


def paths(value: Any) -> tuple[str, ...]:
    """A list of paths (strings or ``PathLike``): trimmed, empties dropped, de-duplicated
    keeping the first spelling and order."""
    out: list[str] = []
    for i, item in enumerate(_items(value, "a list of paths")):
        try:
            s = path_text(item)
        except InvalidValue as exc:
            raise InvalidValue(f"item {i}: {exc.message}") from None
        if s and s not in out:
            out.append(s)
    return tuple(out)


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    if value is None:
        return ""
    return None


def str_map(value: Any) -> dict[str, str]:
    """A mapping of names to strings (numbers and booleans are written out)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping of names to strings, got {show(value)}")
    out: dict[str, str] = {}
    for k, v in value.items():
        scalar = _scalar_text(v)
        if scalar is None:
            raise InvalidValue(f"expected a mapping of names to strings, {k!s} is {show(v)}")
        out[str(k).strip()] = scalar
    return out


def env_key(key: Any) -> str:
    """An environment variable name: not empty, no ``=``, no NUL."""
    name = str(key).strip() if key is not None else ""
    if not name:
        raise InvalidValue("env key must not be empty")
    if "=" in name:
        raise InvalidValue(f"env key \"{name}\" must not contain '='")
    if "\x00" in name:
        raise InvalidValue("env key must not contain a NUL byte")
    return name


def env_value(value: Any) -> str:
    """An environment value (a scalar, written out); never shown in a message."""
    scalar = _scalar_text(value)
    if scalar is None:
        raise InvalidValue(f"expected a string, got {show(value, secret=True)}")
    if "\x00" in scalar:
        raise InvalidValue("an env value must not contain a NUL byte")
    return scalar


def env_map(value: Any) -> dict[str, str]:
    """An env mapping: :func:`env_key` names, :func:`env_value` values (shown by key only)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValue(f"expected a mapping of variable names to values, got {show(value)}")
    out: dict[str, str] = {}
    for k, v in value.items():
        name = env_key(k)
        try:
            out[name] = env_value(v)
        except InvalidValue as exc:
            raise InvalidValue(f"{name}: {exc.message}") from None
    return out


def instance(cls: type, what: str, *, optional: bool = False) -> Check:
    """An instance of ``cls`` (``None`` too when ``optional``)."""

    def check(value: Any) -> Any:
        if not (isinstance(value, cls) or (optional and value is None)):
            raise InvalidValue(f"expected {what}, got {show(value)}")
        return value

    return check


def callback(value: Any) -> Any:
    """A callable or ``None`` — not a generator function (sync or async): calling one only
    makes a generator, so its body would never run and every event would vanish silently."""
    if value is not None and not callable(value):
        raise InvalidValue(f"expected a function or None, got {show(value)}")
    if inspect.isasyncgenfunction(value) or inspect.isgeneratorfunction(value):
        kind = "an async generator" if inspect.isasyncgenfunction(value) else "a generator"
        raise InvalidValue(
            f"expected a function or None, got {kind} function (a `yield` in its body: "
            "calling it would never run it)"
        )
    return value


# -- attrs integration -------------------------------------------------------------------------

_BY_TYPE: dict[str, Check] = {
    "str": text,
    "bool": boolean,
    "int": integer(0),
    "float": number(0.0),
    "tuple[str,...]": str_tuple,
    "Mapping[str,str]": str_map,
    "dict[str,str]": str_map,
}
_DURATION_SUFFIXES = ("timeout", "grace")


def _type_name(t: Any) -> str:
    if isinstance(t, str):
        return t.replace(" ", "")
    return getattr(t, "__name__", repr(t)).replace(" ", "")


def _default_check(a: attrs.Attribute[Any]) -> Check | None:
    name = _type_name(a.type)
    if a.name.endswith(_DURATION_SUFFIXES) and name in ("float", "float|None", "None|float"):
        return seconds(optional=name != "float")
    return _BY_TYPE.get(name)


def _raise_for(name: str, exc: InvalidValue) -> Any:
    from .errors import ConfigError  # errors imports models, which uses this module

    err = ConfigError(f"{name}: {exc.message}", errors=((name, exc.message),))
    raise err from None


def _converter(check: Check, inner: Any) -> attrs.Converter[Any, Any]:
    def convert(value: Any, field: attrs.Attribute[Any]) -> Any:
        try:
            value = check(value)
        except InvalidValue as exc:
            _raise_for(field.name, exc)
        if inner is not None:
            value = inner(value)
        return value

    return attrs.Converter(convert, takes_field=True)


def checked_fields(cls: type, fields: list[attrs.Attribute[Any]]) -> list[attrs.Attribute[Any]]:
    """attrs ``field_transformer``: give each field its check (see the module docstring).

    A field's own ``converter`` (if any) runs *after* the check, on the checked value; a field
    with ``metadata={"check": None}`` is left alone."""
    out = []
    for a in fields:
        if CHECK in a.metadata:
            check = a.metadata[CHECK]
        else:
            check = _default_check(a)
        if check is None or a.metadata.get(_DONE):  # unchecked, or inherited and done
            out.append(a)
            continue
        conv = _converter(check, a.converter)
        out.append(a.evolve(converter=conv, metadata={**a.metadata, CHECK: check, _DONE: True}))
    return out


def checked_at_construction(a: attrs.Attribute[Any]) -> bool:
    """Whether field ``a`` runs its check (the one that structures its YAML value) as a
    converter when its class is constructed: given by :func:`checked_fields`, not nested."""
    return bool(a.metadata.get(_DONE)) and yaml_check_of(a) is not None


def yaml_check_of(a: attrs.Attribute[Any]) -> Check | None:
    """The check that structures a YAML value of field ``a`` (``None``: cattrs' own hooks)."""
    if a.metadata.get(NESTED):
        return None
    check: Check | None = a.metadata.get(CHECK)
    return check
