"""Imports of the alice_trio sources, read with :mod:`ast` (nothing is imported): relative ones
resolved against the importing module, ``from pkg import name`` counted as an import of
``pkg.name`` when that is a module, function-local imports counted, ``if TYPE_CHECKING:`` bodies
not; importing ``a.b.c`` runs its parent packages' ``__init__`` (the root
``alice_trio/__init__.py`` aside: it is the public facade over every layer)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import alice_trio

SRC = Path(alice_trio.__file__).parent
ROOT = "alice_trio"


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The source file of an ``alice_trio`` module under ``src`` (``None`` for anything else)."""
    parts = name.split(".")
    if parts[0] != ROOT:
        return None
    rel = Path(*parts[1:]) if parts[1:] else Path()
    for cand in (src / rel.with_suffix(".py"), src / rel / "__init__.py"):
        if parts[1:] and cand.is_file():
            return cand
    return None


def module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run, ``if TYPE_CHECKING:`` bodies left out."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                todo += child.orelse
            else:
                todo.append(child)


def direct_imports(path: Path, src: Path = SRC) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                assert base, f"{path}: relative import beyond the package"
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            # ``from pkg import mod`` imports the submodule when there is one
            out |= {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}", src)}
    return out


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` → the modules its import runs: ``a.b``, ``a.b.c`` (the root facade aside)."""
    parts = name.split(".")
    if parts[0] != ROOT:
        return [name]
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def reachable(start: str, src: Path = SRC) -> dict[str, str]:
    """Every module importing ``start`` runs, mapped to the module that imported it."""
    via: dict[str, str] = {}
    todo = [(n, start) for n in _with_parents(start)]
    while todo:
        name, parent = todo.pop()
        if name in via:
            continue
        via[name] = parent
        path = module_file(name, src)
        if path is not None:
            for imported in sorted(direct_imports(path, src)):
                todo += [(n, name) for n in _with_parents(imported) if n not in via]
    return via


def chain(via: dict[str, str], name: str, start: str) -> str:
    links = [name]
    while links[-1] != start and via[links[-1]] not in links:
        links.append(via[links[-1]])
    return " <- ".join(links)
