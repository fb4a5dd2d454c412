"""A module's ``_private`` names are its own: no alice_trio module imports one from another
module (what two modules share lives in a module of its own, e.g.
:mod:`alice_trio.config_fields` for :mod:`~alice_trio.config` and
:mod:`~alice_trio.config_structure`; the CLI commands' terminal helpers in
:mod:`alice_trio.cli.console`). The CLI is no exception: ``chat`` and ``doctor`` imported
``cli.main``'s ``_err``/``_config_error``/``_isatty``/``_with_signals``."""

from __future__ import annotations

import ast
from pathlib import Path

from import_graph import SRC, module_name


def private_imports(src: Path = SRC) -> list[str]:
    found = []
    for path in sorted(src.rglob("*.py")):
        name = module_name(path, src)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if not (node.level or (node.module or "").startswith("alice_trio")):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    source = "." * node.level + (node.module or "")
                    found.append(f"{name}: from {source} import {alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports() == []


def test_the_check_sees_a_relative_private_import(tmp_path: Path) -> None:
    pkg = tmp_path / "alice_trio"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def _helper() -> None: ...\n")
    (pkg / "b.py").write_text("def f() -> None:\n    from .a import _helper, __doc__\n")
    assert private_imports(pkg) == ["alice_trio.b: from .a import _helper"]
