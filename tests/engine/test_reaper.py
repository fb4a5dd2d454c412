"""Leave nothing behind (issue 9): processes that escape the group with setsid() are swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from alice_trio.engine import reaper
from alice_trio.engine.oneshot import run_oneshot
from alice_trio.errors import IdleTimeoutError, ProcessFailedError, RunTimeoutError
from alice_trio.models import RunRequest
from alice_trio.providers.base import Invocation
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, FAST, PROVIDER, FakeConfig
from helpers import alive, marked, new_mark, read_pids

ESCAPES = ("setsid", "setsid-fork", "setsid-envless")


def cfg(*args: str, **kw) -> FakeConfig:
    kw.setdefault("limits", FAST)
    return FakeConfig(args=tuple(args), **kw)


def escaped(mode: str, pidfile: Path, *extra: str) -> tuple[str, ...]:
    return (
        "--grandchild",
        mode,
        "--grandchild-ignore-term",
        "--pidfile",
        str(pidfile),
        *extra,
    )


def assert_nothing_left(mark: str, pidfile: Path) -> None:
    pids = read_pids(pidfile)
    assert len(pids) >= 2, "the fake CLI did not start its tool process"
    assert [p for p in pids if alive(p)] == []
    assert marked(mark) == []


@pytest.mark.parametrize("mode", ESCAPES)
async def test_swept_after_run_timeout(tmp_path: Path, mode: str):
    mark, pidfile = new_mark(), tmp_path / "pids"
    with pytest.raises(RunTimeoutError):
        await run_oneshot(
            PROVIDER,
            cfg(*escaped(mode, pidfile, "--sleep", "30"), timeout=3.0),  # > a loaded start
            RunRequest(user_text="x", env={"TEST_MARK": mark}),
        )
    assert_nothing_left(mark, pidfile)


@pytest.mark.parametrize("mode", ESCAPES)
async def test_swept_after_idle_timeout(tmp_path: Path, mode: str):
    mark, pidfile = new_mark(), tmp_path / "pids"
    with pytest.raises(IdleTimeoutError):
        await run_oneshot(
            PROVIDER,
            cfg(*escaped(mode, pidfile, "--sleep", "30"), idle_timeout=3.0),
            RunRequest(user_text="x", env={"TEST_MARK": mark}),
        )
    assert_nothing_left(mark, pidfile)


@pytest.mark.parametrize("mode", ESCAPES)
async def test_swept_after_crash(tmp_path: Path, mode: str):
    mark, pidfile = new_mark(), tmp_path / "pids"
    with pytest.raises(ProcessFailedError):
        await run_oneshot(
            PROVIDER,
            cfg(*escaped(mode, pidfile, "--crash", "9")),
            RunRequest(user_text="x", env={"TEST_MARK": mark}),
        )
    assert_nothing_left(mark, pidfile)


@pytest.mark.parametrize("mode", ESCAPES)
async def test_swept_after_normal_exit(tmp_path: Path, mode: str):
    mark, pidfile = new_mark(), tmp_path / "pids"
    result = await run_oneshot(
        PROVIDER,
        cfg(*escaped(mode, pidfile, "--text", "done")),
        RunRequest(user_text="x", env={"TEST_MARK": mark}),
    )
    assert result.reply == "done"
    assert_nothing_left(mark, pidfile)


@pytest.mark.parametrize("graceful", [True, False])
async def test_session_process_is_swept_on_close(tmp_path: Path, graceful: bool):
    mark, pidfile = new_mark(), tmp_path / "pids"
    invocation = Invocation(
        argv=(sys.executable, FAKE_CLI, *escaped("setsid", pidfile, "--sleep", "30")),
        env={"TEST_MARK": mark},
        limits=FAST,
    )
    async with open_agent_process(
        invocation, name="fake", graceful=graceful, close_grace=0.2
    ) as agent:
        line = await agent.lines.receive()
        assert json.loads(line)["type"] == "thread"
        assert agent.returncode is None
        with trio.fail_after(5):
            while len(read_pids(pidfile)) < 2:  # noqa: ASYNC110 - polling another process's file
                await trio.sleep(0.01)
    assert_nothing_left(mark, pidfile)


async def test_session_process_is_swept_on_cancel(tmp_path: Path):
    mark, pidfile = new_mark(), tmp_path / "pids"
    invocation = Invocation(
        argv=(sys.executable, FAKE_CLI, *escaped("setsid-fork", pidfile, "--sleep", "30")),
        env={"TEST_MARK": mark},
        limits=FAST,
    )
    with trio.move_on_after(1.0) as scope:
        async with open_agent_process(invocation, name="fake") as agent:
            await agent.exited.wait()
    assert scope.cancelled_caught
    assert_nothing_left(mark, pidfile)


def test_marker_scan_fallback_without_subreaper(tmp_path: Path):
    """In a host that is not a subreaper, the marker scan finds and kills the escapees."""
    pidfile = tmp_path / "pids"
    script = textwrap.dedent(
        f"""
        import sys, trio
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from alice_trio.engine import reaper
        from alice_trio.engine.oneshot import run_oneshot
        from alice_trio.models import RunRequest
        from fake_provider import FAST, PROVIDER, FakeConfig

        async def main():
            args = ("--grandchild", "setsid", "--grandchild-ignore-term",
                    "--pidfile", {str(pidfile)!r}, "--text", "ok")
            r = await run_oneshot(PROVIDER, FakeConfig(args=args, limits=FAST),
                                  RunRequest(user_text="x"))
            print(reaper.mechanism(), r.reply)

        trio.run(main)
        """
    )
    env = {**os.environ, "ALICE_TRIO_SUBREAPER": "0"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["marker-scan", "ok"]
    pids = read_pids(pidfile)
    assert len(pids) == 2
    assert [p for p in pids if alive(p)] == []
    for pid in pids:  # an escapee re-parented to this (subreaper) test process: reap it
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def test_configure_validates_and_describes():
    with pytest.raises(ValueError):
        reaper.configure("sometimes")
    info = reaper.describe()
    assert info["mechanism"] in ("subreaper", "marker-scan", "group-only")
    assert isinstance(info["cgroup_v2_kill_available"], bool)


def test_a_group_of_zombies_is_not_running():
    """Zombies nobody reaped yet (e.g. under an init that reaps every 2 s) must not make
    teardown wait: killpg(0) still sees them, group_running does not."""
    import time

    from alice_trio.engine.process_group import group_alive, group_running

    child = subprocess.Popen(["true"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not alive(child.pid)  # exited, not reaped: a zombie
        assert group_alive(child.pid)
        assert not group_running(child.pid)
    finally:
        child.wait()
    assert not group_alive(child.pid)


THREADED_CHILD = r"""
import ctypes, os, signal, sys, threading, time
pidfile = sys.argv[1]
def record(pid):
    with open(pidfile, "a") as f:
        f.write(f"{pid}\n")
