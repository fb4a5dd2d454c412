"""SIGINT/SIGTERM at any moment of ``alice-trio run``'s life, also while the package is still
being imported: exit 130/143, at most one line on stderr, never a traceback."""

from __future__ import annotations

import os
import signal
import site
import subprocess
import sys
import time

import pytest

from cli_support import wait_for

#: the console script's code, run without ``site`` (its import time is the interpreter's, not
#: ours) and the site-packages folders given explicitly: the signals below land while
#: ``alice_trio`` imports, not before Python has started
ENTRY = [
    sys.executable,
    "-S",
    "-c",
    "import sys; from alice_trio.cli.entry import main; sys.exit(main())",
]
RUN = [*ENTRY, "run", "--provider", "replay", "-o", "speed=0.05", "--quiet", "hi"]


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` of /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        pass
    return False


@pytest.mark.parametrize("delay", [0.1, 0.2, 0.35, 0.5, 0.8, 1.2])
@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_during_startup_exits_cleanly(
    sig: int, code: int, word: str, delay: float
) -> None:
    paths = [*sys.path, *site.getsitepackages(), site.getusersitepackages()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    proc = subprocess.Popen(RUN, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        # Python is running (its SIGINT handler is in place): from here on it is our code
        assert wait_for(lambda: _catches(proc.pid, signal.SIGINT), 60), "python never started"
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = err.decode(errors="replace")
    assert "Traceback" not in text and "Error" not in text, text
    if proc.returncode == 0:  # the whole run finished before the signal: nothing to check
        pytest.skip("the run ended before the signal")
    assert proc.returncode == code, text
    assert text.splitlines() == [f"alice-trio: {word}"]
