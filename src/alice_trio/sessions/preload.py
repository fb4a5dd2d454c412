"""Preloading a Python CLI's lazily imported modules at process start.

Legacy kimi-cli imports the OpenAI SDK's ``openai.resources`` (~0.5 s) only when a
conversation's first user message reaches its chat provider; a warm spare process, started and
initialized ahead of need, has therefore not done the slowest part of a first turn. No
protocol message short of a model call makes it do so. But the interpreter runs a
``sitecustomize`` module at start, found on ``PYTHONPATH``: :func:`with_preload` puts
``alice_trio/data/preload`` first on it, whose ``sitecustomize.py`` imports the modules the
provider record names (:attr:`SessionSpec.preload <alice_trio.providers.record.SessionSpec>`),
after restoring ``PYTHONPATH``, removing its own variables and running the ``sitecustomize`` it
shadows — the CLI and the tools it runs see the environment they would have seen.

Nothing is sent to the model and the conversation is untouched: the process only imports, at
start instead of at the first prompt. A module the CLI does not have is skipped; a CLI that is
not a Python program ignores ``PYTHONPATH``. No I/O here but reading ``os.environ``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import attrs

from ..providers.base import Invocation

__all__ = ["MODULES_ENV", "PYTHONPATH_ENV", "site_dir", "with_preload"]

#: the modules to import, comma-separated (read and removed by the ``sitecustomize``)
MODULES_ENV = "ALICE_TRIO_PRELOAD"
#: the ``PYTHONPATH`` the CLI would have had ("": none), restored by the ``sitecustomize``
PYTHONPATH_ENV = "ALICE_TRIO_PRELOAD_PYTHONPATH"


@functools.cache
def site_dir() -> str:
    """The directory holding the preloading ``sitecustomize.py`` ("" when the package is not
    on a file system, e.g. zipped: then nothing is preloaded)."""
    path = resources.files("alice_trio") / "data" / "preload"
    return str(path) if isinstance(path, Path) and (path / "sitecustomize.py").is_file() else ""


def with_preload(
    invocation: Invocation, modules: Sequence[str], host_env: Mapping[str, str] | None = None
) -> Invocation:
    """``invocation`` whose process imports ``modules`` at start (unchanged when there are
    none). ``host_env`` (default ``os.environ``) is what the engine merges the invocation's
    env over: the ``PYTHONPATH`` the process would have had comes from the invocation's env,
    else — unless ``env_remove`` drops it — from there."""
    where = site_dir()
    if not modules or not where:
        return invocation
    host = os.environ if host_env is None else host_env
    if "PYTHONPATH" in invocation.env:
        original = invocation.env["PYTHONPATH"]
    elif "PYTHONPATH" in invocation.env_remove:
        original = ""
    else:
        original = host.get("PYTHONPATH", "")
    env = {
        **invocation.env,
        "PYTHONPATH": os.pathsep.join([where, original]) if original else where,
        MODULES_ENV: ",".join(modules),
        PYTHONPATH_ENV: original,
    }
    keep = tuple(k for k in invocation.env_remove if k not in env)
    return attrs.evolve(invocation, env=env, env_remove=keep)
