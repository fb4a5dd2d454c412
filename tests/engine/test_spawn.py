"""One spawn path (issue 13.1): one-shot runs and session processes start and fail the same way;
teardown escalation runs on trio's MockClock through the fakeable process protocol."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from alice_trio.engine.oneshot import run_invocation
from alice_trio.engine.process_group import terminate
from alice_trio.errors import AliceError, CLINotFoundError, ConfigError
from alice_trio.providers.base import Invocation
from alice_trio.transports.process import open_agent_process

from fake_provider import FAKE_CLI, FAST, FakeDecoder

SRC = Path(__file__).parents[2] / "src" / "alice_trio"


def _not_executable(tmp: Path) -> tuple[str, ...]:
    path = tmp / "plain.txt"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o644)
    return (str(path),)


def _not_a_program(tmp: Path) -> tuple[str, ...]:
    path = tmp / "garbage"
    path.write_bytes(b"\x00\x01\x02 not a program, no shebang\n")
    path.chmod(0o755)
    return (str(path),)


CASES = {
    # name: (argv builder, cwd builder, expected type)
    "ENOENT": (lambda t: (str(t / "no-such-cli"),), lambda t: None, CLINotFoundError),
    "EACCES": (_not_executable, lambda t: None, CLINotFoundError),
    "ENOEXEC": (_not_a_program, lambda t: None, CLINotFoundError),
    "ENOTDIR": (lambda t: (str(Path(FAKE_CLI) / "x"),), lambda t: None, CLINotFoundError),
    "missing cwd": (lambda t: (sys.executable, FAKE_CLI), lambda t: str(t / "gone"), ConfigError),
    "cwd is a file": (lambda t: (sys.executable, FAKE_CLI), lambda t: FAKE_CLI, ConfigError),
    "NUL in argv": (
        lambda t: (sys.executable, FAKE_CLI, "--text", "a\0b"),
        lambda t: None,
        ConfigError,
    ),
    "NUL in command": (lambda t: ("py\0thon",), lambda t: None, ConfigError),
    "empty command": (lambda t: (), lambda t: None, ConfigError),
}


def _unchecked(**fields: object) -> Invocation:
    """An Invocation that skips its construction checks (providers.base refuses NUL bytes and
    over-long arguments before any spawn): what the spawn path itself does with them, the last
    line of defence for drivers that build argv another way."""
    base = Invocation(argv=(sys.executable, FAKE_CLI), limits=FAST)
    invocation = object.__new__(Invocation)
    for field in attrs.fields(Invocation):
        object.__setattr__(
            invocation, field.name, fields.get(field.name, getattr(base, field.name))
        )
    return invocation


async def _oneshot(invocation: Invocation) -> AliceError:
    with pytest.raises(AliceError) as info:
        await run_invocation(invocation, FakeDecoder(), provider="fake")
    return info.value


async def _session(invocation: Invocation) -> AliceError:
    with pytest.raises(AliceError) as info:
        async with open_agent_process(invocation, name="fake"):
            pass
    return info.value


@pytest.mark.parametrize("case", list(CASES))
async def test_oneshot_and_session_fail_alike(case: str, tmp_path: Path):
    argv, cwd, expected = CASES[case]
    try:
        invocation = Invocation(argv=argv(tmp_path), cwd=cwd(tmp_path), limits=FAST)
    except ConfigError:  # refused at construction already; the spawn path must agree
        assert expected is ConfigError
        invocation = _unchecked(argv=argv(tmp_path), cwd=cwd(tmp_path))
    one = await _oneshot(invocation)
    two = await _session(invocation)
    assert type(one) is expected, repr(one)
    assert (type(one), str(one)) == (type(two), str(two))
    assert one.provider == two.provider == "fake"


async def test_nul_in_env_is_typed_and_names_only_the_variable(tmp_path: Path):
    secret = "sk-" + "s" * 20
    with pytest.raises(ConfigError) as early:
        Invocation(argv=(sys.executable, FAKE_CLI), env={"API_KEY": f"{secret}\0x"}, limits=FAST)
    assert "API_KEY" in str(early.value) and secret not in str(early.value)
    invocation = _unchecked(env={"API_KEY": f"{secret}\0x"})
    for error in (await _oneshot(invocation), await _session(invocation)):
        assert isinstance(error, ConfigError)
        assert "API_KEY" in str(error) and secret not in str(error)


async def test_e2big_is_a_config_error_naming_the_size(tmp_path: Path):
    """What the OS refuses after the checks is mapped too (here: an argument list too long)."""
    with pytest.raises(ConfigError):
        Invocation(argv=(sys.executable, FAKE_CLI, "x" * (4 << 20)), limits=FAST)
    invocation = _unchecked(argv=(sys.executable, FAKE_CLI, "x" * (4 << 20)))
    one, two = await _oneshot(invocation), await _session(invocation)
    assert isinstance(one, ConfigError) and "E2BIG" in str(one)
    assert (type(one), str(one)) == (type(two), str(two))


def test_one_open_process_call_and_no_transport_import_of_the_oneshot_engine():
    calls = []
    for path in SRC.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "open_process(" in line and not line.lstrip().startswith(("#", '"', "`")):
                calls.append((path.relative_to(SRC).as_posix(), n))
    assert [c[0] for c in calls] == ["engine/spawn.py"], calls
    for path in (SRC / "transports").glob("*.py"):
        text = path.read_text()
        assert "engine.oneshot" not in text and "engine import oneshot" not in text, path


# -- escalation on the MockClock -------------------------------------------------------------


class FakeLeader:
    """A process group that ignores SIGTERM (``stubborn``) or exits on it after ``delay``."""

    def __init__(self, *, stubborn: bool, delay: float = 0.0, member_lingers: float = 0.0):
        self.stubborn = stubborn
        self.delay = delay
        self.member_lingers = member_lingers
        self.returncode: int | None = None
        self.signals: list[tuple[float, int]] = []
        self._exited = trio.Event()
        self._member_until: float | None = None

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def _exit(self, rc: int) -> None:
        if self.returncode is None:
            self.returncode = rc
            self._member_until = trio.current_time() + self.member_lingers
            self._exited.set()

    def signal_group(self, sig: int) -> bool:
        self.signals.append((trio.current_time(), sig))
        if sig == signal.SIGKILL:
            self._exit(-signal.SIGKILL)
            self._member_until = trio.current_time()
        elif sig == signal.SIGTERM and not self.stubborn:

            async def later() -> None:
                await trio.sleep(self.delay)
                self._exit(-signal.SIGTERM)

            trio.lowlevel.spawn_system_task(later)
        return True

    def group_running(self) -> bool:
        if self.returncode is None:
            return True
        assert self._member_until is not None
        return trio.current_time() < self._member_until


@pytest.mark.parametrize(
    ("leader", "expected", "kill_at"),
    [
        (FakeLeader(stubborn=True), [signal.SIGTERM, signal.SIGKILL], 5.0),
        (FakeLeader(stubborn=False, delay=1.0), [signal.SIGTERM], None),
        # the leader exits in time but a member of its group outlives the grace: SIGKILL
        (
            FakeLeader(stubborn=False, delay=1.0, member_lingers=60),
            [signal.SIGTERM, signal.SIGKILL],
            5.0,
        ),
    ],
)
async def test_terminate_escalates_after_the_grace(
    leader: FakeLeader, expected: list[int], kill_at: float | None, autojump_clock
):
    start = trio.current_time()
    await terminate(leader, 5.0)
    assert [s for _, s in leader.signals] == expected
    if kill_at is not None:
        assert leader.signals[-1][0] - start == pytest.approx(kill_at, abs=0.05)
    assert leader.returncode is not None and not leader.group_running()


async def test_terminate_of_a_dead_empty_group_sends_nothing(autojump_clock):
    leader = FakeLeader(stubborn=True)
    leader._exit(0)
    await terminate(leader, 5.0)
    assert leader.signals == []


@pytest.mark.parametrize("provider", ["claude", "codex", "opencode"])
@pytest.mark.parametrize("case", ["not executable", "missing workspace"])
async def test_public_entry_points_agree(provider: str, case: str, tmp_path: Path):
    """Through the public API (``run_oneshot`` vs ``open_session``): before, a session raised a
    bare OSError for a non-executable command and "cannot execute" for a missing workspace."""
    from alice_trio.engine.oneshot import run_oneshot
    from alice_trio.models import RunRequest
    from alice_trio.providers import get_provider
    from alice_trio.sessions.session import open_session

    prov = get_provider(provider)
    command = _not_executable(tmp_path)[0]
    if case == "not executable":
        config, request = prov.config_class(command=command), RunRequest(user_text="hi")
    else:
        config = prov.config_class()
        request = RunRequest(user_text="hi", workspace_dir=str(tmp_path / "gone"))
    with pytest.raises(AliceError) as one:
        await run_oneshot(prov, config, request)
    with pytest.raises(AliceError) as two:
        async with open_session(provider, config, initial=request):
            pass
    expected = CLINotFoundError if case == "not executable" else ConfigError
    assert type(one.value) is type(two.value) is expected
    assert str(one.value) == str(two.value)
