"""Fixtures for the e2e lane: the fake model server per test, the installed CLIs, isolated envs.

The CLIs come from the manifest that ``install_clis.py`` writes (``$ALICE_TRIO_E2E_MANIFEST``
overrides its path). A CLI missing from it skips its tests with the install's reason.

With ``$ALICE_TRIO_E2E_RESULTS`` set, every test's outcome (and the CLI it drives) is written
there as JSON at the end of the session; ``lane_report.py`` turns those files into the lane's
summary (failures, flakes, the canary table).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cli_env
import procscan
import pytest
from e2e_support import FakeServer, load_manifest, run_processes


@pytest.fixture(scope="session")
def e2e_manifest() -> dict[str, Any]:
    manifest = load_manifest()
    if manifest is None:
        pytest.skip("no e2e CLI manifest: run `python tests/e2e/install_clis.py` first")
    return manifest


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeServer]:
    server = FakeServer(tmp_path / "server")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cli_setup(
    e2e_manifest: dict[str, Any], fake_server: FakeServer, tmp_path: Path
) -> Iterator[Callable[[str], cli_env.CliSetup]]:
    """``cli_setup("claude")`` → an isolated env for that CLI (skips when it is not installed).
    After the test, every process of the setup still alive is killed (and reported by
    the tests that assert on it)."""
    made: list[cli_env.CliSetup] = []

    def make(cli: str) -> cli_env.CliSetup:
        entry = e2e_manifest.get("clis", {}).get(cli)
        if not entry:
            pytest.skip(f"{cli}: not in the e2e install manifest")
        if not entry.get("ok"):
            pytest.skip(f"{cli}: install failed: {entry.get('reason', '?')}")
        setup = cli_env.build(
            cli,
            tmp_path / cli,
            fake_server.port,
            entry,
            catalog_cache=Path(e2e_manifest["dir"]) / "codex_model_catalog.json",
        )
        made.append(setup)
        return setup

    yield make
    for setup in made:
        procscan.kill_all(run_processes(setup))


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip at collection, with the reason printed by ``-rs``: the cases of a CLI the install
    could not provide, and the usage case of CLIs that report no usage."""
    manifest: dict[str, Any] | None = None
    loaded = False
    for item in items:
        cls = getattr(item, "cls", None)
        cli = getattr(cls, "CLI", None)
        if cli is None or item.get_closest_marker("e2e") is None:
            continue
        if not loaded:
            manifest, loaded = load_manifest(), True
        if manifest is None:
            reason = "no e2e CLI manifest: run `python tests/e2e/install_clis.py` first"
            item.add_marker(pytest.mark.skip(reason=reason))
            continue
        entry = manifest.get("clis", {}).get(cli)
        if not entry:
            item.add_marker(pytest.mark.skip(reason=f"{cli}: not in the e2e install manifest"))
        elif not entry.get("ok"):
            reason = f"{cli}: install failed: {entry.get('reason', '?')}"
            item.add_marker(pytest.mark.skip(reason=reason))
        elif getattr(cls, "DRIVER_MODULE", None) and not _module_exists(cls.DRIVER_MODULE):
            reason = f"{cli}: session driver {cls.DRIVER_MODULE} does not exist yet"
            item.add_marker(pytest.mark.skip(reason=reason))
        elif item.name == "test_usage_is_reported" and getattr(cls, "PLAIN_USAGE", 0) is None:
            reason = f"{cli} reports no token usage in one-shot mode"
            item.add_marker(pytest.mark.skip(reason=reason))


_RESULTS: dict[str, dict[str, str]] = {}


def _cli_of(item: pytest.Item) -> str:
    cli = getattr(getattr(item, "cls", None), "CLI", None)
    if isinstance(cli, str):
        return cli
    name = item.path.stem.removeprefix("test_oneshot_") if hasattr(item, "path") else ""
    return name if name in cli_env.CLIS else ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    entry = _RESULTS.setdefault(item.nodeid, {"cli": _cli_of(item), "outcome": "passed"})
    if report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("ALICE_TRIO_E2E_RESULTS")
    if path and _RESULTS:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(_RESULTS, f, indent=1)
