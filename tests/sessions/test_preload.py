"""Preloading a Python CLI's lazy imports at process start (sessions/preload.py, the
``sitecustomize`` in ``alice_trio/data/preload``): the process imports what the provider record
names, and neither the CLI nor its tools see any other difference."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

from alice_trio.engine.spawn import build_env
from alice_trio.models import RunRequest
from alice_trio.providers.base import Invocation
from alice_trio.providers.kimi import PROVIDER, KimiConfig
from alice_trio.providers.record import SessionSpec
from alice_trio.sessions.preload import MODULES_ENV, PYTHONPATH_ENV, site_dir, with_preload
from alice_trio.sessions.registry import create_driver

CHILD = r"""
import builtins, json, os, subprocess, sys
grandchild = subprocess.run(
    [sys.executable, "-c", "import sys, json; print(json.dumps(sorted(sys.modules)))"],
    capture_output=True, text=True, check=True,
)
print(json.dumps({
    "preloaded": "probe_preloaded" in sys.modules,
    "shadowed_ran": getattr(builtins, "SHADOWED_SITECUSTOMIZE_RAN", False),
    "pythonpath": os.environ.get("PYTHONPATH"),
    "leftover": sorted(k for k in os.environ if k.startswith("ALICE_TRIO_PRELOAD")),
    "site_dir_on_path": any(p and os.path.abspath(p) == %r for p in sys.path),
    "grandchild_preloaded": "probe_preloaded" in json.loads(grandchild.stdout),
}))
"""


def test_the_legacy_kimi_record_names_modules_and_its_wire_process_preloads_them():
    spec = PROVIDER.flavor("legacy").session
    assert "openai.resources" in spec.preload  # what kimi-cli 1.50 loads at the first prompt
    driver = create_driver(PROVIDER, KimiConfig(flavor="legacy"), RunRequest(user_text="x"))
    env = driver.invocation.env  # type: ignore[attr-defined]
    assert env[MODULES_ENV] == ",".join(spec.preload)
    assert env["PYTHONPATH"].split(os.pathsep)[0] == site_dir() != ""
    # Kimi Code (node) has nothing to preload
    assert PROVIDER.flavor("code").session.preload == ()


def test_a_record_takes_module_names_only():
    assert SessionSpec(preload=["a.b_c", "d"]).preload == ("a.b_c", "d")
    for bad in ("a,b", "a b", "", ".a", "a."):
        with pytest.raises(ValueError, match="preload"):
            SessionSpec(preload=(bad,))


@pytest.mark.parametrize(
    ("inv_env", "remove", "host", "original"),
    [
        ({}, (), {}, ""),
        ({}, (), {"PYTHONPATH": "/host/a:/host/b"}, "/host/a:/host/b"),
        ({"PYTHONPATH": "/config"}, (), {"PYTHONPATH": "/host"}, "/config"),
        ({}, ("PYTHONPATH",), {"PYTHONPATH": "/host"}, ""),
    ],
)
def test_the_pythonpath_the_process_would_have_had_is_kept_behind_the_site_dir(
    inv_env: dict[str, str], remove: tuple[str, ...], host: dict[str, str], original: str
):
    inv = Invocation(argv=("kimi",), env=inv_env, env_remove=remove)
    out = with_preload(inv, ("m1", "m2.sub"), host_env=host)
    assert out.env[PYTHONPATH_ENV] == original
    assert out.env["PYTHONPATH"] == os.pathsep.join(p for p in (site_dir(), original) if p)
    assert out.env[MODULES_ENV] == "m1,m2.sub"
    assert "PYTHONPATH" not in out.env_remove
    assert with_preload(inv, (), host_env=host) is inv


async def test_the_process_imports_at_start_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    mods, shadow = tmp_path / "mods", tmp_path / "shadow"
    mods.mkdir()
    shadow.mkdir()
    (mods / "probe_preloaded.py").write_text("VALUE = 1\n")
    (shadow / "sitecustomize.py").write_text(
        "import builtins\nbuiltins.SHADOWED_SITECUSTOMIZE_RAN = True\n"
    )
    host_path = os.pathsep.join([str(mods), str(shadow)])
    monkeypatch.setenv("PYTHONPATH", host_path)  # what the CLI would get without preloading
    inv = with_preload(
        Invocation(argv=(sys.executable, "-c", CHILD % os.path.abspath(site_dir()))),
        ("no_such_module_anywhere", "probe_preloaded"),  # a missing one is skipped
    )
    proc = await trio.run_process(
        list(inv.argv), env=build_env(inv, "test-run"), capture_stdout=True, capture_stderr=True
    )
    assert proc.stderr == b""
    seen = json.loads(proc.stdout)
    assert seen == {
        "preloaded": True,
        "shadowed_ran": True,
        "pythonpath": host_path,
        "leftover": [],
        "site_dir_on_path": False,
        "grandchild_preloaded": False,
    }
