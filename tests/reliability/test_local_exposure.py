"""Issue 12.11: nothing the library creates can be reached by another local user.

The library's only listening endpoint is the ``opencode serve`` it spawns (127.0.0.1, basic auth
with a per-server random password: ``tests/sessions/test_opencode_serve.py`` and the e2e test
``test_the_server_refuses_unauthenticated_clients``). Everything else it uses is an anonymous
pipe. This file keeps it that way:

* a static scan of ``src/alice_trio``: any call that creates a file, directory, FIFO or socket
  must be listed in ``REVIEWED`` with the reason it cannot be reached (or the owner-only mode it
  sets) — a new one fails here until someone looks at it;
* a run of each kind (one-shot, opencode session against a spawned serve) under a fresh
  ``TMPDIR`` with a permissive umask leaves nothing there that is group- or world-accessible.
"""

from __future__ import annotations

import ast
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import AliceError
from alice_trio.models import RunRequest
from alice_trio.providers.base import Invocation, RunLimits
from alice_trio.providers.opencode import OpenCodeConfig
from alice_trio.providers.replay import PROVIDER as REPLAY
from alice_trio.providers.replay import ReplayConfig
from alice_trio.sessions.opencode_serve import OpenCodeServeDriver
from alice_trio.sessions.session import open_session

from reliability_support import FAST
from transcripts_index import ROOT

SRC = Path(__file__).parents[2] / "src" / "alice_trio"

#: calls that create something on the file system or the network
CREATORS = {
    "mkdtemp", "mkstemp", "NamedTemporaryFile", "TemporaryFile", "TemporaryDirectory",
    "SpooledTemporaryFile", "mktemp", "mkdir", "makedirs", "mkfifo", "mknod", "socket",
    "create_server", "create_connection", "bind", "listen", "open_tcp_listeners",
    "open_unix_listener", "serve_tcp", "serve_listeners", "write_text", "write_bytes", "touch",
    "symlink_to", "copy", "copyfile", "copytree",
}  # fmt: skip
_WRITE_MODES = set("wax+")

#: (module relative to src/alice_trio, call name) -> why another local user cannot reach it
REVIEWED = {
    ("generated_docs.py", "write_text"): "developer tool: rewrites the docs file named on its "
    "command line, in place (the file's existing mode is kept)",
    ("boundedio.py", "open"): "opens an existing file read-only (os.O_RDONLY; it creates "
    "nothing) and wraps a descriptor it was given (closefd=False)",
    ("cli/main.py", "open"): "opens os.devnull for writing (silences stdout at exit)",
    ("cli/main.py", "write_text"): "the CLI's own helper writing to stdout/stderr, not a file",
    ("cli/console.py", "write_text"): "the CLI's own helper writing to stderr, not a file",
    ("cli/chat.py", "write_text"): "the CLI's own helper writing to stdout/stderr, not a file",
    ("cli/progress.py", "write_text"): "the CLI's own helper writing to stderr, not a file",
    ("cli/doctor.py", "write_text"): "the CLI's own helper writing to stdout, not a file",
    ("cli/entry.py", "open"): "opens os.devnull for a closed stdin/stdout/stderr descriptor",
    ("cli/streams.py", "open"): "opens os.devnull in place of a stream that went away",
    ("cli/streams.py", "write_text"): "write_reply calls the module's own stdout writer, no file",
    ("engine/guardian.py", "open"): "opens os.devnull for the guardian's stdio",
    ("sessions/backend.py", "touch"): "Admission.touch(key): a least-recently-used bump, no file",
    ("testing.py", "TemporaryDirectory"): "test fakes: one mkdtemp folder (0700) per process for "
    "transcripts, removed at exit",
    ("testing.py", "write_text"): "test fakes: a transcript inside that 0700 folder (or the "
    "caller's own directory)",
}


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _writes(call: ast.Call) -> bool:
    """``open(path, mode)`` / ``os.open`` / ``Path.open(mode)`` with a mode that creates."""
    name = _name(call.func)
    if name not in ("open", "fdopen"):
        return False
    if isinstance(call.func, ast.Attribute) and _name(call.func.value) == "os":
        return True  # os.open: flags decide, always reviewed
    modes = [a for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    modes += [
        k.value
        for k in call.keywords
        if k.arg == "mode" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
    ]
    return any(_WRITE_MODES & set(m.value) for m in modes)


def creating_calls() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name in CREATORS or _writes(node):
                found.append((rel, name, node.lineno))
    return found


def test_every_file_socket_or_dir_the_library_creates_is_reviewed():
    unreviewed = [
        f"{rel}:{line} {name}()"
        for rel, name, line in creating_calls()
        if (rel, name) not in REVIEWED
    ]
    assert not unreviewed, (
        "these calls create something another local user might reach; make it owner-only "
        "(0o600 files, 0o700 dirs, authenticated or owner-only sockets), test that, and list "
        "it in REVIEWED: " + ", ".join(unreviewed)
    )


def test_the_scan_sees_what_it_must():
    tree = ast.parse(
        textwrap.dedent("""
            tempfile.mkdtemp(); open(p, "w"); open(p); os.open(p, 0); s.bind(a)
            Path(p).open(mode="a")
        """)
    )
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    flagged = [_name(c.func) for c in calls if _name(c.func) in CREATORS or _writes(c)]
    assert sorted(flagged) == ["bind", "mkdtemp", "open", "open", "open"]


SERVE = textwrap.dedent("""
    import sys, time
    print("opencode server listening on http://127.0.0.1:1", flush=True)
    time.sleep(60)
""")


async def test_runs_leave_nothing_group_or_world_accessible_in_tmpdir(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    old = os.umask(0o000)  # the most permissive: anything created gets the mode it asks for
    try:
        transcript = ROOT / "codex" / "codex_exec_tool" / "timeline.jsonl"
        config = ReplayConfig(transcript=str(transcript), speed=0.0, limits=FAST)
        await run_oneshot(REPLAY, config, RunRequest(user_text="hi"))
        script = tmp_path / "serve.py"
        script.write_text(SERVE)
        inv = Invocation(argv=(sys.executable, str(script)), limits=RunLimits(kill_grace=0.2))
        driver = OpenCodeServeDriver(
            OpenCodeConfig(), RunRequest(user_text="x"), invocation=inv, http_timeout=5
        )
        with trio.fail_after(60), pytest.raises(AliceError):  # nobody listens on port 1
            async with open_session("opencode", initial=RunRequest(user_text="x"), driver=driver):
                pass
    finally:
        os.umask(old)
    exposed = []
    for path in scratch.rglob("*"):
        mode = path.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            exposed.append(f"{path} {stat.filemode(mode)}")
    assert not exposed, exposed