if os.fork() == 0:
    # a group member shaped like node: many threads, dies slowly on SIGTERM with its main
    # thread already a zombie, and a setsid'd tool process below it
    tool = os.fork()
    if tool == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        record(os.getpid())
        time.sleep(600)
        os._exit(0)
    def on_term(signum, frame):
        threading.Thread(target=lambda: (time.sleep(0.4), os._exit(0))).start()
        ctypes.CDLL(None).pthread_exit(None)
    signal.signal(signal.SIGTERM, on_term)
    record(os.getpid())
    while True:
        time.sleep(1)
record(os.getpid())
print('{"type":"thread","id":"t"}', flush=True)
time.sleep(600)
"""


async def test_sweep_waits_for_a_group_member_whose_main_thread_died_first(tmp_path: Path):
    """Regression (seen with gemini's node child): the sweep must not stop while a group member
    is a zombie main thread with threads still exiting: its setsid'd tool is re-parented only
    when the last thread is gone."""
    mark, pidfile = new_mark(), tmp_path / "pids"
    invocation = Invocation(
        argv=(sys.executable, "-c", THREADED_CHILD, str(pidfile)),
        env={"TEST_MARK": mark},
        limits=FAST,
    )
    with trio.move_on_after(5):
        async with open_agent_process(invocation, name="fake", graceful=False) as agent:
            await agent.lines.receive()
            with trio.fail_after(5):
                while len(read_pids(pidfile)) < 3:  # noqa: ASYNC110 - another process's file
                    await trio.sleep(0.01)
    assert_nothing_left(mark, pidfile)


def test_guardian_kills_a_dead_hosts_runs_even_setsid_tools(tmp_path: Path):
    """The guardian is the only cleanup left when the host is SIGKILLed: it ends every process
    carrying the host's id once the host's pipe closes, and leaves others alone."""
    from alice_trio.engine import guardian

    host_id = "test-" + new_mark()
    victim = subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.setsid(); time.sleep(60)"],
        env={**os.environ, guardian.HOST_ENV: host_id},
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    keeper = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", guardian.GUARDIAN_SOURCE, guardian.HOST_ENV, host_id],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        time.sleep(0.2)
        assert keeper.poll() is None and alive(victim.pid)
        assert keeper.stdin is not None
        keeper.stdin.close()  # what the kernel does when the host dies
        assert keeper.wait(timeout=10) == 0
        assert victim.wait(timeout=5) == -9
        assert bystander.poll() is None
    finally:
        for proc in (victim, bystander, keeper):
            proc.kill()
            proc.wait()


def test_guardian_mode_validates():
    from alice_trio.engine import guardian

    with pytest.raises(ValueError):
        guardian.configure("maybe")
    assert guardian.host_id()


# -- adopted orphans are reaped (issue 12.3) -------------------------------------------------


def _zombie_children() -> list[int]:
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        if fields[0] == b"Z" and int(fields[1]) == me:
            out.append(int(name))
    return out


def _wait_until_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not alive(pid)


@pytest.mark.parametrize("mode", ["setsid-exit", "setsid-fork"])
async def test_twenty_runs_leave_no_zombie_in_the_host(tmp_path: Path, mode: str):
    """Before: a CLI's un-waited setsid child, adopted by the subreaper host, stayed a zombie of
    the host for good — one per run."""
    if not reaper.subreaper_active():
        pytest.skip("needs the subreaper (Linux)")
    before = set(_zombie_children())
    for i in range(20):
        pidfile = tmp_path / f"pids-{i}"
        result = await run_oneshot(
            PROVIDER,
            cfg("--grandchild", mode, "--pidfile", str(pidfile), "--text", "ok"),
            RunRequest(user_text="x"),
        )
        assert result.reply == "ok"
        assert len(read_pids(pidfile)) == 2
    assert set(_zombie_children()) - before == set()


async def test_the_hosts_own_children_keep_their_exit_status(tmp_path: Path):
    """Reaping adopted orphans must never take the exit status of a child the host started
    itself and has not waited for yet: trio's and subprocess's (even in a new session) and a
    raw fork in the host's session."""
    if not reaper.subreaper_active():
        pytest.skip("needs the subreaper (Linux)")
    own_trio = await trio.lowlevel.open_process(["sh", "-c", "exit 7"], start_new_session=True)
    own_popen = subprocess.Popen(["sh", "-c", "exit 9"], start_new_session=True)  # noqa: ASYNC220
    raw = os.fork()
    if raw == 0:
        os._exit(5)
    for pid in (own_trio.pid, own_popen.pid, raw):
        _wait_until_zombie(pid)  # exited, not waited for: exactly what the reaper looks at
    result = await run_oneshot(
        PROVIDER,
        cfg("--grandchild", "setsid-exit", "--pidfile", str(tmp_path / "p"), "--text", "ok"),
        RunRequest(user_text="x"),
    )
    assert result.reply == "ok"
    assert reaper.reap_orphans() == 0
    assert await own_trio.wait() == 7
    assert own_popen.wait(timeout=5) == 9
    assert os.waitstatus_to_exitcode(os.waitpid(raw, 0)[1]) == 5  # noqa: ASYNC222


def test_guardian_raises_no_resource_warning_under_dev_mode(tmp_path: Path):
    """Issue 12.12: the guardian was a Popen with an open stdin pipe, reported as a
    ResourceWarning ("subprocess … is still running", "unclosed file") at every host's exit."""
    script = textwrap.dedent(
        f"""
        import sys, trio
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from alice_trio.engine import guardian
        from alice_trio.engine.oneshot import run_oneshot
        from alice_trio.models import RunRequest
        from fake_provider import FAST, PROVIDER, FakeConfig

        async def main():
            r = await run_oneshot(PROVIDER, FakeConfig(args=("--text", "ok"), limits=FAST),
                                  RunRequest(user_text="x"))
            print(r.reply, guardian.running())

        trio.run(main)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "ALICE_TRIO_GUARDIAN"}  # guardian on
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "True"]
    assert "ResourceWarning" not in out.stderr and "Exception ignored" not in out.stderr


def test_a_child_whose_popen_has_no_pid_yet_keeps_its_exit_status():
    """trio builds its ``Popen`` in a worker thread: the child exists, and a quick one is a
    zombie, before the object has its ``pid``. Such a zombie (here: a raw fork into a new
    session, with a ``Popen`` caught mid-construction) must be left to its waiter."""
    if not reaper.subreaper_active():
        pytest.skip("needs the subreaper (Linux)")
    in_construction = object.__new__(subprocess.Popen)
    in_construction.returncode = None  # what __init__ sets before it forks
    child = os.fork()
    if child == 0:
        os.setsid()
        os._exit(4)
    _wait_until_zombie(child)
    reaper.reap_orphans()
    in_construction.pid = child  # construction ends: now it is a known child
    reaper.reap_orphans()
    assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 4
    in_construction.returncode = 4
    del in_construction


async def test_concurrent_spawns_keep_their_exit_status_while_orphans_are_reaped():
    """The realistic race: the host's own short processes started through trio while the
    engine reaps adopted orphans (it does before every spawn and after every teardown)."""
    if not reaper.subreaper_active():
        pytest.skip("needs the subreaper (Linux)")
    codes: list[int] = []

    async def spawn(n: int) -> None:
        for _ in range(n):
            argv = ["sh", "-c", "exit 3"]
            proc = await trio.run_process(argv, check=False, start_new_session=True,
                                          stdin=subprocess.DEVNULL)  # fmt: skip
            codes.append(proc.returncode)

    async with trio.open_nursery() as nursery:

        async def reap_forever() -> None:
            while True:
                reaper.reap_orphans()
                await trio.lowlevel.checkpoint()

        nursery.start_soon(reap_forever)
        async with trio.open_nursery() as spawners:
            for _ in range(4):
                spawners.start_soon(spawn, 60)
        nursery.cancel_scope.cancel()
    assert codes == [3] * 240


async def test_the_sweep_ends_when_nothing_is_left_not_at_its_deadline(tmp_path: Path):
    """A setsid'd tool the sweep killed is a zombie in its own session whose environment is
    gone: only "we killed it" says it is the run's. The sweep reaps it and returns; left
    unreaped it counted as still dying and the sweep ran to ``max_seconds`` (the run's
    teardown took 5 s longer, and no other test noticed)."""
    if not reaper.subreaper_active():
        pytest.skip("the subreaper is off in this process")
    pidfile, run_id = tmp_path / "pids", new_mark()
    proc = await trio.lowlevel.open_process(
        [sys.executable, FAKE_CLI, *escaped("setsid", pidfile, "--sleep", "30")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, reaper.MARKER_ENV: run_id},
    )  # fmt: skip
    with trio.fail_after(30):
        while len(read_pids(pidfile)) < 2:  # noqa: ASYNC110 - polling another process's file
            await trio.sleep(0.01)
    os.killpg(proc.pid, 9)  # the CLI's group; its setsid'd tool survives, then is adopted
    await proc.wait()
    start = trio.current_time()
    killed = await reaper.sweep(run_id, proc.pid, max_seconds=120.0)
    assert killed >= 1
    assert trio.current_time() - start < 60  # nothing left long before the deadline
    assert [p for p in read_pids(pidfile) if alive(p)] == []


async def test_a_killed_tools_command_is_swept_however_the_deaths_interleave(tmp_path: Path):
    """The sweep listed its children, killed a tool and its env-less command, and in its next
    pass reaped the tool — whose command, still dying, had been handed to the host after that
    pass's listing. Nothing else was pending, so the sweep returned with the command alive
    (CI: 1 run in ~10). A pass that reaps now always looks again. The interleaving is the
    kernel's, so this runs the ending twenty times (against the old sweep it failed 3 times
    in 5 here)."""
    left: list[int] = []
    for i in range(20):
        pidfile = tmp_path / f"pids{i}"
        await run_oneshot(
            PROVIDER,
            cfg(*escaped("setsid-envless", pidfile, "--text", "done")),
            RunRequest(user_text="x", env={"TEST_MARK": new_mark()}),
        )
        assert len(read_pids(pidfile)) >= 2, "the fake CLI did not start its tool process"
        left += [p for p in read_pids(pidfile) if alive(p)]
    assert left == []
