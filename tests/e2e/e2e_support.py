"""Helpers for the e2e tests: the fake model server process, polling, leftover-process checks."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import cli_env
import install_clis
import procscan
import pytest
import trio

import fake_model_server

HERE = Path(__file__).resolve().parent


def load_manifest() -> dict[str, Any] | None:
    path = Path(os.environ.get("ALICE_TRIO_E2E_MANIFEST") or install_clis.manifest_path())
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class FakeServer:
    """One fake model server process (``fake_model_server.py``) and its request log."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "requests.jsonl"
        port_file = root / "port"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "fake_model_server.py"),
                "--port-file",
                str(port_file),
                "--log",
                str(self.log),
            ],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("fake model server listening"):
            self.close()
            raise RuntimeError(f"fake model server did not start: {line!r}")
        self.port = int(port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line being written
                pass
        return out

    def model_requests(self) -> list[dict[str, Any]]:
        """The logged model calls (POSTs that got a decision), oldest first."""
        return [r for r in self.records() if "decision" in r]

    def tool_results(self) -> list[str]:
        """Every tool result the CLIs sent back to the model, oldest first (deduplicated: a CLI
        resends its history with each call)."""
        out: list[str] = []
        for record in self.model_requests():
            body = record.get("body")
            if not isinstance(body, dict):
                continue
            for kind, text in fake_model_server.history(str(record.get("api")), body):
                if kind == "tool" and text not in out:
                    out.append(text)
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


async def wait_until(predicate: Callable[[], Any], limit: float, what: str) -> Any:
    """Poll ``predicate`` every 50 ms until truthy; fail the test after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {limit:.0f}s waiting for {what}")
        await trio.sleep(0.05)


def run_processes(setup: cli_env.CliSetup) -> list[procscan.ProcInfo]:
    """Live processes of a CLI setup: its env marker, or a working directory inside its root."""
    found = procscan.alive_with_marker(cli_env.MARKER_ENV, setup.marker)
    found += procscan.alive_in_dir(setup.root)
    return list({p.pid: p for p in found}.values())


async def assert_nothing_left(
    setup: cli_env.CliSetup, groups: set[int] = frozenset(), cmd_token: str = "", grace: float = 1.0
) -> None:
    """No live process carries the setup's env marker, works inside its root, is in one of
    ``groups`` or has ``cmd_token`` in its command line (zombies excepted). Waits up to
    ``grace`` seconds for processes SIGKILLed a moment ago to finish dying, then fails."""

    def leftovers() -> list[procscan.ProcInfo]:
        found = run_processes(setup)
        for pgid in groups:
            found += procscan.alive_in_group(pgid)
        if cmd_token:
            found += [
                p
                for p in procscan.live_processes()
                if cmd_token in p.cmdline and p.pid != os.getpid()
            ]
        return list({p.pid: p for p in found}.values())

    deadline = time.monotonic() + grace
    left = leftovers()
    while left and time.monotonic() < deadline:
        await trio.sleep(0.05)
        left = leftovers()
    if left:
        procscan.kill_all(left)
        pytest.fail("processes left behind: " + "; ".join(f"{p.pid} {p.cmdline}" for p in left))


WAIT_SCRIPT = textwrap.dedent("""\
    import os, time
    # {token}: started by the agent CLI's shell tool for an e2e test; killed by the test
    try:  # a sandboxed tool may not write (the test then finds it by its command line)
        with open({pidfile!r} + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace({pidfile!r} + ".tmp", {pidfile!r})
    except OSError:
        pass
    time.sleep(600)
""")


@attrs.frozen
class LongTool:
    """A long-running tool no CLI has a reason to refuse: a small Python script written into
    the workspace that records its pid and waits (a bare ``sleep N`` is refused by newer claude
    versions: "Blocked: standalone sleep"). ``command`` is what the model asks the CLI to run;
    ``token`` is in the script's name: the running tool is found by its command line (a
    sandboxed tool may run in its own pid namespace, or be unable to write its pid file)."""

    command: str
    token: str
    pidfile: Path

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text())
        except (OSError, ValueError):
            return None

    def processes(self) -> list[procscan.ProcInfo]:
        """The script's own process (``python3 <workspace>/<token>.py``; not the shell around
        it, nor a CLI that has the prompt in its argv)."""

        def is_script(cmdline: str) -> bool:
            parts = cmdline.split()
            return (
                len(parts) == 2
                and os.path.basename(parts[0]).startswith("python")
                and parts[1].endswith(f"/{self.token}.py")
            )

        return [p for p in procscan.live_processes() if is_script(p.cmdline)]

    def running(self) -> bool:
        return bool(self.processes())


def long_tool(setup: cli_env.CliSetup, then: str = "") -> LongTool:
    """Write the wait script into ``setup``'s workspace; ``then`` is appended (``; then``)."""
    token = f"alice_wait_{secrets.token_hex(4)}"
    script = Path(setup.workspace) / f"{token}.py"
    pidfile = Path(setup.workspace) / f".{token}.pid"
    script.write_text(WAIT_SCRIPT.format(token=token, pidfile=str(pidfile)))
    command = f"python3 {script}" + (f"; {then}" if then else "")
    return LongTool(command=command, token=token, pidfile=pidfile)


async def wait_for_tool(tool: LongTool, server: FakeServer, limit: float) -> None:
    """Wait until the tool runs. Fails at once, saying so and quoting what the CLI returned,
    when the CLI sent the model a tool result instead (it refused or failed the command), and
    after ``limit`` seconds with the model calls seen so far."""
    deadline = time.monotonic() + limit
    while not tool.running():
        results = server.tool_results()
        if results and not tool.running():
            pytest.fail(
                f"the tool never started: the CLI answered the call of `{tool.command}` with "
                f"the tool result {results[-1][:600]!r}"
            )
        if time.monotonic() > deadline:
            decisions = [r.get("decision") for r in server.model_requests()]
            pytest.fail(
                f"the tool never started within {limit:.0f}s: `{tool.command}` "
                f"(model decisions so far: {decisions}; tool results: {results})"
            )
        await trio.sleep(0.05)
