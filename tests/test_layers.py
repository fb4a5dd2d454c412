"""The layering rule, checked over resolved imports: the pure layer (providers, protocols and the
data modules) reaches no trio, no process/socket/HTTP/thread module and no I/O-side package of
alice_trio, through any chain of absolute or relative imports, function-local ones included;
``protocols/`` imports nothing from ``sessions/``. :mod:`import_graph` says how imports are read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from import_graph import ROOT, SRC, chain, module_file, module_name, reachable

#: the sans-I/O layer: argv builders, decoders, protocol mappings and the data they share
PURE = (
    "alice_trio.providers",
    "alice_trio.protocols",
    "alice_trio.framing",
    "alice_trio.models",
    "alice_trio.safejson",
    "alice_trio.validation",
    "alice_trio.file_changes",
    "alice_trio.errors",
    "alice_trio.transcript",
    "alice_trio.event_check",
)
#: modules that do I/O or concurrency: only the engine, transports and sessions use them
FORBIDDEN_EXTERNAL = frozenset(
    {"trio", "anyio", "asyncio", "httpx", "h11", "subprocess", "socket", "selectors", "ssl",
     "threading", "multiprocessing", "concurrent", "signal", "pty", "fcntl", "termios", "shutil",
     "tempfile", "urllib", "http"}
)  # fmt: skip
#: alice_trio packages on the I/O side of the line
FORBIDDEN_INTERNAL = (
    "alice_trio.engine",
    "alice_trio.transports",
    "alice_trio.sessions",
    "alice_trio.cli",
    "alice_trio.backend",
    "alice_trio.config",
    "alice_trio.routing",
)


def pure_modules() -> list[str]:
    names: list[str] = []
    for mod in PURE:
        path = module_file(mod)
        assert path is not None, mod
        if path.name == "__init__.py":
            names += sorted(module_name(p) for p in path.parent.glob("*.py"))
        else:
            names.append(mod)
    return names


def violations(start: str, src: Path = SRC) -> list[str]:
    via = reachable(start, src)
    bad = []
    for name in via:
        if name.split(".")[0] in FORBIDDEN_EXTERNAL or name.startswith(FORBIDDEN_INTERNAL):
            bad.append(chain(via, name, start))
    return sorted(bad)


@pytest.mark.parametrize("start", pure_modules())
def test_the_pure_layer_reaches_no_io(start: str) -> None:
    assert violations(start) == []


@pytest.mark.parametrize(
    "start", [n for n in pure_modules() if n.startswith("alice_trio.protocols")]
)
def test_protocols_import_nothing_from_sessions(start: str) -> None:
    via = reachable(start)
    assert [chain(via, n, start) for n in via if n.startswith("alice_trio.sessions")] == []


def test_the_checker_sees_relative_transitive_and_local_imports(tmp_path: Path) -> None:
    """The rule's own check, on a copy of the package: the issue's injection (a relative
    ``from ..engine import oneshot`` in ``providers/codex.py``), a function-local ``import trio``
    and a chain through a sibling module each turn the layer test red."""
    src = tmp_path / ROOT
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__", "data"))
    codex = src / "providers" / "codex.py"
    assert violations("alice_trio.providers.codex", src) == []
    original = codex.read_text()

    codex.write_text(original + "\nfrom ..engine import oneshot\n")
    found = violations("alice_trio.providers.codex", src)
    assert "alice_trio.engine.oneshot <- alice_trio.providers.codex" in found
    assert any(v.startswith("trio <- ") for v in found)
    # everything that imports codex is red too (the registry, the protocols)
    assert violations("alice_trio.protocols.codex_app_server", src)

    codex.write_text(original + "\ndef _probe():\n    import trio\n")
    assert violations("alice_trio.providers.codex", src) == ["trio <- alice_trio.providers.codex"]

    codex.write_text(original + "\nfrom . import _probe\n")
    (src / "providers" / "_probe.py").write_text("from ..sessions import approval\n")
    found = violations("alice_trio.providers.codex", src)
    assert (
        "alice_trio.sessions.approval <- alice_trio.providers._probe <- "
        "alice_trio.providers.codex" in found
    )

    codex.write_text(original + "\nif TYPE_CHECKING:\n    import trio\n")
    assert violations("alice_trio.providers.codex", src) == []
