"""Preloading a Python CLI's lazy imports at process start (sessions/preload.py, the
``sitecustomize`` in ``alice_trio/data/preload``): the process imports what the provider record
names, and neither the CLI nor its tools see any other difference."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import trio

from alice_trio.engine.spawn import build_env
from alice_trio.models import RunRequest
from alice_trio.providers.base import Invocation
from alice_trio.providers.kimi import PROVIDER, KimiConfig
from alice_trio.providers.record import SessionSpec
from alice_trio.sessions.preload import (
    MODULES_ENV,
    PYTHONPATH_ENV,
    SCRIPTS_ENV,
    site_dir,
    warm_up_scripts,
    with_preload,
)
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


def test_the_legacy_kimi_record_warms_up_the_openai_sdk_with_a_shipped_script():
    spec = PROVIDER.flavor("legacy").session
    # kimi-cli 1.50's first prompt: kosong's chaos wrapper is imported, and the OpenAI SDK
    # fills its first-call caches (type hints, response schemas, `uname -p`)
    assert "kosong.chat_provider.chaos" in spec.preload
    assert spec.preload_scripts == ("openai_chat",)
    assert set(spec.preload_scripts) <= warm_up_scripts()
    driver = create_driver(PROVIDER, KimiConfig(flavor="legacy"), RunRequest(user_text="x"))
    assert driver.invocation.env[SCRIPTS_ENV] == "openai_chat"  # type: ignore[attr-defined]
    assert PROVIDER.flavor("code").session.preload_scripts == ()


def test_a_record_takes_module_names_only():
    assert SessionSpec(preload=["a.b_c", "d"]).preload == ("a.b_c", "d")
    for bad in ("a,b", "a b", "", ".a", "a."):
        with pytest.raises(ValueError, match="preload"):
            SessionSpec(preload=(bad,))
    assert SessionSpec(preload_scripts=["openai_chat"]).preload_scripts == ("openai_chat",)
    for bad in ("a.b", "a-b", "", "a,b"):
        with pytest.raises(ValueError, match="preload_scripts"):
            SessionSpec(preload_scripts=(bad,))


@pytest.mark.parametrize(
    ("inv_env", "remove", "host", "original"),
    [
        ({}, (), {}, None),
        ({}, (), {"PYTHONPATH": "/host/a:/host/b"}, "/host/a:/host/b"),
        ({}, (), {"PYTHONPATH": ""}, ""),
        ({"PYTHONPATH": "/config"}, (), {"PYTHONPATH": "/host"}, "/config"),
        ({"PYTHONPATH": ""}, (), {"PYTHONPATH": "/host"}, ""),
        ({}, ("PYTHONPATH",), {"PYTHONPATH": "/host"}, None),
    ],
)
def test_the_pythonpath_the_process_would_have_had_is_kept_behind_the_site_dir(
    inv_env: dict[str, str], remove: tuple[str, ...], host: dict[str, str], original: str | None
):
    inv = Invocation(argv=("kimi",), env=inv_env, env_remove=remove)
    out = with_preload(inv, ("m1", "m2.sub"), host_env=host)
    assert out.env.get(PYTHONPATH_ENV) == original
    assert (PYTHONPATH_ENV in out.env_remove) is (original is None)
    assert out.env["PYTHONPATH"] == os.pathsep.join(p for p in (site_dir(), original) if p)
    assert out.env[MODULES_ENV] == "m1,m2.sub"
    assert "PYTHONPATH" not in out.env_remove
    assert out.env[SCRIPTS_ENV] == ""
    assert with_preload(inv, (), host_env=host) is inv
    only_scripts = with_preload(inv, (), host_env=host, scripts=("openai_chat",))
    assert only_scripts.env[SCRIPTS_ENV] == "openai_chat"
    assert only_scripts.env[MODULES_ENV] == ""


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


SCRIPT_CHILD = r"""
import builtins, json, os, sys
print(json.dumps({
    "ran": getattr(builtins, "WARM_UP_RAN", []),
    "leftover": sorted(k for k in os.environ if k.startswith("ALICE_TRIO_PRELOAD")),
    "pythonpath": os.environ.get("PYTHONPATH"),
}))
"""

PROBE_SCRIPT = """
import builtins, sys
def run():
    print("stdout of a warm-up script")  # must not reach the CLI's stdout (its protocol)
    builtins.WARM_UP_RAN = getattr(builtins, "WARM_UP_RAN", []) + [
        "probe", "probe_preloaded" in sys.modules
    ]
"""


async def test_warm_up_scripts_run_after_the_imports_and_leave_no_trace(tmp_path: Path):
    """The ``sitecustomize`` runs each named ``warm/<name>.py``'s ``run()`` after the imports
    (the script sees them), sends what it prints to stderr, skips a failing or missing
    script, and removes its variables. (A copy of the package's preload directory, with
    probe scripts added: the shipped one needs the OpenAI SDK, see the e2e test.)"""
    site = tmp_path / "site"
    shutil.copytree(site_dir(), site, ignore=shutil.ignore_patterns("__pycache__"))
    (site / "warm" / "probe.py").write_text(PROBE_SCRIPT)
    (site / "warm" / "broken.py").write_text("def run():\n    raise RuntimeError('boom')\n")
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "probe_preloaded.py").write_text("VALUE = 1\n")
    inv = Invocation(
        argv=(sys.executable, "-c", SCRIPT_CHILD),
        env={
            "PYTHONPATH": os.pathsep.join([str(site), str(mods)]),
            MODULES_ENV: "probe_preloaded",
            SCRIPTS_ENV: "broken,no_such_script,probe",
            PYTHONPATH_ENV: str(mods),
        },
    )
    proc = await trio.run_process(
        list(inv.argv), env=build_env(inv, "test-run"), capture_stdout=True, capture_stderr=True
    )
    assert json.loads(proc.stdout) == {
        "ran": ["probe", True],
        "leftover": [],
        "pythonpath": str(mods),
    }
    assert proc.stderr.decode().strip() == "stdout of a warm-up script"


ENV_CHILD = r"""
import json, os
print(json.dumps({"set": "PYTHONPATH" in os.environ, "value": os.environ.get("PYTHONPATH")}))
"""


@pytest.mark.parametrize("host", [None, "", "/nowhere/a"])
async def test_a_preloaded_cli_sees_pythonpath_as_it_would_have_unset_empty_or_set(
    host: str | None, monkeypatch: pytest.MonkeyPatch
):
    """Hostile-use finding (round 4): a host ``PYTHONPATH=""`` reached the preloaded legacy
    kimi unset, but a CLI started without preloading set and empty. Now the preloaded one sees
    what the other sees: unset, set-but-empty or the value; a stray preload variable of the
    host's never restores one."""
    monkeypatch.setenv(PYTHONPATH_ENV, "/stray/from/the/host")
    if host is None:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    else:
        monkeypatch.setenv("PYTHONPATH", host)
    plain = Invocation(argv=(sys.executable, "-c", ENV_CHILD))
    seen = []
    for inv in (plain, with_preload(plain, ("json",))):
        proc = await trio.run_process(
            list(inv.argv), env=build_env(inv, "test-run"), capture_stdout=True
        )
        seen.append(json.loads(proc.stdout))
    without, preloaded = seen
    if host is None:  # the stray variable passes a CLI started without preloading untouched
        assert without == {"set": False, "value": None}
    assert preloaded == without == {"set": host is not None, "value": host}
