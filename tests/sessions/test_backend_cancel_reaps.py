"""SessionBackend: a cancelled or failed run returns only when its session's whole process
tree is gone (the kill is not left to the backend's background task)."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from alice_trio.models import RunRequest
from alice_trio.providers.base import RunLimits
from alice_trio.providers.claude import ClaudeConfig
from alice_trio.sessions.backend import SessionBackend

from helpers import alive, marked, new_mark, read_pids

FAKE_CLAUDE = Path(__file__).resolve().parents[2] / "benchmarks" / "fake_claude.py"


def launcher(tmp_path: Path) -> str:
    path = tmp_path / "claude"
    path.write_text(f"#!{sys.executable}\n" + FAKE_CLAUDE.read_text())
    path.chmod(0o755)
    return str(path)


async def test_cancelled_run_returns_with_the_session_tree_reaped(tmp_path: Path):
    mark, pidfile = new_mark(), tmp_path / "pids"
    config = ClaudeConfig(
        command=launcher(tmp_path),
        extra_args=("--hold", "term", "--grandchild", "setsid", "--pidfile", str(pidfile)),
        limits=RunLimits(kill_grace=0.25, drain_timeout=0.5),
    )
    started = trio.Event()
    request = RunRequest(
        user_text="hi",
        env={"TEST_MARK": mark, "ALICE_SESSION_KEY": "conv-1"},
        on_progress=lambda text: started.set(),
    )
    async with SessionBackend("claude", config, interrupt_deadline=0.3) as backend:
        with trio.move_on_after(5) as scope:
            async with trio.open_nursery() as nursery:
                cancel = trio.CancelScope()

                async def run() -> None:
                    with cancel:
                        await backend.run(request)

                nursery.start_soon(run)
                with trio.fail_after(4):
                    await started.wait()  # the turn runs: the CLI answered once and holds
                assert len(read_pids(pidfile)) == 2
                cancel.cancel()
        assert not scope.cancelled_caught
        # checked *before* the backend exits: the run itself reaped its session
        assert [p for p in read_pids(pidfile) if alive(p)] == []
        assert marked(mark) == []
        assert backend.open_sessions() == []
