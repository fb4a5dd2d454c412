"""Bounded reads of whole files and streams: the bound, and Ctrl-C while a FIFO or a pipe
keeps its writer open (a signal that lands just before a blocking ``read()`` must still end
the command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alice_trio.boundedio import FileTooLargeError, read_bounded, read_fd_bounded

ROOT = Path(__file__).resolve().parents[1]

#: the reader, with SIGINT's handler made restartable (``SA_RESTART``): the kernel then resumes
#: a blocking read after the handler, exactly what happens to a signal that lands just before
#: the read. Only a bounded wait lets Python raise the KeyboardInterrupt.
READER = """
import signal, sys
signal.siginterrupt(signal.SIGINT, False)
from alice_trio.boundedio import read_bounded, read_fd_bounded
print("reading", flush=True)
try:
    if sys.argv[1] == "-":
        read_fd_bounded(0, 1000)
    else:
        read_bounded(sys.argv[1], 1000)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
sys.exit(0)
"""


def _reader(source: str, **kw: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-c", READER, source], env=env,  # type: ignore[call-overload]
                            stdout=subprocess.PIPE, text=True, **kw)  # fmt: skip


def _interrupt(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    assert proc.stdout.readline() == "reading\n"
    time.sleep(0.3)  # into the read (a signal before it must work the same)
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


def test_ctrl_c_ends_a_read_of_a_fifo_whose_writer_stays_open(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = _reader(str(fifo))
    writer = -1
    try:
        deadline = time.monotonic() + 60
        while writer < 0 and time.monotonic() < deadline:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
        assert writer >= 0, "the reader never opened the fifo"
        os.write(writer, b"some data\n")
        out = _interrupt(proc)
    finally:
        if writer >= 0:
            os.close(writer)
    assert proc.returncode == 130 and "interrupted" in out


def test_ctrl_c_ends_a_wait_for_a_fifos_first_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = _interrupt(_reader(str(fifo)))
    assert "interrupted" in out


def test_ctrl_c_ends_a_read_of_a_pipe_whose_writer_stays_open() -> None:
    read_end, write_end = os.pipe()
    try:
        proc = _reader("-", stdin=read_end)
        os.close(read_end)
        os.write(write_end, b"partial prompt")
        out = _interrupt(proc)
    finally:
        os.close(write_end)
    assert proc.returncode == 130 and "interrupted" in out


def test_a_fifo_is_read_to_its_end_and_bounded(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf 'a%.0s' $(seq 1 50) > {fifo}"])
    assert read_bounded(fifo, 1000) == b"a" * 50
    writer.wait(timeout=30)
    writer = subprocess.Popen(["sh", "-c", f"head -c 5000 /dev/zero > {fifo}"])
    with pytest.raises(FileTooLargeError):
        read_bounded(fifo, 1000)
    writer.kill()
    writer.wait(timeout=30)


def test_regular_files_devices_and_folders(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    assert read_bounded(f, 10) == b"x" * 10
    with pytest.raises(FileTooLargeError):
        read_bounded(f, 9)
    with pytest.raises(FileTooLargeError):
        read_bounded("/dev/zero", 1 << 16)
    with pytest.raises(IsADirectoryError):
        read_bounded(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 10)
    read_end, write_end = os.pipe()
    os.write(write_end, b"abc")
    os.close(write_end)
    try:
        assert read_fd_bounded(read_end, 10) == b"abc"
    finally:
        os.close(read_end)


def test_a_regular_file_longer_than_its_stat_says_is_read_whole(tmp_path: Path) -> None:
    """The first read is sized by the file (not by the bound); a file larger than its stat
    said — ``/proc`` files report 0, a log grows — is still read to its end or the bound."""
    status = read_bounded("/proc/self/status", 1 << 20)
    assert status.startswith(b"Name:") and b"\nPid:" in status
    with pytest.raises(FileTooLargeError):
        read_bounded("/proc/self/status", 10)
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(FileTooLargeError):
        read_bounded(path, 99)
