"""Reading YAML for :mod:`alice_trio.config`: PyYAML's safe loader, made strict; its events
come from libyaml (C) when PyYAML has it.

Imported on first use (a config file or a ``-o KEY=VALUE`` value to read), not with
:mod:`alice_trio.config`: ``alice-trio run --provider NAME`` starts without PyYAML.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .config import MAX_YAML_DEPTH, MAX_YAML_NODES

__all__ = ["UNBUILDABLE", "YAMLError", "load", "problem"]

YAMLError = yaml.YAMLError

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: YAML 1.2 floats PyYAML's 1.1 resolver reads as strings: ``1e300``, ``1.5e3`` (no sign or
#: no dot before the exponent)
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _TooDeep(yaml.composer.ComposerError):
    """A document nested deeper than :data:`MAX_YAML_DEPTH`, or holding more than
    :data:`MAX_YAML_NODES` values."""


class _Loader(yaml.SafeLoader):
    """The safe loader, rejecting duplicate keys (PyYAML silently keeps the last one),
    nesting deeper than :data:`MAX_YAML_DEPTH` (a YAML error with line and column instead of a
    RecursionError) and more than :data:`MAX_YAML_NODES` values; merge keys (``<<: *base``)
    work; an integer too long for ``int()`` is a
    YAML error; ``1e300`` is a float."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _TooDeep(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )  # fmt: skip
            if self._nodes > MAX_YAML_NODES:
                raise _TooDeep(
                    None, None, f"more than {MAX_YAML_NODES} values (lists, mappings, scalars)",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )  # fmt: skip
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


#: libyaml's scanner and parser (C), when PyYAML was built with it (None otherwise)
_CParser: Any = getattr(getattr(yaml, "cyaml", None), "CParser", None)


if _CParser is not None:

    class _FastLoader(_CParser, _Loader):  # type: ignore[misc]
        """:class:`_Loader` reading its events from libyaml (C; about 10 times faster than
        PyYAML's scanner and parser). The nodes are still composed by PyYAML's Python composer
        (the depth check of :class:`_Loader` holds: libyaml's own composer recurses in C
        without a bound) and built by the same constructors and resolvers, so both loaders
        give the same documents and the same errors."""

        get_single_node = yaml.composer.Composer.get_single_node
        get_node = yaml.composer.Composer.get_node
        check_node = yaml.composer.Composer.check_node

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._depth = 0
            self._nodes = 0


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_int(node)
    except ValueError as exc:  # more digits than int() converts (sys.get_int_max_str_digits)
        raise yaml.constructor.ConstructorError(
            None, None, f"integer too long ({len(str(node.value))} characters)", node.start_mark
        ) from exc


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # merged keys may be overridden: not duplicates
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable key (a list or mapping): the base class reports it
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (first at line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


def problem(exc: yaml.YAMLError) -> str:
    """``invalid YAML (line L, column C): <what>``."""
    where = ""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f" (line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, …)
        where = f" (character {exc.position + 1})"
        char = exc.character
        code = ord(char) if isinstance(char, str) else char
        return f"invalid YAML{where}: unacceptable character #x{code:04X} ({exc.reason})"
    text = str(getattr(exc, "problem", None) or exc)
    return f"invalid YAML{where}: {' '.join(text.split())}"  # one line


#: a document that is YAML but cannot be built (nested too deeply, an integer too long, a
#: duplicate key): an error, where other YAML errors may mean "not YAML at all"
UNBUILDABLE = (_TooDeep, yaml.constructor.ConstructorError)


def load(text: str, *, fast: bool = True) -> Any:
    """The document in ``text``, read by libyaml when PyYAML has it (``fast``; else, or with
    ``fast=False``, by PyYAML's pure-Python parser: the same documents and errors). Raises
    :data:`YAMLError` (:data:`UNBUILDABLE` among them), ``RecursionError`` or
    ``MemoryError``."""
    if fast and _CParser is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # a SafeLoader
        except (yaml.reader.ReaderError, UnicodeEncodeError):
            # a character YAML refuses: libyaml words it otherwise and counts bytes; PyYAML's
            # reader checks the whole text before parsing, so its error costs nothing. A lone
            # surrogate (a ``-o`` value's non-UTF-8 byte) libyaml cannot take at all
            pass
    return yaml.load(text, Loader=_Loader)  # a SafeLoader
