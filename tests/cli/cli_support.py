"""Helpers of the CLI tests: the result schema check and running ``alice-trio`` as a person
does (a subprocess, optionally on a pseudo-terminal)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema

from alice_trio.cli.result import EVENT_SCHEMA, RESULT_SCHEMA

CLI = [sys.executable, "-m", "alice_trio.cli.entry"]  # the console script's module


def validate_result(obj: Any) -> None:
    """``obj`` is a valid result object (``run --json``, ``replay --json``)."""
    jsonschema.validate(obj, RESULT_SCHEMA, cls=jsonschema.Draft202012Validator)


def validate_event(obj: Any) -> None:
    jsonschema.validate(obj, EVENT_SCHEMA, cls=jsonschema.Draft202012Validator)


def wait_for(pred: Callable[[], object], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _controlling_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyProcess:
    """``alice-trio ARGS`` with stdin, stdout and stderr on one pseudo-terminal, the way a
    person runs it in a terminal: :meth:`send` types, :attr:`screen` is everything shown."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "COLUMNS": "100", "TERM": "xterm", **(env or {})},
            start_new_session=True,
            preexec_fn=_controlling_terminal,  # Ctrl-C typed on the pty sends SIGINT
            close_fds=True,
        )
        os.close(slave)
        self.data = b""

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            self.data += chunk

    @property
    def screen(self) -> str:
        return self.data.decode("utf-8", "replace")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, needle: str, seconds: float = 60.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if needle in self.screen:
                return True
            self._pump(0.05)
        return needle in self.screen

    def expect_count(self, needle: str, count: int, seconds: float = 120.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.screen.count(needle) >= count:
                return True
            self._pump(0.05)
        return self.screen.count(needle) >= count

    def ctrl_c(self) -> None:
        self.send("\x03")  # the terminal turns it into SIGINT for the foreground group

    def wait(self, seconds: float = 60.0) -> int:
        deadline = time.monotonic() + seconds
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._pump(0.05)
        for _ in range(20):  # what is still buffered in the pty
            self._pump(0.01)
        if self.proc.poll() is None:
            self.kill()
            raise AssertionError(f"still running after {seconds} s:\n{self.screen[-3000:]}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        try:
            os.close(self.master)
        except OSError:
            pass
