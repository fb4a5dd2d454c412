"""The public surface, and the design rule that providers and protocol code stay sans-I/O."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import alice_trio

SRC = Path(alice_trio.__file__).parent
#: modules that must stay pure: no trio, no processes, no sockets, no file or env access
PURE_PACKAGES = ("providers", "protocols")
PURE_MODULES = ("framing.py", "models.py", "errors.py", "transcript.py")
FORBIDDEN_CALLS = {"open", "print", "input"}


def test_every_exported_name_exists_once_and_is_sorted():
    names = alice_trio.__all__
    assert len(names) == len(set(names))
    public = [n for n in names if not n.startswith("_")]
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each sorted
    assert public == sorted(public, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in names:
        assert getattr(alice_trio, name) is not None, name


def test_the_main_entry_points_are_exported():
    for name in ("RunRequest", "OneShotBackend", "SessionBackend", "open_session", "AliceError"):
        assert name in alice_trio.__all__


def test_every_submodule_imports():
    for info in pkgutil.walk_packages([str(SRC)], prefix="alice_trio."):
        importlib.import_module(info.name)


def _pure_files() -> list[Path]:
    files = [SRC / name for name in PURE_MODULES]
    for package in PURE_PACKAGES:
        files += sorted((SRC / package).glob("*.py"))
    return files


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_providers_and_protocols_are_sans_io(path: Path):
    """Argv builders and decoders (and the pure protocol mappings of the session drivers) do
    no I/O: the engine and the transports are the only places that touch processes. This checks
    the calls; tests/test_layers.py checks what they import (transitively)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_CALLS, f"{path.name}:{node.lineno} calls I/O"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os":
                assert node.attr in {"getcwd", "path", "fspath", "sep"}, (
                    f"{path.name}:{node.lineno} uses os.{node.attr}"
                )


def test_readme_python_examples_compile_and_import_what_exists():
    import re
    import textwrap

    readme = (SRC.parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        code = textwrap.dedent(block)
        compile("async def _example():\n" + textwrap.indent(code, "    "), "README", "exec")
        for module, names in re.findall(r"^from (alice_trio[\w.]*) import (.+)$", code, re.M):
            mod = importlib.import_module(module)
            for name in (n.strip() for n in names.split(",")):
                assert hasattr(mod, name), f"README imports {module}.{name}"
