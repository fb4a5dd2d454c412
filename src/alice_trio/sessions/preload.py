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

Importing is not all of it: a library also fills caches at its first call (the OpenAI SDK
resolves its request types' hints, builds the pydantic schemas of its response models and
runs ``uname -p`` for its headers — ~20 ms of CPU of legacy kimi's first prompt). The record
may therefore also name **warm-up scripts** (:attr:`SessionSpec.preload_scripts`), shipped in
``alice_trio/data/preload/warm/<name>.py``: after the imports, the ``sitecustomize`` calls
each one's ``run()``, which drives that library once inside the process against an
in-process fake (``openai_chat``: a streamed chat completion through httpx's
``MockTransport``) — no socket, no file, no output.

Nothing is sent to the model and the conversation is untouched: the process only imports and
fills its own caches, at start instead of at the first prompt. A module or script the CLI
cannot run is skipped; a CLI that is not a Python program ignores ``PYTHONPATH``. No I/O here
but reading ``os.environ`` and the package's file list.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import attrs

from ..providers.base import Invocation

__all__ = [
    "MODULES_ENV", "PYTHONPATH_ENV", "SCRIPTS_ENV", "site_dir", "warm_up_scripts", "with_preload",
]  # fmt: skip

#: the modules to import, comma-separated (read and removed by the ``sitecustomize``)
MODULES_ENV = "ALICE_TRIO_PRELOAD"
#: the warm-up scripts to run after the imports, comma-separated (read and removed likewise)
SCRIPTS_ENV = "ALICE_TRIO_PRELOAD_SCRIPTS"
#: the ``PYTHONPATH`` the CLI would have had, restored by the ``sitecustomize``: set (also to
#: "") when it would have been set, removed from the environment when it would have been unset
PYTHONPATH_ENV = "ALICE_TRIO_PRELOAD_PYTHONPATH"


@functools.cache
def site_dir() -> str:
    """The directory holding the preloading ``sitecustomize.py`` ("" when the package is not
    on a file system, e.g. zipped: then nothing is preloaded)."""
    path = resources.files("alice_trio") / "data" / "preload"
    return str(path) if isinstance(path, Path) and (path / "sitecustomize.py").is_file() else ""


@functools.cache
def warm_up_scripts() -> frozenset[str]:
    """The names of the warm-up scripts shipped with the package (``warm/<name>.py``)."""
    where = site_dir()
    if not where:
        return frozenset()
    return frozenset(p.stem for p in (Path(where) / "warm").glob("*.py") if p.stem.isidentifier())


def with_preload(
    invocation: Invocation,
    modules: Sequence[str],
    host_env: Mapping[str, str] | None = None,
    *,
    scripts: Sequence[str] = (),
) -> Invocation:
    """``invocation`` whose process imports ``modules`` and then runs the warm-up ``scripts``
    at start (unchanged when there are neither). ``host_env`` (default ``os.environ``) is what
    the engine merges the invocation's env over: the ``PYTHONPATH`` the process would have had
    comes from the invocation's env, else — unless ``env_remove`` drops it — from there.
    The process then sees exactly that ``PYTHONPATH``: unset stays unset and set-but-empty
    stays set-but-empty (a tool that tests whether it is set sees no difference either).
    A script the package does not ship (:func:`warm_up_scripts`) is skipped by the process."""
    where = site_dir()
    if not (modules or scripts) or not where:
        return invocation
    host = os.environ if host_env is None else host_env
    original: str | None
    if "PYTHONPATH" in invocation.env:
        original = invocation.env["PYTHONPATH"]
    elif "PYTHONPATH" in invocation.env_remove:
        original = None
    else:
        original = host.get("PYTHONPATH")
    env = {
        **invocation.env,
        "PYTHONPATH": os.pathsep.join([where, original]) if original else where,
        MODULES_ENV: ",".join(modules),
        SCRIPTS_ENV: ",".join(scripts),
    }
    if original is not None:
        env[PYTHONPATH_ENV] = original
    keep = tuple(k for k in invocation.env_remove if k not in env)
    if original is None and PYTHONPATH_ENV not in keep:
        keep += (PYTHONPATH_ENV,)  # unset: not even a stray value of the host's may restore one
    return attrs.evolve(invocation, env=env, env_remove=keep)
