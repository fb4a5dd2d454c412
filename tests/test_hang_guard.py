"""The suite's hang guard (``tests/conftest.py``): a hung test ends pytest with its name and
stacks instead of stalling the run until CI's time limit."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _pytest(tmp_path: Path, body: str, timeout: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(body)
    env = {**os.environ, "ALICE_TRIO_TEST_TIMEOUT": timeout, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
         "-o", "trio_mode=true", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip


def test_a_hung_trio_test_fails_the_run_with_its_name(tmp_path: Path) -> None:
    body = (
        "import trio\n"
        "async def test_fine():\n    await trio.sleep(0)\n"
        "async def test_stuck():\n    await trio.sleep_forever()\n"
        "def test_never_reached():\n    pass\n"
    )
    proc = _pytest(tmp_path, body, "2")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "test_probe.py::test_stuck still runs after 2 s" in proc.stderr
    assert "most recent call first" in proc.stderr  # the stacks
    assert "test_never_reached" not in proc.stdout + proc.stderr


def test_a_hung_sync_test_fails_the_run_too(tmp_path: Path) -> None:
    body = "import time\ndef test_stuck():\n    time.sleep(3600)\n"
    proc = _pytest(tmp_path, body, "2")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "test_probe.py::test_stuck still runs after 2 s" in proc.stderr


def test_tests_within_the_limit_pass(tmp_path: Path) -> None:
    body = "import time\ndef test_a():\n    time.sleep(0.1)\ndef test_b():\n    pass\n"
    proc = _pytest(tmp_path, body, "30")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "2 passed" in proc.stdout
