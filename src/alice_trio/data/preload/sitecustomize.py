"""Run by a Python CLI that alice_trio starts with this directory first on ``PYTHONPATH``
(:mod:`alice_trio.sessions.preload`): imports the modules named in ``ALICE_TRIO_PRELOAD`` at
interpreter start — work the CLI would otherwise do at a conversation's first message — and
leaves no trace for the CLI or the tools it runs.

In order: ``PYTHONPATH`` is restored to ``ALICE_TRIO_PRELOAD_PYTHONPATH`` when that is set (also
when it is empty: a ``PYTHONPATH=""`` stays set and empty), removed when it is not, and the three
variables are removed from ``os.environ``; this directory leaves
``sys.path``; the ``sitecustomize`` this file shadows (if any) runs as it would have; then each
module is imported; then each warm-up script named in ``ALICE_TRIO_PRELOAD_SCRIPTS``
(``warm/<name>.py`` next to this file) is loaded from its file and its ``run()`` called, with
``sys.stdout`` pointing at ``sys.stderr`` meanwhile (a CLI's stdout is its protocol). A module
that fails to import or a script that fails (not installed, another SDK version) is skipped
silently: preloading only ever saves time. Standard library only; no output.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _restore_environment() -> tuple[list[str], list[str]]:
    modules = os.environ.pop("ALICE_TRIO_PRELOAD", "")
    scripts = os.environ.pop("ALICE_TRIO_PRELOAD_SCRIPTS", "")
    original = os.environ.pop("ALICE_TRIO_PRELOAD_PYTHONPATH", None)
    if original is not None:
        os.environ["PYTHONPATH"] = original
    else:
        os.environ.pop("PYTHONPATH", None)
    sys.path[:] = [p for p in sys.path if not p or os.path.abspath(p) != _HERE]
    return [m.strip() for m in modules.split(",") if m.strip()], [
        s.strip() for s in scripts.split(",") if s.strip().isidentifier()
    ]


def _run_shadowed() -> None:
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _preload(modules: list[str]) -> None:
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # a module the CLI does not have: it costs nothing
            continue


def _warm_up(scripts: list[str]) -> None:
    import contextlib
    import importlib.util

    for name in scripts:
        path = os.path.join(_HERE, "warm", name + ".py")
        try:
            spec = importlib.util.spec_from_file_location(f"_alice_trio_warm_{name}", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            with contextlib.redirect_stdout(sys.stderr):
                spec.loader.exec_module(module)
                module.run()
        except Exception:  # a CLI without that library, another version: nothing warmed
            continue


_modules, _scripts = _restore_environment()
try:
    _run_shadowed()
finally:
    _preload(_modules)
    _warm_up(_scripts)
