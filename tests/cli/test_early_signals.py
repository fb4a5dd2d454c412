"""SIGINT/SIGTERM at any moment of ``alice-trio run``'s life, also while the package is still
being imported: exit 130/143, at most one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

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


def _env() -> dict[str, str]:
    """The environment for ``python -S``: the site-packages folders given explicitly."""
    paths = [*sys.path, *site.getsitepackages(), site.getusersitepackages()]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.mark.parametrize("delay", [0.1, 0.2, 0.35, 0.5, 0.8, 1.2])
@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_during_startup_exits_cleanly(
    sig: int, code: int, word: str, delay: float
) -> None:
    proc = subprocess.Popen(RUN, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        # the command's handlers are in place (SIGTERM is caught): from here on it is our code.
        # Waiting for Python's own SIGINT handler instead left a window of the interpreter's
        # and the console script's imports, which a loaded machine stretched past the delay.
        assert wait_for(lambda: _catches(proc.pid, signal.SIGTERM), 60), "never started"
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


#: run before the command: the import of ``alice_trio.safejson`` (which imports orjson, a C
#: extension) first sends the signal to the process, then runs Python code that would raise
#: a pending KeyboardInterrupt at once, then leaves a mark. A signal raised inside an import
#: can crash the interpreter (orjson 3.8's module init segfaults when an import it makes fails).
HOOK = """
import os, signal, sys
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name == 'alice_trio.safejson':
            sys.meta_path.remove(self)
            os.kill(os.getpid(), SIGNUM)
            for _ in range(100000):
                pass
            open(MARK, 'w').close()
        return None
sys.meta_path.insert(0, Hook())
from alice_trio.cli.entry import main
sys.exit(main())
"""


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_a_signal_while_the_command_imports_waits_for_the_imports(
    tmp_path: Path, sig: int, code: int, word: str
) -> None:
    mark = tmp_path / "imports-went-on"
    hook = HOOK.replace("SIGNUM", str(int(sig))).replace("MARK", repr(str(mark)))
    argv = [sys.executable, "-c", hook, "run", "--provider", "replay", "--quiet", "--json", "hi"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    text = done.stderr.decode(errors="replace")
    assert mark.exists(), "the signal was raised in the middle of an import"
    assert done.returncode == code, text
    assert text.splitlines() == [f"alice-trio: {word}"]
    # --json: the one result object, also for a run a signal ended before it began
    result = json.loads(done.stdout)
    assert (result["ok"], result["error"], result["command"]) == (False, word, "run")
    assert result["provider"] == "replay" and result["schema"] == 1


@pytest.mark.parametrize(
    "signals", [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)]
)
def test_two_signals_while_the_command_imports_end_it_with_one_line(
    tmp_path: Path, signals: tuple[int, int]
) -> None:
    # both wait (held) while the command imports and come at once when it is done: the first
    # ends the command, the second arrived while that ending was handled and used to escape
    # it as a traceback (exit 1): Ctrl-C then a `kill` a moment later, or a supervisor's
    # SIGTERM during an impatient user's Ctrl-C
    mark = tmp_path / "imports-went-on"
    hook = HOOK.replace("os.kill(os.getpid(), SIGNUM)", "".join(
        f"os.kill(os.getpid(), {int(s)}); " for s in signals
    )).replace("MARK", repr(str(mark)))  # fmt: skip
    argv = [sys.executable, "-c", hook, "run", "--provider", "replay", "--quiet", "--json", "hi"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    text = done.stderr.decode(errors="replace")
    assert mark.exists(), "the signal was raised in the middle of an import"
    assert done.returncode in (130, 143), text
    word = "interrupted" if done.returncode == 130 else "terminated"
    assert text.splitlines() == [f"alice-trio: {word}"]
    result = json.loads(done.stdout)
    assert (result["ok"], result["error"], result["command"]) == (False, word, "run")


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_doctor_json_ended_before_its_checks_prints_every_target_cancelled(
    tmp_path: Path, sig: int, code: int, word: str
) -> None:
    """Before: nothing on stdout — ``doctor --json`` is a JSON document whatever ends it."""
    mark = tmp_path / "imports-went-on"
    hook = HOOK.replace("SIGNUM", str(int(sig))).replace("MARK", repr(str(mark)))
    env = {k: v for k, v in os.environ.items() if k != "ALICE_TRIO_CONFIG"}
    argv = [sys.executable, "-c", hook, "doctor", "--json"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, env=env)
    text = done.stderr.decode(errors="replace")
    assert done.returncode == code, text
    assert text.splitlines() == [f"alice-trio: {word}"]
    rows = json.loads(done.stdout)
    assert {r["provider"] for r in rows} >= {"codex", "claude", "gemini", "kimi", "opencode"}
    assert {r["status"] for r in rows} == {"cancelled"}


def test_a_signal_the_command_was_started_with_ignored_stays_ignored() -> None:
    """A background job of a script starts with SIGINT ignored; Ctrl-C meant for the
    foreground must not end it, neither while it imports nor while trio listens for signals."""
    ignoring = [
        sys.executable,
        "-c",
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
        *ENTRY[1:],
    ]
    argv = [*ignoring, "run", "--provider", "replay", "-o", "speed=1", "--quiet", "hi"]
    proc = subprocess.Popen(argv, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        assert wait_for(lambda: _catches(proc.pid, signal.SIGTERM), 60), "never started"
        deadline = time.monotonic() + 1.5
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    assert out.strip(), "no reply"
